//! Activations rounded to bfloat16 under an accuracy budget
//! (`optimize --max-error E --activations bf16`, `rules/activations.rules`):
//! chosen only when asked for and when the target computes bf16 faster, run
//! by the CPU backend as bf16-operand GEMMs, and within the budget.

mod common;

use eqopt::backend::CpuModel;
use eqopt::budget::max_relative_error;
use eqopt::cost::HardwareProfile;
use eqopt::dtype::DType;
use eqopt::eval::{random_inputs, run};
use eqopt::graph::op::Op;
use eqopt::graph::{Graph, json};
use eqopt::optimize::{OptimizeOptions, Report};
use eqopt::rules::ActivationPrecision;
use eqopt_kir::{GemmCompute, Kernel};

fn example(name: &str) -> Graph {
    json::load(&common::root().join("examples").join(name)).unwrap()
}

/// The built-in CPU profile with bf16 products at twice the f32 rate, as on
/// an AVX-512 BF16 machine.
fn bf16_target() -> HardwareProfile {
    let mut t = HardwareProfile::load("cpu").unwrap();
    let f32_peak = t.peak(DType::F32);
    t.peak_flops.insert(DType::BF16, 2.0 * f32_peak);
    t
}

fn budgeted(g: &Graph, max_error: f64, activations: ActivationPrecision, target: HardwareProfile) -> (Graph, Report) {
    common::approx::budgeted_with(g, max_error, OptimizeOptions::new(target).with_activations(activations))
}

/// Activations the graph rounds to bf16.
fn rounded_activations(g: &Graph) -> usize {
    g.nodes
        .iter()
        .filter(|n| n.op == (Op::Cast { to: DType::BF16 }) && !g.constants.iter().any(|c| c.name == n.inputs[0]))
        .count()
}

fn bf16_gemms(m: &CpuModel) -> usize {
    m.program()
        .kernels
        .iter()
        .filter(|k| {
            matches!(
                k,
                Kernel::Gemm {
                    compute: GemmCompute::Bf16,
                    ..
                }
            )
        })
        .count()
}

#[test]
fn bf16_products_are_chosen_within_the_budget_and_run_as_bf16_gemms() {
    // (mlp.json runs at batch 1: memory-bound, where bf16 arithmetic gains
    // nothing; see the next test.)
    for (name, max_error) in [("bert_layer.json", 2e-2), ("bert_layer.json", 1e-2)] {
        let g = example(name);
        let (opt, report) = budgeted(&g, max_error, ActivationPrecision::Bf16, bf16_target());
        let b = report.budget.as_ref().expect("a budget report");
        let measured = b.search.measured_error.expect("approximations were measured");
        assert!(measured <= max_error, "{name}: measured {measured} > {max_error}");
        assert!(rounded_activations(&opt) > 0, "{name}: no bf16 product chosen: {b:?}");
        let model = CpuModel::compile(&opt).unwrap();
        assert!(bf16_gemms(&model) > 0, "{name}:\n{}", model.program());
        // The roundings fold into the GEMMs: no elementwise rounding kernel.
        let text = model.program().to_string();
        assert!(!text.contains("round_bf16"), "{name}:\n{text}");
        assert!(report.after.latency_s < report.before.latency_s, "{name}");
        // Fresh inputs: within the budget, and really approximate.
        let inputs = random_inputs(&g, 41);
        let want = CpuModel::compile(&g).unwrap().run(&inputs).unwrap();
        let got = model.run(&inputs).unwrap();
        let fresh = max_relative_error(&got, &want);
        assert!(fresh <= max_error && fresh > 1e-5, "{name}: fresh error {fresh}");
        // The backend agrees with the reference interpreter on the same graph,
        // up to roundings flipped by f32-level differences upstream (a value
        // 1e-7 off a rounding boundary moves by one bf16 step, 4e-3): far below
        // the budget. Exact agreement of one GEMM is tested below.
        let reference = run(&opt, &inputs).unwrap();
        let drift = max_relative_error(&got, &reference);
        assert!(drift < 2e-3, "{name}: backend against the interpreter {drift}");
    }
}

#[test]
fn activations_stay_f32_unless_asked_for_or_when_bf16_is_not_faster() {
    let g = example("mlp.json");
    let (opt, _) = budgeted(&g, 1e-2, ActivationPrecision::F32, bf16_target());
    assert_eq!(rounded_activations(&opt), 0);
    // On a target computing bf16 no faster than f32, rounding only costs error.
    let (opt, _) = budgeted(&g, 1e-2, ActivationPrecision::Bf16, HardwareProfile::load("cpu").unwrap());
    assert_eq!(rounded_activations(&opt), 0);
}

const ROUNDED_TWICE: &str = r#"{"format": "eqopt-graph", "version": 1,
  "inputs": [{"name": "x", "shape": [5, 40], "dtype": "f32"}], "outputs": ["y", "z"],
  "constants": [
    {"name": "w", "shape": [40, 33], "dtype": "bf16", "random": {"dist": "normal", "std": 0.2, "seed": 3}}],
  "nodes": [
    {"name": "xb", "op": "Cast", "inputs": ["x"], "attrs": {"to": "bf16"}},
    {"name": "xr", "op": "Cast", "inputs": ["xb"], "attrs": {"to": "f32"}},
    {"name": "wf", "op": "Cast", "inputs": ["w"], "attrs": {"to": "f32"}},
    {"name": "y", "op": "MatMul", "inputs": ["xr", "wf"]},
    {"name": "z", "op": "Relu", "inputs": ["xr"]}]}"#;

/// A rounding read only by the GEMM folds into it; the result equals the
/// interpreter's (same products, f32 sums in another order).
#[test]
fn a_bf16_gemm_computes_what_the_interpreter_does() {
    let text = ROUNDED_TWICE.replace(r#""outputs": ["y", "z"]"#, r#""outputs": ["y"]"#).replace(
        r#",
    {"name": "z", "op": "Relu", "inputs": ["xr"]}"#,
        "",
    );
    let g = json::parse(&text, "rounded.json".as_ref()).unwrap();
    let model = CpuModel::compile(&g).unwrap();
    let program = model.program().to_string();
    assert!(program.contains("compute bf16") && !program.contains("round_bf16"), "{program}");
    for seed in 0..4 {
        let inputs = random_inputs(&g, seed);
        let got = model.run(&inputs).unwrap();
        let want = run(&g, &inputs).unwrap();
        assert!(max_relative_error(&got, &want) < 1e-6, "seed {seed}");
    }
}

/// A rounded activation some other op also reads is rounded by an elementwise
/// kernel; the GEMM still runs on bf16 operands, and both match the interpreter.
#[test]
fn a_rounding_read_elsewhere_is_an_elementwise_kernel() {
    let g = json::parse(ROUNDED_TWICE, "rounded.json".as_ref()).unwrap();
    let model = CpuModel::compile(&g).unwrap();
    let text = model.program().to_string();
    assert!(text.contains("round_bf16") && text.contains("compute bf16"), "{text}");
    let inputs = random_inputs(&g, 5);
    let got = model.run(&inputs).unwrap();
    let want = run(&g, &inputs).unwrap();
    assert_eq!(got["z"].to_f64(), want["z"].to_f64(), "rounding is exact");
    assert!(max_relative_error(&got, &want) < 1e-5);
}

#[test]
fn a_bf16_activation_the_backend_cannot_hold_is_a_clear_error() {
    let text = ROUNDED_TWICE.replace(r#""outputs": ["y", "z"]"#, r#""outputs": ["y", "xb"]"#);
    let g = json::parse(&text, "rounded.json".as_ref()).unwrap();
    let err = CpuModel::compile(&g).err().expect("a bf16 output is refused").to_string();
    assert!(err.contains("xb") && err.contains("f32"), "{err}");
}

#[test]
fn bf16_activations_without_a_budget_are_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let model = common::root().join("examples/mlp.json");
    let o = common::bin::eqopt(&[
        "optimize",
        common::bin::s(&model),
        "-o",
        common::bin::s(&out),
        "--activations",
        "bf16",
    ]);
    let err = common::bin::fails(&o);
    assert!(err.contains("--activations: expected f32 unless --max-error"), "{err}");
    assert!(!out.exists(), "nothing written on a usage error");
}
