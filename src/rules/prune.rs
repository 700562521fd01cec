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
//!
//! Convolution chains get the same treatment, channels being the units:
//! `(conv P2 (ACT (conv P1 x W1 [b1])) W2 [b2])` (also `fused_conv` outside),
//! both convolutions of one group in NCHW, `W1: [H, C, kh, kw]`,
//! `W2: [O, H, kh', kw']`, loses output channels of the first convolution
//! (`W1`'s and `b1`'s entries along axis 0) and the matching input channels
//! of the second (`W2` along axis 1); the saliency of channel `j` is
//! `√(‖W1[j]‖² + b1_j²) · ‖W2[:, j]‖`.

use super::approx::MIN_WEIGHT_ELEMENTS;
use super::builtins::const_name;
use crate::analysis::{TEGraph, TensorAnalysis, add_const_node};
use crate::dtype::{DType, TensorType};
use crate::graph::op::{BinaryOp, Layout, UnaryOp};
use crate::graph::tensor::Tensor;
use crate::lang::{TNode, TOp, conv_params};
use egg::Id;

/// Fractions of the hidden units removed, one variant each.
pub const PRUNE_FRACTIONS: [f64; 3] = [0.125, 0.25, 0.5];

/// Kept unit counts are multiples of this (GEMM kernels tile by 8); layers
/// with fewer than two steps of units are left alone.
pub const UNIT_STEP: usize = 8;

/// How the first layer of a matched pair is spelled.
#[derive(Clone, Copy)]
enum FirstLayer {
    /// `(matmul x W1)`, then `(add · b1)` (`b1` first when `bias_first`).
    Dense { bias_first: bool },
    /// `(conv P1 x W1 [b1])` with `P1` the parameters' attribute class.
    Conv { params: Id },
}

/// A matched pair of layers: class ids of its parts and constant names.
struct Perceptron {
    x: Id,
    act: UnaryOp,
    first: FirstLayer,
    w1: String,
    b1: Option<String>,
    w2: String,
    hidden: usize,
}

impl Perceptron {
    /// The axis of `W1` and of `W2` that indexes the hidden units.
    fn unit_axes(&self) -> (usize, usize) {
        match self.first {
            FirstLayer::Dense { .. } => (1, 0),
            FirstLayer::Conv { .. } => (0, 1),
        }
    }
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
    match n.op {
        TOp::MatMul | TOp::FusedMatMul => dense_pair(egraph, n),
        TOp::Conv | TOp::FusedConv => conv_pair(egraph, n),
        _ => None,
    }
}

/// The activation `ACT` and its input class for a class holding `(ACT pre)`.
fn activations(egraph: &TEGraph, h: Id) -> impl Iterator<Item = (UnaryOp, Id)> + '_ {
    egraph[h].nodes.iter().filter_map(|a| match a.op {
        TOp::Unary(act @ (UnaryOp::Relu | UnaryOp::Gelu)) => Some((act, a.children[0])),
        _ => None,
    })
}

/// A matmul pair: `(OP ... (ACT (add (matmul x W1) b1)) W2 ...)`.
fn dense_pair(egraph: &TEGraph, n: &TNode) -> Option<Perceptron> {
    let (h, w2) = (*n.inputs().first()?, *n.inputs().get(1)?);
    let (w2, w2_shape) = source_constant(egraph, w2, 2)?;
    activations(egraph, h).find_map(|(act, pre)| {
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
        fits.then(|| Perceptron {
            x,
            act,
            first: FirstLayer::Dense {
                bias_first: b1.as_ref().is_some_and(|b| b.1),
            },
            w1,
            b1: b1.map(|b| b.0),
            w2: w2.clone(),
            hidden,
        })
    })
}

/// The parameters' class of a one-group NCHW `conv`/`fused_conv` node.
fn plain_conv_params(egraph: &TEGraph, n: &TNode) -> Option<Id> {
    let params = *n.children.first()?;
    let p = conv_params(egraph[params].data.attr()?)?;
    (p.group == 1 && p.layout == Layout::Nchw).then_some(params)
}

/// A convolution pair: `(OP P2 ... (ACT (conv P1 x W1 [b1])) W2 ...)`.
fn conv_pair(egraph: &TEGraph, n: &TNode) -> Option<Perceptron> {
    plain_conv_params(egraph, n)?;
    let (h, w2) = (*n.inputs().first()?, *n.inputs().get(1)?);
    let (w2, w2_shape) = source_constant(egraph, w2, 4)?;
    activations(egraph, h).find_map(|(act, pre)| {
        egraph[pre].nodes.iter().find_map(|c| {
            if c.op != TOp::Conv {
                return None;
            }
            let params = plain_conv_params(egraph, c)?;
            let (w1, w1_shape) = source_constant(egraph, c.children[2], 4)?;
            let b1 = match c.children.get(3) {
                Some(&b) => Some(source_constant(egraph, b, 1)?.0),
                None => None,
            };
            let hidden = w1_shape[0];
            let fits = w2_shape[1] == hidden
                && hidden >= 2 * UNIT_STEP
                && w1_shape.iter().product::<usize>() >= MIN_WEIGHT_ELEMENTS
                && w2_shape.iter().product::<usize>() >= MIN_WEIGHT_ELEMENTS;
            fits.then(|| Perceptron {
                x: c.children[1],
                act,
                first: FirstLayer::Conv { params },
                w1,
                b1,
                w2: w2.clone(),
                hidden,
            })
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

/// `Σ v²` over the elements of a row-major `shape` tensor with index `j` on
/// `axis`, for every `j`.
fn unit_norms2(values: &[f64], shape: &[usize], axis: usize) -> Vec<f64> {
    let (units, inner) = (shape[axis], shape[axis + 1..].iter().product::<usize>());
    let mut out = vec![0.0; units];
    for (i, v) in values.iter().enumerate() {
        out[(i / inner) % units] += v * v;
    }
    out
}

/// The row-major `shape` tensor restricted to indices `kept` on `axis`.
fn select(t: &Tensor, axis: usize, kept: &[usize]) -> Tensor {
    let shape = &t.ty.shape;
    let (units, inner) = (shape[axis], shape[axis + 1..].iter().product::<usize>());
    let outer = shape[..axis].iter().product::<usize>();
    let values = t.to_f64();
    let mut v = Vec::with_capacity(outer * kept.len() * inner);
    for o in 0..outer {
        for &j in kept {
            let start = (o * units + j) * inner;
            v.extend_from_slice(&values[start..start + inner]);
        }
    }
    let mut new_shape = shape.clone();
    new_shape[axis] = kept.len();
    Tensor::from_f64(TensorType::new(new_shape, DType::F32), &v)
}

/// Hidden units by increasing saliency, and each unit's squared saliency.
fn saliency_order(a: &mut TensorAnalysis, p: &Perceptron) -> Option<(Vec<usize>, Vec<f64>)> {
    let (axis1, axis2) = p.unit_axes();
    let w1 = a.constant_data(&p.w1)?;
    let w2 = a.constant_data(&p.w2)?;
    let b1 = match &p.b1 {
        Some(b) => a.constant_data(b)?.to_f64(),
        None => vec![0.0; p.hidden],
    };
    let into = unit_norms2(&w1.to_f64(), &w1.ty.shape, axis1);
    let out_of = unit_norms2(&w2.to_f64(), &w2.ty.shape, axis2);
    let s2: Vec<f64> = (0..p.hidden).map(|j| (into[j] + b1[j] * b1[j]) * out_of[j]).collect();
    let mut order: Vec<usize> = (0..p.hidden).collect();
    // Ties broken by index: deterministic.
    order.sort_by(|&i, &j| s2[i].total_cmp(&s2[j]).then(i.cmp(&j)));
    Some((order, s2))
}

/// The pruned constants (`W1'`, `b1'`, `W2'`) keeping `keep` units, and the
/// declared error; computed once per pair and count.
fn pruned(a: &mut TensorAnalysis, p: &Perceptron, keep: usize) -> Option<(String, Option<String>, String, f64)> {
    let (order, s2) = saliency_order(a, p)?;
    let mut kept: Vec<usize> = order[p.hidden - keep..].to_vec();
    kept.sort_unstable();
    let total: f64 = s2.iter().sum();
    let removed: f64 = order[..p.hidden - keep].iter().map(|&j| s2[j]).sum();
    let err = if total > 0.0 { (removed / total).sqrt() } else { 0.0 };
    let key = format!("prune-{keep}:{}:{}:{}", p.w1, p.b1.as_deref().unwrap_or(""), p.w2);
    let (axis1, axis2) = p.unit_axes();
    let cut = |a: &mut TensorAnalysis, part: &str, name: &str, axis: usize| {
        a.memo_constant(&format!("{key}.{part}"), &format!("{name}.pruned{keep}"), |a| {
            let t = a.constant_data(name)?;
            Some(select(&t, axis, &kept))
        })
    };
    let w1 = cut(a, "w1", &p.w1, axis1)?;
    let b1 = match &p.b1 {
        Some(b) => Some(cut(a, "b1", b, 0)?),
        None => None,
    };
    let w2 = cut(a, "w2", &p.w2, axis2)?;
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
            let b1 = b1.map(|b| add_const_node(egraph, &b));
            let pre = match (p.first, b1) {
                (FirstLayer::Conv { params }, b1) => egraph.add(TNode {
                    op: TOp::Conv,
                    children: [params, p.x, w1].into_iter().chain(b1).collect(),
                }),
                (FirstLayer::Dense { bias_first }, b1) => {
                    let product = egraph.add(TNode {
                        op: TOp::MatMul,
                        children: vec![p.x, w1],
                    });
                    match b1 {
                        Some(b1) => egraph.add(TNode {
                            op: TOp::Binary(BinaryOp::Add),
                            children: if bias_first { vec![b1, product] } else { vec![product, b1] },
                        }),
                        None => product,
                    }
                }
            };
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

    #[test]
    fn units_are_selected_along_their_axis() {
        // [2, 3, 2]: select units 0 and 2 of axis 1.
        let values: Vec<f64> = (0..12).map(f64::from).collect();
        let t = Tensor::from_f64(TensorType::new(vec![2, 3, 2], DType::F32), &values);
        let s = select(&t, 1, &[0, 2]);
        assert_eq!(s.ty.shape, vec![2, 2, 2]);
        assert_eq!(s.to_f64(), vec![0.0, 1.0, 4.0, 5.0, 6.0, 7.0, 10.0, 11.0]);
        let n = unit_norms2(&values, &[2, 3, 2], 1);
        assert_eq!(
            n,
            vec![0.0 + 1.0 + 36.0 + 49.0, 4.0 + 9.0 + 64.0 + 81.0, 16.0 + 25.0 + 100.0 + 121.0]
        );
    }
}
