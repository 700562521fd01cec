//! Approximate rules under an accuracy budget (`optimize --max-error`):
//! the budget is never exceeded on the test models, a zero budget is exact
//! optimization, a budget the estimate cannot trust is met by tightening, and
//! a weight of low rank is factorized.

mod common;

use common::approx::{budgeted, cpu_opts, fresh_error};
use eqopt::budget::ErrorMeter;
use eqopt::dtype::{DType, TensorType};
use eqopt::eval::random_inputs;
use eqopt::graph::op::{BinaryOp, Op, UnaryOp};
use eqopt::graph::tensor::{ConstInit, Distribution, Tensor, random_values};
use eqopt::graph::{Constant, Graph, Input, Node, json};
use eqopt::optimize::{OptimizeOptions, optimize, optimize_measured, weight_bytes};
use eqopt::rules::RuleSet;
use std::sync::Arc;

fn example(name: &str) -> Graph {
    json::load(&common::root().join("examples").join(name)).unwrap()
}

/// The cpu target with time limits far above what these graphs need, so the
/// node and iteration limits decide where saturation and extraction stop and
/// the results do not depend on how loaded the machine is.
fn opts() -> OptimizeOptions {
    let mut o = cpu_opts();
    o.limits.time_limit_s = 600.0;
    o.extract_time_limit_s = 600.0;
    o
}

#[test]
fn the_budget_holds_and_weights_shrink() {
    for (name, max_error) in [
        ("bert_layer.json", 1e-3),
        ("bert_layer.json", 1e-2),
        ("resnet_blocks.json", 1e-2),
        ("mlp.json", 1e-3),
    ] {
        let g = example(name);
        let (opt, report) = budgeted(&g, max_error);
        let b = report.budget.as_ref().expect("a budget report");
        let measured = b.search.measured_error.expect("approximations were chosen and measured");
        assert!(measured <= max_error, "{name}: measured {measured} > {max_error}");
        assert!(!b.search.approx.is_empty(), "{name}: no approximate node chosen");
        assert!(b.weight_bytes_after < b.weight_bytes_before, "{name}: {b:?}");
        assert_eq!(b.weight_bytes_after, weight_bytes(&opt));
        // Rounded weights are 2-byte constants read through a widening cast, or
        // int8/int4 constants read through a dequantization.
        assert!(
            opt.constants
                .iter()
                .any(|c| c.ty.dtype.is_reduced_float() || c.ty.dtype.is_quantized()),
            "{name}"
        );
        let fresh = fresh_error(&g, &opt, 99);
        assert!(fresh <= max_error, "{name}: {fresh} on fresh inputs > {max_error}");
        assert!(fresh > 0.0, "{name}: the approximate graph computes exactly the same values?");
        assert!(report.after.latency_s <= report.before.latency_s, "{name}");
    }
}

/// A channels-last convolution reads HWIO weights through a transpose of the
/// constant; the rounded variant keeps the transpose (on the rounded data).
#[test]
fn nhwc_convolutions_get_rounded_weights_too() {
    let text = r#"{"format": "eqopt-graph", "version": 1,
      "inputs": [{"name": "x", "shape": [1, 14, 14, 16], "dtype": "f32"}], "outputs": ["y"],
      "constants": [
        {"name": "w", "shape": [32, 16, 3, 3], "dtype": "f32", "random": {"dist": "normal", "std": 0.1, "seed": 1}}],
      "nodes": [
        {"name": "hwio", "op": "Transpose", "inputs": ["w"], "attrs": {"perm": [2, 3, 1, 0]}},
        {"name": "c", "op": "Conv", "inputs": ["x", "hwio"], "attrs": {"pads": [1, 1, 1, 1], "layout": "NHWC"}},
        {"name": "y", "op": "Relu", "inputs": ["c"]}]}"#;
    let g = json::parse(text, "nhwc.json".as_ref()).unwrap();
    let nhwc = |g: &Graph| {
        g.nodes.iter().any(|n| {
            matches!(&n.op, eqopt::graph::op::Op::Conv(p) | eqopt::graph::op::Op::FusedConv { params: p, .. } if p.layout == eqopt::graph::op::Layout::Nhwc)
        })
    };
    let (opt, report) = budgeted(&g, 1e-2);
    let b = report.budget.unwrap();
    assert!(nhwc(&opt) && b.search.approx.len() == 1, "{b:?}\n{opt:?}");
    assert!(b.search.measured_error.unwrap() <= 1e-2);
    assert!(b.weight_bytes_after < b.weight_bytes_before, "{b:?}");
    assert!(fresh_error(&g, &opt, 3) <= 1e-2);
}

#[test]
fn a_zero_budget_is_exact_optimization() {
    let g = example("bert_layer.json");
    let rules = RuleSet::defaults().unwrap();
    let (exact, _) = optimize(&g, &rules, &opts()).unwrap();
    let (zero, report) = optimize_measured(&g, &rules, &opts().with_max_error(0.0), None).unwrap();
    assert!(report.budget.is_none());
    assert_eq!(json::to_json(&zero, None), json::to_json(&exact, None));
    // Approximate rules present in the rule set do not run without a budget.
    let with_approx = rules.with_approx_families().unwrap();
    assert!(with_approx.has_approx());
    let (no_budget, _) = optimize(&g, &with_approx, &opts()).unwrap();
    assert_eq!(json::to_json(&no_budget, None), json::to_json(&exact, None));
}

#[test]
fn a_budget_below_every_rounding_error_chooses_no_approximation() {
    let g = example("bert_layer.json");
    let (opt, report) = budgeted(&g, 1e-7);
    let b = report.budget.unwrap();
    assert!(b.search.approx.is_empty() && b.search.measured_error.is_none(), "{b:?}");
    assert_eq!(b.weight_bytes_after, weight_bytes(&opt));
    assert!(!opt.constants.iter().any(|c| c.ty.dtype.is_reduced_float()));
}

/// Reports every candidate as 10× over budget: the search tightens
/// [`eqopt::budget::MAX_ROUNDS`] times, then falls back to the exact graph.
struct Pessimist(usize);

impl ErrorMeter for Pessimist {
    fn measure(&mut self, _: &Graph) -> eqopt::error::Result<f64> {
        self.0 += 1;
        Ok(1e-1)
    }
}

#[test]
fn an_over_budget_measurement_tightens_then_falls_back_to_exact() {
    let g = example("bert_layer.json");
    let rules = RuleSet::defaults().unwrap();
    let mut meter = Pessimist(0);
    let (opt, report) = optimize_measured(&g, &rules, &opts().with_max_error(1e-2), Some(&mut meter)).unwrap();
    let b = report.budget.unwrap().search;
    assert!(b.fell_back_to_exact, "{b:?}");
    assert_eq!(b.rounds.len(), meter.0);
    assert!(meter.0 >= 2, "{b:?}");
    for w in b.rounds.windows(2) {
        assert!(w[1].estimate_budget < w[0].estimate_budget, "{b:?}");
    }
    // The exact term of the larger e-graph: no rounded weight, the same function,
    // as fast (by the cost model) as optimizing without approximate rules.
    assert!(!opt.constants.iter().any(|c| c.ty.dtype.is_reduced_float()));
    common::assert_same_function(&g, &opt);
    let (_, exact) = optimize(&g, &rules, &opts()).unwrap();
    assert!(
        (report.after.latency_s - exact.after.latency_s).abs() <= 1e-9,
        "{} vs {}",
        report.after.latency_s,
        exact.after.latency_s
    );
}

#[test]
fn bad_budgets_are_usage_errors() {
    let g = example("mlp.json");
    let rules = RuleSet::defaults().unwrap();
    for bad in [-1e-3, f64::NAN, f64::INFINITY] {
        let e = optimize_measured(&g, &rules, &opts().with_max_error(bad), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--max-error: expected a non-negative relative error"), "{e}");
    }
    let e = optimize_measured(&g, &rules, &opts().with_max_error(1e-2), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--max-error: expected a way to measure the error"), "{e}");
}

#[test]
fn rule_files_must_mark_approximate_builtins() {
    let mut set = RuleSet::empty();
    let e = set.add_family("q", "q.rules", "rule q/w = @weights-f16").unwrap_err().to_string();
    assert!(e.contains("mark the rule approx"), "{e}");
    let e = set.add_family("q", "q.rules", "rule q/l = @lowrank").unwrap_err().to_string();
    assert!(e.contains("mark the rule approx"), "{e}");
    let e = set
        .add_family("q", "q.rules", "rule q/n approx (neg (neg ?x)) => ?x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("only built-in rules can be approx"), "{e}");
    let e = set
        .add_family("q", "q.rules", "rule q/f approx = @gemm-epilogue")
        .unwrap_err()
        .to_string();
    assert!(e.contains("is exact: remove the approx marker"), "{e}");
}

#[test]
fn the_cli_reports_estimated_and_measured_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("opt.json");
    let report = dir.path().join("report.json");
    let o = common::bin::eqopt(&[
        "optimize",
        "examples/bert_layer.json",
        "-o",
        common::bin::s(&out),
        "--max-error",
        "1e-2",
        "--report",
        common::bin::s(&report),
    ]);
    let text = common::bin::ok(&o);
    assert!(text.contains("accuracy budget        max relative error 1e-2"), "{text}");
    assert!(text.contains("measured"), "{text}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let measured = r["budget"]["measured_error"].as_f64().unwrap();
    assert!(measured > 0.0 && measured <= 1e-2, "{r}");
    assert!(r["budget"]["weight_bytes_after"].as_u64() < r["budget"]["weight_bytes_before"].as_u64());
    // Calibration inputs from a directory of .npz sets.
    let cal = dir.path().join("cal");
    std::fs::create_dir(&cal).unwrap();
    let g = example("bert_layer.json");
    let inputs = random_inputs(&g, 5);
    let pairs: Vec<(&str, &eqopt::graph::tensor::Tensor)> = inputs.iter().map(|(k, v)| (k.as_str(), v)).collect();
    eqopt::tensor_io::write_npz(&cal.join("set0.npz"), &pairs).unwrap();
    let with_calibration = |dir: &std::path::Path| {
        common::bin::eqopt(&[
            "optimize",
            "examples/bert_layer.json",
            "-o",
            common::bin::s(&out),
            "--max-error",
            "1e-2",
            "--calibration",
            common::bin::s(dir),
        ])
    };
    common::bin::ok(&with_calibration(&cal));
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = common::bin::fails(&with_calibration(&empty));
    assert!(
        e.contains("--calibration: expected a directory holding .npz input sets or .npy inputs"),
        "{e}"
    );
}

#[test]
fn pareto_writes_the_front_as_csv_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("front.csv");
    let o = common::bin::eqopt(&[
        "optimize",
        "examples/bert_layer.json",
        "-o",
        common::bin::s(&dir.path().join("opt.json")),
        "--pareto",
        common::bin::s(&csv),
        "--budgets",
        "1e-5,1e-3,1e-2",
    ]);
    let text = common::bin::ok(&o);
    assert!(text.contains("latency/error front (4 points; * on the front)"), "{text}");
    let rows: Vec<Vec<String>> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(
        rows[0].join(","),
        "budget,approx_nodes,estimated_error,measured_error,estimated_latency_ms,measured_latency_ms,weight_bytes,on_front"
    );
    assert_eq!(rows.len(), 5, "{rows:?}");
    let col = |r: &Vec<String>, i: usize| r[i].parse::<f64>().unwrap();
    // The exact point, then 1e-5 (below every rounding error: exact too), then approximate ones.
    for r in &rows[1..3] {
        assert_eq!(col(r, 1), 0.0, "{r:?}");
        assert!(col(r, 3) < 1e-5, "{r:?}");
    }
    for (r, budget) in rows[3..].iter().zip([1e-3, 1e-2]) {
        assert!(col(r, 1) > 0.0 && col(r, 3) <= budget && col(r, 6) < col(&rows[1], 6), "{r:?}");
    }
    assert!(rows[1..].iter().any(|r| r[7] == "true"));
    let svg = std::fs::read_to_string(csv.with_extension("svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("latency against error"), "{svg}");
    // One circle per point, plus the legend's.
    assert_eq!(svg.matches("<circle").count(), rows.len() - 1 + 1, "{svg}");
}

/// `y = relu(x·W + b)` with `x` `[32, 512]` and `W` `[512, 512] = P·Q`, `P`
/// `[512, 16]` and `Q` `[16, 512]` random: `W` has rank 16 (up to f32 rounding).
fn low_rank_layer() -> Graph {
    let (k, rank, n) = (512, 16, 512);
    let normal = |seed, len| random_values(&Distribution::Normal { mean: 0.0, std: 1.0 }, seed, len);
    let (p, q) = (normal(11, k * rank), normal(12, rank * n));
    let mut w = vec![0.0; k * n];
    for i in 0..k {
        for l in 0..rank {
            let pil = p[i * rank + l] / 16.0;
            for j in 0..n {
                w[i * n + j] += pil * q[l * n + j];
            }
        }
    }
    let constant = |name: &str, shape: Vec<usize>, values: &[f64]| {
        let t = Tensor::from_f64(TensorType::new(shape, DType::F32), values);
        Constant {
            name: name.into(),
            ty: t.ty.clone(),
            init: ConstInit::Data(Arc::new(t)),
        }
    };
    let node = |name: &str, op: Op, inputs: &[&str]| Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        ty: TensorType::new(vec![], DType::F32),
    };
    Graph::new(
        "low_rank_layer",
        vec![Input {
            name: "x".into(),
            ty: TensorType::new(vec![32, k], DType::F32),
        }],
        vec![constant("w", vec![k, n], &w), constant("b", vec![n], &normal(13, n))],
        vec![
            node("xw", Op::MatMul, &["x", "w"]),
            node("t", Op::Binary(BinaryOp::Add), &["xw", "b"]),
            node("y", Op::Unary(UnaryOp::Relu), &["t"]),
        ],
        vec!["y".into()],
    )
    .unwrap()
}

/// Names of `g`'s low-rank factor constants (`W.lrR.u`, `W.lrR.v`).
fn low_rank_factors(g: &Graph) -> Vec<&str> {
    g.constants.iter().map(|c| c.name.as_str()).filter(|n| n.contains(".lr")).collect()
}

#[test]
fn a_low_rank_weight_is_factorized_within_the_budget() {
    let g = low_rank_layer();
    let (opt, report) = budgeted(&g, 1e-3);
    let b = report.budget.as_ref().expect("a budget report");
    let measured = b.search.measured_error.expect("an approximation was chosen and measured");
    assert!(measured <= 1e-3, "measured {measured}");
    assert!(b.search.approx.iter().any(|(_, e)| *e < 1e-5), "{b:?}");
    // Other rules may build on the factors (merge sibling products, round them
    // to f16, factorize again): only the full weight must be gone.
    assert!(!low_rank_factors(&opt).is_empty(), "{:?}", opt.constants);
    assert!(!opt.constants.iter().any(|c| c.name == "w"), "the full weight is still read");
    let (exact, exact_report) = optimize(&g, &RuleSet::defaults().unwrap(), &opts()).unwrap();
    assert!(
        report.after.flops < exact_report.after.flops / 2,
        "{} vs {}",
        report.after.flops,
        exact_report.after.flops
    );
    assert!(report.after.latency_s < exact_report.after.latency_s);
    assert!(b.weight_bytes_after < weight_bytes(&exact));
    let fresh = fresh_error(&g, &opt, 99);
    assert!(fresh <= 1e-3, "{fresh} on fresh inputs");

    // A zero budget runs no approximate rule: the exact optimization.
    let (zero, zero_report) = optimize_measured(&g, &RuleSet::defaults().unwrap(), &opts().with_max_error(0.0), None).unwrap();
    assert!(zero_report.budget.is_none());
    assert!(low_rank_factors(&zero).is_empty());
    assert_eq!(zero_report.after.flops, exact_report.after.flops);
    assert_eq!(json::to_json(&zero, None), json::to_json(&exact, None));
}
