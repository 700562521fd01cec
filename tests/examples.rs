//! The example models: optimization lowers the estimated latency on `cpu` and
//! `h100`, keeps the function, and is deterministic.

mod common;

use common::{assert_same_function, corpus, rel};
use eqopt::cost::HardwareProfile;
use eqopt::graph::json;
use eqopt::optimize::{OptimizeOptions, optimize};
use eqopt::rules::RuleSet;

#[test]
fn examples_get_faster_on_cpu_and_h100_and_compute_the_same() {
    let rules = RuleSet::defaults().unwrap();
    let examples = corpus("examples", "json");
    assert!(examples.len() >= 4, "examples/ should hold the four reference models");
    for path in examples {
        let g = json::load(&path).unwrap();
        let mut checked = false;
        for target in ["cpu", "h100"] {
            let opts = OptimizeOptions::new(HardwareProfile::load(target).unwrap());
            let (opt, report) = optimize(&g, &rules, &opts).unwrap();
            assert!(
                report.after.latency_s < report.before.latency_s,
                "{} on {target}: {} s -> {} s",
                rel(&path),
                report.before.latency_s,
                report.after.latency_s
            );
            assert!(
                report.after.kernels < report.before.kernels,
                "{} on {target}: no kernel was removed",
                rel(&path)
            );
            if !checked {
                assert_same_function(&g, &opt);
                checked = true;
            }
        }
    }
}

#[test]
fn optimization_is_deterministic() {
    let rules = RuleSet::defaults().unwrap();
    let opts = OptimizeOptions::new(HardwareProfile::load("h100").unwrap());
    for name in ["resnet_blocks.json", "bert_layer.json"] {
        let g = json::load(&common::root().join("examples").join(name)).unwrap();
        let a = json::to_json(&optimize(&g, &rules, &opts).unwrap().0, None);
        let b = json::to_json(&optimize(&g, &rules, &opts).unwrap().0, None);
        assert_eq!(eqopt::jsonfmt::to_string(&a), eqopt::jsonfmt::to_string(&b), "{name}");
    }
}

/// A residual chain `x = x + relu(x)`, `blocks` deep, as graph.json text.
fn residual_chain(blocks: usize) -> String {
    let mut nodes = Vec::new();
    let mut prev = "x".to_string();
    for i in 0..blocks {
        nodes.push(format!(r#"{{"name": "r{i}", "op": "Relu", "inputs": ["{prev}"]}}"#));
        nodes.push(format!(r#"{{"name": "a{i}", "op": "Add", "inputs": ["{prev}", "r{i}"]}}"#));
        prev = format!("a{i}");
    }
    format!(
        r#"{{"format": "eqopt-graph", "version": 1, "name": "chain", "inputs": [{{"name": "x", "shape": [16, 64], "dtype": "f32"}}],
           "outputs": ["{prev}"], "nodes": [{}]}}"#,
        nodes.join(",")
    )
}

/// Deep graphs are where tree-cost extraction overflows and slows down: a
/// DAG-aware extractor must still find a fused kernel per block at most, each
/// reading one tensor (`add(x0, relu(x0))`, or two blocks fused when the
/// recomputation is cheaper than the launch).
#[test]
fn deep_residual_chain_fuses_each_block_into_one_kernel() {
    let blocks = 300;
    let g = json::parse(&residual_chain(blocks), "chain.json".as_ref()).unwrap();
    let opts = OptimizeOptions::new(HardwareProfile::load("cpu").unwrap());
    let (opt, report) = optimize(&g, &RuleSet::defaults().unwrap(), &opts).unwrap();
    assert_eq!(report.before.kernels, 2 * blocks);
    assert!(
        report.after.kernels <= blocks,
        "{} kernels for {blocks} blocks",
        report.after.kernels
    );
    assert!(opt.nodes.iter().all(|n| n.op.name() == "FusedElementwise" && n.inputs.len() == 1));
    assert_same_function(&g, &opt);
}

#[test]
fn bert_layer_gets_merged_qkv_and_one_fused_attention_kernel() {
    use eqopt::graph::op::Op;
    let g = eqopt::graph::json::load(&common::root().join("examples/bert_layer.json")).unwrap();
    for target in ["cpu", "h100"] {
        let opts = OptimizeOptions::new(HardwareProfile::load(target).unwrap());
        let (opt, _) = optimize(&g, &RuleSet::defaults().unwrap(), &opts).unwrap();
        let fused: Vec<&eqopt::graph::Node> = opt.nodes.iter().filter(|n| matches!(n.op, Op::FusedAttention { .. })).collect();
        assert_eq!(fused.len(), 1, "{target}: fused attention kernels");
        // Q, K and V come from one merged projection (weights and biases concatenated).
        let merged = opt
            .nodes
            .iter()
            .filter(|n| n.op.name() == "FusedMatMul" && n.inputs[1].contains("attn.key.weight+attn.query.weight+attn.value.weight"))
            .count();
        assert_eq!(merged, 1, "{target}: merged QKV projections");
        // No score matrix remains: no softmax outside the fused kernel.
        assert!(!opt.nodes.iter().any(|n| matches!(n.op, Op::Softmax { .. })), "{target}");
    }
}
