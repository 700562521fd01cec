//! The `m == 1` path (matrix–vector products such as batch-1 linear layers).
//!
//! It is memory-bound: every element of `B` is read once, straight from its
//! storage (no packing), converted on the fly when `B` is `f16`/`bf16`.
//!
//! A quantized `B` (row-major, see [`super::gemm()`]) takes a dequant-GEMV:
//! integer values are converted to `f32` in registers and accumulated
//! unscaled, `acc[j] = Σ_p a[p] · q[p, j]`; the scales are applied to the
//! partial sums, once per column for int8 (`out[j] = scale[j] · acc[j]`) and
//! once per group of rows for int4 (`out[j] += scale[g, j] · acc_g[j]`). With
//! AVX2 + FMA (when the job's instruction set allows it and the CPU has them)
//! the accumulators of 64 columns stay in registers while the rows stream past
//! (`gemv_quant_avx2.rs`); the scalar path, and the last `n % 16` columns, walk
//! the rows four at a time.

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
/// The same for a quantized `B`: its rows are 4 to 8 times narrower, and
/// whole rows stream better than parts of them (1×384×1536 int8 from memory:
/// 37 µs in one chunk, 43–48 µs in two of 768 columns; 2-core EPYC).
const QCHUNK: usize = 4096;

/// Fewest `B` elements for [`row_split`]: below this (4 MiB of `f32`) the
/// matrix is likely cache-resident, and the `gemm` crate's GEMV measured
/// faster there.
const ROW_SPLIT_MIN: usize = 1 << 20;
/// Most columns for [`row_split`] (each part's accumulator row stays in L1/L2).
const ROW_SPLIT_MAX_N: usize = 16384;

/// Whether the `f32` `m == 1` job takes [`row_split`]: more than one thread,
/// one batch, row-contiguous `f32` weights of at least [`ROW_SPLIT_MIN`]
/// elements. Such a product streams `B` from memory; cut by columns (or by
/// the `gemm` crate) each thread reads parts of every row, and two threads
/// reached 22 GB/s on AlexNet's 9216×4096 layer against 36 GB/s reading
/// whole rows each.
pub(crate) fn row_split_applies(job: &Job<'_>) -> bool {
    let GemmDims { batch, k, n, .. } = job.dims;
    let threads = rayon::current_num_threads();
    matches!(job.b, WeightRef::F32(_))
        && threads > 1
        && batch == 1
        && (job.b_layout.col_stride == 1 || n == 1)
        && k >= 8 * threads
        && n <= ROW_SPLIT_MAX_N
        && k.saturating_mul(n) >= ROW_SPLIT_MIN
}

/// A [`row_split_applies`] job: the rows of `B` cut into one contiguous range
/// per thread, each summed into its own partial row, the partials added in
/// thread order (so a given thread count always gives the same result).
fn row_split(job: &Job<'_>, c: &mut [f32]) {
    let GemmDims { k, n, .. } = job.dims;
    let WeightRef::F32(b) = job.b else {
        unreachable!("row_split_applies checked f32 weights");
    };
    let parts = rayon::current_num_threads();
    let rows = k.div_ceil(parts).div_ceil(4) * 4;
    let parts = k.div_ceil(rows);
    let (al, bl) = (&job.a_layout, &job.b_layout);
    let av: Vec<f32> = (0..k).map(|p| job.a[al.offset + p * al.col_stride]).collect();
    with_scratch(parts * n, |partial| {
        partial.par_chunks_mut(n).enumerate().for_each(|(t, out)| {
            let p0 = t * rows;
            let p1 = (p0 + rows).min(k);
            out.fill(0.0);
            wide(|| accumulate_rows(out, b, bl.offset + p0 * bl.row_stride, bl.row_stride, &av[p0..p1]));
        });
        let out = &mut c[job.c_layout.offset..][..n];
        out.copy_from_slice(&partial[..n]);
        wide(|| {
            for part in partial[n..].chunks_exact(n) {
                out.iter_mut().zip(part).for_each(|(o, x)| *o += *x);
            }
        });
        if let Some(e) = job.epilogue {
            // SAFETY: `out` is a valid exclusive row of `n` elements.
            let mut tile = unsafe { Tile::from_raw(out.as_mut_ptr(), n, 0, 0, 1, 0, n) };
            e.apply(&mut tile);
        }
    });
}

/// `out[j] += Σ_p av[p] · b[off + p·rs + j]`, four rows at a time.
#[inline(always)]
fn accumulate_rows(out: &mut [f32], b: &[f32], off: usize, rs: usize, av: &[f32]) {
    let (k, cols) = (av.len(), out.len());
    let mut p = 0;
    while p + 4 <= k {
        let r = |q: usize| &b[off + (p + q) * rs..][..cols];
        let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
        let (x0, x1, x2, x3) = (av[p], av[p + 1], av[p + 2], av[p + 3]);
        for j in 0..cols {
            out[j] += x0 * r0[j] + x1 * r1[j] + x2 * r2[j] + x3 * r3[j];
        }
        p += 4;
    }
    for (q, x) in av.iter().enumerate().skip(p) {
        axpy(out, *x, &b[off + q * rs..][..cols]);
    }
}

/// Runs a validated `m == 1` job.
pub(crate) fn run(job: &Job<'_>, c: &mut [f32]) {
    if row_split_applies(job) {
        return row_split(job, c);
    }
    let GemmDims { batch, n, .. } = job.dims;
    let threads = rayon::current_num_threads();
    let cap = if job.b.quant().is_some() { QCHUNK } else { CHUNK };
    let mut chunks = n.div_ceil(cap);
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
        // Row-contiguous B: out += a[p] · B[p, :].
        WeightRef::F32(b) if cs == 1 || cols == 1 => accumulate_rows(out, b, b_off, rs, &av),
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

/// Rows accumulated together by the portable dequant-GEMV loop.
const ROWS: usize = 4;

/// `out[j] = Σ_p a[p] · B̂[row0 + p·step, col0 + j]` for int8 weights.
fn chunk_i8(q: QuantInt8Ref<'_>, a: &[f32], row0: usize, step: usize, col0: usize, out: &mut [f32], cvt: Cvt) {
    let (n, cols) = (q.n(), out.len());
    let (data, ld) = (&q.data()[row0 * n + col0..], step * n);
    let scales = &q.scales()[col0..][..cols];
    out.fill(0.0);
    let done = if cvt.avx2() { cols / 16 * 16 } else { 0 };
    #[cfg(target_arch = "x86_64")]
    if done > 0 {
        assert!((a.len() - 1) * ld + done <= data.len(), "rows inside the stored matrix");
        // SAFETY: `Cvt` allows AVX2 only when the CPU has AVX2 and FMA; rows
        // p < a.len() (≥ 1) hold `done` readable values at data + p·ld (asserted).
        unsafe { super::gemv_quant_avx2::gemv_i8(a, data.as_ptr(), ld, &scales[..done], &mut out[..done]) };
    }
    let rest = &mut out[done..];
    accumulate(rest, a, |p| &data[p * ld + done..][..cols - done]);
    for (o, &s) in rest.iter_mut().zip(&scales[done..]) {
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
    out.fill(0.0);
    if cols == 0 {
        return;
    }
    let rb = q.row_bytes();
    let (data, ld) = (&q.data()[row0 * rb + col0 / 2..], step * rb);
    let done = if cvt.avx2() { cols / 16 * 16 } else { 0 };
    with_scratch(cols - done, |acc| {
        let mut p = 0;
        while p < k {
            let r = stored(p);
            let end = if step == 0 {
                k
            } else {
                k.min(p + ((r / group + 1) * group - r).div_ceil(step))
            };
            let scales = &q.scale_row(r)[col0..][..cols];
            let rows = &data[p * ld..];
            #[cfg(target_arch = "x86_64")]
            if done > 0 {
                assert!((end - p - 1) * ld + done / 2 <= rows.len(), "rows inside the stored matrix");
                // SAFETY: `Cvt` allows AVX2 only when the CPU has AVX2 and FMA;
                // rows t < end - p hold `done / 2` readable bytes at rows + t·ld (asserted).
                unsafe { super::gemv_quant_avx2::gemv_i4(&a[p..end], rows.as_ptr(), ld, &scales[..done], &mut out[..done], end < k) };
            }
            acc.fill(0.0);
            accumulate(acc, &a[p..end], |t| &rows[t * ld + done / 2..][..(cols - done).div_ceil(2)]);
            for ((o, &g), &s) in out[done..].iter_mut().zip(&*acc).zip(&scales[done..]) {
                *o += s * g;
            }
            p = end;
        }
    })
}

/// A row of stored integers the portable dequant-GEMV reads: int8 values, or
/// packed int4 pairs starting at an even column.
trait QRow: Copy {
    /// Element `j` of the row as an integer.
    fn at(self, j: usize) -> i32;
}

impl QRow for &[i8] {
    #[inline(always)]
    fn at(self, j: usize) -> i32 {
        self[j] as i32
    }
}

impl QRow for &[u8] {
    #[inline(always)]
    fn at(self, j: usize) -> i32 {
        nibble(self, j)
    }
}

/// `acc[j] += Σ_t x[t] · row(t)[j]` over `t < x.len()`, [`ROWS`] rows at a time
/// (the scalar path, and the last `< 16` columns of the AVX2 one).
fn accumulate<R: QRow>(acc: &mut [f32], x: &[f32], row: impl Fn(usize) -> R) {
    if acc.is_empty() {
        return;
    }
    let mut t = 0;
    while t + ROWS <= x.len() {
        let rows: [R; ROWS] = std::array::from_fn(|r| row(t + r));
        for (j, o) in acc.iter_mut().enumerate() {
            let mut s = *o;
            for r in 0..ROWS {
                s += x[t + r] * rows[r].at(j) as f32;
            }
            *o = s;
        }
        t += ROWS;
    }
    for (u, &xu) in x.iter().enumerate().skip(t) {
        let r = row(u);
        for (j, o) in acc.iter_mut().enumerate() {
            *o += xu * r.at(j) as f32;
        }
    }
}
