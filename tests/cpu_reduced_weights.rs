//! `f16` and `bf16` weights on the CPU backend: constants read through a `Cast`
//! to f32 only as GEMM `b` operands or convolution weights stay stored in 2 bytes
//! an element (the kernels convert them), give the reference interpreter's results
//! (which widens the same values exactly, so the f32 tolerance applies), and halve
//! the reported constant bytes.

mod common;

use common::approx::{check_cpu, constant_elems};
use eqopt::backend::CpuModel;
use eqopt::cost::HardwareProfile;
use eqopt::graph::{Graph, json};
use eqopt::optimize::{OptimizeOptions, optimize};
use eqopt::rules::RuleSet;
use eqopt_kir::ElemType;

/// A graph `y = op(x, cast(w))` with weights `w` of `dtype`; `nodes` reads `wf` (the cast).
fn graph(name: &str, dtype: &str, x: &[usize], w: &[usize], nodes: &str) -> Graph {
    let text = format!(
        r#"{{"format": "eqopt-graph", "version": 1, "name": "{name}",
  "inputs": [{{"name": "x", "shape": {x:?}, "dtype": "f32"}}], "outputs": ["y"],
  "constants": [{{"name": "w", "shape": {w:?}, "dtype": "{dtype}", "random": {{"dist": "normal", "std": 0.25, "seed": 3}}}}],
  "nodes": [{{"name": "wf", "op": "Cast", "inputs": ["w"], "attrs": {{"to": "f32"}}}}, {nodes}]}}"#
    );
    json::parse(&text, "g.json".as_ref()).unwrap()
}

fn cases(dtype: &str) -> Vec<(String, Graph)> {
    let mm = r#"{"name": "y", "op": "MatMul", "inputs": ["x", "wf"]}"#;
    let mm_t = r#"{"name": "wt", "op": "Transpose", "inputs": ["wf"], "attrs": {"perm": [1, 0]}}, {"name": "y", "op": "MatMul", "inputs": ["x", "wt"]}"#;
    let conv = |attrs: &str| format!(r#"{{"name": "y", "op": "Conv", "inputs": ["x", "wf"], "attrs": {{{attrs}}}}}"#);
    vec![
        ("gemv".into(), graph("gemv", dtype, &[1, 64], &[64, 48], mm)),
        ("gemm".into(), graph("gemm", dtype, &[8, 64], &[64, 48], mm)),
        ("gemv_transposed".into(), graph("gemv_t", dtype, &[1, 64], &[48, 64], mm_t)),
        ("gemm_transposed".into(), graph("gemm_t", dtype, &[8, 64], &[48, 64], mm_t)),
        (
            "conv1x1".into(),
            graph("conv1x1", dtype, &[1, 16, 6, 6], &[24, 16, 1, 1], &conv("")),
        ),
        (
            "conv3x3".into(),
            graph("conv3x3", dtype, &[2, 16, 7, 7], &[24, 16, 3, 3], &conv(r#""pads": [1, 1, 1, 1]"#)),
        ),
        (
            "depthwise".into(),
            graph(
                "depthwise",
                dtype,
                &[1, 16, 7, 7],
                &[16, 1, 3, 3],
                &conv(r#""pads": [1, 1, 1, 1], "group": 16"#),
            ),
        ),
    ]
}

#[test]
fn reduced_precision_weights_stay_stored_and_run_like_the_reference() {
    let rules = RuleSet::defaults().unwrap();
    let opts = OptimizeOptions::new(HardwareProfile::load("cpu").unwrap());
    for (dtype, elem) in [("f16", ElemType::F16), ("bf16", ElemType::BF16)] {
        for ((case, g), (_, g32)) in cases(dtype).into_iter().zip(cases("f32")) {
            let (opt, _) = optimize(&g, &rules, &opts).unwrap();
            let (opt32, _) = optimize(&g32, &rules, &opts).unwrap();
            for (label, g, g32) in [("original", &g, &g32), ("optimized", &opt, &opt32)] {
                let label = format!("{case} {dtype} {label}");
                let model = check_cpu(&label, g, 1e-4);
                let model32 = check_cpu(&format!("{label} (f32 weights)"), g32, 1e-4);
                // The transpose of the unoptimized graph is a copy kernel, which
                // reads f32: only the optimizer folds it under the cast.
                let via_copy = case.ends_with("transposed") && label.ends_with("original");
                let want = if via_copy { ElemType::F32 } else { elem };
                assert_eq!(constant_elems(&model), vec![want], "{label}:\n{}", model.program());
                let (bytes, bytes32) = (model.memory().constant_bytes, model32.memory().constant_bytes);
                assert!(bytes32 > 0, "{label}");
                if !via_copy {
                    assert_eq!(bytes * 2, bytes32, "{label}: constant bytes");
                }
            }
        }
    }
}

#[test]
fn a_weight_cast_read_elsewhere_is_widened_at_compile_time() {
    // `wf` feeds a MatMul and an Add: the kernels read one f32 buffer.
    let nodes = r#"{"name": "mm", "op": "MatMul", "inputs": ["x", "wf"]}, {"name": "y", "op": "Add", "inputs": ["mm", "wf"]}"#;
    let g = graph("shared", "f16", &[8, 8], &[8, 8], nodes);
    let model = check_cpu("shared", &g, 1e-4);
    assert_eq!(constant_elems(&model), vec![ElemType::F32]);
    assert_eq!(model.memory().constant_bytes, 8 * 8 * 4);
}

#[test]
fn f16_program_text_matches_its_snapshot() {
    let rules = RuleSet::defaults().unwrap();
    let opts = OptimizeOptions::new(HardwareProfile::load("cpu").unwrap());
    let (_, g) = cases("f16").swap_remove(3);
    let (opt, _) = optimize(&g, &rules, &opts).unwrap();
    let model = CpuModel::compile(&opt).unwrap();
    let text = format!("constants {} B\n\n{}", model.memory().constant_bytes, model.program());
    insta::with_settings!({snapshot_path => common::root().join("snapshots"), prepend_module_to_snapshot => false, omit_expression => true}, {
        insta::assert_snapshot!("cpu_program__f16_gemm_transposed", text);
    });
}
