//! Exported ONNX models checked by the real ONNX tooling: every example and test
//! graph, before and after `optimize` (so fused kernels are exported too), is
//! written as ONNX, accepted by `onnx.checker` (full check) and run by ONNX
//! Runtime, whose outputs must equal eqopt's reference outputs.

mod common;

use common::python::{ort_check, ort_check_with};
use common::{corpus, rel};
use eqopt::cost::HardwareProfile;
use eqopt::dtype::DType;
use eqopt::graph::Graph;
use eqopt::graph::tensor::Tensor;
use eqopt::optimize::{OptimizeOptions, optimize};
use eqopt::rules::RuleSet;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Writes one ort_check case: the exported model, seeded inputs, and eqopt's outputs.
fn write_case(dir: &Path, graph: &Graph, seed: u64) {
    write_case_with(dir, graph, eqopt::eval::random_inputs(graph, seed));
}

fn write_case_with(dir: &Path, graph: &Graph, inputs: BTreeMap<String, Tensor>) {
    std::fs::create_dir_all(dir).unwrap();
    eqopt::onnx::export::save(graph, &dir.join("model.onnx")).unwrap();
    let outputs = eqopt::eval::run(graph, &inputs).unwrap();
    let ins: Vec<(&str, &_)> = inputs.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let outs: Vec<(&str, &_)> = graph.outputs.iter().map(|o| (o.as_str(), &outputs[o])).collect();
    eqopt::tensor_io::write_npz(&dir.join("inputs.npz"), &ins).unwrap();
    eqopt::tensor_io::write_npz(&dir.join("expected.npz"), &outs).unwrap();
}

fn uses_bf16(g: &Graph) -> bool {
    g.inputs.iter().any(|i| i.ty.dtype == DType::BF16) || g.outputs.iter().any(|o| g.type_of(o).unwrap().dtype == DType::BF16)
}

#[test]
fn exported_graphs_run_in_onnx_runtime_with_eqopt_outputs() {
    if common::python::python().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rules = RuleSet::defaults().unwrap();
    let mut cases: Vec<PathBuf> = Vec::new();
    let mut files = corpus("examples", "json");
    files.extend(corpus("tests/graphs", "json"));
    for path in &files {
        let g = eqopt::graph::json::load(path).unwrap();
        // NumPy (and so the .npz exchange) has no bf16.
        if uses_bf16(&g) {
            eprintln!("{}: not exported (bf16 inputs or outputs cannot cross .npz)", rel(path));
            continue;
        }
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        write_case(&tmp.path().join(format!("{stem}.original")), &g, 5);
        cases.push(tmp.path().join(format!("{stem}.original")));
        for target in ["cpu", "h100"] {
            let opts = OptimizeOptions::new(HardwareProfile::load(target).unwrap());
            let (opt, _) = optimize(&g, &rules, &opts).unwrap();
            let dir = tmp.path().join(format!("{stem}.{target}"));
            write_case(&dir, &opt, 5);
            cases.push(dir);
        }
    }
    // The importer's fixtures (every supported ONNX op), imported and optimized, on
    // their own inputs (some ops need positive inputs).
    let opts = OptimizeOptions::new(HardwareProfile::load("cpu").unwrap());
    // Quantized weights run with ORT's graph optimizations off: they would fuse
    // DequantizeLinear -> MatMul into a kernel that also quantizes the
    // activations (see tests/quant_weights.rs).
    let mut as_written: Vec<PathBuf> = Vec::new();
    for path in corpus("tests/onnx/ok", "onnx") {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let g = eqopt::onnx::import::load(&path, &common::fixture_import_options(&path)).unwrap();
        let inputs = eqopt::tensor_io::read_npz(&common::fixture_file(&path, "inputs.npz")).unwrap();
        let (opt, _) = optimize(&g, &rules, &opts).unwrap();
        let dir = tmp.path().join(format!("fixture.{stem}.cpu"));
        write_case_with(&dir, &opt, inputs);
        if opt.nodes.iter().any(|n| matches!(n.op, eqopt::graph::op::Op::Dequantize { .. })) {
            as_written.push(dir);
        } else {
            cases.push(dir);
        }
    }
    let mut results = ort_check(&cases, 1e-4).expect("python is present");
    results.extend(ort_check_with(&as_written, 1e-4, &["--no-graph-optimizations"]).expect("python is present"));
    let mut failures = Vec::new();
    for r in &results {
        let name = Path::new(&r.case).file_name().unwrap().to_string_lossy().into_owned();
        eprintln!("{name:<40} {} worst rel error {:.2e}", if r.ok { "ok  " } else { "FAIL" }, r.worst);
        if !r.ok {
            failures.push(format!("{name}: {}", r.error.clone().unwrap_or_default()));
        }
    }
    assert!(failures.is_empty(), "ONNX Runtime disagrees:\n{}", failures.join("\n"));
}
