//! Structured approximations under an accuracy budget: a pointwise
//! convolution of low rank factorized into two 1×1 convolutions
//! (`lowrank/matmul` on convs), and a perceptron with dead hidden units
//! pruned (`prune/hidden-units`). Each is chosen within its budget, measured
//! on fresh inputs, and cheaper than the exact optimization.

mod common;

use common::approx::{budgeted, cpu_opts, f32_constant, fresh_error, node};
use eqopt::dtype::{DType, TensorType};
use eqopt::graph::op::{BinaryOp, ConvParams, Op, UnaryOp};
use eqopt::graph::tensor::{Distribution, random_values};
use eqopt::graph::{Graph, Input};
use eqopt::optimize::optimize;
use eqopt::rules::RuleSet;

fn normal(seed: u64, len: usize) -> Vec<f64> {
    random_values(&Distribution::Normal { mean: 0.0, std: 1.0 }, seed, len)
}

/// `y = relu(conv1x1(x, W, b))`, stride 2, with `W` `[256, 256, 1, 1]` of rank 16.
fn low_rank_pointwise_conv() -> Graph {
    let (o, rank, c) = (256, 16, 256);
    let (p, q) = (normal(21, o * rank), normal(22, rank * c));
    let mut w = vec![0.0; o * c];
    for i in 0..o {
        for l in 0..rank {
            for j in 0..c {
                w[i * c + j] += p[i * rank + l] * q[l * c + j] / 16.0;
            }
        }
    }
    let params = ConvParams {
        strides: [2, 2],
        ..ConvParams::default()
    };
    Graph::new(
        "low_rank_pointwise_conv",
        vec![Input {
            name: "x".into(),
            ty: TensorType::new(vec![1, c, 28, 28], DType::F32),
        }],
        vec![f32_constant("w", vec![o, c, 1, 1], &w), f32_constant("b", vec![o], &normal(23, o))],
        vec![
            node("t", Op::Conv(params), &["x", "w", "b"]),
            node("y", Op::Unary(UnaryOp::Relu), &["t"]),
        ],
        vec!["y".into()],
    )
    .unwrap()
}

#[test]
fn a_low_rank_pointwise_convolution_is_factorized_within_the_budget() {
    let g = low_rank_pointwise_conv();
    let (opt, report) = budgeted(&g, 1e-3);
    let b = report.budget.as_ref().expect("a budget report");
    assert!(b.search.measured_error.is_some_and(|m| m <= 1e-3), "{b:?}");
    assert!(opt.constants.iter().any(|c| c.name.contains(".lr")), "{:?}", opt.constants);
    assert!(!opt.constants.iter().any(|c| c.name == "w"), "the full weight is still read");
    let (_, exact) = optimize(&g, &RuleSet::defaults().unwrap(), &cpu_opts()).unwrap();
    assert!(
        report.after.flops < exact.after.flops / 2,
        "{} vs {}",
        report.after.flops,
        exact.after.flops
    );
    let fresh = fresh_error(&g, &opt, 7);
    assert!(fresh <= 1e-3, "{fresh} on fresh inputs");
}

/// `y = relu(x·W1 + b1)·W2 + b2` with 256 hidden units, of which the last 96
/// carry almost nothing (their rows of `W2` are scaled by 1e-4).
fn perceptron_with_dead_units() -> Graph {
    let (k, h, n) = (128, 256, 128);
    let w1: Vec<f64> = normal(31, k * h).iter().map(|v| v / (k as f64).sqrt()).collect();
    let mut w2: Vec<f64> = normal(32, h * n).iter().map(|v| v / (h as f64).sqrt()).collect();
    for v in &mut w2[(h - 96) * n..] {
        *v *= 1e-4;
    }
    Graph::new(
        "perceptron_with_dead_units",
        vec![Input {
            name: "x".into(),
            ty: TensorType::new(vec![64, k], DType::F32),
        }],
        vec![
            f32_constant("w1", vec![k, h], &w1),
            f32_constant("b1", vec![h], &vec![0.1; h]),
            f32_constant("w2", vec![h, n], &w2),
            f32_constant("b2", vec![n], &normal(33, n)),
        ],
        vec![
            node("p", Op::MatMul, &["x", "w1"]),
            node("q", Op::Binary(BinaryOp::Add), &["p", "b1"]),
            node("r", Op::Unary(UnaryOp::Relu), &["q"]),
            node("s", Op::MatMul, &["r", "w2"]),
            node("y", Op::Binary(BinaryOp::Add), &["s", "b2"]),
        ],
        vec!["y".into()],
    )
    .unwrap()
}

/// Optimizes `g` (with dead units among the hidden ones of `w1`/`w2`) under
/// budget 1e-2 and checks that only dead units went: every pruned constant
/// keeps one of the `kept` counts, the full weights are no longer read (other
/// approximations may build on the pruned ones, e.g. `w1.pruned192.int8`),
/// the work drops, and the error holds on fresh inputs. Under a budget below
/// what removing a live unit costs, nothing is pruned.
fn assert_only_dead_units_pruned(g: &Graph, kept: &[usize], seed: u64) {
    let (opt, report) = budgeted(g, 1e-2);
    let b = report.budget.as_ref().expect("a budget report");
    assert!(b.search.measured_error.is_some_and(|m| m <= 1e-2), "{b:?}");
    let names: Vec<&str> = opt.constants.iter().map(|c| c.name.as_str()).collect();
    let pruned: Vec<&str> = names.iter().copied().filter(|n| n.contains(".pruned")).collect();
    assert!(!pruned.is_empty(), "{names:?}");
    let suffixes: Vec<String> = kept.iter().map(|k| format!(".pruned{k}")).collect();
    assert!(pruned.iter().all(|n| suffixes.iter().any(|s| n.contains(s.as_str()))), "{names:?}");
    assert!(!names.iter().any(|&n| n == "w1" || n == "w2"), "{names:?}");
    let (_, exact) = optimize(g, &RuleSet::defaults().unwrap(), &cpu_opts()).unwrap();
    assert!(
        report.after.flops < exact.after.flops,
        "{} vs {}",
        report.after.flops,
        exact.after.flops
    );
    let fresh = fresh_error(g, &opt, seed);
    assert!(fresh <= 1e-2 && fresh > 0.0, "{fresh} on fresh inputs");
    let (strict, _) = budgeted(g, 1e-6);
    assert!(!strict.constants.iter().any(|c| c.name.contains(".pruned")));
}

#[test]
fn dead_hidden_units_are_pruned_within_the_budget() {
    // 96 of 256 units are dead: an eighth or a quarter may go.
    assert_only_dead_units_pruned(&perceptron_with_dead_units(), &[192, 224], 9);
}

/// `y = conv1x1(relu(conv3x3(x, W1, b1)), W2, b2)` with 64 hidden channels, of
/// which the last 24 carry almost nothing (`W2[:, j]` scaled by 1e-4).
fn conv_pair_with_dead_channels() -> Graph {
    let (c, h, o) = (32, 64, 64);
    let w1: Vec<f64> = normal(41, h * c * 9).iter().map(|v| v / ((c * 9) as f64).sqrt()).collect();
    let mut w2: Vec<f64> = normal(42, o * h).iter().map(|v| v / (h as f64).sqrt()).collect();
    for (i, v) in w2.iter_mut().enumerate() {
        if i % h >= h - 24 {
            *v *= 1e-4;
        }
    }
    let same = ConvParams {
        pads: [1; 4],
        ..ConvParams::default()
    };
    Graph::new(
        "conv_pair_with_dead_channels",
        vec![Input {
            name: "x".into(),
            ty: TensorType::new(vec![1, c, 14, 14], DType::F32),
        }],
        vec![
            f32_constant("w1", vec![h, c, 3, 3], &w1),
            f32_constant("b1", vec![h], &vec![0.1; h]),
            f32_constant("w2", vec![o, h, 1, 1], &w2),
            f32_constant("b2", vec![o], &normal(43, o)),
        ],
        vec![
            node("t", Op::Conv(same), &["x", "w1", "b1"]),
            node("r", Op::Unary(UnaryOp::Relu), &["t"]),
            node("y", Op::Conv(ConvParams::default()), &["r", "w2", "b2"]),
        ],
        vec!["y".into()],
    )
    .unwrap()
}

#[test]
fn dead_channels_of_a_convolution_pair_are_pruned_within_the_budget() {
    // 24 of 64 channels are dead: an eighth or a quarter may go.
    assert_only_dead_units_pruned(&conv_pair_with_dead_channels(), &[48, 56], 11);
}
