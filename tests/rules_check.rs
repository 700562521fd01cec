//! `eqopt rules check` on the default rules (all must pass) and on a planted
//! wrong rule (must fail with a counterexample).

use eqopt::rules::RuleSet;
use eqopt::rules::check::{CheckOptions, Verdict, check_rules};

#[test]
fn every_default_rule_passes_the_soundness_check() {
    let set = RuleSet::defaults().unwrap();
    let results = check_rules(&set, &CheckOptions::default()).unwrap();
    let report: Vec<String> = results.iter().map(|r| r.to_string()).collect();
    println!("{}", report.join("\n"));
    assert_eq!(results.len(), set.rules().count());
    for r in &results {
        assert!(matches!(r.verdict, Verdict::Passed { .. }), "{r}");
    }
}

/// The approximate families (`quant`, `lowrank`, `prune`, `activations`): each
/// rule fires on a template and stays within its declared error.
#[test]
fn every_approximate_rule_holds_its_declared_error() {
    let set = RuleSet::empty()
        .with_approx_families()
        .unwrap()
        .for_activations(eqopt::rules::ActivationPrecision::Bf16)
        .unwrap();
    assert!(set.rules().count() >= 8 && set.rules().all(|r| r.approx));
    let results = check_rules(&set, &CheckOptions::default()).unwrap();
    assert_eq!(results.len(), set.rules().count());
    for r in &results {
        assert!(matches!(r.verdict, Verdict::Passed { .. }), "{r}");
    }
}

fn check_one(text: &str) -> eqopt::rules::check::RuleCheck {
    let mut set = RuleSet::empty();
    set.add_family("planted", "planted.rules", text).unwrap();
    let mut results = check_rules(&set, &CheckOptions::default()).unwrap();
    assert_eq!(results.len(), 1);
    results.remove(0)
}

/// Wrong rules of several kinds are caught, each with a readable counterexample.
#[test]
fn planted_wrong_rules_fail_with_counterexamples() {
    let wrong = [
        // Wrong values, right types.
        "rule planted/sub-commutes (sub ?a ?b) => (sub ?b ?a) if (same-type ?a ?b)",
        // (AB)^T is B^T A^T, not A^T B^T (types agree only for square matrices).
        "rule planted/transpose-matmul-order (transpose ?p (matmul ?a ?b)) => (matmul (transpose ?p ?a) (transpose ?p ?b)) if (swaps-last-two ?p) (rank ?a 2) (rank ?b 2)",
        // A transpose does not commute with a reduction over a fixed axis.
        "rule planted/softmax-axis (transpose ?p (softmax ?a ?x)) => (softmax ?a (transpose ?p ?x)) if (rank ?x 2)",
        // Wrong types: relu(x) is not the transpose of x.
        "rule planted/relu-is-transpose (relu ?x) => (transpose [1,0] ?x) if (rank ?x 2)",
    ];
    for text in wrong {
        let r = check_one(text);
        let Verdict::Failed(c) = &r.verdict else {
            panic!("{text}: expected a failure, got {r}")
        };
        let shown = r.to_string();
        assert!(shown.contains("FAILED") && shown.contains("counterexample (seed"), "{shown}");
        assert!(c.bindings.contains("?x") || c.bindings.contains("?a"), "{shown}");
        println!("{shown}");
    }
}

/// A rule whose conditions the generator can never satisfy is reported unchecked, not passed.
#[test]
fn unsatisfiable_rules_are_unchecked_not_passed() {
    let r = check_one("rule planted/never (relu ?x) => ?x if (rank ?x 2) (rank ?x 3)");
    assert!(matches!(r.verdict, Verdict::Unchecked { .. }), "{r}");
}

/// The command: exit 0 on the default rules, 1 with a counterexample on a planted wrong rule.
#[test]
fn rules_check_command_reports_and_exits_non_zero_on_failure() {
    let bin = env!("CARGO_BIN_EXE_eqopt");
    let ok = std::process::Command::new(bin)
        .args(["rules", "check", "--instances", "4"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{text}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(text.contains("0 failed, 0 unchecked"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("algebra.rules"),
        "rule algebra/sub-commutes\n  (sub ?a ?b) => (sub ?b ?a)\n  if (same-type ?a ?b)\n",
    )
    .unwrap();
    let bad = std::process::Command::new(bin)
        .args(["rules", "check", "--rules"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&bad.stdout);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{text}{err}");
    assert!(
        text.contains("FAILED     algebra/sub-commutes") && text.contains("counterexample (seed"),
        "{text}"
    );
    assert!(err.contains("1 failed (algebra/sub-commutes)"), "{err}");
}
