//! The `m == 1` path (matrix–vector products such as batch-1 linear layers).
//!
//! It is memory-bound: every element of `B` is read once, straight from its
//! storage (no packing), converted on the fly when `B` is `f16`/`bf16`.

use rayon::prelude::*;

use super::driver::{Job, SendPtr};
use super::epilogue::Tile;
use super::mv::{axpy, dot, wide};
use super::weights::WeightRef;
use super::{GemmDims, with_scratch};

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
