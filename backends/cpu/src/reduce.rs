//! Row-wise normalisations and axis reductions: softmax over the last axis, layer
//! normalisation, and sum/mean/max over one axis. Vectorised with [`crate::simd`],
//! parallel over rows on rayon's current pool once the input exceeds 32 Ki
//! elements.

use rayon::prelude::*;

use crate::KernelError;
use crate::simd::{Isa, Simd, SimdKernel};

/// Inputs with more elements than this run in parallel.
const PAR_MIN: usize = 32 * 1024;
/// Target elements per parallel task.
const PAR_TASK: usize = 16 * 1024;

/// A reduction over one axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// The sum (`0` over an empty axis).
    Sum,
    /// The arithmetic mean (NaN over an empty axis).
    Mean,
    /// The maximum, NaNs ignored as by [`f32::max`] (`-inf` over an empty axis).
    Max,
}

fn check_len(kernel: &'static str, operand: &'static str, found: usize, dims: &[usize]) -> Result<usize, KernelError> {
    let expected = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| KernelError::Shape {
            kernel,
            what: format!("dimensions {dims:?} overflow usize"),
        })?;
    if found != expected {
        return Err(KernelError::BufferLength {
            kernel,
            operand,
            expected,
            found,
        });
    }
    Ok(expected)
}

/// Rows per parallel task for rows of `n` elements.
fn rows_per_task(n: usize) -> usize {
    (PAR_TASK / n.max(1)).max(1)
}

/// Softmax over the last axis of a `[rows, n]` tensor with the detected ISA. See
/// [`softmax_with`].
pub fn softmax(x: &[f32], out: &mut [f32], rows: usize, n: usize) -> Result<(), KernelError> {
    softmax_with(Isa::detect(), x, out, rows, n)
}

/// Softmax over the last axis of a dense row-major `[rows, n]` tensor:
/// `out[r, j] = exp(x[r, j] - m_r) / Σ_k exp(x[r, k] - m_r)` with `m_r` the row's
/// maximum. A row whose maximum is `+inf` or NaN, or that is all `-inf`, comes out
/// NaN. Errors ([`KernelError::BufferLength`]) if `x` or `out` is not `rows·n` long.
pub fn softmax_with(isa: Isa, x: &[f32], out: &mut [f32], rows: usize, n: usize) -> Result<(), KernelError> {
    const K: &str = "softmax";
    check_len(K, "x", x.len(), &[rows, n])?;
    check_len(K, "out", out.len(), &[rows, n])?;
    if x.is_empty() {
        return Ok(());
    }
    let rt = rows_per_task(n);
    if x.len() <= PAR_MIN {
        isa.dispatch(Softmax { x, out, n });
    } else {
        out.par_chunks_mut(rt * n)
            .zip(x.par_chunks(rt * n))
            .for_each(|(out, x)| isa.dispatch(Softmax { x, out, n }));
    }
    Ok(())
}

struct Softmax<'a> {
    x: &'a [f32],
    out: &'a mut [f32],
    n: usize,
}

impl SimdKernel for Softmax<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        for (x, out) in self.x.chunks_exact(self.n).zip(self.out.chunks_exact_mut(self.n)) {
            softmax_row(s, x, out);
        }
    }
}

/// The largest element of a non-empty row ([`f32::max`] NaN rule).
#[inline(always)]
pub(crate) fn row_max<S: Simd>(s: S, x: &[f32]) -> f32 {
    let l = S::LANES;
    let full = x.len() - x.len() % l;
    let mut m = f32::NEG_INFINITY;
    if full > 0 {
        let mut acc = s.load(x);
        for c in x[l..full].chunks_exact(l) {
            acc = s.max(acc, s.load(c));
        }
        m = s.reduce_max(acc);
    }
    x[full..].iter().fold(m, |a, &b| a.max(b))
}

/// The sum of a row.
#[inline(always)]
pub(crate) fn row_sum<S: Simd>(s: S, x: &[f32]) -> f32 {
    let l = S::LANES;
    let full = x.len() - x.len() % l;
    let (mut a0, mut a1) = (s.zero(), s.zero());
    let mut chunks = x[..full].chunks_exact(2 * l);
    for c in &mut chunks {
        a0 = s.add(a0, s.load(c));
        a1 = s.add(a1, s.load(&c[l..]));
    }
    for c in chunks.remainder().chunks_exact(l) {
        a0 = s.add(a0, s.load(c));
    }
    a0 = s.add(a0, s.load_partial(&x[full..]));
    s.reduce_sum(s.add(a0, a1))
}

/// `out = exp(x - m)`; returns the sum of `out`.
#[inline(always)]
pub(crate) fn exp_shifted<S: Simd>(s: S, x: &[f32], out: &mut [f32], m: f32) -> f32 {
    let l = S::LANES;
    let n = x.len();
    let out = &mut out[..n];
    let full = n - n % l;
    let mv = s.splat(m);
    let mut acc = s.zero();
    for (c, o) in x[..full].chunks_exact(l).zip(out[..full].chunks_exact_mut(l)) {
        let e = s.exp(s.sub(s.load(c), mv));
        acc = s.add(acc, e);
        s.store(e, o);
    }
    if full < n {
        let e = s.exp(s.sub(s.load_partial(&x[full..]), mv));
        s.store_partial(e, &mut out[full..]);
        acc = s.add(acc, s.load_partial(&out[full..]));
    }
    s.reduce_sum(acc)
}

/// `x *= c`.
#[inline(always)]
pub(crate) fn scale_row<S: Simd>(s: S, x: &mut [f32], c: f32) {
    let l = S::LANES;
    let full = x.len() - x.len() % l;
    let cv = s.splat(c);
    let (head, tail) = x.split_at_mut(full);
    for o in head.chunks_exact_mut(l) {
        let v = s.mul(s.load(o), cv);
        s.store(v, o);
    }
    let v = s.mul(s.load_partial(tail), cv);
    s.store_partial(v, tail);
}

#[inline(always)]
fn softmax_row<S: Simd>(s: S, x: &[f32], out: &mut [f32]) {
    let m = row_max(s, x);
    let sum = exp_shifted(s, x, out, m);
    scale_row(s, out, 1.0 / sum);
}

/// Layer normalisation with the detected ISA. See [`layer_norm_with`].
pub fn layer_norm(
    x: &[f32],
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    out: &mut [f32],
    rows: usize,
    n: usize,
    eps: f32,
) -> Result<(), KernelError> {
    layer_norm_with(Isa::detect(), x, gamma, beta, out, rows, n, eps)
}

/// Layer normalisation over the last `n` elements of each row of a dense `[rows, n]`
/// tensor: `out = (x - mean) / sqrt(var + eps) · gamma + beta`, with the biased
/// variance (divided by `n`, computed in a second pass over `x - mean`), and
/// `gamma`/`beta` per feature (`n` long; absent means 1 and 0).
///
/// Errors ([`KernelError::BufferLength`]) if `x`/`out` are not `rows·n` long or
/// `gamma`/`beta` not `n` long.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_with(
    isa: Isa,
    x: &[f32],
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    out: &mut [f32],
    rows: usize,
    n: usize,
    eps: f32,
) -> Result<(), KernelError> {
    const K: &str = "layer_norm";
    check_len(K, "x", x.len(), &[rows, n])?;
    check_len(K, "out", out.len(), &[rows, n])?;
    if let Some(g) = gamma {
        check_len(K, "gamma", g.len(), &[n])?;
    }
    if let Some(b) = beta {
        check_len(K, "beta", b.len(), &[n])?;
    }
    if x.is_empty() {
        return Ok(());
    }
    let rt = rows_per_task(n);
    let job = |x, out| LayerNorm {
        x,
        gamma,
        beta,
        out,
        n,
        eps,
    };
    if x.len() <= PAR_MIN {
        isa.dispatch(job(x, out));
    } else {
        out.par_chunks_mut(rt * n)
            .zip(x.par_chunks(rt * n))
            .for_each(|(out, x)| isa.dispatch(job(x, out)));
    }
    Ok(())
}

struct LayerNorm<'a> {
    x: &'a [f32],
    gamma: Option<&'a [f32]>,
    beta: Option<&'a [f32]>,
    out: &'a mut [f32],
    n: usize,
    eps: f32,
}

impl SimdKernel for LayerNorm<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let n = self.n;
        for (x, out) in self.x.chunks_exact(n).zip(self.out.chunks_exact_mut(n)) {
            // Work with x - x[0] (exact for rows of nearby values) and keep the
            // mean as x[0] + md: rows far from zero keep the deviations' precision.
            let x0 = x[0];
            let md = row_sum_shifted(s, x, x0) / n as f32;
            let var = sum_sq_dev(s, x, x0, md) / n as f32;
            let rstd = 1.0 / (var + self.eps).sqrt();
            normalize_row(s, x, self.gamma, self.beta, out, (x0, md), rstd);
        }
    }
}

/// `Σ (x - c)`.
#[inline(always)]
fn row_sum_shifted<S: Simd>(s: S, x: &[f32], c: f32) -> f32 {
    let l = S::LANES;
    let full = x.len() - x.len() % l;
    let cv = s.splat(c);
    let mut acc = s.zero();
    for v in x[..full].chunks_exact(l) {
        acc = s.add(acc, s.sub(s.load(v), cv));
    }
    let tail: f32 = x[full..].iter().map(|&v| v - c).sum();
    s.reduce_sum(acc) + tail
}

/// `Σ ((x - x0) - md)²`.
#[inline(always)]
fn sum_sq_dev<S: Simd>(s: S, x: &[f32], x0: f32, md: f32) -> f32 {
    let l = S::LANES;
    let full = x.len() - x.len() % l;
    let (x0v, mv) = (s.splat(x0), s.splat(md));
    let mut acc = s.zero();
    for c in x[..full].chunks_exact(l) {
        let d = s.sub(s.sub(s.load(c), x0v), mv);
        acc = s.mul_add(d, d, acc);
    }
    let tail: f32 = x[full..].iter().map(|&v| ((v - x0) - md) * ((v - x0) - md)).sum();
    s.reduce_sum(acc) + tail
}

/// `out = ((x - x0) - md) · rstd · gamma + beta`, `mean = (x0, md)`.
#[inline(always)]
fn normalize_row<S: Simd>(s: S, x: &[f32], gamma: Option<&[f32]>, beta: Option<&[f32]>, out: &mut [f32], mean: (f32, f32), rstd: f32) {
    let l = S::LANES;
    let n = x.len();
    let (x0v, mv, rv) = (s.splat(mean.0), s.splat(mean.1), s.splat(rstd));
    let (one, zero) = (s.splat(1.0), s.zero());
    let mut i = 0;
    while i < n {
        let m = (n - i).min(l);
        let (xv, g, b) = if m == l {
            let g = match gamma {
                Some(g) => s.load(&g[i..]),
                None => one,
            };
            let b = match beta {
                Some(b) => s.load(&b[i..]),
                None => zero,
            };
            (s.load(&x[i..]), g, b)
        } else {
            let g = match gamma {
                Some(g) => s.load_partial(&g[i..i + m]),
                None => one,
            };
            let b = match beta {
                Some(b) => s.load_partial(&b[i..i + m]),
                None => zero,
            };
            (s.load_partial(&x[i..i + m]), g, b)
        };
        let y = s.mul_add(s.mul(s.sub(s.sub(xv, x0v), mv), rv), g, b);
        if m == l {
            s.store(y, &mut out[i..]);
        } else {
            s.store_partial(y, &mut out[i..i + m]);
        }
        i += l;
    }
}

/// Reduction over an axis with the detected ISA. See [`reduce_with`].
pub fn reduce(op: ReduceOp, x: &[f32], out: &mut [f32], outer: usize, n: usize, inner: usize) -> Result<(), KernelError> {
    reduce_with(Isa::detect(), op, x, out, outer, n, inner)
}

/// Reduces the middle axis of a dense `[outer, n, inner]` tensor into a dense
/// `[outer, inner]` output: `out[o, i] = op_k x[o, k, i]`. Errors
/// ([`KernelError::BufferLength`]) on mismatched lengths.
pub fn reduce_with(isa: Isa, op: ReduceOp, x: &[f32], out: &mut [f32], outer: usize, n: usize, inner: usize) -> Result<(), KernelError> {
    const K: &str = "reduce";
    check_len(K, "x", x.len(), &[outer, n, inner])?;
    check_len(K, "out", out.len(), &[outer, inner])?;
    if out.is_empty() {
        return Ok(());
    }
    if n == 0 {
        out.fill(match op {
            ReduceOp::Sum => 0.0,
            ReduceOp::Mean => f32::NAN,
            ReduceOp::Max => f32::NEG_INFINITY,
        });
        return Ok(());
    }
    let slab = n * inner;
    let ot = (PAR_TASK / slab.max(1)).max(1);
    if x.len() <= PAR_MIN || outer == 1 {
        isa.dispatch(Reduce { op, x, out, n, inner });
    } else {
        out.par_chunks_mut(ot * inner)
            .zip(x.par_chunks(ot * slab))
            .for_each(|(out, x)| isa.dispatch(Reduce { op, x, out, n, inner }));
    }
    Ok(())
}

struct Reduce<'a> {
    op: ReduceOp,
    x: &'a [f32],
    out: &'a mut [f32],
    n: usize,
    inner: usize,
}

impl SimdKernel for Reduce<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let Reduce { op, x, out, n, inner } = self;
        for (x, out) in x.chunks_exact(n * inner).zip(out.chunks_exact_mut(inner)) {
            if inner == 1 {
                out[0] = match op {
                    ReduceOp::Sum => row_sum(s, x),
                    ReduceOp::Mean => row_sum(s, x) / n as f32,
                    ReduceOp::Max => row_max(s, x),
                };
                continue;
            }
            // Vertical: fold rows of `inner` elements into `out`.
            out.copy_from_slice(&x[..inner]);
            for row in x[inner..].chunks_exact(inner) {
                fold_rows(s, out, row, op == ReduceOp::Max);
            }
            if op == ReduceOp::Mean {
                let inv = n as f32;
                for v in out.iter_mut() {
                    *v /= inv;
                }
            }
        }
    }
}

/// `acc = acc + row` (or `max(acc, row)`) lane-wise.
#[inline(always)]
fn fold_rows<S: Simd>(s: S, acc: &mut [f32], row: &[f32], max: bool) {
    let l = S::LANES;
    let full = acc.len() - acc.len() % l;
    let (head, tail) = acc.split_at_mut(full);
    let (head_r, tail_r) = row.split_at(full);
    if max {
        for (a, r) in head.chunks_exact_mut(l).zip(head_r.chunks_exact(l)) {
            let v = s.max(s.load(a), s.load(r));
            s.store(v, a);
        }
        let v = s.max(s.load_partial(tail), s.load_partial(tail_r));
        s.store_partial(v, tail);
    } else {
        for (a, r) in head.chunks_exact_mut(l).zip(head_r.chunks_exact(l)) {
            let v = s.add(s.load(a), s.load(r));
            s.store(v, a);
        }
        let v = s.add(s.load_partial(tail), s.load_partial(tail_r));
        s.store_partial(v, tail);
    }
}
