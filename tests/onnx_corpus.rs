//! The real-model corpus (`scripts/build_corpus.py`: the nine architectures of the
//! `onnx` wheel's model zoo with seeded weights, and MiniLM-L6 with its trained
//! weights). For each model: import, run the reference interpreter against ONNX
//! Runtime's outputs, optimize for `cpu` and `h100`, check each optimized graph on
//! the same inputs with the reference interpreter and with the CPU backend, export
//! the optimized graph and have ONNX Runtime run it.
//!
//! The corpus lives in `corpus/` (git-ignored; `EQOPT_CORPUS` points elsewhere).
//! `EQOPT_CORPUS_MODELS=a,b` picks models. Without a corpus the test says so and
//! passes, unless `EQOPT_REQUIRE_CORPUS=1` (set by `.ci/run`, which builds it).
//! With `--nocapture` it prints the per-model table of docs/onnx.md.

mod common;

use common::python::ort_check;
use common::{normwise_rel_error, root};
use eqopt::cost::HardwareProfile;
use eqopt::graph::Graph;
use eqopt::optimize::{OptimizeOptions, optimize};
use eqopt::rules::RuleSet;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// ONNX Runtime against eqopt's reference interpreter, normwise relative.
const TOLERANCE: f64 = 1e-4;

fn corpus_dir() -> PathBuf {
    std::env::var_os("EQOPT_CORPUS").map_or_else(|| root().join("corpus"), PathBuf::from)
}

fn models(dir: &std::path::Path) -> Vec<String> {
    let index: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    let all: Vec<String> = index["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["dir"].as_str().unwrap().to_string())
        .collect();
    match std::env::var("EQOPT_CORPUS_MODELS") {
        Ok(pick) if !pick.is_empty() => {
            let pick: Vec<String> = pick.split(',').map(str::to_string).collect();
            for p in &pick {
                assert!(all.contains(p), "EQOPT_CORPUS_MODELS names {p}, not in {}", dir.display());
            }
            pick
        }
        _ => all,
    }
}

fn worst_error(
    graph: &Graph,
    inputs: &BTreeMap<String, eqopt::graph::tensor::Tensor>,
    expected: &BTreeMap<String, eqopt::graph::tensor::Tensor>,
) -> f64 {
    let got = eqopt::eval::run(graph, inputs).unwrap_or_else(|e| panic!("{}: {e}", graph.name));
    worst_of(graph, &got, expected)
}

/// The same, with the graph run by the CPU backend (lowered, planned, SIMD kernels).
fn worst_error_cpu_backend(
    graph: &Graph,
    inputs: &BTreeMap<String, eqopt::graph::tensor::Tensor>,
    expected: &BTreeMap<String, eqopt::graph::tensor::Tensor>,
) -> f64 {
    let model = eqopt::backend::CpuModel::compile(graph).unwrap_or_else(|e| panic!("{}: cpu backend: {e}", graph.name));
    // The memory planner's target: the arena within 5% of the peak of live bytes.
    let m = model.memory();
    assert!(
        m.arena_bytes as f64 <= 1.05 * m.lower_bound_bytes as f64,
        "{}: arena {} bytes, lower bound {}",
        graph.name,
        m.arena_bytes,
        m.lower_bound_bytes
    );
    let got = model.run(inputs).unwrap_or_else(|e| panic!("{}: cpu backend: {e}", graph.name));
    worst_of(graph, &got, expected)
}

fn worst_of(
    graph: &Graph,
    got: &BTreeMap<String, eqopt::graph::tensor::Tensor>,
    expected: &BTreeMap<String, eqopt::graph::tensor::Tensor>,
) -> f64 {
    let mut worst: f64 = 0.0;
    for (name, want) in expected {
        assert_eq!(got[name].ty, want.ty, "{}: output {name} type", graph.name);
        worst = worst.max(normwise_rel_error(&got[name], want));
    }
    worst
}

/// The rewrites each model is known to need, asserted on its optimized graph.
fn assert_rewrites_found(model: &str, target: &str, opt: &Graph) {
    use eqopt::graph::op::{AttentionLayout, Layout, Op};
    let count = |f: &dyn Fn(&eqopt::graph::Node) -> bool| opt.nodes.iter().filter(|n| f(n)).count();
    // Channels last where the target's convolutions want it: on h100 every
    // convolution of ResNet-50, SqueezeNet and Inception v2 runs NHWC with a single
    // conversion kernel at the input; on cpu (no layout preference) none does.
    let nhwc = count(&|n| matches!(&n.op, Op::Conv(p) | Op::FusedConv { params: p, .. } if p.layout == Layout::Nhwc));
    let convs = count(&|n| matches!(n.op, Op::Conv(_) | Op::FusedConv { .. }));
    match (target, model) {
        ("cpu", _) => assert_eq!(nhwc, 0, "{model} on cpu: {nhwc} NHWC convolutions"),
        ("h100", "resnet50" | "squeezenet" | "inception_v2") => {
            assert_eq!(nhwc, convs, "{model} on h100: {nhwc} of {convs} convolutions NHWC");
            // Other transposes only move unit axes (after global pooling): views.
            let copies: Vec<&eqopt::graph::Node> = opt
                .nodes
                .iter()
                .filter(|n| !eqopt::cost::is_unit_axes_transpose(&n.op, opt.type_of(&n.inputs[0]).unwrap()))
                .filter(|n| matches!(n.op, Op::Transpose { .. }))
                .collect();
            let from_input = copies.iter().filter(|n| opt.inputs.iter().any(|i| i.name == n.inputs[0])).count();
            assert!(copies.len() == 1 && from_input == 1, "{model} on h100: transposes {copies:?}");
        }
        _ => {}
    }
    match model {
        // Every batch norm folds into the convolution before it.
        "resnet50" | "shufflenet" => {
            let bn = count(&|n| matches!(n.op, Op::BatchNorm { .. }));
            assert_eq!(bn, 0, "{model}: {bn} batch norms left unfolded");
        }
        // The sibling 1x1 convolutions of each inception block share one kernel.
        "inception_v1" => {
            let merged = count(&|n| matches!(n.op, Op::Conv(_) | Op::FusedConv { .. }) && n.inputs[1].contains('+'));
            assert!(
                merged >= 9,
                "{model}: only {merged} merged sibling convolutions (one per inception block expected)"
            );
        }
        // On h100 (not on cpu, where the extra FLOPs cost more than they save) each
        // fire module's 1x1 and 3x3 expand convs become one 3x3 conv and the concat goes.
        "squeezenet" if target == "h100" => {
            let merged = count(&|n| matches!(n.op, Op::Conv(_) | Op::FusedConv { .. }) && n.inputs[1].contains("@3x3+"));
            assert_eq!(merged, 8, "{model}: {merged} enlarged-and-merged fire modules");
            let concats = count(&|n| matches!(n.op, Op::Concat { .. }));
            assert_eq!(concats, 0, "{model}: {concats} concatenations left");
        }
        // Each of the six layers' attention becomes one fused kernel.
        "minilm" => {
            let fused = count(&|n| matches!(n.op, Op::FusedAttention { .. }));
            assert_eq!(fused, 6, "{model}: {fused} fused attention kernels");
            // ...reading its heads straight from the projection: no transpose is left.
            let bshd = count(&|n| {
                matches!(
                    n.op,
                    Op::FusedAttention {
                        layout: AttentionLayout::Bshd,
                        ..
                    }
                )
            });
            assert_eq!(bshd, 6, "{model}: {bshd} heads-interleaved attention kernels");
            let transposes = count(&|n| matches!(n.op, Op::Transpose { .. }));
            assert_eq!(transposes, 0, "{model}: {transposes} transposes left");
            // Each layer's Q, K and V projections share one merged matmul.
            let qkv = count(&|n| matches!(n.op, Op::MatMul | Op::FusedMatMul { .. }) && n.inputs[1].matches('+').count() == 2);
            assert_eq!(qkv, 6, "{model}: {qkv} merged QKV projections");
            // Its 13 layer norms arrive decomposed and are recognized.
            let ln = count(&|n| matches!(n.op, Op::LayerNorm { .. }));
            assert_eq!(ln, 13, "{model}: {ln} recognized layer norms");
        }
        _ => {}
    }
}

#[test]
fn corpus_models_import_run_optimize_and_export() {
    let dir = corpus_dir();
    if !dir.join("index.json").exists() {
        let msg = format!(
            "no corpus at {}: build it with `$(scripts/pyenv.sh --corpus) scripts/build_corpus.py --out corpus`",
            dir.display()
        );
        assert!(std::env::var("EQOPT_REQUIRE_CORPUS").is_err(), "{msg}");
        eprintln!("SKIPPED: {msg}");
        return;
    }
    let rules = RuleSet::defaults().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    let mut cases = Vec::new();
    for m in models(&dir) {
        let start = Instant::now();
        let model = dir.join(&m).join("model.onnx");
        let g = eqopt::onnx::import::load(&model, &Default::default()).unwrap_or_else(|e| panic!("{m}: {e}"));
        let inputs = eqopt::tensor_io::read_npz(&dir.join(&m).join("inputs.npz")).unwrap();
        let expected = eqopt::tensor_io::read_npz(&dir.join(&m).join("expected.npz")).unwrap();
        let err = worst_error(&g, &inputs, &expected);
        assert!(err < TOLERANCE, "{m}: eqopt run differs from ONNX Runtime by {err:.3e}");
        let err_backend = worst_error_cpu_backend(&g, &inputs, &expected);
        assert!(
            err_backend < TOLERANCE,
            "{m}: the cpu backend differs from ONNX Runtime by {err_backend:.3e}"
        );
        let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join(&m).join("meta.json")).unwrap()).unwrap();
        let mut cells = vec![m.clone(), format!("{} → {}", meta["nodes"], g.nodes.len())];
        let params: usize = g.constants.iter().map(|c| c.ty.numel()).sum();
        let mut gflop = String::new();
        let mut errors = vec![format!("{err:.1e}"), format!("{err_backend:.1e}")];
        for target in ["cpu", "h100"] {
            let opts = OptimizeOptions::new(HardwareProfile::load(target).unwrap());
            let (opt, report) = optimize(&g, &rules, &opts).unwrap_or_else(|e| panic!("{m}: optimize for {target}: {e}"));
            let e = worst_error(&opt, &inputs, &expected);
            assert!(e < TOLERANCE, "{m}: optimized for {target}, differs from ONNX Runtime by {e:.3e}");
            errors.push(format!("{e:.1e}"));
            gflop = format!("{:.2}", report.before.flops as f64 / 1e9);
            cells.push(format!(
                "{:.2} → {:.2} ms ({} → {} kernels)",
                report.before.latency_s * 1e3,
                report.after.latency_s * 1e3,
                report.before.kernels,
                report.after.kernels
            ));
            assert_rewrites_found(&m, target, &opt);
            // The optimized graph on the CPU backend (NHWC convolutions and all on h100).
            let e = worst_error_cpu_backend(&opt, &inputs, &expected);
            assert!(
                e < TOLERANCE,
                "{m}: optimized for {target}, on the cpu backend, differs from ONNX Runtime by {e:.3e}"
            );
            errors.push(format!("{e:.1e}"));
            if target == "cpu" {
                let case = tmp.path().join(&m);
                std::fs::create_dir_all(&case).unwrap();
                eqopt::onnx::export::save(&opt, &case.join("model.onnx")).unwrap();
                std::fs::copy(dir.join(&m).join("inputs.npz"), case.join("inputs.npz")).unwrap();
                std::fs::copy(dir.join(&m).join("expected.npz"), case.join("expected.npz")).unwrap();
                cases.push(case);
            }
        }
        cells.insert(2, format!("{:.2}", params as f64 / 1e6));
        cells.insert(3, gflop);
        cells.push(errors.join(" / "));
        cells.push(format!("{:.1} s", start.elapsed().as_secs_f64()));
        eprintln!("{m}: done in {:.1} s", start.elapsed().as_secs_f64());
        rows.push(format!("| {} |", cells.join(" | ")));
    }
    if let Some(results) = ort_check(&cases, TOLERANCE) {
        for r in &results {
            assert!(
                r.ok,
                "{}: ONNX Runtime on the exported optimized model: {}",
                r.case,
                r.error.clone().unwrap_or_default()
            );
        }
    }
    eprintln!(
        "| model | nodes | params (M) | GFLOP | cpu: estimated latency before → after | h100: estimated latency before → after | error vs ORT (run, on backend / cpu, on backend / h100, on backend) | test time |"
    );
    eprintln!("|---|---|---|---|---|---|---|---|");
    eprintln!("{}", rows.join("\n"));
}
