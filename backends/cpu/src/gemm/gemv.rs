//! The `m == 1` path (matrix–vector products such as batch-1 linear layers).
//!
//! It is memory-bound: every element of `B` is read once, straight from its
//! storage (no packing), converted on the fly when `B` is `f16`/`bf16`.
//!
//! A quantized `B` (row-major, see [`super::gemm()`]) takes a dequant-GEMV:
//! integer values are converted to `f32` in registers and accumulated
//! unscaled, `acc[j] = Σ_p a[p] · q[p, j]`, four rows at a time over a chunk
//! of columns held in L1; the scales are applied to the partial sums, once
//! per column for int8 (`out[j] = scale[j] · acc[j]`) and once per group of
//! rows for int4 (`out[j] += scale[g, j] · acc_g[j]`). AVX2 + FMA when the
//! job's instruction set allows it and the CPU has them, scalar otherwise.

use rayon::prelude::*;

use super::driver::{Job, SendPtr};
use super::epilogue::Tile;
use super::mv::{axpy, dot, wide};
use super::weights::{WeightRef, quant_origin};
use super::{GemmDims, with_scratch};
use crate::quant::convert::{Cvt, nibble};
use crate::quant::{QuantInt4Ref, QuantInt8Ref, QuantRef};

/// Most columns per task when `B`'s rows are contiguous (the accumulator stays in L1).
const CHUNK: usize = 1024;

/// Runs a validated `m == 1` job.
pub(crate) fn run(job: &Job<'_>, c: &mut [f32]) {
    let GemmDims { batch, n, .. } = job.dims;
    let threads = rayon::current_num_threads();
    let mut chunks = n.div_ceil(CHUNK);
    if threads > 1 && batch < threads {
        chunks = chunks.max((threads * 2).div_ceil(batch)).min(n.div_ceil(16));
    }
    let width = (n.div_ceil(chunks.max(1)).div_ceil(16) * 16).min(n).max(1);
    let chunks = n.div_ceil(width);
    let cptr = SendPtr(c.as_mut_ptr());
    let task = |t: usize| {
        let (bi, ch) = (t / chunks, t % chunks);
        let j0 = ch * width;
        let cols = width.min(n - j0);
        let cl = &job.c_layout;
        // SAFETY: `gemm` validated C's span and that batches do not overlap; the
        // chunk (batch bi, row 0, columns j0..j0+cols) is disjoint from other tasks'.
        let out = unsafe { std::slice::from_raw_parts_mut(cptr.get().add(cl.offset + bi * cl.batch_stride + j0), cols) };
        chunk(job, bi, j0, out);
        if let Some(e) = job.epilogue {
            // SAFETY: `out` is a valid exclusive row of `cols` elements.
            let mut tile = unsafe { Tile::from_raw(out.as_mut_ptr(), cols, bi, 0, 1, j0, cols) };
            e.apply(&mut tile);
        }
    };
    let ntasks = batch * chunks;
    if threads <= 1 || ntasks == 1 {
        (0..ntasks).for_each(task);
    } else {
        (0..ntasks).into_par_iter().with_max_len(1).for_each(task);
    }
}

/// `out[j] = Σ_p a[p] · B[p, j0 + j]` for batch `bi`.
fn chunk(job: &Job<'_>, bi: usize, j0: usize, out: &mut [f32]) {
    let k = job.dims.k;
    let (al, bl) = (&job.a_layout, &job.b_layout);
    out.fill(0.0);
    if k == 0 {
        return;
    }
    let a_off = al.offset + bi * al.batch_stride;
    let av: Vec<f32> = (0..k).map(|p| job.a[a_off + p * al.col_stride]).collect();
    let b_off = bl.offset + bi * bl.batch_stride + j0 * bl.col_stride;
    if let Some(w) = job.b.quant() {
        let (row0, col0, step) = quant_origin(w.n(), b_off, bl.row_stride, k);
        let cvt = Cvt::for_isa(job.isa);
        return match w {
            QuantRef::Int8(q) => chunk_i8(q, &av, row0, step, col0, out, cvt),
            QuantRef::Int4(q) => chunk_i4(q, &av, row0, step, col0, out, cvt),
        };
    }
    let (rs, cs, cols) = (bl.row_stride, bl.col_stride, out.len());
    wide(|| match job.b {
        WeightRef::F32(b) if cs == 1 || cols == 1 => {
            // Row-contiguous B: out += a[p] · B[p, :], four rows at a time.
            let mut p = 0;
            while p + 4 <= k {
                let r = |q: usize| &b[b_off + (p + q) * rs..][..cols];
                let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
                let (x0, x1, x2, x3) = (av[p], av[p + 1], av[p + 2], av[p + 3]);
                for j in 0..cols {
                    out[j] += x0 * r0[j] + x1 * r1[j] + x2 * r2[j] + x3 * r3[j];
                }
                p += 4;
            }
            for (q, x) in av.iter().enumerate().skip(p) {
                axpy(out, *x, &b[b_off + q * rs..][..cols]);
            }
        }
        WeightRef::F32(b) if rs == 1 => {
            // Column-contiguous B (a transposed weight): one dot product per column.
            for (j, o) in out.iter_mut().enumerate() {
                *o = dot(&av, &b[b_off + j * cs..][..k]);
            }
        }
        b if rs == 1 && cs != 1 && cols > 1 => with_scratch(k, |col| {
            for (j, o) in out.iter_mut().enumerate() {
                b.convert_run(b_off + j * cs, col);
                *o = dot(&av, col);
            }
        }),
        b => with_scratch(cols, |row| {
            for (p, x) in av.iter().enumerate() {
                b.convert_strided(b_off + p * rs, cs, row);
                axpy(out, *x, row);
            }
        }),
    })
}

/// Rows accumulated together by the dequant-GEMV kernels.
const ROWS: usize = 4;

/// `out[j] = Σ_p a[p] · B̂[row0 + p·step, col0 + j]` for int8 weights.
fn chunk_i8(q: QuantInt8Ref<'_>, a: &[f32], row0: usize, step: usize, col0: usize, out: &mut [f32], cvt: Cvt) {
    let (n, cols) = (q.n(), out.len());
    let row = |p: usize| &q.data()[(row0 + p * step) * n + col0..][..cols];
    accumulate(out, a, row, cvt);
    for (o, &s) in out.iter_mut().zip(&q.scales()[col0..]) {
        *o *= s;
    }
}

/// `out[j] = Σ_p a[p] · B̂[row0 + p·step, col0 + j]` for int4 weights: one
/// unscaled partial sum per run of rows in the same scale group.
fn chunk_i4(q: QuantInt4Ref<'_>, a: &[f32], row0: usize, step: usize, col0: usize, out: &mut [f32], cvt: Cvt) {
    let (k, group) = (a.len(), q.group());
    let stored = |p: usize| row0 + p * step;
    let mut out = out;
    let mut col0 = col0;
    if col0 % 2 == 1 && !out.is_empty() {
        // A column starting mid-byte: alone, so the kernels read whole bytes.
        out[0] = a.iter().enumerate().map(|(p, &x)| x * q.value(stored(p), col0)).sum();
        (out, col0) = (&mut out[1..], col0 + 1);
    }
    let cols = out.len();
    if cols == 0 {
        return;
    }
    let row = |p: usize| &q.row(stored(p))[col0 / 2..][..cols.div_ceil(2)];
    with_scratch(cols, |acc| {
        let mut p = 0;
        while p < k {
            let r = stored(p);
            let end = if step == 0 {
                k
            } else {
                k.min(p + ((r / group + 1) * group - r).div_ceil(step))
            };
            acc.fill(0.0);
            accumulate(acc, &a[p..end], |t| row(p + t), cvt);
            for ((o, &g), &s) in out.iter_mut().zip(&*acc).zip(&q.scale_row(r)[col0..]) {
                *o += s * g;
            }
            p = end;
        }
    })
}

/// Stored integer elements the dequant-GEMV reads: a row of int8 values, or
/// of packed int4 pairs starting at an even column.
trait QRow: Copy {
    /// Element `j` of the row as an integer.
    fn at(self, j: usize) -> i32;
    /// `acc[j] += Σ_r x[r] · rows[r][j]` with AVX2 and FMA.
    ///
    /// # Safety
    /// AVX2 and FMA are available; every row holds `acc.len()` elements.
    #[cfg(target_arch = "x86_64")]
    unsafe fn acc_avx2<const R: usize>(acc: &mut [f32], rows: [Self; R], x: [f32; R]);
}

impl QRow for &[i8] {
    #[inline(always)]
    fn at(self, j: usize) -> i32 {
        self[j] as i32
    }
    #[cfg(target_arch = "x86_64")]
    unsafe fn acc_avx2<const R: usize>(acc: &mut [f32], rows: [Self; R], x: [f32; R]) {
        // SAFETY: forwarded contract.
        unsafe { super::gemv_quant_avx2::acc_i8(acc, rows, x) }
    }
}

impl QRow for &[u8] {
    #[inline(always)]
    fn at(self, j: usize) -> i32 {
        nibble(self, j)
    }
    #[cfg(target_arch = "x86_64")]
    unsafe fn acc_avx2<const R: usize>(acc: &mut [f32], rows: [Self; R], x: [f32; R]) {
        // SAFETY: forwarded contract.
        unsafe { super::gemv_quant_avx2::acc_i4(acc, rows, x) }
    }
}

/// `acc[j] += Σ_t x[t] · row(t)[j]` over `t < x.len()`, [`ROWS`] rows at a time.
fn accumulate<R: QRow>(acc: &mut [f32], x: &[f32], row: impl Fn(usize) -> R, cvt: Cvt) {
    let mut t = 0;
    while t + ROWS <= x.len() {
        let rows: [R; ROWS] = std::array::from_fn(|r| row(t + r));
        let xs: [f32; ROWS] = std::array::from_fn(|r| x[t + r]);
        accumulate_rows(acc, rows, xs, cvt);
        t += ROWS;
    }
    for (u, &xu) in x.iter().enumerate().skip(t) {
        accumulate_rows(acc, [row(u)], [xu], cvt);
    }
}

/// `acc[j] += Σ_r x[r] · rows[r][j]`; every row holds `acc.len()` elements.
#[inline(always)]
fn accumulate_rows<R: QRow, const N: usize>(acc: &mut [f32], rows: [R; N], x: [f32; N], cvt: Cvt) {
    #[cfg(target_arch = "x86_64")]
    if cvt.avx2() {
        // SAFETY: `Cvt` allows AVX2 only when the CPU has AVX2 and FMA; the
        // callers slice every row to the chunk's columns.
        return unsafe { R::acc_avx2(acc, rows, x) };
    }
    let _ = cvt;
    for (j, o) in acc.iter_mut().enumerate() {
        let mut s = *o;
        for r in 0..N {
            s += x[r] * rows[r].at(j) as f32;
        }
        *o = s;
    }
}
