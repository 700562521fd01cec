//! Built-in approximate rule: hidden units of a two-layer perceptron pruned,
//! the next layer shrunk to match.
//!
//! `rule prune/hidden-units approx = @prune-hidden` finds every `matmul` or
//! `fused_matmul` e-node `(OP ... h W2 ...)` whose input `h` is
//!
//! ```text
//! (ACT (add (matmul x W1) b1))     or     (ACT (matmul x W1))
//! ```
//!
//! with `ACT` a `relu` or `gelu` (both map 0 to 0), `W1: [k, H]`, `b1: [H]`
//! and `W2: [H, n]` `f32` constants of the input graph, and adds, for each
//! fraction of [`PRUNE_FRACTIONS`], the same term with the `H − keep` hidden
//! units of least saliency removed: `W1`'s columns, `b1`'s entries and `W2`'s
//! rows, so both products shrink (a dense GEMM of `keep` columns, then one of
//! `keep` rows: the "sparsity format" is a smaller dense layer, which every
//! backend runs faster and every exporter writes as smaller initializers).
//!
//! The saliency of unit `j` is `s_j = √(‖W1[:, j]‖² + b1_j²) · ‖W2[j, :]‖`:
//! for inputs spread over many directions the pre-activation of unit `j` has
//! magnitude about `√(‖W1[:, j]‖² + b1_j²)` (times the input's scale), so its
//! contribution to the output about `s_j`. The declared error is
//! `ERR = √(Σ_removed s_j²) / √(Σ_all s_j²)`, the estimated relative share of
//! the output removed. It is data-free, so coarse: trained networks
//! concentrate their output in few units that magnitude alone does not
//! always find (on MiniLM, removing 1% of the units costs about 10% relative
//! error). Budgeted extraction measures every choice; `eqopt rules check`
//! checks the declaration on random two-layer perceptrons.

use super::approx::MIN_WEIGHT_ELEMENTS;
use super::builtins::const_name;
use crate::analysis::{TEGraph, TensorAnalysis, add_const_node};
use crate::dtype::{DType, TensorType};
use crate::graph::op::{BinaryOp, UnaryOp};
use crate::graph::tensor::Tensor;
use crate::lang::{TNode, TOp};
use egg::Id;

/// Fractions of the hidden units removed, one variant each.
pub const PRUNE_FRACTIONS: [f64; 3] = [0.125, 0.25, 0.5];

/// Kept unit counts are multiples of this (GEMM kernels tile by 8); layers
/// with fewer than two steps of units are left alone.
pub const UNIT_STEP: usize = 8;

/// A matched two-layer perceptron: class ids of its parts and constant names.
struct Perceptron {
    x: Id,
    act: UnaryOp,
    w1: String,
    /// The bias and whether it is the add's first operand.
    b1: Option<(String, bool)>,
    w2: String,
    hidden: usize,
}

/// The `f32` input-graph constant of rank `rank` in class `id`, with its shape.
fn source_constant(egraph: &TEGraph, id: Id, rank: usize) -> Option<(String, Vec<usize>)> {
    let ty = egraph[id].data.ty()?;
    if ty.dtype != DType::F32 || ty.shape.len() != rank {
        return None;
    }
    let name = const_name(egraph, id)?;
    (!egraph.analysis.is_computed(&name)).then(|| (name, ty.shape.clone()))
}

/// `(matmul x W1)` in class `id`: `x` and `W1`'s name and shape.
fn first_layer(egraph: &TEGraph, id: Id) -> Option<(Id, String, Vec<usize>)> {
    egraph[id].nodes.iter().find_map(|m| {
        if m.op != TOp::MatMul {
            return None;
        }
        let (w1, shape) = source_constant(egraph, m.children[1], 2)?;
        Some((m.children[0], w1, shape))
    })
}

/// The perceptron whose second layer is `n`, if the rule applies to it.
fn perceptron(egraph: &TEGraph, n: &TNode) -> Option<Perceptron> {
    if !matches!(n.op, TOp::MatMul | TOp::FusedMatMul) {
        return None;
    }
    let (h, w2) = (*n.inputs().first()?, *n.inputs().get(1)?);
    let (w2, w2_shape) = source_constant(egraph, w2, 2)?;
    egraph[h].nodes.iter().find_map(|a| {
        let TOp::Unary(act @ (UnaryOp::Relu | UnaryOp::Gelu)) = a.op else {
            return None;
        };
        let pre = a.children[0];
        let (x, w1, w1_shape, b1) = match first_layer(egraph, pre) {
            Some((x, w1, shape)) => (x, w1, shape, None),
            None => egraph[pre].nodes.iter().find_map(|add| {
                if add.op != TOp::Binary(BinaryOp::Add) {
                    return None;
                }
                let (l, r) = (add.children[0], add.children[1]);
                let (product, bias, bias_first) = match source_constant(egraph, r, 1) {
                    Some((b, _)) => (l, b, false),
                    None => (r, source_constant(egraph, l, 1)?.0, true),
                };
                let (x, w1, shape) = first_layer(egraph, product)?;
                Some((x, w1, shape, Some((bias, bias_first))))
            })?,
        };
        let hidden = w1_shape[1];
        let fits = w2_shape[0] == hidden
            && hidden >= 2 * UNIT_STEP
            && w1_shape[0] * hidden >= MIN_WEIGHT_ELEMENTS
            && w2_shape[1] * hidden >= MIN_WEIGHT_ELEMENTS;
        fits.then_some(Perceptron {
            x,
            act,
            w1,
            b1,
            w2: w2.clone(),
            hidden,
        })
    })
}

/// True if class `eclass` holds a node the rule applies to.
pub fn class_has_prunable(egraph: &TEGraph, eclass: Id) -> bool {
    egraph[eclass].nodes.iter().any(|n| perceptron(egraph, n).is_some())
}

/// The hidden unit counts kept for `hidden` units, one per fraction of
/// [`PRUNE_FRACTIONS`] (multiples of [`UNIT_STEP`], at least one step, fewer
/// than `hidden`, distinct, largest first).
pub fn kept_units(hidden: usize) -> Vec<usize> {
    let mut kept: Vec<usize> = PRUNE_FRACTIONS
        .iter()
        .map(|f| ((hidden as f64 * (1.0 - f)) as usize / UNIT_STEP * UNIT_STEP).max(UNIT_STEP))
        .filter(|&k| k < hidden)
        .collect();
    kept.dedup();
    kept
}

/// Hidden units by increasing saliency, and each unit's squared saliency.
fn saliency_order(a: &mut TensorAnalysis, p: &Perceptron) -> Option<(Vec<usize>, Vec<f64>)> {
    let w1 = a.constant_data(&p.w1)?.to_f64();
    let w2 = a.constant_data(&p.w2)?.to_f64();
    let b1 = match &p.b1 {
        Some((b, _)) => a.constant_data(b)?.to_f64(),
        None => vec![0.0; p.hidden],
    };
    let (h, k, n) = (p.hidden, w1.len() / p.hidden, w2.len() / p.hidden);
    let s2: Vec<f64> = (0..h)
        .map(|j| {
            let col: f64 = (0..k).map(|i| w1[i * h + j].powi(2)).sum::<f64>() + b1[j].powi(2);
            let row: f64 = w2[j * n..(j + 1) * n].iter().map(|v| v * v).sum();
            col * row
        })
        .collect();
    let mut order: Vec<usize> = (0..h).collect();
    // Ties broken by index: deterministic.
    order.sort_by(|&i, &j| s2[i].total_cmp(&s2[j]).then(i.cmp(&j)));
    Some((order, s2))
}

/// The pruned constants (`W1'`, `b1'`, `W2'`) keeping `keep` units, and the
/// declared error; computed once per perceptron and count.
fn pruned(a: &mut TensorAnalysis, p: &Perceptron, keep: usize) -> Option<(String, Option<String>, String, f64)> {
    let (order, s2) = saliency_order(a, p)?;
    let mut kept: Vec<usize> = order[p.hidden - keep..].to_vec();
    kept.sort_unstable();
    let total: f64 = s2.iter().sum();
    let removed: f64 = order[..p.hidden - keep].iter().map(|&j| s2[j]).sum();
    let err = if total > 0.0 { (removed / total).sqrt() } else { 0.0 };
    let key = format!("prune-{keep}:{}:{}:{}", p.w1, p.b1.as_ref().map_or("", |b| b.0.as_str()), p.w2);
    let h = p.hidden;
    let columns = |a: &mut TensorAnalysis, name: &str| {
        let w = a.constant_data(name)?;
        let (values, rows) = (w.to_f64(), w.ty.numel() / h);
        let v: Vec<f64> = (0..rows)
            .flat_map(|i| kept.iter().map(move |&j| (i, j)))
            .map(|(i, j)| values[i * h + j])
            .collect();
        let shape = if w.ty.shape.len() == 1 { vec![keep] } else { vec![rows, keep] };
        Some(Tensor::from_f64(TensorType::new(shape, DType::F32), &v))
    };
    let w1 = a.memo_constant(&format!("{key}.w1"), &format!("{}.pruned{keep}", p.w1), |a| columns(a, &p.w1))?;
    let b1 = match &p.b1 {
        Some((b, _)) => Some(a.memo_constant(&format!("{key}.b1"), &format!("{b}.pruned{keep}"), |a| columns(a, b))?),
        None => None,
    };
    let w2 = a.memo_constant(&format!("{key}.w2"), &format!("{}.pruned{keep}", p.w2), |a| {
        let w = a.constant_data(&p.w2)?;
        let (values, n) = (w.to_f64(), w.ty.numel() / h);
        let v: Vec<f64> = kept.iter().flat_map(|&j| values[j * n..(j + 1) * n].to_vec()).collect();
        Some(Tensor::from_f64(TensorType::new(vec![keep, n], DType::F32), &v))
    })?;
    Some((w1, b1, w2, err))
}

/// Adds the pruned variants of every eligible node of `eclass`; returns
/// `(eclass, new)` pairs to unify.
pub fn prune_class(egraph: &mut TEGraph, eclass: Id) -> Vec<(Id, Id)> {
    let nodes: Vec<TNode> = egraph[eclass].nodes.clone();
    let mut out = Vec::new();
    for n in nodes {
        let Some(p) = perceptron(egraph, &n) else { continue };
        for keep in kept_units(p.hidden) {
            let Some((w1, b1, w2, err)) = pruned(&mut egraph.analysis, &p, keep) else {
                break;
            };
            let w1 = add_const_node(egraph, &w1);
            let mut pre = egraph.add(TNode {
                op: TOp::MatMul,
                children: vec![p.x, w1],
            });
            if let (Some(b1), Some((_, bias_first))) = (b1, &p.b1) {
                let b1 = add_const_node(egraph, &b1);
                let children = if *bias_first { vec![b1, pre] } else { vec![pre, b1] };
                pre = egraph.add(TNode {
                    op: TOp::Binary(BinaryOp::Add),
                    children,
                });
            }
            let h = egraph.add(TNode {
                op: TOp::Unary(p.act),
                children: vec![pre],
            });
            let w2 = add_const_node(egraph, &w2);
            let at = n.op.attr_count();
            let mut children = n.children.clone();
            children[at] = h;
            children[at + 1] = w2;
            out.extend(super::approx::add_approx(egraph, &n.op, children, err).map(|a| (eclass, a)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_counts_step_by_eight_and_shrink() {
        assert_eq!(kept_units(512), vec![448, 384, 256]);
        assert_eq!(kept_units(1536), vec![1344, 1152, 768]);
        assert_eq!(kept_units(20), vec![16, 8]);
        assert_eq!(kept_units(16), vec![8]);
        assert!(kept_units(8).is_empty());
    }
}
