//! The ONNX importer against fixtures written by the real `onnx` library
//! (`tools/gen_onnx_fixtures.py`, outputs committed under `tests/onnx/`):
//! every `ok/` model imports and the reference interpreter reproduces ONNX
//! Runtime's outputs, before and after `optimize`; every `bad/` model fails with
//! a clear error, snapshotted; every supported op appears in some fixture.

mod common;

use common::{fixture_file, fixture_import_options, normwise_rel_error, rel, root};
use eqopt::cost::HardwareProfile;
use eqopt::onnx::ImportOptions;
use eqopt::optimize::{OptimizeOptions, optimize};
use eqopt::rules::RuleSet;
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("tests/onnx").join(dir))
        .unwrap_or_else(|e| panic!("tests/onnx/{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no fixtures in tests/onnx/{dir}");
    v
}

#[test]
fn fixtures_import_and_match_onnx_runtime() {
    let rules = RuleSet::defaults().unwrap();
    let opts = OptimizeOptions::new(HardwareProfile::load("cpu").unwrap());
    let mut report = Vec::new();
    for path in fixtures("ok") {
        let name = rel(&path);
        let g = eqopt::onnx::import::load(&path, &fixture_import_options(&path)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let inputs = eqopt::tensor_io::read_npz(&fixture_file(&path, "inputs.npz")).unwrap();
        let expected = eqopt::tensor_io::read_npz(&fixture_file(&path, "expected.npz")).unwrap();
        let got = eqopt::eval::run(&g, &inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (opt, _) = optimize(&g, &rules, &opts).unwrap_or_else(|e| panic!("{name}: optimize: {e}"));
        let got_opt = eqopt::eval::run(&opt, &inputs).unwrap_or_else(|e| panic!("{name}: optimized: {e}"));
        assert_eq!(
            g.outputs.iter().collect::<BTreeSet<_>>(),
            expected.keys().collect::<BTreeSet<_>>(),
            "{name}: output names"
        );
        let mut worst: f64 = 0.0;
        for (out, want) in &expected {
            for (what, results) in [("imported", &got), ("optimized", &got_opt)] {
                let t = &results[out];
                assert_eq!(t.ty, want.ty, "{name}: {what} output {out}: type");
                let e = normwise_rel_error(t, want);
                assert!(e < 1e-5, "{name}: {what} output {out}: relative error {e:.3e} against ONNX Runtime");
                worst = worst.max(e);
            }
        }
        report.push(format!("{name:<50} {:>3} nodes, worst rel error {worst:.1e}", g.nodes.len()));
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn bad_models_give_clear_errors() {
    for path in fixtures("bad") {
        let name = rel(&path);
        // The relative path keeps the snapshots independent of the checkout location.
        let err = eqopt::onnx::import::load(Path::new(&name), &ImportOptions::default()).expect_err(&format!("{name} should be rejected"));
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        insta::with_settings!({snapshot_path => root().join("snapshots"), prepend_module_to_snapshot => false, omit_expression => true}, {
            insta::assert_snapshot!(format!("onnx_fail__{stem}"), err.to_string());
        });
    }
}

#[test]
fn every_supported_op_appears_in_a_fixture() {
    let mut seen: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for path in fixtures("ok") {
        let bytes = std::fs::read(&path).unwrap();
        let m = eqopt::onnx::proto::ModelProto::decode(bytes.as_slice()).unwrap();
        let opset = m.opset_import.iter().find(|o| o.domain.is_empty()).map_or(0, |o| o.version);
        for n in &m.graph.unwrap().node {
            seen.entry(n.op_type.clone()).or_default().insert(opset);
        }
    }
    let missing: Vec<&str> = eqopt::onnx::SUPPORTED_OPS
        .iter()
        .copied()
        .filter(|op| !seen.contains_key(*op))
        .collect();
    assert!(missing.is_empty(), "supported ops with no fixture: {missing:?}");
}

#[test]
fn symbolic_dims_need_an_input_shape_and_accept_one() {
    let path = root().join("tests/onnx/ok/symbolic_batch.onnx");
    let err = eqopt::onnx::import::load(&path, &ImportOptions::default()).unwrap_err().to_string();
    assert!(err.contains("\"batch\"") && err.contains("--input-shape x=N,3,4"), "{err}");
    let g = eqopt::onnx::import::load(&path, &ImportOptions::default().input_shape("x", vec![5, 3, 4])).unwrap();
    assert_eq!(g.inputs[0].ty.shape, vec![5, 3, 4]);
    let clash = eqopt::onnx::import::load(&path, &ImportOptions::default().input_shape("x", vec![5, 2, 4])).unwrap_err();
    assert!(clash.to_string().contains("--input-shape"), "{clash}");
}

#[test]
fn import_export_import_keeps_the_graph() {
    use eqopt::graph::op::{Op, UnaryOp};
    for path in fixtures("ok") {
        let name = rel(&path);
        let g = eqopt::onnx::import::load(&path, &fixture_import_options(&path)).unwrap();
        let model = eqopt::onnx::export::to_model(&g).unwrap();
        let back = eqopt::onnx::import::import_model(&model, &path, &ImportOptions::default()).unwrap();
        assert_eq!(g.outputs, back.outputs, "{name}");
        // Export decomposes Gelu and writes Dropout as Identity; everything else comes back as it was.
        let decomposed = g.nodes.iter().any(|n| matches!(n.op, Op::Unary(UnaryOp::Gelu | UnaryOp::Dropout)));
        if !decomposed {
            let ops = |g: &eqopt::graph::Graph| {
                g.nodes
                    .iter()
                    .map(|n| (n.name.clone(), n.op.clone(), n.ty.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(ops(&g), ops(&back), "{name}");
        }
        let inputs = eqopt::tensor_io::read_npz(&fixture_file(&path, "inputs.npz")).unwrap();
        let (a, b) = (eqopt::eval::run(&g, &inputs).unwrap(), eqopt::eval::run(&back, &inputs).unwrap());
        for (out, t) in &a {
            let e = normwise_rel_error(&b[out], t);
            assert!(e < 1e-6, "{name}: output {out} changed by the round trip: {e:.3e}");
        }
    }
}
