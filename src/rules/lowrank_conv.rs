//! `@lowrank` on 1×1 convolutions: a pointwise convolution is a matrix
//! product over channels, so its weight `W: [O, C, 1, 1]`, read as the
//! `[O, C]` matrix, is factorized like a GEMM weight ([`super::lowrank`]):
//!
//! ```text
//! (approx ERR (conv P1 (conv P x B) A [bias]))                  for (conv P x W [bias])
//! (approx ERR (fused_conv P1 EPI (conv P x B) A x1 ...))         for (fused_conv P EPI x W x1 ...)
//! ```
//!
//! with `W ≈ A·B`, `A = U_r·diag(σ_1..σ_r)` as `[O, r, 1, 1]` and `B = V_rᵀ`
//! as `[r, C, 1, 1]`. The inner convolution keeps the original's strides and
//! pads (a 1×1 kernel reads one pixel, so they only pick which pixels); the
//! outer one is plain (`P1`: stride 1, no padding, one group). Only NCHW
//! convolutions of one group whose weight is an input-graph constant are
//! rewritten (NHWC weights are read through a transpose), with the same rank
//! offers, error and SVD budget as GEMM weights.

use super::approx::{MIN_WEIGHT_ELEMENTS, add_approx};
use super::builtins::{add_attr, const_name};
use super::lowrank::{MAX_SVD_WORK, left_factor, offered_ranks, right_factor, svd, truncation_error};
use crate::analysis::{Facts, TEGraph, TensorAnalysis, add_const_node};
use crate::dtype::{DType, TensorType};
use crate::graph::op::{ConvParams, Layout};
use crate::graph::tensor::Tensor;
use crate::lang::{TNode, TOp, conv_attr, conv_params};
use egg::Id;

/// The weight of `n` if the rule applies to it: name, `O`, `C`.
fn eligible_weight(egraph: &TEGraph, n: &TNode) -> Option<(String, usize, usize)> {
    if !matches!(n.op, TOp::Conv | TOp::FusedConv) {
        return None;
    }
    let p = conv_params(egraph[*n.children.first()?].data.attr()?)?;
    if p.group != 1 || p.layout != Layout::Nchw {
        return None;
    }
    let w = *n.inputs().get(1)?;
    let ty = egraph[w].data.ty()?;
    if ty.dtype != DType::F32 || ty.shape.len() != 4 || ty.shape[2..] != [1, 1] || ty.numel() < MIN_WEIGHT_ELEMENTS {
        return None;
    }
    let (o, c) = (ty.shape[0], ty.shape[1]);
    if o as u128 * c as u128 * o.min(c) as u128 > MAX_SVD_WORK || offered_ranks(c, o).is_empty() {
        return None;
    }
    let name = const_name(egraph, w)?;
    (!egraph.analysis.is_computed(&name)).then_some((name, o, c))
}

/// True if class `eclass` holds a 1×1 convolution the rule applies to.
pub fn class_has_lowrank_conv(egraph: &TEGraph, eclass: Id) -> bool {
    egraph[eclass].nodes.iter().any(|n| eligible_weight(egraph, n).is_some())
}

/// The rank-`r` factors `A: [O, r, 1, 1]`, `B: [r, C, 1, 1]` of the 1×1
/// weight `name` and the truncation's relative error, computed once.
fn factors(a: &mut TensorAnalysis, name: &str, o: usize, c: usize, r: usize) -> Option<(String, String, f64)> {
    let key = format!("lowrank-conv-{r}:{name}");
    let top = offered_ranks(c, o)[0];
    let svd = a.memo_svd(name, |a| {
        let w = a.constant_data(name)?;
        svd(&w.to_f64(), o, c, top)
    })?;
    let outer = a.memo_constant(&format!("{key}.a"), &format!("{name}.lr{r}.a"), |_| {
        Some(Tensor::from_f64(
            TensorType::new(vec![o, r, 1, 1], DType::F32),
            &left_factor(&svd, r),
        ))
    })?;
    let inner = a.memo_constant(&format!("{key}.b"), &format!("{name}.lr{r}.b"), |_| {
        Some(Tensor::from_f64(
            TensorType::new(vec![r, c, 1, 1], DType::F32),
            &right_factor(&svd, r),
        ))
    })?;
    Some((outer, inner, truncation_error(&svd.sigma, r)))
}

/// Adds the low-rank variants of every eligible 1×1 convolution of `eclass`;
/// returns `(eclass, new)` pairs to unify.
pub fn lowrank_conv_class(egraph: &mut TEGraph, eclass: Id) -> Vec<(Id, Id)> {
    let nodes: Vec<TNode> = egraph[eclass].nodes.clone();
    let mut out = Vec::new();
    for n in nodes {
        let Some((name, o, c)) = eligible_weight(egraph, &n) else {
            continue;
        };
        let plain = add_attr(egraph, conv_attr(&ConvParams::default()));
        for r in offered_ranks(c, o) {
            let Some((outer, inner, err)) = factors(&mut egraph.analysis, &name, o, c, r) else {
                break;
            };
            let (outer, inner) = (add_const_node(egraph, &outer), add_const_node(egraph, &inner));
            let at = n.op.attr_count();
            let reduced = egraph.add(TNode {
                op: TOp::Conv,
                children: vec![n.children[0], n.children[at], inner],
            });
            if !matches!(egraph[reduced].data, Facts::Tensor(_)) {
                continue;
            }
            let mut children = n.children.clone();
            children[0] = plain;
            children[at] = reduced;
            children[at + 1] = outer;
            out.extend(add_approx(egraph, &n.op, children, err).map(|a| (eclass, a)));
        }
    }
    out
}
