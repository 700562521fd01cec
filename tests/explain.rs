//! `optimize --explain`: the result's nodes traced to the rules that built them.

mod common;

use eqopt::cost::HardwareProfile;
use eqopt::optimize::{OptimizeOptions, optimize};
use eqopt::rules::RuleSet;

#[test]
fn explain_names_the_rules_that_built_the_result() {
    let g = eqopt::graph::json::load(&common::root().join("tests/graphs/fusion_sibling_convs.json")).unwrap();
    let mut opts = OptimizeOptions::new(HardwareProfile::load("cpu").unwrap());
    opts.explain = true;
    let (opt, report) = optimize(&g, &RuleSet::defaults().unwrap(), &opts).unwrap();
    let e = report.explain.expect("explain was asked for");
    let built = |rule: &str| e.used.iter().find(|u| u.rule == rule).map(|u| u.nodes.clone()).unwrap_or_default();
    // The merged weights come from the merge rule (the merged bias is folded into the
    // epilogue's reshaped bias constant); the fused conv from the epilogue rule.
    assert_eq!(built("fusion/merge-sibling-convs"), vec!["w_a+w_b+w_c"]);
    let fused: Vec<String> = opt
        .nodes
        .iter()
        .filter(|n| n.op.name() == "FusedConv")
        .map(|n| n.name.clone())
        .collect();
    assert_eq!(fused.len(), 1);
    assert!(built("fusion/conv-epilogue").contains(&fused[0]));
    // Untouched nodes are from the input; every node and constant is accounted for once.
    assert!(built("(input)").contains(&"y".to_string()));
    let total: usize = e.used.iter().map(|u| u.nodes.len()).sum();
    assert_eq!(total, opt.nodes.len() + opt.constants.len());
    // Without the flag nothing is traced.
    opts.explain = false;
    assert!(optimize(&g, &RuleSet::defaults().unwrap(), &opts).unwrap().1.explain.is_none());
}

#[test]
fn explain_flag_prints_the_listing_and_the_report_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.json");
    let report = dir.path().join("r.json");
    let text = common::bin::ok(&common::bin::eqopt(&[
        "optimize",
        "tests/graphs/fusion_sibling_convs.json",
        "-o",
        common::bin::s(&out),
        "--report",
        common::bin::s(&report),
        "--explain",
    ]));
    assert!(
        text.contains("rules in the result") && text.contains("fusion/merge-sibling-convs"),
        "{text}"
    );
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    assert!(r["explain"]["used"].as_array().is_some_and(|u| !u.is_empty()));
}
