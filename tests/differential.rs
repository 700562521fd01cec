//! Differential testing of the optimizer against the reference interpreter.
//!
//! Every `examples/*.json` and `tests/graphs/*.json` is optimized for every
//! built-in target (`cpu`, `h100`, `a100`); the original and the optimized graph
//! are evaluated on the same random inputs (two seeds) and every output is
//! compared with a *normwise* relative error:
//!
//! ```text
//! err(output) = max_i |opt_i − orig_i| / max(max_i |orig_i|, 1e-30)
//! ```
//!
//! (an elementwise relative error is meaningless where the reference is near
//! zero: a ReLU output is full of exact zeros, a residual sum can cancel). The
//! default rules are exact up to f32 rounding and reassociation, so the bound is
//! `1e-5`, a few dozen f32 ulps of the largest output value.
//!
//! Run with `--nocapture` to see the worst error per graph and target.

mod common;

use common::{corpus, normwise_rel_error, rel, widen_inputs, widen_to_f64};
use eqopt::cost::{BUILTIN_TARGETS, HardwareProfile};
use eqopt::dtype::{DType, TensorType};
use eqopt::eval::{random_inputs, run};
use eqopt::graph::json;
use eqopt::graph::tensor::Tensor;
use eqopt::optimize::{OptimizeOptions, optimize};
use eqopt::rules::RuleSet;
use std::collections::BTreeMap;
use std::time::Instant;

/// Bound on the normwise relative error of every output.
const TOLERANCE: f64 = 1e-5;

/// Seeds of the random inputs.
const SEEDS: [u64; 2] = [7, 1234];

/// [`normwise_rel_error`], infinite when the dtypes differ too.
fn output_error(got: &Tensor, want: &Tensor) -> f64 {
    if got.ty.dtype != want.ty.dtype {
        return f64::INFINITY;
    }
    normwise_rel_error(got, want)
}

/// Worst normwise error of `got` against `want` over the outputs, with the output's name.
fn worst_error(got: &BTreeMap<String, Tensor>, want: &BTreeMap<String, Tensor>, err: fn(&Tensor, &Tensor) -> f64) -> (f64, String) {
    let mut worst = (0.0f64, String::new());
    for (name, w) in want {
        let e = got.get(name).map_or(f64::INFINITY, |g| err(g, w));
        if e > worst.0 || worst.1.is_empty() {
            worst = (e, name.clone());
        }
    }
    worst
}

/// Results of the original graph on one seed's inputs.
struct Reference {
    inputs: BTreeMap<String, Tensor>,
    /// The original graph's outputs.
    want: BTreeMap<String, Tensor>,
    /// The f64-widened graph's outputs, if the graph could be widened.
    exact: Option<BTreeMap<String, Tensor>>,
}

#[test]
fn optimized_graphs_compute_the_same_function_on_every_target() {
    let start = Instant::now();
    let rules = RuleSet::defaults().unwrap();
    let targets: Vec<HardwareProfile> = BUILTIN_TARGETS
        .iter()
        .map(|(name, _)| HardwareProfile::load(name).unwrap())
        .collect();
    assert!(targets.len() >= 3, "expected the built-in targets cpu, h100, a100");
    let mut paths = corpus("examples", "json");
    paths.extend(corpus("tests/graphs", "json"));
    let mut failures = Vec::new();
    println!(
        "normwise relative errors (max over {} seeds and the outputs): opt vs orig (checked < {TOLERANCE:e}); \
         orig vs f64 and opt vs f64 (for information)",
        SEEDS.len()
    );
    println!(
        "{:<44} {:<6} {:>11} {:>11} {:>11}  worst output",
        "graph", "target", "opt/orig", "orig/f64", "opt/f64"
    );
    for path in &paths {
        let graph = json::load(path).unwrap();
        let wide = widen_to_f64(&graph);
        let reference: Vec<Reference> = SEEDS
            .iter()
            .map(|&seed| {
                let inputs = random_inputs(&graph, seed);
                let want = run(&graph, &inputs).unwrap_or_else(|e| panic!("{}: original fails to evaluate: {e}", rel(path)));
                let exact = wide.as_ref().and_then(|w| run(w, &widen_inputs(&inputs)).ok());
                Reference { inputs, want, exact }
            })
            .collect();
        for target in &targets {
            let opts = OptimizeOptions::new(target.clone());
            let (opt, _) = optimize(&graph, &rules, &opts).unwrap_or_else(|e| panic!("{} on {}: {e}", rel(path), target.name));
            let mut worst = (0.0f64, String::new());
            let (mut orig_exact, mut opt_exact) = (f64::NAN, f64::NAN);
            for r in &reference {
                let got = match run(&opt, &r.inputs) {
                    Ok(got) => got,
                    Err(e) => {
                        failures.push(format!(
                            "{} on {}: the optimized graph fails to evaluate: {e}",
                            rel(path),
                            target.name
                        ));
                        worst = (f64::INFINITY, "<eval error>".into());
                        break;
                    }
                };
                if got.keys().ne(r.want.keys()) {
                    failures.push(format!(
                        "{} on {}: outputs {:?} instead of {:?}",
                        rel(path),
                        target.name,
                        got.keys().collect::<Vec<_>>(),
                        r.want.keys().collect::<Vec<_>>()
                    ));
                    worst = (f64::INFINITY, "<outputs differ>".into());
                    break;
                }
                let w = worst_error(&got, &r.want, output_error);
                if w.0 > worst.0 || worst.1.is_empty() {
                    worst = w;
                }
                if let Some(exact) = &r.exact {
                    orig_exact = orig_exact.max(worst_error(&r.want, exact, normwise_rel_error).0);
                    opt_exact = opt_exact.max(worst_error(&got, exact, normwise_rel_error).0);
                }
            }
            println!(
                "{:<44} {:<6} {:>11.3e} {:>11.3e} {:>11.3e}  {}",
                rel(path),
                target.name,
                worst.0,
                orig_exact,
                opt_exact,
                worst.1
            );
            if worst.0 >= TOLERANCE {
                failures.push(format!(
                    "{} on {}: output {} has normwise relative error {:e} (bound {TOLERANCE:e}); \
                     against an f64 evaluation the original is off by {orig_exact:e}, the optimized graph by {opt_exact:e}",
                    rel(path),
                    target.name,
                    worst.1,
                    worst.0
                ));
            }
        }
    }
    println!(
        "differential: {} graphs x {} targets in {:.1?}",
        paths.len(),
        targets.len(),
        start.elapsed()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn normwise_error_definition() {
    let t = |v: &[f64]| Tensor::from_f64(TensorType::new(vec![v.len()], DType::F64), v);
    // Relative to the largest reference magnitude, not per element.
    assert_eq!(normwise_rel_error(&t(&[1e-9, 4.0]), &t(&[0.0, 4.0])), 1e-9 / 4.0);
    assert_eq!(normwise_rel_error(&t(&[3.0, -2.0]), &t(&[2.0, -2.0])), 0.5);
    assert_eq!(normwise_rel_error(&t(&[f64::NAN, 1.0]), &t(&[f64::NAN, 1.0])), 0.0);
    assert_eq!(normwise_rel_error(&t(&[f64::NAN, 1.0]), &t(&[0.0, 1.0])), f64::INFINITY);
    assert_eq!(normwise_rel_error(&t(&[1.0]), &t(&[1.0, 2.0])), f64::INFINITY);
    assert_eq!(normwise_rel_error(&t(&[0.0, 0.0]), &t(&[0.0, 0.0])), 0.0);
}
