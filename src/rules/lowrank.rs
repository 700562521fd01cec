//! Built-in approximate rule: GEMM weights replaced by a truncated SVD.
//!
//! `rule lowrank/matmul approx = @lowrank` finds every `matmul` and
//! `fused_matmul` e-node whose weight (second input) is an `f32` matrix
//! constant `W` of shape `[k, n]` with at least [`MIN_WEIGHT_ELEMENTS`]
//! elements, and adds to the node's class, for each rank `r` of
//! [`offered_ranks`],
//!
//! ```text
//! (approx ERR (matmul (matmul x U) V))                          for (matmul x W)
//! (approx ERR (fused_matmul EPI (matmul x U) V x1 ...))          for (fused_matmul EPI x W x1 ...)
//! ```
//!
//! with `U = U_r·diag(σ_1..σ_r)` (`[k, r]`) and `V = V_rᵀ` (`[r, n]`) from the
//! SVD `W = U·diag(σ)·Vᵀ`, and `ERR = sqrt(Σ_{i>r} σ_i²) / sqrt(Σ σ_i²)`, the
//! exact relative Frobenius error `‖W − UV‖ / ‖W‖` of the truncation. As for
//! rounded weights (`approx.rs`), the relative output error of `x·UV` is about
//! `ERR` for inputs spread over many directions; `eqopt rules check` verifies
//! it on random instances, and budgeted extraction measures it.
//!
//! Ranks are offered only where the product gets cheaper: `r·(k + n) < k·n`.
//! The SVD is computed once per constant (in `f64`, by `faer`: about 0.2 s for
//! a `[768, 768]` weight, 0.5 s for `[768, 3072]`) and remembered in the
//! analysis ([`crate::analysis::TensorAnalysis::memo_svd`]); the factors are
//! memoized constants. Only the input graph's own constants are decomposed,
//! not those computed by rules (the factors themselves, weights merged or
//! folded by other built-ins): each would cost an SVD, and decomposing the
//! factors or their concatenations only finds other routes to the ranks
//! already offered.

use super::approx::MIN_WEIGHT_ELEMENTS;
use super::builtins::const_name;
use crate::analysis::{Facts, Svd, TEGraph, TensorAnalysis, add_const_node};
use crate::dtype::{DType, TensorType};
use crate::graph::tensor::Tensor;
use crate::lang::{TNode, TOp};
use egg::Id;

/// Weights `[k, n]` with `k·n·min(k, n)` above this are left alone: the SVD
/// costs about that many floating-point operations times a small constant
/// (a second for `[1024, 4096]`, at the limit; a `[25088, 4096]` classifier
/// layer would take minutes and gigabytes).
pub const MAX_SVD_WORK: u128 = 1 << 32;

/// Ranks are multiples of this (and at least this): GEMM kernels tile by 8.
pub const RANK_STEP: usize = 8;

/// The ranks offered for a `[k, n]` weight are the largest multiple of
/// [`RANK_STEP`] below `k·n / (k + n)` divided by each of these, rounded down
/// to a multiple of [`RANK_STEP`]: the smallest FLOP saving worth having, and
/// two steps of more savings for more error. Extraction picks among them
/// within the budget.
pub const RANK_DIVISORS: [usize; 3] = [1, 2, 4];

/// The ranks offered for a `[k, n]` weight, largest first (see
/// [`RANK_DIVISORS`]); each satisfies `r·(k + n) < k·n`. Empty when no
/// multiple of [`RANK_STEP`] saves FLOPs.
pub fn offered_ranks(k: usize, n: usize) -> Vec<usize> {
    let Some(kn) = k.checked_mul(n) else { return Vec::new() };
    if kn == 0 {
        return Vec::new();
    }
    let below = (kn - 1) / (k + n);
    let top = below / RANK_STEP * RANK_STEP;
    let mut ranks: Vec<usize> = RANK_DIVISORS
        .iter()
        .map(|d| top / d / RANK_STEP * RANK_STEP)
        .filter(|&r| r >= RANK_STEP)
        .collect();
    ranks.dedup();
    ranks
}

/// The thin SVD of a row-major `[rows, cols]` matrix, keeping the first `kept`
/// singular vectors; `None` if the decomposition does not converge.
pub fn svd(values: &[f64], rows: usize, cols: usize, kept: usize) -> Option<Svd> {
    let m = faer::Mat::from_fn(rows, cols, |i, j| values[i * cols + j]);
    let d = m.thin_svd().ok()?;
    let (u, s, v) = (d.U(), d.S().column_vector(), d.V());
    let sigma: Vec<f64> = (0..s.nrows()).map(|i| s[i]).collect();
    let kept = kept.min(sigma.len());
    let mut uk = Vec::with_capacity(rows * kept);
    for i in 0..rows {
        uk.extend((0..kept).map(|j| u[(i, j)]));
    }
    let mut vt = Vec::with_capacity(kept * cols);
    for j in 0..kept {
        vt.extend((0..cols).map(|c| v[(c, j)]));
    }
    Some(Svd {
        rows,
        cols,
        sigma,
        kept,
        u: uk,
        vt,
    })
}

/// `sqrt(Σ_{i≥r} σ_i²) / sqrt(Σ σ_i²)` (0-based): the relative Frobenius
/// error of keeping the first `r` singular triplets (0 for a zero matrix).
pub fn truncation_error(sigma: &[f64], r: usize) -> f64 {
    let total: f64 = sigma.iter().map(|s| s * s).sum();
    let tail: f64 = sigma.iter().skip(r).map(|s| s * s).sum();
    if total > 0.0 { (tail / total).sqrt() } else { 0.0 }
}

/// The rank-`r` left factor `U_r·diag(σ_1..σ_r)` of `svd`, row-major
/// `[rows, r]` (`r ≤ svd.kept`).
pub fn left_factor(svd: &Svd, r: usize) -> Vec<f64> {
    let mut u = Vec::with_capacity(svd.rows * r);
    for i in 0..svd.rows {
        u.extend((0..r).map(|j| svd.u[i * svd.kept + j] * svd.sigma[j]));
    }
    u
}

/// The rank-`r` right factor `V_rᵀ` of `svd`, row-major `[r, cols]` (`r ≤ svd.kept`).
pub fn right_factor(svd: &Svd, r: usize) -> Vec<f64> {
    svd.vt[..r * svd.cols].to_vec()
}

/// The weight of `n` if the rule applies to it: its name and shape `(k, n)`,
/// for a `matmul`/`fused_matmul` whose second input is an `f32` rank-2
/// constant of the input graph (not one computed by a rule) of at least
/// [`MIN_WEIGHT_ELEMENTS`] elements, within [`MAX_SVD_WORK`], with at least
/// one rank to offer.
fn eligible_weight(egraph: &TEGraph, n: &TNode) -> Option<(String, usize, usize)> {
    if !matches!(n.op, TOp::MatMul | TOp::FusedMatMul) {
        return None;
    }
    let w = *n.inputs().get(1)?;
    let ty = egraph[w].data.ty()?;
    if ty.dtype != DType::F32 || ty.shape.len() != 2 || ty.numel() < MIN_WEIGHT_ELEMENTS {
        return None;
    }
    let (k, cols) = (ty.shape[0], ty.shape[1]);
    if k as u128 * cols as u128 * k.min(cols) as u128 > MAX_SVD_WORK || offered_ranks(k, cols).is_empty() {
        return None;
    }
    let name = const_name(egraph, w)?;
    (!egraph.analysis.is_computed(&name)).then_some((name, k, cols))
}

/// True if class `eclass` holds a node the rule applies to.
pub fn class_has_lowrank(egraph: &TEGraph, eclass: Id) -> bool {
    egraph[eclass].nodes.iter().any(|n| eligible_weight(egraph, n).is_some())
}

/// The rank-`r` factor constants of constant `name` (`[k, cols]`) and the
/// truncation's relative error, computed once per (constant, rank).
fn low_rank_weight(a: &mut TensorAnalysis, name: &str, k: usize, cols: usize, r: usize) -> Option<(String, String, f64)> {
    let key = format!("lowrank-{r}:{name}");
    let top = offered_ranks(k, cols)[0];
    let svd = a.memo_svd(name, |a| {
        let w = a.constant_data(name)?;
        svd(&w.to_f64(), k, cols, top)
    })?;
    let u_name = a.memo_constant(&format!("{key}.u"), &format!("{name}.lr{r}.u"), |_| {
        Some(Tensor::from_f64(TensorType::new(vec![k, r], DType::F32), &left_factor(&svd, r)))
    })?;
    let v_name = a.memo_constant(&format!("{key}.v"), &format!("{name}.lr{r}.v"), |_| {
        Some(Tensor::from_f64(TensorType::new(vec![r, cols], DType::F32), &right_factor(&svd, r)))
    })?;
    Some((u_name, v_name, truncation_error(&svd.sigma, r)))
}

/// Adds the low-rank variants of every eligible node of `eclass`; returns
/// `(eclass, new)` pairs to unify.
pub fn lowrank_class(egraph: &mut TEGraph, eclass: Id) -> Vec<(Id, Id)> {
    let nodes: Vec<TNode> = egraph[eclass].nodes.clone();
    let mut out = Vec::new();
    for n in nodes {
        let Some((name, k, cols)) = eligible_weight(egraph, &n) else {
            continue;
        };
        for r in offered_ranks(k, cols) {
            let Some((u, v, err)) = low_rank_weight(&mut egraph.analysis, &name, k, cols, r) else {
                break;
            };
            let (u, v) = (add_const_node(egraph, &u), add_const_node(egraph, &v));
            let at = n.op.attr_count();
            let inner = egraph.add(TNode {
                op: TOp::MatMul,
                children: vec![n.children[at], u],
            });
            if !matches!(egraph[inner].data, Facts::Tensor(_)) {
                continue;
            }
            let mut children = n.children.clone();
            children[at] = inner;
            children[at + 1] = v;
            out.extend(super::approx::add_approx(egraph, &n.op, children, err).map(|a| (eclass, a)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::tensor::{Distribution, random_values};

    #[test]
    fn ranks_save_flops_and_step_by_eight() {
        assert_eq!(offered_ranks(512, 512), vec![248, 120, 56]);
        assert_eq!(offered_ranks(64, 48), vec![24, 8]);
        assert_eq!(offered_ranks(768, 3072), vec![608, 304, 152]);
        // k·n/(k+n) = 8 exactly: rank 8 would cost as much as the product.
        assert_eq!(offered_ranks(16, 16), Vec::<usize>::new());
        assert_eq!(offered_ranks(4096, 4), Vec::<usize>::new());
        for (k, n) in [(512, 512), (64, 48), (768, 3072), (1000, 17), (17, 1000)] {
            for r in offered_ranks(k, n) {
                assert!(r * (k + n) < k * n && r % RANK_STEP == 0, "{k}x{n} r={r}");
            }
        }
    }

    /// `W = A·diag(decay)·B` with a decaying spectrum: the declared error of
    /// every offered rank is the measured `‖W − UV‖_F / ‖W‖_F`.
    #[test]
    fn declared_error_is_the_truncation_error() {
        let (k, m, n) = (96, 64, 80);
        let normal = |seed, len| random_values(&Distribution::Normal { mean: 0.0, std: 1.0 }, seed, len);
        let (a, b) = (normal(1, k * m), normal(2, m * n));
        let mut w = vec![0.0; k * n];
        for i in 0..k {
            for l in 0..m {
                let s = a[i * m + l] * 0.9f64.powi(l as i32);
                for j in 0..n {
                    w[i * n + j] += s * b[l * n + j];
                }
            }
        }
        let ranks = offered_ranks(k, n);
        assert_eq!(ranks, vec![40, 16, 8]);
        let d = svd(&w, k, n, ranks[0]).unwrap();
        assert!(d.sigma.windows(2).all(|p| p[0] >= p[1]));
        let norm: f64 = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        for r in ranks {
            let (u, v) = (left_factor(&d, r), right_factor(&d, r));
            let mut diff = 0.0;
            for i in 0..k {
                for j in 0..n {
                    let approx: f64 = (0..r).map(|l| u[i * r + l] * v[l * n + j]).sum();
                    diff += (w[i * n + j] - approx).powi(2);
                }
            }
            let measured = diff.sqrt() / norm;
            let declared = truncation_error(&d.sigma, r);
            assert!((measured - declared).abs() <= 1e-4, "rank {r}: {measured} vs {declared}");
            assert!(declared > 1e-6 && declared < 1.0, "rank {r}: {declared}");
        }
    }
}
