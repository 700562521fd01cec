//! End-to-end tests of the `eqopt` binary: exit codes, files written (or not),
//! messages, the report JSON, and a weights round trip through safetensors.

mod common;

use common::bin::{eqopt, fails, ok, s};
use eqopt::eval::{compare, random_inputs, run};
use eqopt::graph::json;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn root(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn optimize_mlp_for_h100_writes_graph_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let (out, rep) = (dir.path().join("out.json"), dir.path().join("r.json"));
    let text = ok(&eqopt(&[
        "optimize",
        "examples/mlp.json",
        "-o",
        s(&out),
        "--target",
        "h100",
        "--report",
        s(&rep),
    ]));
    assert!(text.contains("estimated latency") && text.contains("kernels"), "{text}");
    assert!(text.contains(&format!("wrote {}", out.display())), "{text}");
    let g = json::load(&out).unwrap();
    assert!(!g.nodes.is_empty());
    let r = read_json(&rep);
    let (before, after) = (
        r["before"]["latency_s"].as_f64().unwrap(),
        r["after"]["latency_s"].as_f64().unwrap(),
    );
    assert!(after < before, "latency {before} -> {after}");
    assert!(r["after"]["kernels"].as_u64().unwrap() < r["before"]["kernels"].as_u64().unwrap());
    assert_eq!(r["target"], "h100");
    assert!(r["stop_reason"]["reason"].is_string(), "{}", r["stop_reason"]);
    assert_eq!(r["limits"]["node_limit"].as_u64(), Some(eqopt::saturate::DEFAULT_NODE_LIMIT as u64));
    assert_eq!(
        r["iterations"].as_u64().unwrap() as usize,
        r["per_iteration"].as_array().unwrap().len()
    );
}

#[test]
fn optimize_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let outs = [dir.path().join("a.json"), dir.path().join("b.json")];
    for o in &outs {
        ok(&eqopt(&["optimize", "examples/mlp.json", "-o", s(o), "--target", "h100"]));
    }
    let (a, b) = (std::fs::read(&outs[0]).unwrap(), std::fs::read(&outs[1]).unwrap());
    assert!(!a.is_empty());
    assert!(a == b, "two runs with the same input and flags wrote different graphs");
}

#[test]
fn output_over_input_is_refused_without_overwrite_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("g.json");
    std::fs::copy(root("examples/mlp.json"), &input).unwrap();
    let original = std::fs::read(&input).unwrap();
    // Both the same spelling and another spelling of the same file.
    let other = dir.path().join(".").join("g.json");
    for out in [&input, &other] {
        let err = fails(&eqopt(&["optimize", s(&input), "-o", s(out)]));
        assert!(err.contains("--output") && err.contains("--overwrite-input"), "{err}");
        assert_eq!(std::fs::read(&input).unwrap(), original, "the input was modified");
    }
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files.len(), 1, "nothing else is written: {files:?}");
    // With the flag it is allowed, and the file becomes the optimized graph.
    ok(&eqopt(&["optimize", s(&input), "-o", s(&input), "--overwrite-input"]));
    assert_ne!(std::fs::read(&input).unwrap(), original);
    json::load(&input).unwrap();
}

#[test]
fn bad_graph_fails_naming_the_node_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out, rep) = (dir.path().join("bad.json"), dir.path().join("out.json"), dir.path().join("r.json"));
    let bad = r#"{"format": "eqopt-graph", "version": 1,
      "inputs": [{"name": "a", "shape": [2, 3], "dtype": "f32"}, {"name": "b", "shape": [4, 5], "dtype": "f32"}],
      "outputs": ["prod"], "nodes": [{"name": "prod", "op": "MatMul", "inputs": ["a", "b"]}]}"#;
    std::fs::write(&input, bad).unwrap();
    let err = fails(&eqopt(&["optimize", s(&input), "-o", s(&out), "--report", s(&rep)]));
    assert!(err.contains("node \"prod\"") && err.contains("MatMul"), "{err}");
    assert!(err.contains("bad.json"), "the message names the file: {err}");
    assert!(!out.exists() && !rep.exists(), "an output was written for a bad graph");
    assert!(!dir.path().join("out.safetensors").exists());
}

#[test]
fn unknown_target_lists_the_builtin_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let err = fails(&eqopt(&["optimize", "examples/mlp.json", "-o", s(&out), "--target", "tpu9"]));
    assert!(err.contains("tpu9"), "{err}");
    for (name, _) in eqopt::cost::BUILTIN_TARGETS {
        assert!(err.contains(name), "built-in target {name} not listed: {err}");
    }
    assert!(!out.exists());
}

#[test]
fn tight_limits_stop_saturation_at_a_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (out, rep) = (dir.path().join("out.json"), dir.path().join("r.json"));
    let args = [
        "optimize",
        "examples/resnet_blocks.json",
        "-o",
        s(&out),
        "--report",
        s(&rep),
        "--node-limit",
        "50",
        "--iter-limit",
        "2",
    ];
    let text = ok(&eqopt(&args));
    let stopped = text.lines().find(|l| l.starts_with("saturation")).unwrap_or_default();
    assert!(
        stopped.contains("stopped: node limit") || stopped.contains("stopped: iteration limit"),
        "{text}"
    );
    let r = read_json(&rep);
    // `StopReason` is serialized adjacently tagged: {"reason": "NodeLimit", "reached": 135}.
    let reason = r["stop_reason"]["reason"].as_str().unwrap();
    assert!(["NodeLimit", "IterationLimit"].contains(&reason), "stopped: {}", r["stop_reason"]);
    assert!(r["stop_reason"]["reached"].is_number(), "{}", r["stop_reason"]);
    assert_eq!(r["limits"]["node_limit"].as_u64(), Some(50));
    assert_eq!(r["limits"]["iter_limit"].as_u64(), Some(2));
    assert!(r["iterations"].as_u64().unwrap() <= 2);
    json::load(&out).unwrap();
}

#[test]
fn rules_list_and_rule_directories() {
    let text = ok(&eqopt(&["rules", "list"]));
    let names: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert!(
        names.contains(&"fusion/elementwise-chain") && names.contains(&"layout/transpose-cancel"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("layout.rules");
    std::fs::write(&file, "rule layout/only (neg (neg ?x)) => ?x\n").unwrap();
    let text = ok(&eqopt(&["rules", "list", "--rules", s(dir.path())]));
    let names: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert!(names.contains(&"layout/only"), "{text}");
    assert!(
        !names.iter().any(|n| n.starts_with("layout/") && *n != "layout/only"),
        "layout family not replaced:\n{text}"
    );
    assert!(names.contains(&"fusion/elementwise-chain"), "other families must stay:\n{text}");

    let text = ok(&eqopt(&["rules", "list", "--no-default-rules", "--rules", s(dir.path())]));
    assert_eq!(text.lines().count(), 1, "{text}");

    std::fs::write(&file, "# one rule\nrule layout/only (neg (neg ?x)) -> ?x\n").unwrap();
    let err = fails(&eqopt(&["rules", "list", "--rules", s(dir.path())]));
    assert!(err.contains(&format!("{}:2:33:", file.display())), "{err}");
    assert!(err.contains("'=>' or '<=>'"), "{err}");
}

#[test]
fn extract_vgg_with_every_extractor() {
    let text = ok(&eqopt(&["extract", "extract/tests/data/vgg_acyclic.json", "--extractor", "all"]));
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip_while(|l| !l.starts_with("extractor"))
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(names, eqopt_extract::extractor_names(), "{text}");
    for r in &rows {
        assert_eq!(r.len(), 5, "{r:?}");
        assert_eq!(r[2], "yes", "{} is not acyclic:\n{text}", r[0]);
    }
    let eqopt_row = rows.iter().find(|r| r[0] == "eqopt").expect("eqopt row");
    let cost: f64 = eqopt_row[1].parse().unwrap();
    assert!((cost - 4.86677).abs() < 1e-4, "eqopt DAG cost {cost}");
}

#[test]
fn folded_weights_round_trip_through_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let input = root("tests/graphs/fusion_conv_bn_relu.json");
    ok(&eqopt(&["optimize", s(&input), "-o", s(&out)]));
    assert!(dir.path().join("out.safetensors").is_file(), "no weights file beside the output");
    assert_eq!(read_json(&out)["weights"], "out.safetensors");
    let (original, optimized) = (json::load(&input).unwrap(), json::load(&out).unwrap());
    assert!(
        optimized.nodes.iter().all(|n| n.op.name() != "BatchNormalization"),
        "batch norm not folded"
    );
    for seed in [7, 1234] {
        let inputs = random_inputs(&original, seed);
        let (want, got) = (run(&original, &inputs).unwrap(), run(&optimized, &inputs).unwrap());
        assert_eq!(want.keys().collect::<Vec<_>>(), got.keys().collect::<Vec<_>>());
        for (name, w) in &want {
            let c = compare(&got[name], w);
            assert!(c.within(1e-4, 1e-3), "output {name} differs: {c}");
        }
    }
}
