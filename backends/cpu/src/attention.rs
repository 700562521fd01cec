//! Fused scaled-dot-product attention with the online-softmax (FlashAttention)
//! recurrence: the `[S, T]` score matrix is never materialised, only a
//! `BLOCK_Q × BLOCK_K` tile of it at a time.
//!
//! Per batch entry `b` (any number of leading batch dimensions):
//! `out[b] = softmax(scale(Q[b] · Kt[b]) + mask[b]) · V[b]`, with `Q: [S, D]`,
//! `Kt: [D, T]`, `V: [T, E]`, `out: [S, E]` and the softmax over `T`.
//!
//! For each block of query rows, key blocks are processed in order: the block
//! product `Q_blk · Kt_blk` (`matrixmultiply::sgemm`, single-threaded), the scale and
//! mask, then per row the running maximum `m`, the running sum `l` and the
//! accumulator `acc` are updated: `m' = max(m, max_j x_j)`, `p_j = exp(x_j - m')`,
//! `l' = l·e^{m - m'} + Σ p_j`, `acc' = acc·e^{m - m'} + P · V_blk` (sgemm). At the
//! end `out = acc / l`. Work is parallel over (batch entry, query block) on rayon's
//! current pool.

use rayon::prelude::*;

use crate::KernelError;
use crate::elementwise::check_view;
use crate::reduce::{row_max, scale_row};
use crate::simd::{Isa, Simd, SimdKernel};

const KERNEL: &str = "attention";
/// Query rows per block (and per parallel task).
const BLOCK_Q: usize = 64;
/// Keys per block.
const BLOCK_K: usize = 128;

/// A batch of strided matrices: element `(b, i, j)`, with `b` the batch coordinates,
/// is `data[offset + Σ b_d · batch_strides[d] + i · row_stride + j · col_stride]`.
/// Strides may be zero (broadcast) or negative (with an `offset` keeping every
/// reached element in bounds).
#[derive(Debug, Clone, PartialEq)]
pub struct MatView<'a> {
    /// The buffer.
    pub data: &'a [f32],
    /// Offset of element `(0, 0, 0)`.
    pub offset: usize,
    /// One stride per batch dimension.
    pub batch_strides: Vec<isize>,
    /// Stride between rows.
    pub row_stride: isize,
    /// Stride between columns.
    pub col_stride: isize,
}

impl<'a> MatView<'a> {
    /// A dense row-major `[batch..., rows, cols]` tensor.
    pub fn dense(data: &'a [f32], batch: &[usize], rows: usize, cols: usize) -> Self {
        let mut batch_strides = vec![0isize; batch.len()];
        let mut acc = (rows * cols) as isize;
        for (s, &n) in batch_strides.iter_mut().zip(batch).rev() {
            *s = acc;
            acc = acc.saturating_mul(n as isize);
        }
        MatView {
            data,
            offset: 0,
            batch_strides,
            row_stride: cols as isize,
            col_stride: 1,
        }
    }

    /// The transpose: rows and columns swapped (no copy).
    pub fn transposed(self) -> Self {
        MatView {
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Offset of matrix `b` (flat row-major index over `batch`).
    fn batch_offset(&self, batch: &[usize], mut b: usize) -> isize {
        let mut off = self.offset as isize;
        for (&n, &st) in batch.iter().zip(&self.batch_strides).rev() {
            off += (b % n) as isize * st;
            b /= n;
        }
        off
    }

    fn check(&self, operand: &'static str, batch: &[usize], rows: usize, cols: usize) -> Result<(), KernelError> {
        if self.batch_strides.len() != batch.len() {
            return Err(KernelError::Shape {
                kernel: KERNEL,
                what: format!(
                    "{operand} has {} batch strides, the batch has {} dimensions",
                    self.batch_strides.len(),
                    batch.len()
                ),
            });
        }
        let mut shape = batch.to_vec();
        shape.extend([rows, cols]);
        if shape.contains(&0) {
            return Ok(());
        }
        let mut strides = self.batch_strides.clone();
        strides.extend([self.row_stride, self.col_stride]);
        check_view(KERNEL, operand, 0, self.data.len(), self.offset, &shape, &strides)
    }
}

/// How the scores `Q · Kt` are scaled before the mask and softmax.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScoreScale {
    /// Multiply by the scalar (e.g. `1/√D`).
    Mul(f32),
    /// Divide by the scalar (e.g. `√D`), as an IEEE division.
    Div(f32),
}

/// The sizes of an attention call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttentionShape {
    /// Leading batch dimensions (e.g. `[batch, heads]`); may be empty.
    pub batch: Vec<usize>,
    /// Query positions `S`.
    pub queries: usize,
    /// Key positions `T`.
    pub keys: usize,
    /// Query/key feature size `D`.
    pub head_dim: usize,
    /// Value feature size `E`.
    pub value_dim: usize,
}

/// Attention with the detected ISA. See [`attention_with`].
pub fn attention(
    shape: &AttentionShape,
    q: &MatView<'_>,
    kt: &MatView<'_>,
    v: &MatView<'_>,
    mask: Option<&MatView<'_>>,
    scale: ScoreScale,
    out: &mut [f32],
) -> Result<(), KernelError> {
    attention_with(Isa::detect(), shape, q, kt, v, mask, scale, out)
}

/// Fused attention: `q` views `[batch..., S, D]`, `kt` views `[batch..., D, T]` (a
/// transposed `K` is `MatView::transposed` of it), `v` views `[batch..., T, E]`,
/// the optional additive `mask` views `[batch..., S, T]` (broadcasting through zero
/// strides: `[T]`, `[S, T]`, `[B, 1, 1, T]`, …), and `out` is dense
/// `[batch..., S, E]`.
///
/// A query row whose scores are all `-inf` (fully masked) comes out NaN, as does
/// every row when `T = 0` (an empty softmax), matching a naive softmax.
///
/// Errors, before anything is written: [`KernelError::Shape`] for batch strides of
/// the wrong rank, [`KernelError::ViewOutOfBounds`] for a view reaching outside its
/// buffer, [`KernelError::BufferLength`] if `out` is not `batch·S·E` long.
#[allow(clippy::too_many_arguments)]
pub fn attention_with(
    isa: Isa,
    shape: &AttentionShape,
    q: &MatView<'_>,
    kt: &MatView<'_>,
    v: &MatView<'_>,
    mask: Option<&MatView<'_>>,
    scale: ScoreScale,
    out: &mut [f32],
) -> Result<(), KernelError> {
    let AttentionShape {
        batch,
        queries: s,
        keys: t,
        head_dim: d,
        value_dim: e,
    } = shape;
    let (s, t, d, e) = (*s, *t, *d, *e);
    q.check("q", batch, s, d)?;
    kt.check("kt", batch, d, t)?;
    v.check("v", batch, t, e)?;
    if let Some(m) = mask {
        m.check("mask", batch, s, t)?;
    }
    let nb = batch.iter().try_fold(1usize, |a, &n| a.checked_mul(n));
    let expected = nb
        .and_then(|nb| nb.checked_mul(s))
        .and_then(|x| x.checked_mul(e))
        .ok_or_else(|| KernelError::Shape {
            kernel: KERNEL,
            what: format!("batch {batch:?} × {s} × {e} overflows usize"),
        })?;
    if out.len() != expected {
        return Err(KernelError::BufferLength {
            kernel: KERNEL,
            operand: "out",
            expected,
            found: out.len(),
        });
    }
    if out.is_empty() {
        return Ok(());
    }
    if t == 0 {
        out.fill(f32::NAN);
        return Ok(());
    }
    let ctx = Ctx {
        batch,
        s,
        t,
        d,
        e,
        q,
        kt,
        v,
        mask,
        scale,
    };
    out.par_chunks_mut(s * e).enumerate().for_each(|(b, ob)| {
        ob.par_chunks_mut(BLOCK_Q * e).enumerate().for_each(|(qb, o)| {
            isa.dispatch(QueryBlock {
                ctx: &ctx,
                b,
                q0: qb * BLOCK_Q,
                out: o,
            });
        });
    });
    Ok(())
}

/// Everything a task reads.
struct Ctx<'c, 'd> {
    batch: &'c [usize],
    s: usize,
    t: usize,
    d: usize,
    e: usize,
    q: &'c MatView<'d>,
    kt: &'c MatView<'d>,
    v: &'c MatView<'d>,
    mask: Option<&'c MatView<'d>>,
    scale: ScoreScale,
}

/// One (batch entry, query block) task; `out` is its `[rows, E]` slice.
struct QueryBlock<'a, 'c, 'd> {
    ctx: &'a Ctx<'c, 'd>,
    b: usize,
    q0: usize,
    out: &'a mut [f32],
}

/// A pointer to element `off` of `data`, without dereferencing. Callers pass
/// offsets inside the bounds checked by [`MatView::check`] (or matrices with no
/// elements, which sgemm never reads).
fn ptr_at(data: &[f32], off: isize) -> *const f32 {
    data.as_ptr().wrapping_offset(off)
}

impl SimdKernel for QueryBlock<'_, '_, '_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let QueryBlock { ctx, b, q0, out } = self;
        let (t, d, e) = (ctx.t, ctx.d, ctx.e);
        let bq = (ctx.s - q0).min(BLOCK_Q);
        let q_off = ctx.q.batch_offset(ctx.batch, b) + q0 as isize * ctx.q.row_stride;
        let kt_off = ctx.kt.batch_offset(ctx.batch, b);
        let v_off = ctx.v.batch_offset(ctx.batch, b);
        let mask_off = ctx.mask.map(|m| m.batch_offset(ctx.batch, b) + q0 as isize * m.row_stride);
        let mut scores = vec![0.0f32; bq * BLOCK_K];
        let mut gathered = vec![0.0f32; BLOCK_K];
        let acc = &mut out[..bq * e];
        acc.fill(0.0);
        let mut m_run = vec![f32::NEG_INFINITY; bq];
        let mut l_run = vec![0.0f32; bq];
        for k0 in (0..t).step_by(BLOCK_K) {
            let bk = (t - k0).min(BLOCK_K);
            // SAFETY: A is the [bq, d] block of Q at rows q0.., B the [d, bk] block of
            // Kt at columns k0..; both lie inside views checked by `MatView::check`
            // (or have no elements). C is `scores`, bq × BLOCK_K with row stride
            // BLOCK_K ≥ bk, exclusively borrowed.
            unsafe {
                matrixmultiply::sgemm(
                    bq,
                    d,
                    bk,
                    1.0,
                    ptr_at(ctx.q.data, q_off),
                    ctx.q.row_stride,
                    ctx.q.col_stride,
                    ptr_at(ctx.kt.data, kt_off + k0 as isize * ctx.kt.col_stride),
                    ctx.kt.row_stride,
                    ctx.kt.col_stride,
                    0.0,
                    scores.as_mut_ptr(),
                    BLOCK_K as isize,
                    1,
                );
            }
            for r in 0..bq {
                let row = &mut scores[r * BLOCK_K..r * BLOCK_K + bk];
                let mask_row = match (ctx.mask, mask_off) {
                    (Some(m), Some(off)) => {
                        let base = off + r as isize * m.row_stride + k0 as isize * m.col_stride;
                        Some(mask_slice(m, base, bk, &mut gathered))
                    }
                    _ => None,
                };
                scale_and_mask(s, row, ctx.scale, mask_row);
                let m_new = m_run[r].max(row_max(s, row));
                if m_new == f32::NEG_INFINITY {
                    // Everything so far is masked out: p = 0, nothing to rescale
                    // (NaN scores, which the maximum skipped, stay NaN).
                    for x in row.iter_mut() {
                        *x = if *x == f32::NEG_INFINITY { 0.0 } else { f32::NAN };
                    }
                    continue;
                }
                let sum = exp_shifted_in_place(s, row, m_new);
                let corr = (m_run[r] - m_new).exp();
                l_run[r] = l_run[r] * corr + sum;
                m_run[r] = m_new;
                if corr != 1.0 {
                    scale_row(s, &mut acc[r * e..(r + 1) * e], corr);
                }
            }
            // SAFETY: A is `scores` (bq × bk, row stride BLOCK_K); B the [bk, e] block
            // of V at rows k0.., inside the checked view; C is `acc`, bq × e dense,
            // exclusively borrowed.
            unsafe {
                matrixmultiply::sgemm(
                    bq,
                    bk,
                    e,
                    1.0,
                    scores.as_ptr(),
                    BLOCK_K as isize,
                    1,
                    ptr_at(ctx.v.data, v_off + k0 as isize * ctx.v.row_stride),
                    ctx.v.row_stride,
                    ctx.v.col_stride,
                    1.0,
                    acc.as_mut_ptr(),
                    e as isize,
                    1,
                );
            }
        }
        for (r, l) in l_run.iter().enumerate() {
            scale_row(s, &mut acc[r * e..(r + 1) * e], 1.0 / l);
        }
    }
}

/// The `bk` mask values of one row starting at `base`: borrowed when contiguous,
/// one value when broadcast, else gathered into `buf`.
fn mask_slice<'r>(m: &'r MatView<'_>, base: isize, bk: usize, buf: &'r mut [f32]) -> MaskRow<'r> {
    match m.col_stride {
        1 => MaskRow::Slice(&m.data[base as usize..base as usize + bk]),
        0 => MaskRow::Scalar(m.data[base as usize]),
        cs => {
            for (j, x) in buf[..bk].iter_mut().enumerate() {
                *x = m.data[(base + j as isize * cs) as usize];
            }
            MaskRow::Slice(&buf[..bk])
        }
    }
}

/// One row's mask values.
#[derive(Clone, Copy)]
enum MaskRow<'m> {
    Slice(&'m [f32]),
    Scalar(f32),
}

/// `row = scale(row) + mask`.
#[inline(always)]
fn scale_and_mask<S: Simd>(s: S, row: &mut [f32], scale: ScoreScale, mask: Option<MaskRow<'_>>) {
    let (c, div) = match scale {
        ScoreScale::Mul(c) => (s.splat(c), false),
        ScoreScale::Div(c) => (s.splat(c), true),
    };
    let l = S::LANES;
    let n = row.len();
    let mut i = 0;
    while i < n {
        let m = (n - i).min(l);
        let chunk = &mut row[i..i + m];
        let x = if m == l { s.load(chunk) } else { s.load_partial(chunk) };
        let x = if div { s.div(x, c) } else { s.mul(x, c) };
        let x = match mask {
            None => x,
            Some(MaskRow::Scalar(v)) => s.add(x, s.splat(v)),
            Some(MaskRow::Slice(ms)) if m == l => s.add(x, s.load(&ms[i..])),
            Some(MaskRow::Slice(ms)) => s.add(x, s.load_partial(&ms[i..i + m])),
        };
        if m == l {
            s.store(x, chunk);
        } else {
            s.store_partial(x, chunk);
        }
        i += l;
    }
}

/// `row = exp(row - m)`; returns the sum.
#[inline(always)]
fn exp_shifted_in_place<S: Simd>(s: S, row: &mut [f32], m: f32) -> f32 {
    let l = S::LANES;
    let full = row.len() - row.len() % l;
    let mv = s.splat(m);
    let mut acc = s.zero();
    let (head, tail) = row.split_at_mut(full);
    for c in head.chunks_exact_mut(l) {
        let p = s.exp(s.sub(s.load(c), mv));
        acc = s.add(acc, p);
        s.store(p, c);
    }
    let p = s.exp(s.sub(s.load_partial(tail), mv));
    s.store_partial(p, tail);
    acc = s.add(acc, s.load_partial(tail));
    s.reduce_sum(acc)
}
