//! Blocking and threading of the `m > 1` GEMM path.

use rayon::prelude::*;

use super::epilogue::{Epilogue, Tile};
use super::pack::{BPtr, BSrc, QuantSrc};
use super::weights::{WeightRef, quant_origin};
use super::{GemmDims, MatLayout, packed, with_scratch};
use crate::quant::QuantRef;
use crate::quant::convert::Cvt;
use crate::simd::Isa;

/// A validated GEMM (see [`super::gemm`] for the checks it has passed).
pub(crate) struct Job<'a> {
    pub dims: GemmDims,
    pub a: &'a [f32],
    pub a_layout: MatLayout,
    pub b: WeightRef<'a>,
    pub b_layout: MatLayout,
    pub c_layout: MatLayout,
    pub epilogue: Option<&'a dyn Epilogue>,
    /// Instruction set of the micro-kernels.
    pub isa: Isa,
    /// What the products are computed in.
    pub compute: Compute,
}

/// The arithmetic of a [`Job`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compute {
    /// `f32` products of `A` and `B` (widened exactly when reduced-precision).
    F32,
    /// `bf16(A) · B` with `B` a `bf16` operand ([`WeightRef::BF16`]), products
    /// summed in `f32`, by the AVX-512 BF16 kernel
    /// ([`super::kernel_avx512_bf16`]). Only set when it is available.
    Bf16Dot,
    /// The same products by the `f32` kernels of the job's ISA: each block's
    /// rows of `A` are rounded to `bf16` into a scratch copy first, and `B` is
    /// widened exactly while packed (only the summation order differs from
    /// [`Compute::Bf16Dot`]).
    Bf16Widen,
}

/// A raw output pointer shared by tasks that write disjoint regions.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub *mut f32);
// SAFETY: only used to hand disjoint output regions to parallel tasks.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    #[inline(always)]
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// Most output rows per task (bounds the block the epilogue sees).
const ROWS_CAP: usize = 512;
/// Row/column blocks are multiples of this (a multiple of the micro-kernels' tiles).
const ALIGN: usize = 16;

/// Serial `C = A · B` on raw strided operands: `C` is `m × n` row-major with row stride `ldc`.
/// Uses the packed kernel of [`Isa::detect`] (see [`sgemm_raw_isa`]).
///
/// # Safety
/// For every `i < m, p < k, j < n`: `a + i·rsa + p·csa` and `b + p·rsb + j·csb`
/// are valid for reads, `c + i·ldc + j` valid for writes and not aliased by
/// anything else during the call, and all those offsets fit in `isize`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm_raw(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    b: *const f32,
    rsb: usize,
    csb: usize,
    c: *mut f32,
    ldc: usize,
) {
    let b = BSrc {
        ptr: BPtr::F32(b),
        rs: rsb,
        cs: csb,
    };
    // SAFETY: forwarded contract.
    unsafe { sgemm_raw_isa(Isa::detect(), m, k, n, a, rsa, csa, &b, c, ldc) }
}

/// [`sgemm_raw`] with an explicit instruction set and a `B` operand in any
/// precision: the packed SGEMM ([`super::packed`]) with `isa`'s micro-kernels,
/// or, for an ISA without one (scalar, non-x86), the `gemm` crate (`f16`/`bf16`
/// `B` is then converted into a dense scratch panel first). An `f32`
/// matrix–vector product (`m == 1`) also goes to the `gemm` crate: it is
/// memory-bound, packing `B` would only add traffic, and the crate's GEMV
/// measured fastest (1×2048×1000: 39 GFLOP/s against 26 for `gemv.rs`).
///
/// # Safety
/// As [`sgemm_raw`], with `B`'s element `(p, j)` readable for `p < k, j < n`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm_raw_isa(
    isa: Isa,
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    b: &BSrc,
    c: *mut f32,
    ldc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            // SAFETY: row i of C is valid for n writes (contract).
            unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), n) }.fill(0.0);
        }
        return;
    }
    // Strides of unit dimensions are never applied; use 1 so products cannot wrap.
    let fix = |s: usize, d: usize| if d <= 1 { 1 } else { s };
    let (rsa, csa, ldc) = (fix(rsa, m), fix(csa, k), fix(ldc, m));
    let b = BSrc {
        ptr: b.ptr,
        rs: fix(b.rs, k),
        cs: fix(b.cs, n),
    };
    if n == 1
        && csa == 1
        && let BPtr::F32(bp) = b.ptr
    {
        // SAFETY: forwarded contract (n == 1: B is a k-vector, C an m-vector).
        return unsafe { matvec(m, k, a, rsa, bp, b.rs, c, ldc) };
    }
    let gemv = m == 1 && matches!(b.ptr, BPtr::F32(_));
    if let Some(kern) = packed::kernel_for(isa).filter(|_| !gemv) {
        // SAFETY: forwarded contract; `kernel_for` only returns kernels this CPU runs.
        return unsafe { packed::sgemm_packed(kern, m, k, n, a, rsa, csa, &b, c, ldc) };
    }
    match b.ptr {
        // SAFETY: forwarded contract.
        BPtr::F32(bp) => unsafe { crate_sgemm(m, k, n, a, rsa, csa, bp, b.rs, b.cs, c, ldc) },
        _ => with_scratch(k * n, |panel| {
            // SAFETY: B's k × n elements are readable (contract); `panel` holds k·n floats.
            unsafe { pack_b_dense(&b, k, n, panel) };
            // SAFETY: the panel is a dense k × n row-major matrix; A and C as the contract.
            unsafe { crate_sgemm(m, k, n, a, rsa, csa, panel.as_ptr(), n, 1, c, ldc) }
        }),
    }
}

/// `C = A · B` (as [`sgemm_raw`]) with `B` written into the micro-panels by a
/// custom packer, when `isa` has a packed micro-kernel; returns `false` and
/// does nothing otherwise (the caller then materialises `B` and uses
/// [`sgemm_raw`]).
///
/// # Safety
/// As [`sgemm_raw`] for `A` and `C`, with `m, k, n > 0`, and `b` valid for
/// every block inside `k × n` (the [`packed::PackB`] contract).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm_with_packer(
    isa: Isa,
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    b: &impl packed::PackB,
    c: *mut f32,
    ldc: usize,
) -> bool {
    let Some(kern) = packed::kernel_for(isa) else {
        return false;
    };
    let fix = |s: usize, d: usize| if d <= 1 { 1 } else { s };
    let (rsa, csa, ldc) = (fix(rsa, m), fix(csa, k), fix(ldc, m));
    // SAFETY: forwarded contract; `kernel_for` only returns kernels this CPU runs.
    unsafe { packed::sgemm_packed(kern, m, k, n, a, rsa, csa, b, c, ldc) };
    true
}

/// `C[:, 0] = A · b` for a row-major `A` (unit column stride) and an `f32`
/// vector `b`: one dot product per row, reading `A` once. The packed kernels
/// would fill one of 32 tile columns and pack all of `A` (a 1×1 convolution
/// over a 1×1 image, as DenseNet's classifier: 1000×1024 ran at 2.5 GFLOP/s).
///
/// # Safety
/// As [`sgemm_raw`] with `n = 1`, `csa = 1`, `k > 0`.
#[allow(clippy::too_many_arguments)]
unsafe fn matvec(m: usize, k: usize, a: *const f32, rsa: usize, b: *const f32, rsb: usize, c: *mut f32, ldc: usize) {
    let body = |bv: &[f32]| {
        super::mv::wide(|| {
            for i in 0..m {
                // SAFETY: row i of A holds k readable elements, and C's element
                // (i, 0) is writable (contract).
                unsafe {
                    let row = std::slice::from_raw_parts(a.add(i * rsa), k);
                    *c.add(i * ldc) = super::mv::dot(row, bv);
                }
            }
        })
    };
    if rsb == 1 {
        // SAFETY: B's k elements are readable (contract).
        body(unsafe { std::slice::from_raw_parts(b, k) });
    } else {
        // SAFETY: as above, at stride rsb.
        let bv: Vec<f32> = (0..k).map(|p| unsafe { *b.add(p * rsb) }).collect();
        body(&bv);
    }
}

/// Columns of the packed micro-kernel's tile for `isa` (the width a `B` block
/// is best cut to), or `None` when `isa` has no packed micro-kernel.
pub(crate) fn packed_tile_cols(isa: Isa) -> Option<usize> {
    packed::kernel_for(isa).map(|k| k.nr)
}

/// Converts the `k × n` operand `b` into the dense row-major `dst`.
///
/// # Safety
/// `b`'s elements `(p, j)`, `p < k`, `j < n`, are readable; `dst.len() ≥ k·n`.
unsafe fn pack_b_dense(b: &BSrc, k: usize, n: usize, dst: &mut [f32]) {
    // A single micro-panel of width n is exactly the row-major layout.
    // SAFETY: forwarded contract.
    unsafe { super::pack::pack_b(b, k, n, n, dst) }
}

/// The `gemm` crate's serial kernel (`C = A · B`), for ISAs without a packed kernel.
///
/// # Safety
/// As [`sgemm_raw`] with `m, k, n > 0` and unit-dimension strides already 1.
#[allow(clippy::too_many_arguments)]
unsafe fn crate_sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    b: *const f32,
    rsb: usize,
    csb: usize,
    c: *mut f32,
    ldc: usize,
) {
    // SAFETY: the caller guarantees the extents and that they fit in isize;
    // `read_dst = false` means C is only written (C = 1·A·B).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            1,
            ldc as isize,
            false,
            a,
            csa as isize,
            rsa as isize,
            b,
            csb as isize,
            rsb as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

/// Row and column block sizes for `threads` threads.
fn plan(dims: &GemmDims, threads: usize) -> (usize, usize) {
    let GemmDims { batch, m, n, .. } = *dims;
    let mut mblocks = m.div_ceil(ROWS_CAP);
    let mut nblocks = 1;
    let needed = threads.div_ceil(batch.max(1));
    if threads > 1 && needed > 1 && mblocks * nblocks < needed {
        // Split the longer side: each task packs its whole share of the other operand.
        if n > m && n >= 2 * ALIGN {
            nblocks = nblocks.max(needed);
        } else {
            mblocks = round_up(mblocks, needed);
        }
    } else if threads > 1 && batch == 1 && mblocks % threads != 0 && mblocks < 4 * threads {
        // Few row blocks: make their count a multiple of the threads so none idles
        // at the end (3136 rows: 7 blocks of 448 leave one thread idle 1/8 of
        // the time, 8 blocks of 400 do not).
        mblocks = round_up(mblocks, threads);
    }
    let mb = round_up(m.div_ceil(mblocks.max(1)), ALIGN).min(m).max(1);
    let nb = round_up(n.div_ceil(nblocks.max(1)), ALIGN).min(n).max(1);
    (mb, nb)
}

/// Runs the `m > 1` path.
pub(crate) fn run(job: &Job<'_>, c: &mut [f32]) {
    let GemmDims { batch, m, k, n } = job.dims;
    let threads = rayon::current_num_threads();
    let (mb, nb) = plan(&job.dims, threads);
    let (mblocks, nblocks) = (m.div_ceil(mb), n.div_ceil(nb));
    let ntasks = batch * mblocks * nblocks;
    let cptr = SendPtr(c.as_mut_ptr());
    let task = |t: usize| {
        let (bi, rest) = (t / (mblocks * nblocks), t % (mblocks * nblocks));
        let (jb, ib) = (rest / mblocks, rest % mblocks);
        let (i0, j0) = (ib * mb, jb * nb);
        let (rows, cols) = (mb.min(m - i0), nb.min(n - j0));
        // SAFETY: `gemm` validated the spans of A, B and C for the full problem
        // and that C's batches and rows do not overlap; this task's block lies
        // inside them, and tasks get disjoint (batch, row, column) blocks.
        unsafe { block(job, cptr, bi, i0, rows, j0, cols, k) };
    };
    if threads <= 1 || ntasks == 1 {
        (0..ntasks).for_each(task);
    } else {
        (0..ntasks).into_par_iter().with_max_len(1).for_each(task);
    }
}

/// Computes one output block and runs the epilogue on it.
///
/// # Safety
/// The job was validated by `gemm`, the block lies inside the output, and no
/// other thread touches this block of `c` meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn block(job: &Job<'_>, c: SendPtr, bi: usize, i0: usize, rows: usize, j0: usize, cols: usize, k: usize) {
    let cl = &job.c_layout;
    let c_off = cl.offset + bi * cl.batch_stride + i0 * cl.row_stride + j0;
    // SAFETY: inside the validated span of C (caller's contract).
    let c_ptr = unsafe { c.get().add(c_off) };
    if k == 0 {
        // SAFETY: A and B are not read when k == 0; C's block is ours.
        unsafe { sgemm_raw(rows, 0, cols, std::ptr::null(), 0, 0, std::ptr::null(), 0, 0, c_ptr, cl.row_stride) };
    } else {
        // SAFETY: as above.
        unsafe { product(job, bi, i0, rows, j0, cols, k, c_ptr) };
    }
    if let Some(e) = job.epilogue {
        // SAFETY: the block's rows are valid and exclusively ours.
        let mut tile = unsafe { Tile::from_raw(c_ptr, cl.row_stride, bi, i0, rows, j0, cols) };
        e.apply(&mut tile);
    }
}

/// The product part of [`block`] for `k > 0`; `c_ptr` points at the block's first element.
///
/// # Safety
/// As [`block`].
#[allow(clippy::too_many_arguments)]
unsafe fn product(job: &Job<'_>, bi: usize, i0: usize, rows: usize, j0: usize, cols: usize, k: usize, c_ptr: *mut f32) {
    let (al, bl, cl) = (&job.a_layout, &job.b_layout, &job.c_layout);
    let a_off = al.offset + bi * al.batch_stride + i0 * al.row_stride;
    let b_off = bl.offset + bi * bl.batch_stride + j0 * bl.col_stride;
    match (job.compute, job.b) {
        #[cfg(target_arch = "x86_64")]
        (Compute::Bf16Dot, WeightRef::BF16(b)) => {
            // SAFETY: as below; `Bf16Dot` is only set when the kernel runs on this CPU.
            return unsafe {
                super::kernel_avx512_bf16::gemm_bf16_packed(
                    rows,
                    k,
                    cols,
                    job.a.as_ptr().add(a_off),
                    al.row_stride,
                    al.col_stride,
                    b.as_ptr().add(b_off),
                    bl.row_stride,
                    bl.col_stride,
                    c_ptr,
                    cl.row_stride,
                )
            };
        }
        (Compute::Bf16Widen, _) | (Compute::Bf16Dot, _) => {
            // The block's rows of A, rounded to bf16, row-major (rows × k).
            return with_scratch(rows * k, |ar| {
                // In the validated span of A (caller's contract).
                super::bf16::round_rows(job.isa, job.a, a_off, al.row_stride, al.col_stride, k, ar);
                let widened = Job {
                    a: ar,
                    a_layout: MatLayout::row_major(rows, k).broadcast(),
                    compute: Compute::F32,
                    ..*job
                };
                // SAFETY: `widened` reads the scratch copy (rows × k, row-major) as A
                // and the job's B and C, as the caller's contract allows.
                unsafe { product(&widened, bi, 0, rows, j0, cols, k, c_ptr) }
            });
        }
        (Compute::F32, _) => {}
    }
    // SAFETY: k > 0, so the offsets are within the validated spans of A and B
    // (caller's contract), and the block is inside the validated extents.
    unsafe {
        let a_ptr = job.a.as_ptr().add(a_off);
        let (ptr, rs) = match job.b {
            WeightRef::F32(b) => (BPtr::F32(b.as_ptr().add(b_off)), bl.row_stride),
            WeightRef::F16(b) => (BPtr::F16(b.as_ptr().add(b_off)), bl.row_stride),
            WeightRef::BF16(b) => (BPtr::Bf16(b.as_ptr().add(b_off)), bl.row_stride),
            WeightRef::Int8(q) => quant_ptr(job, QuantRef::Int8(q), b_off, k),
            WeightRef::Int4(q) => quant_ptr(job, QuantRef::Int4(q), b_off, k),
        };
        let b = BSrc {
            ptr,
            rs,
            cs: bl.col_stride,
        };
        sgemm_raw_isa(
            job.isa,
            rows,
            k,
            cols,
            a_ptr,
            al.row_stride,
            al.col_stride,
            &b,
            c_ptr,
            cl.row_stride,
        );
    }
}

/// The `B` pointer of the block of the quantized `w` (the job's `B`) whose
/// element `(0, 0)` is at flat offset `b_off`, and its row stride in stored rows.
fn quant_ptr<'a>(job: &Job<'a>, w: QuantRef<'a>, b_off: usize, k: usize) -> (BPtr<'a>, usize) {
    let (row, col, step) = quant_origin(w.n(), b_off, job.b_layout.row_stride, k);
    let cvt = Cvt::for_isa(job.isa);
    (BPtr::Quant(QuantSrc { w, row, col, cvt }), step)
}
