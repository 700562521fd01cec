//! Single-precision GEMM: `C[b] = A[b] · B[b]` for `b in 0..batch`, with
//! arbitrary (non-negative) element strides for `A` and `B`, batch strides
//! (0 broadcasts an operand over the batch, e.g. shared weights), `B` in
//! `f32`/`f16`/`bf16` or quantized int8/int4 ([`WeightRef`], [`crate::quant`]),
//! and an [`Epilogue`] run on each output block right after it is computed.
//!
//! The product runs on rayon's *current* pool: the output is cut into blocks of
//! rows (and, when there are too few rows to keep every thread busy, of
//! columns), each computed by the project's own single-threaded packed SGEMM
//! (`packed.rs`: BLIS-style packing and cache blocking around AVX-512 14 × 32 or
//! AVX2 6 × 16 register-blocked micro-kernels, chosen by [`Isa`]; it measured
//! on par with the `gemm` crate — within ±3% on most shapes, up to 7% ahead on
//! some — see `examples/gemm_throughput.rs` and `backends/README.md`). The scalar ISA (and non-x86 targets) use the `gemm`
//! crate's kernel instead, as does an `f32` `m == 1` product (a memory-bound
//! GEMV). A `m == 1` product with `f16`/`bf16` weights takes a dedicated GEMV
//! path that converts while reading; with int8/int4 weights, a dequant-GEMV
//! that reads the quantized values once and applies the scales per column
//! (int8) or per group (int4) to its partial sums.
//!
//! [`gemm_bf16`] is the bf16-*compute* variant (`A` rounded to bf16, a bf16
//! `B`, `f32` sums) for approximate rewrites: an AVX-512 BF16 `vdpbf16ps`
//! kernel where the CPU has one, else the `f32` kernels on a rounded copy of
//! `A` (see `bf16.rs`).

mod bf16;
mod driver;
mod epilogue;
mod gemv;
#[cfg(target_arch = "x86_64")]
mod gemv_quant_avx2;
#[cfg(target_arch = "x86_64")]
mod kernel_avx2;
#[cfg(target_arch = "x86_64")]
mod kernel_avx512;
#[cfg(target_arch = "x86_64")]
mod kernel_avx512_bf16;
pub(crate) mod mv;
mod pack;
mod packed;
mod weights;

pub use bf16::{bf16_dot_available, gemm_bf16, gemm_bf16_widened_with_isa, gemm_bf16_with_isa};
pub use epilogue::{BiasAct, Epilogue, Tile};
pub use weights::WeightRef;

pub(crate) use driver::{SendPtr, packed_tile_cols, sgemm_raw, sgemm_with_packer};
pub(crate) use packed::PackB;

use crate::KernelError;
use crate::simd::Isa;

const KERNEL: &str = "gemm";

/// Sizes of a (batched) GEMM: `batch` products of `A: m×k` by `B: k×n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmDims {
    /// Number of independent products.
    pub batch: usize,
    /// Rows of `A` and `C`.
    pub m: usize,
    /// Columns of `A`, rows of `B`.
    pub k: usize,
    /// Columns of `B` and `C`.
    pub n: usize,
}

impl GemmDims {
    /// A single (unbatched) `m×k · k×n` product.
    pub const fn new(m: usize, k: usize, n: usize) -> Self {
        GemmDims { batch: 1, m, k, n }
    }

    /// The same product repeated over `batch` batches.
    pub const fn batched(self, batch: usize) -> Self {
        GemmDims { batch, ..self }
    }

    /// Floating-point operations (`2·batch·m·k·n`).
    pub fn flops(&self) -> f64 {
        2.0 * self.batch as f64 * self.m as f64 * self.k as f64 * self.n as f64
    }
}

/// Where the elements of one operand live in its slice: element `(b, i, j)`
/// (batch, row, column) is at `offset + b·batch_stride + i·row_stride + j·col_stride`.
///
/// A transposed operand is just swapped strides ([`MatLayout::col_major`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatLayout {
    /// Index of element `(0, 0, 0)`.
    pub offset: usize,
    /// Distance between consecutive rows.
    pub row_stride: usize,
    /// Distance between consecutive columns.
    pub col_stride: usize,
    /// Distance between consecutive batches (0 broadcasts over the batch).
    pub batch_stride: usize,
}

impl MatLayout {
    /// Dense row-major `rows × cols` matrices, batches one after another.
    pub const fn row_major(rows: usize, cols: usize) -> Self {
        MatLayout {
            offset: 0,
            row_stride: cols,
            col_stride: 1,
            batch_stride: rows * cols,
        }
    }

    /// Dense column-major `rows × cols` matrices (the transpose of a row-major
    /// `cols × rows` matrix), batches one after another.
    pub const fn col_major(rows: usize, cols: usize) -> Self {
        MatLayout {
            offset: 0,
            row_stride: 1,
            col_stride: rows,
            batch_stride: rows * cols,
        }
    }

    /// The same layout with every batch reading batch 0 (`batch_stride = 0`).
    pub const fn broadcast(self) -> Self {
        MatLayout { batch_stride: 0, ..self }
    }

    /// The same layout starting at `offset`.
    pub const fn with_offset(self, offset: usize) -> Self {
        MatLayout { offset, ..self }
    }

    /// The same layout with another batch stride.
    pub const fn with_batch_stride(self, batch_stride: usize) -> Self {
        MatLayout { batch_stride, ..self }
    }

    /// Elements a slice must hold for `batch × rows × cols` elements in this
    /// layout (one past the largest index; 0 when empty), `None` on overflow.
    pub fn span(&self, batch: usize, rows: usize, cols: usize) -> Option<usize> {
        if batch == 0 || rows == 0 || cols == 0 {
            return Some(0);
        }
        let last = (batch - 1)
            .checked_mul(self.batch_stride)?
            .checked_add((rows - 1).checked_mul(self.row_stride)?)?
            .checked_add((cols - 1).checked_mul(self.col_stride)?)?;
        self.offset.checked_add(last)?.checked_add(1)
    }
}

/// Checks that `len` elements hold a `batch × rows × cols` operand in `layout`.
pub(crate) fn check_operand(
    kernel: &'static str,
    operand: &'static str,
    layout: &MatLayout,
    batch: usize,
    rows: usize,
    cols: usize,
    len: usize,
) -> Result<(), KernelError> {
    match layout.span(batch, rows, cols) {
        Some(need) if need <= len => Ok(()),
        Some(need) => Err(KernelError::BufferLength {
            kernel,
            operand,
            expected: need,
            found: len,
        }),
        None => Err(KernelError::Shape {
            kernel,
            what: format!("{operand}: layout {layout:?} overflows for {batch}×{rows}×{cols}"),
        }),
    }
}

/// Computes `C[b] = A[b] · B[b]` for every batch `b`, then runs `epilogue`
/// (if any) on each output block as soon as it is written.
///
/// * `a`: `f32` elements of `A` (`batch × m × k`) in `a_layout`.
/// * `b`: elements of `B` (`batch × k × n`) in `b_layout`; `f16`/`bf16` and
///   int8/int4 are converted to `f32` in panels inside the kernel. A quantized
///   `B` ([`WeightRef::Int8`], [`WeightRef::Int4`]) must be read row-major:
///   unit column stride, row and batch strides multiples of the stored
///   matrix's `n`, and each row's `n` columns inside one stored row (so a
///   column offset, a sub-block of rows, or a broadcast over the batch are
///   fine; a transposed quantized `B` is not).
/// * `c`: output (`batch × m × n`), overwritten. `c_layout.col_stride` must be 1
///   (rows are contiguous), `row_stride ≥ n`, and batches must not overlap
///   (`batch_stride ≥ (m-1)·row_stride + n` when `batch > 1`).
///
/// `k == 0` writes zeros (before the epilogue). Runs on rayon's current pool,
/// with the micro-kernels of [`Isa::detect`] (see [`gemm_with_isa`]).
///
/// # Errors
/// [`KernelError::BufferLength`] if a slice is too short for its layout,
/// [`KernelError::Shape`] for an unsupported output layout, a quantized `B`
/// in a layout other than row-major, or an index overflow, or whatever [`Epilogue::check`] reports. Nothing is written on error.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    dims: GemmDims,
    a: &[f32],
    a_layout: MatLayout,
    b: WeightRef<'_>,
    b_layout: MatLayout,
    c: &mut [f32],
    c_layout: MatLayout,
    epilogue: Option<&dyn Epilogue>,
) -> Result<(), KernelError> {
    gemm_with_isa(Isa::detect(), dims, a, a_layout, b, b_layout, c, c_layout, epilogue)
}

/// [`gemm()`] with the micro-kernels of an explicit instruction set (one the
/// CPU lacks falls back to the next one down, as [`Isa::dispatch`] does), so
/// tests and benchmarks can run every kernel in one process. [`Isa::Scalar`]
/// uses the `gemm` crate's kernel.
///
/// # Errors
/// As [`gemm()`].
#[allow(clippy::too_many_arguments)]
pub fn gemm_with_isa(
    isa: Isa,
    dims: GemmDims,
    a: &[f32],
    a_layout: MatLayout,
    b: WeightRef<'_>,
    b_layout: MatLayout,
    c: &mut [f32],
    c_layout: MatLayout,
    epilogue: Option<&dyn Epilogue>,
) -> Result<(), KernelError> {
    if !validate(&dims, a.len(), &a_layout, &b, &b_layout, c.len(), &c_layout, epilogue)? {
        return Ok(());
    }
    let m = dims.m;
    let job = driver::Job {
        dims,
        a,
        a_layout,
        b,
        b_layout,
        c_layout,
        epilogue,
        isa,
        compute: driver::Compute::F32,
    };
    if m == 1 && (!matches!(b, WeightRef::F32(_)) || gemv::row_split_applies(&job)) {
        gemv::run(&job, c);
    } else {
        driver::run(&job, c);
    }
    Ok(())
}

/// The checks of [`gemm_with_isa`] (shared by [`gemm_bf16_with_isa`]): the
/// operand spans, a quantized `B`'s layout, the output layout and the
/// epilogue. `Ok(false)` when the product is empty (nothing to compute).
#[allow(clippy::too_many_arguments)]
pub(crate) fn validate(
    dims: &GemmDims,
    a_len: usize,
    a_layout: &MatLayout,
    b: &WeightRef<'_>,
    b_layout: &MatLayout,
    c_len: usize,
    c_layout: &MatLayout,
    epilogue: Option<&dyn Epilogue>,
) -> Result<bool, KernelError> {
    let GemmDims { batch, m, k, n } = *dims;
    check_operand(KERNEL, "A", a_layout, batch, m, k, a_len)?;
    check_operand(KERNEL, "B", b_layout, batch, k, n, b.len())?;
    if let Some(q) = b.quant() {
        weights::check_quant_layout(q.n(), b_layout, batch, k, n)?;
    }
    check_operand(KERNEL, "C", c_layout, batch, m, n, c_len)?;
    if batch > 0 && m > 0 && n > 0 {
        if c_layout.col_stride != 1 {
            return Err(KernelError::Shape {
                kernel: KERNEL,
                what: format!("C must have unit column stride, got {}", c_layout.col_stride),
            });
        }
        if m > 1 && c_layout.row_stride < n {
            return Err(KernelError::Shape {
                kernel: KERNEL,
                what: format!("C row stride {} < n = {n}: rows overlap", c_layout.row_stride),
            });
        }
        let batch_extent = (m - 1) * c_layout.row_stride + n; // fits: checked by span
        if batch > 1 && c_layout.batch_stride < batch_extent {
            return Err(KernelError::Shape {
                kernel: KERNEL,
                what: format!("C batch stride {} < {batch_extent}: batches overlap", c_layout.batch_stride),
            });
        }
    }
    if let Some(e) = epilogue {
        e.check(dims)?;
    }
    Ok(batch > 0 && m > 0 && n > 0)
}

/// Convenience wrapper: `C = A · B` for dense row-major `A: m×k`, `B: k×n`,
/// `C: m×n`, with an optional epilogue. See [`gemm()`].
///
/// # Errors
/// As [`gemm()`].
pub fn matmul(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: WeightRef<'_>,
    c: &mut [f32],
    epilogue: Option<&dyn Epilogue>,
) -> Result<(), KernelError> {
    let dims = GemmDims::new(m, k, n);
    gemm(
        dims,
        a,
        MatLayout::row_major(m, k),
        b,
        MatLayout::row_major(k, n),
        c,
        MatLayout::row_major(m, n),
        epilogue,
    )
}

thread_local! {
    static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Runs `f` with a per-thread scratch buffer of `len` elements (contents
/// unspecified). Re-entrant: a nested call gets its own buffer.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut v = SCRATCH.with(|s| s.take());
    if v.len() < len {
        v.resize(len, 0.0);
    }
    let r = f(&mut v[..len]);
    SCRATCH.with(|s| {
        let other = s.take();
        s.set(if other.len() > v.len() { other } else { v });
    });
    r
}
