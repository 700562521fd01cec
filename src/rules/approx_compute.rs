//! Built-in approximate rule: a matrix product computed on bfloat16 operands.
//!
//! `rule activations/gemm-bf16 approx = @gemm-bf16` (in `rules/activations.rules`,
//! loaded only by `eqopt optimize --activations bf16`) finds every `matmul` or
//! `fused_matmul` e-node whose weight is an `f32` constant the weight rules
//! apply to (see [`super::approx`]) and whose activation `x` is an `f32`
//! tensor, and adds to the node's class
//!
//! ```text
//! (approx ERR (OP ... (cast f32 (cast bf16 x)) (cast f32 (const W.bf16)) ...))
//! ```
//!
//! The activation is rounded to bfloat16 (ties to even) and kept in f32; the
//! weight is stored in bfloat16. Both operands of every product are then bf16
//! values, and the sums are f32: exactly what AVX-512 BF16's `vdpbf16ps` (and
//! tensor cores) compute, at twice the f32 FMA rate on CPUs that have it. The
//! CPU backend fuses the rounding into the GEMM's packing
//! (`eqopt_kir::GemmCompute::Bf16`), so the cost model charges the two casts
//! nothing and the product at the target's `bf16` peak.
//!
//! `ERR = √(ε_W² + ε_x²)`: `ε_W` the weight's measured relative rounding error,
//! `ε_x` = [`ACTIVATION_BF16_ERROR`], the relative rounding error of a tensor of
//! many values (independent errors on the two operands add in quadrature).

use super::approx::{WeightFormat, add_approx, cast, eligible_weight, reduced_weight, widened_weight};
use crate::analysis::TEGraph;
use crate::dtype::DType;
use crate::lang::{TNode, TOp};
use egg::Id;

/// Relative rounding error `‖x − bf16(x)‖₂ / ‖x‖₂` of a tensor of many values
/// rounded to bfloat16 (8 significant bits, ties to even): 1.66e-3 measured on
/// normal values, 1.75e-3 on uniform ones; the larger is declared.
pub const ACTIVATION_BF16_ERROR: f64 = 1.75e-3;

/// True for the products the rule rewrites.
fn is_product(op: &TOp) -> bool {
    matches!(op, TOp::MatMul | TOp::FusedMatMul)
}

/// The activation input of product `n` if the rule applies to it: an `f32`
/// tensor that is not a constant (a constant operand is folded instead).
fn activation(egraph: &TEGraph, n: &TNode) -> Option<Id> {
    if !is_product(&n.op) || eligible_weight(egraph, n, WeightFormat::Bf16).is_none() {
        return None;
    }
    let x = *n.inputs().first()?;
    let facts = egraph[x].data.tensor()?;
    (facts.ty.dtype == DType::F32 && !facts.is_const).then_some(x)
}

/// True if class `eclass` holds a node the rule applies to.
pub fn class_has_bf16_product(egraph: &TEGraph, eclass: Id) -> bool {
    egraph[eclass].nodes.iter().any(|n| activation(egraph, n).is_some())
}

/// Adds the bf16-operand variant of every eligible product of `eclass`;
/// returns `(eclass, new)` pairs to unify.
pub fn bf16_products(egraph: &mut TEGraph, eclass: Id) -> Vec<(Id, Id)> {
    let nodes: Vec<TNode> = egraph[eclass].nodes.clone();
    let mut out = Vec::new();
    for n in nodes {
        let (Some(x), Some(source)) = (activation(egraph, &n), eligible_weight(egraph, &n, WeightFormat::Bf16)) else {
            continue;
        };
        let Some((reduced, weight_err)) = reduced_weight(egraph, &source.name, WeightFormat::Bf16) else {
            continue;
        };
        let weight = widened_weight(egraph, &source, &reduced);
        let narrowed = cast(egraph, DType::BF16, x);
        let rounded = cast(egraph, DType::F32, narrowed);
        let first = n.op.attr_count();
        let mut children = n.children.clone();
        children[first] = rounded;
        children[first + 1] = weight;
        let err = weight_err.hypot(ACTIVATION_BF16_ERROR);
        out.extend(add_approx(egraph, &n.op, children, err).map(|a| (eclass, a)));
    }
    out
}
