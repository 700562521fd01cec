//! A program's epilogue expression as an [`Epilogue`] of the GEMM and
//! convolution kernels, so it runs on each output tile right after the tile is
//! computed, while it is in cache, instead of as a second pass over the output.
//!
//! The kernels hand the epilogue tiles of a `batch × m × n` output matrix. Each
//! extra operand of the expression is a strided view over the kernel's output
//! shape; [`TileEpilogue::new`] re-expresses it as one stride per matrix axis
//! (batch, row, column), which is possible when each axis's output dims are
//! contiguous in the extra too (always so for dense and broadcast operands).
//! When that fails the caller keeps the two-pass path.

use super::Mem;
use crate::elementwise::{self, EwInput, EwProgram, check_view};
use crate::gemm::{Epilogue, Tile, with_scratch};
use eqopt_kir::View;
use std::ops::Range;

/// Elements per evaluation of a dense tile (64 KiB of accumulator: in L2).
const CHUNK: usize = 16 * 1024;

/// An extra operand: its data, the element offset of matrix element
/// `(0, 0, 0)`, and its strides along batch, row and column.
struct Extra<'a> {
    data: &'a [f32],
    base: usize,
    strides: [usize; 3],
}

/// The epilogue expression applied tile by tile.
pub(super) struct TileEpilogue<'a> {
    prog: &'a EwProgram,
    extras: Vec<Extra<'a>>,
    /// Set when the expression is `x0 + x1` or `relu(x0 + x1)` with `x1`
    /// constant along each row or contiguous along it: run by a plain loop
    /// instead of the general evaluator (the conv and GEMM epilogue of almost
    /// every CNN layer).
    bias_act: Option<BiasAct>,
}

/// `acc + x1` (then ReLU if `relu`), `x1` read at `base + b·sb + i·si + j·sj`
/// with `sj` 0 (one value per row) or 1 (a contiguous run per row: a column
/// bias, or a dense operand such as a residual).
#[derive(Clone, Copy)]
struct BiasAct {
    relu: bool,
}

/// `max(y, 0)` with NaN kept, as the elementwise `Relu` (written as a compare
/// and select so it vectorizes).
#[inline(always)]
fn relu_f32(y: f32) -> f32 {
    if y < 0.0 { 0.0 } else { y }
}

/// Recognises `x0 + x1` and `relu(x0 + x1)` (either operand order).
fn bias_act(prog: &EwProgram) -> Option<BiasAct> {
    use crate::elementwise::{BinaryOp, Instr, UnaryOp};
    let add_of_inputs = |i: &[Instr]| {
        matches!(
            i,
            [
                Instr::Input(0),
                Instr::Input(1),
                Instr::Binary(BinaryOp::Add, 0, 1) | Instr::Binary(BinaryOp::Add, 1, 0)
            ] | [
                Instr::Input(1),
                Instr::Input(0),
                Instr::Binary(BinaryOp::Add, 0, 1) | Instr::Binary(BinaryOp::Add, 1, 0)
            ]
        )
    };
    let instrs = prog.instrs();
    if prog.num_inputs() != 2 {
        return None;
    }
    match instrs {
        [head @ .., Instr::Unary(UnaryOp::Relu, 2)] if add_of_inputs(head) => Some(BiasAct { relu: true }),
        _ if add_of_inputs(instrs) => Some(BiasAct { relu: false }),
        _ => None,
    }
}

/// The stride of the flattened dims `dims` of a view with `shape` and
/// `strides`, if they flatten: each non-unit dim's stride is the next non-unit
/// dim's stride times that dim's size. `None` also for negative strides.
fn flat_stride(shape: &[usize], strides: &[isize], dims: Range<usize>) -> Option<usize> {
    let mut flat: Option<usize> = None;
    let mut inner_extent = 1usize;
    for d in dims.rev() {
        if shape[d] == 1 {
            continue;
        }
        let s = usize::try_from(strides[d]).ok()?;
        match flat {
            None => flat = Some(s),
            Some(f) if s == f.checked_mul(inner_extent)? => {}
            Some(_) => return None,
        }
        inner_extent = inner_extent.checked_mul(shape[d])?;
    }
    Some(flat.unwrap_or(0))
}

impl<'a> TileEpilogue<'a> {
    /// The epilogue `prog` over `extras` for a kernel whose output has `shape`,
    /// with the output dims `axes[0]`, `axes[1]` and `axes[2]` forming the
    /// batch, row and column axes of the kernel's matrix, and `base` the
    /// coordinates of the dims before them (a GEMM's outer batch dims), or
    /// `None` when an extra does not flatten that way or reaches outside its buffer.
    pub(super) fn new(
        mem: &'a Mem,
        prog: &'a EwProgram,
        extras: &[View],
        shape: &[usize],
        axes: [Range<usize>; 3],
        base: &[usize],
    ) -> Option<TileEpilogue<'a>> {
        let extras = extras
            .iter()
            .enumerate()
            .map(|(k, v)| {
                let data = mem.f32(v.buffer);
                // Every element the tiles will read is inside the buffer.
                check_view("epilogue", "extra", k, data.len(), v.offset, shape, &v.strides).ok()?;
                let strides = [
                    flat_stride(shape, &v.strides, axes[0].clone())?,
                    flat_stride(shape, &v.strides, axes[1].clone())?,
                    flat_stride(shape, &v.strides, axes[2].clone())?,
                ];
                let lead: isize = base.iter().zip(&v.strides).map(|(&c, &s)| c as isize * s).sum();
                Some(Extra {
                    data,
                    base: usize::try_from(v.offset as isize + lead).ok()?,
                    strides,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let bias_act = bias_act(prog).filter(|_| extras[0].strides[2] <= 1);
        Some(TileEpilogue { prog, extras, bias_act })
    }
}

impl TileEpilogue<'_> {
    /// Evaluates the expression over `out` (`shape`, dense), the matrix block
    /// at batch `b`, first row `i0`, first column `c0`, with `acc` holding the
    /// accumulator (a copy of `out`).
    fn eval(&self, acc: &[f32], out: &mut [f32], shape: &[usize], b: usize, i0: usize, c0: usize) {
        let dense = elementwise::row_major_strides(shape);
        let mut inputs = Vec::with_capacity(1 + self.extras.len());
        inputs.push(EwInput::strided(acc, 0, dense));
        for e in &self.extras {
            let [sb, si, sj] = e.strides;
            let strides = if shape.len() == 2 {
                vec![si as isize, sj as isize]
            } else {
                vec![sj as isize]
            };
            inputs.push(EwInput::strided(e.data, e.base + b * sb + i0 * si + c0 * sj, strides));
        }
        // `new` checked every extra against the whole output, so a failure here
        // is an executor bug: fail loudly rather than leave the tile wrong.
        if let Err(e) = elementwise::eval(self.prog, &inputs, out, shape) {
            panic!("epilogue on a validated tile failed: {e}");
        }
    }
}

impl Epilogue for TileEpilogue<'_> {
    fn apply(&self, tile: &mut Tile<'_>) {
        let (b, i0, c0, rows, cols) = (tile.batch(), tile.first_row(), tile.first_col(), tile.rows(), tile.cols());
        if let Some(BiasAct { relu }) = self.bias_act {
            let e = &self.extras[0];
            let [sb, si, sj] = e.strides;
            crate::gemm::mv::wide(|| {
                tile.for_each_row(|i, row| {
                    let at = e.base + b * sb + i * si + c0 * sj;
                    if sj == 0 {
                        let v = e.data[at];
                        if relu {
                            row.iter_mut().for_each(|x| *x = relu_f32(*x + v));
                        } else {
                            row.iter_mut().for_each(|x| *x += v);
                        }
                    } else {
                        let bias = &e.data[at..at + cols];
                        if relu {
                            row.iter_mut().zip(bias).for_each(|(x, v)| *x = relu_f32(*x + v));
                        } else {
                            row.iter_mut().zip(bias).for_each(|(x, v)| *x += v);
                        }
                    }
                });
            });
            return;
        }
        if let Some(out) = tile.as_dense_mut() {
            // Evaluations over runs of whole rows of about CHUNK elements: the
            // per-call setup is amortized and the accumulator's copy stays in cache.
            let band = CHUNK.div_ceil(cols.max(1)).min(rows.max(1));
            with_scratch(band * cols, |scratch| {
                for (k, part) in out.chunks_mut(band * cols).enumerate() {
                    let acc = &mut scratch[..part.len()];
                    acc.copy_from_slice(part);
                    self.eval(acc, part, &[part.len() / cols, cols], b, i0 + k * band, c0);
                }
            });
            return;
        }
        with_scratch(cols, |acc| {
            tile.for_each_row(|i, row| {
                acc.copy_from_slice(row);
                self.eval(acc, row, &[cols], b, i, c0);
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::flat_stride;

    #[test]
    fn dims_flatten_only_when_contiguous() {
        // NCHW [1, 8, 5, 7]: a dense extra flattens H·W to stride 1, a per-channel bias to 0.
        assert_eq!(flat_stride(&[1, 8, 5, 7], &[280, 35, 7, 1], 2..4), Some(1));
        assert_eq!(flat_stride(&[1, 8, 5, 7], &[0, 1, 0, 0], 2..4), Some(0));
        assert_eq!(flat_stride(&[1, 8, 5, 7], &[0, 1, 0, 0], 1..2), Some(1));
        // A transposed extra does not flatten H·W.
        assert_eq!(flat_stride(&[1, 8, 5, 7], &[280, 1, 8, 40], 2..4), None);
        // Unit dims are skipped; an empty range is stride 0.
        assert_eq!(flat_stride(&[4, 1, 3], &[3, 99, 1], 0..3), Some(1));
        assert_eq!(flat_stride(&[4, 3], &[3, 1], 0..0), Some(0));
        assert_eq!(flat_stride(&[2, 3], &[-3, 1], 0..2), None);
    }
}
