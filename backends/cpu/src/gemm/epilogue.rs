//! Epilogues: work applied to each block of GEMM output right after it is
//! computed, while it is still in cache.

use std::marker::PhantomData;

use super::GemmDims;
use crate::KernelError;

/// A rectangular block of one batch's output matrix `C`, handed to an
/// [`Epilogue`]. It covers rows `first_row()..first_row()+rows()` and columns
/// `first_col()..first_col()+cols()`; blocks given to concurrent calls never
/// overlap. Row slices are reached through [`Tile::row_mut`] / [`Tile::for_each_row`].
pub struct Tile<'a> {
    ptr: *mut f32,
    ld: usize,
    batch: usize,
    row0: usize,
    rows: usize,
    col0: usize,
    cols: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: a tile is an exclusive view of disjoint memory (like `&mut [f32]`).
unsafe impl Send for Tile<'_> {}

impl<'a> Tile<'a> {
    /// Builds a tile over `rows` rows of `cols` elements, row `r` starting at
    /// `ptr + r * ld`.
    ///
    /// # Safety
    /// For the lifetime `'a`, the memory of every row must be valid for reads
    /// and writes and must not be accessed through any other pointer.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn from_raw(ptr: *mut f32, ld: usize, batch: usize, row0: usize, rows: usize, col0: usize, cols: usize) -> Self {
        Tile {
            ptr,
            ld,
            batch,
            row0,
            rows,
            col0,
            cols,
            _borrow: PhantomData,
        }
    }

    /// Builds a tile over a row-major slice: `rows` rows of `cols` elements with
    /// row stride `ld`, describing output rows `row0..` and columns `col0..`
    /// of batch `batch`. Returns `None` if the slice is too short.
    pub fn from_slice(data: &'a mut [f32], ld: usize, batch: usize, row0: usize, rows: usize, col0: usize, cols: usize) -> Option<Self> {
        let need = if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1).checked_mul(ld)?.checked_add(cols)?
        };
        if need > data.len() || (rows > 1 && ld < cols) {
            return None;
        }
        // SAFETY: bounds checked above; the slice is borrowed mutably for 'a.
        Some(unsafe { Tile::from_raw(data.as_mut_ptr(), ld, batch, row0, rows, col0, cols) })
    }

    /// Batch index of this block.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// Index (in the whole output matrix) of the block's first row.
    pub fn first_row(&self) -> usize {
        self.row0
    }
    /// Number of rows in the block.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Index (in the whole output matrix) of the block's first column.
    pub fn first_col(&self) -> usize {
        self.col0
    }
    /// Number of columns in the block.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The `r`-th row of the block (output row `first_row() + r`), `cols()` long.
    ///
    /// # Panics
    /// If `r >= rows()` (a bug in the epilogue, not in the caller's arguments).
    pub fn row_mut(&mut self, r: usize) -> &mut [f32] {
        assert!(r < self.rows, "Tile::row_mut: row {r} of {}", self.rows);
        // SAFETY: `from_raw`'s contract: each row is valid and exclusively ours.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r * self.ld), self.cols) }
    }

    /// The whole block as one row-major slice (`rows() × cols()`), when its rows
    /// are adjacent in memory (one row, or a row stride equal to `cols()`).
    pub fn as_dense_mut(&mut self) -> Option<&mut [f32]> {
        if self.rows > 1 && self.ld != self.cols {
            return None;
        }
        // SAFETY: `from_raw`'s contract: the rows are valid and exclusively ours,
        // and with ld == cols (or one row) they form one contiguous run.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr, self.rows * self.cols) })
    }

    /// Calls `f(output_row_index, row)` for every row of the block.
    pub fn for_each_row(&mut self, mut f: impl FnMut(usize, &mut [f32])) {
        for r in 0..self.rows {
            let row0 = self.row0;
            f(row0 + r, self.row_mut(r));
        }
    }
}

/// Work applied to each output block of a GEMM (or convolution) as soon as it
/// is computed. Called concurrently from several threads on disjoint tiles;
/// every output element is passed exactly once.
///
/// Any `Fn(&mut Tile) + Sync` closure is an epilogue.
pub trait Epilogue: Sync {
    /// Transforms the block in place.
    fn apply(&self, tile: &mut Tile<'_>);

    /// Checks the epilogue's own operands (say, a bias length) against the
    /// GEMM's dimensions before any work starts. The default accepts anything.
    fn check(&self, dims: &GemmDims) -> Result<(), KernelError> {
        let _ = dims;
        Ok(())
    }
}

impl<F: Fn(&mut Tile<'_>) + Sync> Epilogue for F {
    fn apply(&self, tile: &mut Tile<'_>) {
        self(tile)
    }
}

/// Built-in epilogue: `C[i,j] = act(C[i,j] + col_bias[j] + row_bias[i])`,
/// where `act` is ReLU when `relu` is set, identity otherwise. Biases are
/// shared across batches.
#[derive(Clone, Copy, Debug, Default)]
pub struct BiasAct<'a> {
    /// Bias per output column (`n` long), e.g. a linear layer's bias.
    pub col_bias: Option<&'a [f32]>,
    /// Bias per output row (`m` long), e.g. a conv bias in `W·X` form.
    pub row_bias: Option<&'a [f32]>,
    /// Apply `max(x, 0)` after the biases.
    pub relu: bool,
}

impl Epilogue for BiasAct<'_> {
    fn apply(&self, tile: &mut Tile<'_>) {
        let c0 = tile.first_col();
        let cols = tile.cols();
        let (cb, rb, relu) = (self.col_bias, self.row_bias, self.relu);
        super::mv::wide(|| {
            tile.for_each_row(|i, row| {
                if let Some(cb) = cb {
                    for (x, b) in row.iter_mut().zip(&cb[c0..c0 + cols]) {
                        *x += *b;
                    }
                }
                if let Some(rb) = rb {
                    let b = rb[i];
                    for x in row.iter_mut() {
                        *x += b;
                    }
                }
                if relu {
                    for x in row.iter_mut() {
                        *x = x.max(0.0);
                    }
                }
            })
        })
    }

    fn check(&self, dims: &GemmDims) -> Result<(), KernelError> {
        if let Some(b) = self.col_bias.filter(|b| b.len() < dims.n) {
            return Err(KernelError::BufferLength {
                kernel: "gemm epilogue",
                operand: "col_bias",
                expected: dims.n,
                found: b.len(),
            });
        }
        if let Some(b) = self.row_bias.filter(|b| b.len() < dims.m) {
            return Err(KernelError::BufferLength {
                kernel: "gemm epilogue",
                operand: "row_bias",
                expected: dims.m,
                found: b.len(),
            });
        }
        Ok(())
    }
}
