//! Corpus-driven tests: every `tests/graphs/*.json` is optimized (output snapshotted
//! and compared with the original through the reference interpreter); every
//! `tests/fail/*` input has its error message snapshotted. Stale snapshots fail.

mod common;

use common::{assert_same_function, corpus, rel, root};
use eqopt::cost::HardwareProfile;
use eqopt::graph::json;
use eqopt::optimize::{OptimizeOptions, optimize};
use eqopt::rules::RuleSet;
use std::collections::BTreeSet;

fn snapshot(name: &str, value: &str) {
    insta::with_settings!({snapshot_path => root().join("snapshots"), prepend_module_to_snapshot => false, omit_expression => true}, {
        insta::assert_snapshot!(name, value);
    });
}

fn stem(p: &std::path::Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn graphs_optimize_to_their_snapshots_and_keep_their_function() {
    let rules = RuleSet::defaults().unwrap();
    let opts = OptimizeOptions::new(HardwareProfile::load("cpu").unwrap());
    for path in corpus("tests/graphs", "json") {
        let g = json::load(&path).unwrap();
        let (opt, report) = optimize(&g, &rules, &opts).unwrap();
        assert!(
            report.after.latency_s <= report.before.latency_s,
            "{}: the optimized graph is estimated slower",
            rel(&path)
        );
        assert_same_function(&g, &opt);
        let text = eqopt::jsonfmt::to_string(&json::to_json(&opt, None));
        let summary = format!(
            "kernels {} -> {}\nestimated cpu latency {:.3} us -> {:.3} us\nstop: {} after {} iterations\n\n{text}\n",
            report.before.kernels,
            report.after.kernels,
            report.before.latency_s * 1e6,
            report.after.latency_s * 1e6,
            report.stop_reason,
            report.iterations,
        );
        snapshot(&format!("graph__{}", stem(&path)), &summary);
    }
}

#[test]
fn bad_graphs_give_clear_errors() {
    for path in corpus("tests/fail", "json") {
        let text = std::fs::read_to_string(&path).unwrap();
        let err = json::parse(&text, std::path::Path::new(&rel(&path))).expect_err(&rel(&path));
        snapshot(&format!("fail__{}", stem(&path)), &err.to_string());
    }
}

#[test]
fn bad_rules_give_clear_errors() {
    let graph = json::load(&root().join("tests/graphs/fusion_gemm_bias_relu.json")).unwrap();
    let opts = OptimizeOptions::new(HardwareProfile::load("cpu").unwrap());
    for path in corpus("tests/fail", "rules") {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut set = RuleSet::empty();
        let err = match set.add_family("fusion", &rel(&path), &text) {
            Err(e) => e,
            Ok(()) => optimize(&graph, &set, &opts).expect_err(&rel(&path)),
        };
        snapshot(&format!("fail__{}", stem(&path)), &err.to_string());
    }
}

#[test]
fn rule_inventory() {
    snapshot("rules__inventory", &RuleSet::defaults().unwrap().inventory());
}

/// Every snapshot file belongs to a corpus file or a named test: none is stale.
#[test]
fn no_stale_snapshots() {
    let mut expected: BTreeSet<String> = BTreeSet::new();
    for p in corpus("tests/graphs", "json") {
        expected.insert(format!("graph__{}.snap", stem(&p)));
    }
    for ext in ["json", "rules"] {
        for p in corpus("tests/fail", ext) {
            expected.insert(format!("fail__{}.snap", stem(&p)));
        }
    }
    for p in corpus("tests/onnx/bad", "onnx") {
        expected.insert(format!("onnx_fail__{}.snap", stem(&p)));
    }
    expected.insert("rules__inventory.snap".into());
    // tests/dot_explain.rs: `eqopt dot --optimize` and `eqopt explain` of examples/mlp.json.
    expected.insert("dot_explain__mlp_dot.snap".into());
    expected.insert("dot_explain__mlp_explain.snap".into());
    // tests/cpu_reduced_weights.rs: the program of a graph with f16 weights.
    expected.insert("cpu_program__f16_gemm_transposed.snap".into());
    for p in common::CPU_PROGRAM_GRAPHS {
        expected.insert(format!("cpu_program__{}.snap", stem(std::path::Path::new(p))));
    }
    // tests/ptx_snapshots.rs: one entry per kernel kind.
    for name in [
        "elementwise",
        "gemm_epilogue",
        "conv_implicit_gemm",
        "conv_depthwise",
        "pool",
        "reduce",
        "softmax",
        "layernorm",
        "attention",
        "copy",
    ]
    .into_iter()
    .chain(["gather", "gemm_f16", "gemm_int8", "gemm_int4", "gemm_bf16_mma"])
    {
        expected.insert(format!("ptx__{name}.snap"));
    }
    expected.insert("experiment__plot_data.snap".into());
    expected.insert("experiment__tables.snap".into());
    let dir = root().join("snapshots");
    let found: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let stale: Vec<&String> = found.difference(&expected).collect();
    assert!(stale.is_empty(), "stale or pending snapshot files in snapshots/: {stale:?}");
}

#[test]
fn every_default_rule_fires_in_some_test_graph() {
    let rules = RuleSet::defaults().unwrap();
    let opts = OptimizeOptions::new(HardwareProfile::load("cpu").unwrap());
    let mut fired: BTreeSet<String> = BTreeSet::new();
    for path in corpus("tests/graphs", "json") {
        let g = json::load(&path).unwrap();
        let (_, report) = optimize(&g, &rules, &opts).unwrap();
        for it in &report.per_iteration {
            fired.extend(it.applied.iter().filter(|(_, n)| **n > 0).map(|(r, _)| r.clone()));
        }
    }
    let all: BTreeSet<String> = eqopt::rules::build_rewrites(&rules)
        .unwrap()
        .iter()
        .map(|r| r.name.to_string())
        .collect();
    let silent: Vec<&String> = all.difference(&fired).collect();
    assert!(
        silent.is_empty(),
        "rules that fire in no tests/graphs/*.json (add a graph for each): {silent:?}"
    );
}
