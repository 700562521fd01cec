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
