//! Property test: on random well-typed graphs, `optimize` preserves the function.
//!
//! A graph is generated from a list of 1–12 *steps*; each step is an op kind and a
//! vector of small random numbers that pick existing tensors of compatible shapes
//! and the op's attributes (see [`Builder::step`]). Steps cover the op set and are
//! biased towards the patterns the default rules rewrite: elementwise chains,
//! matmul/conv epilogues, conv + batch norm, sibling matmuls with constant
//! weights, matmul chains, transpose pairs, identities with scalar 0/1 constants.
//! Shapes are small (dims 1–6) so that evaluation is cheap.
//!
//! The optimized graph is evaluated against the original on the same random
//! inputs; every output must agree to a normwise relative error
//! `max |opt − orig| / max |orig|` below 1e-5. On failure, the shrunk graph is
//! printed as graph.json, ready to be saved as `tests/graphs/regress_<n>.json`.
//!
//! The runner is deterministic (ChaCha with a fixed seed, no failure
//! persistence). `PROPTEST_CASES=<n>` changes the number of cases and
//! `EQOPT_PROPTEST_SEED=<u64>` the seed, for longer bug hunts.

#[path = "../common/mod.rs"]
mod common;
mod graphgen;

use common::{normwise_rel_error, widen_inputs, widen_to_f64};
use eqopt::cost::HardwareProfile;
use eqopt::eval::{random_inputs, run};
use eqopt::graph::tensor::Tensor;
use eqopt::graph::{Graph, json};
use eqopt::optimize::{OptimizeOptions, optimize};
use eqopt::rules::RuleSet;
use eqopt::saturate::Limits;
use graphgen::{KINDS, PICKS, build};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

pub const TARGETS: [&str; 3] = ["cpu", "h100", "a100"];
/// Extractors exercised (the default first).
pub const EXTRACTORS: [&str; 2] = ["eqopt", "greedy"];

/// A generated case: first input shape, steps, target and extractor index
/// (`target + TARGETS.len() * extractor`), optional extra output.
type Case = (Vec<usize>, Vec<(u8, Vec<u32>)>, usize, Option<usize>);

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(1usize..=6, 1..=4),
        prop::collection::vec((0..KINDS, prop::collection::vec(0u32..1024, PICKS)), 1..=12),
        0..TARGETS.len() * EXTRACTORS.len(),
        prop::option::weighted(0.3, 0usize..64),
    )
}

/// Bound on the normwise relative error of every output.
const TOLERANCE: f64 = 1e-5;
/// An ill-conditioned output may be this many times further from the f64
/// result than the original's f32 result is (see [`check`]).
const ILL_FACTOR: f64 = 16.0;
/// Default number of cases.
const CASES: u32 = 4096;
/// The largest finite magnitude among the inputs and the values of all nodes of `g`.
fn value_scale(g: &Graph, inputs: &BTreeMap<String, Tensor>) -> f64 {
    let all = g.nodes.iter().map(|n| n.name.clone()).collect();
    let every = Graph::new(g.name.clone(), g.inputs.clone(), g.constants.clone(), g.nodes.clone(), all).expect("same graph");
    let values = run(&every, inputs).expect("the original evaluates");
    values
        .values()
        .chain(inputs.values())
        .flat_map(|t| t.to_f64())
        .filter(|v| v.is_finite())
        .fold(0.0, |m, v| m.max(v.abs()))
}

/// Largest finite magnitude of a tensor.
fn max_abs(t: &Tensor) -> f64 {
    t.to_f64().into_iter().filter(|v| v.is_finite()).fold(0.0, |m, v| m.max(v.abs()))
}

/// What one case did.
struct Outcome {
    /// Worst normwise error of the optimized graph against the original.
    worst: f64,
    /// For an ill-conditioned case accepted through the f64 reference: the
    /// errors (optimized vs original, original vs f64, optimized vs f64).
    ill: Option<[f64; 3]>,
    /// For each all-zero output accepted by magnitude: the optimized residue
    /// relative to the graph's largest value.
    cancellations: Vec<f64>,
    /// Rules that fired.
    rules: BTreeSet<String>,
    /// Ops of the optimized graph.
    ops: BTreeSet<&'static str>,
}

/// The optimized graph of `g` computes what `g` computes.
///
/// Each output must be within [`TOLERANCE`] of the original's (normwise). An
/// output beyond that is judged against an f64 evaluation of the original graph:
/// if the original's own f32 result is far from it too, the graph amplifies
/// rounding (e.g. a LayerNorm over nearly equal values), and the optimized
/// result is accepted when it is at most [`ILL_FACTOR`] times further from the
/// f64 result than the original is. An output that is exactly 0 in the original
/// and in f64 (a total cancellation such as `x − identity(x)`: the optimized graph
/// may recompute one side in a fused kernel whose intermediates are not rounded
/// to f32, leaving a residue of about 1e-8·|x|) has no relative error; it is
/// accepted when its magnitude is below [`TOLERANCE`] times the largest value
/// anywhere in the original graph. Such cases are counted and reported.
fn check(g: &Graph, which: usize, rules: &RuleSet) -> Result<Outcome, String> {
    let (target, extractor) = (TARGETS[which % TARGETS.len()], EXTRACTORS[which / TARGETS.len()]);
    let limits = Limits::default().with_iter_limit(8).with_node_limit(20_000);
    let opts = OptimizeOptions::new(HardwareProfile::load(target).unwrap())
        .with_limits(limits)
        .with_extractor(extractor);
    let target = format!("{target} ({extractor} extractor)");
    let (opt, report) = optimize(g, rules, &opts).map_err(|e| format!("optimize failed on {target}: {e}"))?;
    let opt_text = || eqopt::jsonfmt::to_string(&json::to_json(&opt, None));
    let mut out = Outcome {
        worst: 0.0,
        ill: None,
        cancellations: Vec::new(),
        rules: report.per_iteration.iter().flat_map(|it| it.applied.keys().cloned()).collect(),
        ops: opt.nodes.iter().map(|n| n.op.name()).collect(),
    };
    for seed in [7, 1234] {
        let inputs = random_inputs(g, seed);
        let want = run(g, &inputs).map_err(|e| format!("original fails to evaluate: {e}"))?;
        let got = run(&opt, &inputs).map_err(|e| format!("optimized graph (for {target}) fails to evaluate: {e}\n{}", opt_text()))?;
        if got.keys().ne(want.keys()) {
            return Err(format!(
                "optimized graph (for {target}) has outputs {:?}, not {:?}",
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>()
            ));
        }
        let mut exact: Option<BTreeMap<String, Tensor>> = None;
        for (name, w) in &want {
            let (g_out, err) = (&got[name], normwise_rel_error(&got[name], w));
            if g_out.ty.dtype != w.ty.dtype {
                return Err(format!("on {target}: output {name} is {}, not {}\n{}", g_out.ty, w.ty, opt_text()));
            }
            if err < TOLERANCE {
                out.worst = out.worst.max(err);
                continue;
            }
            if exact.is_none() {
                let wide = widen_to_f64(g).ok_or("the graph cannot be widened to f64")?;
                exact = Some(run(&wide, &widen_inputs(&inputs)).map_err(|e| format!("f64 graph fails to evaluate: {e}"))?);
            }
            let e = &exact.as_ref().unwrap()[name];
            let (e_orig, e_opt) = (normwise_rel_error(w, e), normwise_rel_error(g_out, e));
            if max_abs(w) == 0.0 && max_abs(e) == 0.0 {
                let scale = value_scale(g, &inputs);
                let residue = max_abs(g_out) / scale.max(1e-30);
                if residue < TOLERANCE {
                    out.cancellations.push(residue);
                    continue;
                }
                return Err(format!(
                    "on {target}, seed {seed}: output {name} is 0 but the optimized graph gives values up to {:e} \
                     (the graph's largest value is {scale:e})\noptimized graph:\n{}",
                    max_abs(g_out),
                    opt_text()
                ));
            }
            if e_opt > TOLERANCE.max(ILL_FACTOR * e_orig) {
                return Err(format!(
                    "on {target}, seed {seed}: output {name} has normwise relative error {err:e} \
                     (against an f64 evaluation: original {e_orig:e}, optimized {e_opt:e})\noptimized graph:\n{}",
                    opt_text()
                ));
            }
            out.worst = out.worst.max(err);
            if out.ill.is_none_or(|[w, ..]| err > w) {
                out.ill = Some([err, e_orig, e_opt]);
            }
        }
    }
    Ok(out)
}

fn runner() -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(CASES);
    let config = Config {
        cases,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        max_shrink_iters: 4096,
        ..Config::default()
    };
    let rng = match std::env::var("EQOPT_PROPTEST_SEED").ok().and_then(|s| s.parse::<u64>().ok()) {
        Some(seed) => {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&seed.to_le_bytes());
            TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
        }
        None => TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    };
    TestRunner::new_with_rng(config, rng)
}

/// Counts per name.
#[derive(Default)]
struct Tally(BTreeMap<String, usize>);

impl Tally {
    fn add<S: ToString>(&mut self, names: impl IntoIterator<Item = S>) {
        for n in names {
            *self.0.entry(n.to_string()).or_default() += 1;
        }
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k} {v}")).collect();
        f.write_str(&parts.join(", "))
    }
}

#[test]
fn optimize_preserves_the_function_of_random_graphs() {
    let start = Instant::now();
    let rules = RuleSet::defaults().unwrap();
    let mut runner = runner();
    let stats = std::cell::RefCell::new((0.0f64, Tally::default(), Tally::default(), Tally::default()));
    let ill: std::cell::RefCell<Vec<[f64; 3]>> = std::cell::RefCell::new(Vec::new());
    let cancel: std::cell::RefCell<Vec<f64>> = std::cell::RefCell::new(Vec::new());
    let result = runner.run(&case_strategy(), |case| {
        let g = build(&case);
        let out = check(&g, case.2, &rules).map_err(TestCaseError::fail)?;
        let mut st = stats.borrow_mut();
        st.0 = st.0.max(out.worst);
        st.1.add(g.nodes.iter().map(|n| n.op.name()).collect::<BTreeSet<_>>());
        st.2.add(out.rules);
        st.3.add(out.ops);
        ill.borrow_mut().extend(out.ill);
        cancel.borrow_mut().extend(out.cancellations);
        Ok(())
    });
    match result {
        Ok(()) => {
            let st = stats.borrow();
            println!("proptest: {} cases in {:.1?}", runner.config().cases, start.elapsed());
            println!("worst normwise relative error (all-zero outputs excepted): {:.3e}", st.0);
            let ill = ill.borrow();
            println!(
                "ill-conditioned cases (error >= {TOLERANCE:e}, accepted against f64): {}{}",
                ill.len(),
                ill.iter()
                    .map(|[a, b, c]| format!("\n  opt vs orig {a:.3e}, orig vs f64 {b:.3e}, opt vs f64 {c:.3e}"))
                    .collect::<String>()
            );
            let cancel = cancel.borrow();
            println!(
                "all-zero outputs with a nonzero optimized residue (accepted by magnitude): {}, largest residue {:.3e} of the graph's largest value",
                cancel.len(),
                cancel.iter().fold(0.0f64, |m, &v| m.max(v))
            );
            println!("cases per generated op: {}", st.1);
            println!("cases per applied rule: {}", st.2);
            println!("cases per op in the optimized graph: {}", st.3);
        }
        Err(TestError::Fail(reason, case)) => {
            let g = build(&case);
            panic!(
                "optimize changed the function of a random graph: {reason}\n\
                 minimized graph (save as tests/graphs/regress_<n>.json):\n{}",
                eqopt::jsonfmt::to_string(&json::to_json(&g, None))
            );
        }
        Err(e) => panic!("{e}"),
    }
}
