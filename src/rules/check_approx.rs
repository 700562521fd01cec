//! `eqopt rules check` for approximate rules: each rewrite is checked against
//! the error it declares, not against exact equality.
//!
//! An approximate built-in rule wraps what it adds in `(approx ERR x)`. The
//! check builds template graphs the rule applies to (a matrix product and a
//! convolution with random constant weights large enough to be eligible),
//! applies the rule, extracts the rewritten term (preferring the new e-nodes),
//! and evaluates both terms with the reference interpreter on random inputs.
//! An instance passes when the measured relative output error `‖y − ŷ‖₂ /
//! ‖y‖₂` is at most [`APPROX_SLACK`] times the declared error (added in
//! quadrature over the term's approximate nodes) plus the f32 tolerance, *and*
//! the term really is approximate (a declared error of zero for a rewrite that
//! changes the weights fails).

use super::check::{Counterexample, F32_RTOL, RuleCheck, Verdict};
use super::{Rule, build_rewrite};
use crate::analysis::{TEGraph, TensorAnalysis};
use crate::budget::relative_error;
use crate::dtype::{DType, TensorType};
use crate::error::Result;
use crate::eval::run;
use crate::extraction::extract_graph_with;
use crate::graph::op::{BinaryOp, ConvParams, Op, UnaryOp};
use crate::graph::tensor::{ConstInit, Distribution, Tensor, random_values};
use crate::graph::{Constant, Graph, Input, Node};
use crate::lang::{TNode, TOp};
use crate::saturate::{Saturation, StopReason, graph_to_egraph};
use egg::Runner;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// How far the measured output error may exceed the declared one. For a
/// product `x·Ŵ` with inputs spread over many directions the relative output
/// error concentrates around the weight's relative error `‖W − Ŵ‖₂ / ‖W‖₂`;
/// a few input rows make it fluctuate by tens of percent, never by 3×.
pub const APPROX_SLACK: f64 = 3.0;

fn normal(shape: &[usize], seed: u64) -> Tensor {
    let ty = TensorType::new(shape.to_vec(), DType::F32);
    let values = random_values(&Distribution::Normal { mean: 0.0, std: 1.0 }, seed, ty.numel());
    Tensor::from_f64(ty, &values)
}

/// Template graphs the approximate rules apply to.
const TEMPLATES: usize = 4;

/// A template's input shape, named constant shapes, and nodes (output `y`).
type TemplateParts = (Vec<usize>, Vec<(&'static str, Vec<usize>)>, Vec<Node>);

/// Template `t` (0: a matrix product, 1: a padded convolution, 2: a two-layer
/// perceptron with a bias and a relu, 3: a 3×3 convolution with a bias and a
/// relu feeding a 1×1 one) with data from `seed`.
fn template(t: usize, seed: u64) -> Option<Graph> {
    let node = |name: &str, op: Op, inputs: &[&str]| Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|&i| i.to_string()).collect(),
        ty: TensorType::new(vec![], DType::F32),
    };
    let (x_shape, weights, nodes): TemplateParts = match t {
        0 => (vec![16, 64], vec![("w", vec![64, 48])], vec![node("y", Op::MatMul, &["x", "w"])]),
        1 => (
            vec![1, 16, 9, 9],
            vec![("w", vec![32, 16, 3, 3])],
            vec![node(
                "y",
                Op::Conv(ConvParams {
                    pads: [1; 4],
                    ..ConvParams::default()
                }),
                &["x", "w"],
            )],
        ),
        3 => (
            vec![1, 16, 9, 9],
            vec![("w1", vec![32, 16, 3, 3]), ("b1", vec![32]), ("w2", vec![48, 32, 1, 1])],
            vec![
                node(
                    "h",
                    Op::Conv(ConvParams {
                        pads: [1; 4],
                        ..ConvParams::default()
                    }),
                    &["x", "w1", "b1"],
                ),
                node("r", Op::Unary(UnaryOp::Relu), &["h"]),
                node("y", Op::Conv(ConvParams::default()), &["r", "w2"]),
            ],
        ),
        _ => (
            vec![16, 64],
            vec![("w1", vec![64, 96]), ("b1", vec![96]), ("w2", vec![96, 48])],
            vec![
                node("p", Op::MatMul, &["x", "w1"]),
                node("q", Op::Binary(BinaryOp::Add), &["p", "b1"]),
                node("h", Op::Unary(UnaryOp::Relu), &["q"]),
                node("y", Op::MatMul, &["h", "w2"]),
            ],
        ),
    };
    let inputs = vec![Input {
        name: "x".into(),
        ty: TensorType::new(x_shape, DType::F32),
    }];
    let constants = weights
        .into_iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            let w = normal(&shape, seed ^ (0x5eed + i as u64));
            Constant {
                name: name.into(),
                ty: w.ty.clone(),
                init: ConstInit::Data(Arc::new(w)),
            }
        })
        .collect();
    Graph::new("approx-template", inputs, constants, nodes, vec!["y".into()]).ok()
}

/// One instance: `Ok(None)` when the rule did not fire, else the counterexample if any.
fn instance(rule: &Rule, t: usize, seed: u64) -> Result<Option<Option<Counterexample>>> {
    let Some(lhs) = template(t, seed) else { return Ok(None) };
    let rewrite = build_rewrite(rule)?;
    let (egraph, classes) = graph_to_egraph(&lhs);
    let original = node_set(&egraph);
    let root = classes["y"];
    let runner = Runner::<TNode, TensorAnalysis, ()>::new(TensorAnalysis::default())
        .with_egraph(egraph)
        .with_iter_limit(1)
        .with_time_limit(Duration::from_secs(5))
        .run(std::slice::from_ref(&rewrite));
    let eg = runner.egraph;
    if !eg[eg.find(root)].nodes.iter().any(|n| n.op == TOp::Approx) {
        return Ok(None);
    }
    Ok(Some(judge(&lhs, eg, classes, &original, t, seed)))
}

/// The e-nodes of `eg`, canonical.
fn node_set(eg: &TEGraph) -> BTreeSet<TNode> {
    eg.classes()
        .flat_map(|c| c.nodes.iter())
        .map(|n| TNode {
            op: n.op.clone(),
            children: n.children.iter().map(|&c| eg.find(c)).collect(),
        })
        .collect()
}

/// Extracts the approximate term of `eg` (which holds `lhs`'s classes) and
/// compares it with `lhs` on random inputs: the counterexample if its measured
/// error exceeds the declared one (see the module docs).
fn judge(
    lhs: &Graph,
    eg: TEGraph,
    classes: BTreeMap<String, egg::Id>,
    original: &BTreeSet<TNode>,
    t: usize,
    seed: u64,
) -> Option<Counterexample> {
    let fail = |detail: String, max_abs: f64, max_rel: f64| {
        Some(Counterexample {
            seed,
            bindings: format!(
                "template {}",
                ["matmul x[16,64] w[64,48]", "conv x[1,16,9,9] w[32,16,3,3]"][t.min(1)]
            ),
            max_abs,
            max_rel,
            detail,
        })
    };
    let classes: BTreeMap<String, egg::Id> = classes.into_iter().map(|(k, id)| (k, eg.find(id))).collect();
    let sat = Saturation {
        egraph: eg,
        classes,
        stop_reason: StopReason::Saturated,
        iterations: vec![],
        time_s: 0.0,
        provenance: Default::default(),
    };
    // Prefer the rewritten term: the matched term's operator nodes are expensive.
    let prefer_approx = |eg: &TEGraph, n: &TNode| -> Option<f64> {
        let canon = TNode {
            op: n.op.clone(),
            children: n.children.iter().map(|&c| eg.find(c)).collect(),
        };
        match n.op {
            TOp::Attr(_) | TOp::Input | TOp::Const | TOp::Approx => Some(0.0),
            _ if original.contains(&canon) => Some(1000.0),
            _ => Some(1.0),
        }
    };
    let (rhs, stats) = match extract_graph_with(lhs, &sat, &prefer_approx, "greedy", Duration::from_secs(1)) {
        Ok(r) => r,
        Err(e) => {
            return fail(
                format!("the rewritten term could not be extracted: {e}"),
                f64::INFINITY,
                f64::INFINITY,
            );
        }
    };
    if stats.approx.is_empty() {
        return fail(
            "the rewritten term holds no (approx ERR x) node: its error is undeclared".into(),
            0.0,
            0.0,
        );
    }
    let declared = stats.estimated_error();
    let data = BTreeMap::from([("x".to_string(), normal(&lhs.inputs[0].ty.shape, seed))]);
    let want = match run(lhs, &data) {
        Ok(w) => w,
        Err(e) => return fail(format!("the matched term does not evaluate: {e}"), f64::INFINITY, f64::INFINITY),
    };
    let got = match run(&rhs, &data) {
        Ok(g) => g,
        Err(e) => return fail(format!("the rewritten term does not evaluate: {e}"), f64::INFINITY, f64::INFINITY),
    };
    let measured = relative_error(&got["y"], &want["y"]);
    let abs = crate::eval::compare(&got["y"], &want["y"]).max_abs;
    if measured > APPROX_SLACK * declared + F32_RTOL {
        return fail(
            format!("measured relative error {measured:.3e} exceeds {APPROX_SLACK} × the declared {declared:.3e}"),
            abs,
            measured,
        );
    }
    None
}

/// Checks an approximate rule against its declared error (see the module docs).
pub fn check_approx_rule(rule: &Rule, instances: usize, seed: u64) -> Result<RuleCheck> {
    let mut passed = 0;
    for i in 0..instances.max(TEMPLATES) {
        match instance(rule, i % TEMPLATES, seed.wrapping_add(i as u64))? {
            None => {}
            Some(None) => passed += 1,
            Some(Some(c)) => {
                return Ok(RuleCheck {
                    rule: rule.name.clone(),
                    verdict: Verdict::Failed(c),
                });
            }
        }
    }
    let verdict = if passed == 0 {
        Verdict::Unchecked {
            reason: "the rule fired on none of its templates (a matrix product, a convolution, a two-layer perceptron and a pair of convolutions with f32 constant weights)".into(),
        }
    } else {
        Verdict::Passed { instances: passed }
    };
    Ok(RuleCheck {
        rule: rule.name.clone(),
        verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::Attr;

    /// An `(approx ERR x)` whose `x` is further from the original than `ERR`
    /// says fails the check; one that declares its error honestly passes.
    #[test]
    fn a_term_more_wrong_than_declared_fails() {
        for (declared, scale, fails) in [(1e-6, 0.9, true), (0.1, 0.9, false)] {
            let lhs = template(0, 7).unwrap();
            let (mut eg, classes) = graph_to_egraph(&lhs);
            let original = node_set(&eg);
            // x · (0.9 W): a 10% error.
            let w = eg.analysis.constant_data("w").unwrap();
            let scaled_w: Vec<f64> = w.to_f64().iter().map(|v| v * scale).collect();
            let name = eg.analysis.add_constant("w_scaled", Tensor::from_f64(w.ty.clone(), &scaled_w));
            let w2 = crate::analysis::add_const_node(&mut eg, &name);
            let scaled = eg.add(TNode {
                op: TOp::MatMul,
                children: vec![classes["x"], w2],
            });
            let err = eg.add(TNode::attr(Attr::float(declared)));
            let approx = eg.add(TNode {
                op: TOp::Approx,
                children: vec![err, scaled],
            });
            eg.union(classes["y"], approx);
            eg.rebuild();
            let verdict = judge(&lhs, eg, classes, &original, 0, 7);
            assert_eq!(verdict.is_some(), fails, "declared {declared}: {verdict:?}");
        }
    }
}
