//! `eqopt rules check`: every rule checked by running it.
//!
//! For each rule, random instances of its left-hand side are generated
//! ([`super::instantiate`]), the rule is applied to each in an e-graph of its
//! own, the rewritten term is extracted (preferring the e-nodes the rule added),
//! and both terms are evaluated by the reference interpreter on the same data.
//! A rule passes when every instance agrees within the dtype's tolerance; it is
//! *unchecked* when no instance made it fire, and *failed* with a counterexample
//! otherwise. Built-in rules, which have no pattern, are checked on template
//! terms chosen to make them fire.

use super::builtins::{FuseKind, WholeRule};
use super::instantiate::{Instance, Instantiator, VarValue};
use super::{Lhs, Rule, RuleSet, build_rewrite};
use crate::analysis::TensorAnalysis;
use crate::error::Result;
use crate::eval::{compare, run};
use crate::extraction::extract_graph_with;
use crate::graph::tensor::{ConstInit, Tensor};
use crate::graph::{Constant, Graph, Input, Node};
use crate::lang::{Attr, TNode, TOp, decode_op};
use crate::saturate::{Saturation, StopReason, graph_to_egraph};
use egg::{ENodeOrVar, Id, Pattern, PatternAst, Rewrite, Runner, Var};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Instances a rule must pass by default.
pub const DEFAULT_INSTANCES: usize = 12;
/// Attempts to find instances before a rule is reported unchecked.
pub const DEFAULT_ATTEMPTS: usize = 3_000;
/// Absolute tolerance for f32 results.
pub const F32_ATOL: f64 = 1e-5;
/// Relative tolerance for f32 results, against the largest magnitude of the expected output.
pub const F32_RTOL: f64 = 1e-5;

/// Options of [`check_rules`] (builder style).
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Instances each rule must pass.
    pub instances: usize,
    /// Attempts before giving up on a rule.
    pub attempts: usize,
    /// Base seed; instance `i` of a rule uses a seed derived from it, the rule name and `i`.
    pub seed: u64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            instances: DEFAULT_INSTANCES,
            attempts: DEFAULT_ATTEMPTS,
            seed: 0,
        }
    }
}

impl CheckOptions {
    /// Sets the number of instances per rule.
    pub fn with_instances(mut self, n: usize) -> Self {
        self.instances = n;
        self
    }
    /// Sets the base seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// An instance on which a rule's two sides disagree.
#[derive(Clone, Debug, PartialEq)]
pub struct Counterexample {
    /// Seed of the instance.
    pub seed: u64,
    /// The variables, `?x = f32[2, 3]` style.
    pub bindings: String,
    /// Largest absolute difference (infinite when the rewritten term failed to evaluate or to type).
    pub max_abs: f64,
    /// Largest difference relative to the expected output's largest magnitude.
    pub max_rel: f64,
    /// What differed.
    pub detail: String,
}

/// The outcome for one rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Every instance agreed.
    Passed {
        /// Instances checked.
        instances: usize,
    },
    /// Some instance disagreed.
    Failed(Counterexample),
    /// No instance could be checked.
    Unchecked {
        /// Why.
        reason: String,
    },
}

/// The check of one rule.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleCheck {
    /// Rule name.
    pub rule: String,
    /// Outcome.
    pub verdict: Verdict,
}

impl std::fmt::Display for RuleCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.verdict {
            Verdict::Passed { instances } => write!(f, "passed     {} ({instances} instances)", self.rule),
            Verdict::Unchecked { reason } => write!(f, "UNCHECKED  {}: {reason}", self.rule),
            Verdict::Failed(c) => write!(
                f,
                "FAILED     {}: {}\n           counterexample (seed {}): {}\n           max abs error {:.3e}, max rel error {:.3e}",
                self.rule, c.detail, c.seed, c.bindings, c.max_abs, c.max_rel
            ),
        }
    }
}

/// Template left-hand sides for the built-in fusion rules.
fn builtin_templates(rule: &Rule) -> Vec<Pattern<TNode>> {
    let texts: &[&str] = match rule.lhs {
        Lhs::Builtin(WholeRule::Fuse(FuseKind::Elementwise)) => &[
            "(relu (add ?a ?b))",
            "(sigmoid (mul (tanh ?a) ?b))",
            "(sub (exp (neg ?a)) (abs ?a))",
            "(max (gelu ?a) (min ?a ?b))",
        ],
        Lhs::Builtin(WholeRule::Fuse(FuseKind::Gemm)) => {
            &["(relu (add (matmul ?a ?b) ?c))", "(mul (matmul ?a ?b) ?c)", "(tanh (matmul ?a ?b))"]
        }
        Lhs::Builtin(WholeRule::Fuse(FuseKind::Conv)) => {
            &["(relu (conv ?p ?x ?w ?b))", "(add (conv ?p ?x ?w) ?r)", "(sigmoid (conv ?p ?x ?w))"]
        }
        _ => &[],
    };
    texts.iter().map(|t| t.parse().expect("templates parse")).collect()
}

fn var_name(v: Var) -> String {
    v.to_string().trim_start_matches('?').to_string()
}

/// Builds the graph of the left-hand side patterns under `inst`; one output per pattern.
fn lhs_graph(asts: &[&PatternAst<TNode>], inst: &Instance) -> Option<Graph> {
    let mut inputs = Vec::new();
    let mut constants = Vec::new();
    for (v, val) in &inst.vars {
        if let VarValue::Tensor { value, is_const } = val {
            if *is_const {
                constants.push(Constant {
                    name: var_name(*v),
                    ty: value.ty.clone(),
                    init: ConstInit::Data(Arc::new(value.clone())),
                });
            } else {
                inputs.push(Input {
                    name: var_name(*v),
                    ty: value.ty.clone(),
                });
            }
        }
    }
    let mut nodes = Vec::new();
    let mut outputs = Vec::new();
    for (p, ast) in asts.iter().enumerate() {
        let items = ast.as_ref();
        let name_of = |i: usize| match &items[i] {
            ENodeOrVar::Var(v) => var_name(*v),
            ENodeOrVar::ENode(_) => format!("p{p}_n{i}"),
        };
        for (i, item) in items.iter().enumerate() {
            let ENodeOrVar::ENode(n) = item else { continue };
            if matches!(n.op, TOp::Attr(_)) {
                continue;
            }
            let na = n.op.attr_count().min(n.children.len());
            let attrs: Option<Vec<Attr>> = n.children[..na]
                .iter()
                .map(|&c| match &items[usize::from(c)] {
                    ENodeOrVar::ENode(TNode { op: TOp::Attr(a), .. }) => Some(a.clone()),
                    ENodeOrVar::Var(v) => match inst.vars.get(v) {
                        Some(VarValue::Attr(a)) => Some(a.clone()),
                        _ => None,
                    },
                    ENodeOrVar::ENode(_) => None,
                })
                .collect();
            let attrs = attrs?;
            let refs: Vec<&Attr> = attrs.iter().collect();
            let op = decode_op(&n.op, &refs)?;
            let ins = n.children[na..].iter().map(|&c| name_of(usize::from(c))).collect();
            nodes.push(Node {
                name: name_of(i),
                op,
                inputs: ins,
                ty: crate::dtype::TensorType::new(vec![], crate::dtype::DType::F32),
            });
        }
        outputs.push(name_of(items.len() - 1));
    }
    Graph::new("lhs", inputs, constants, nodes, outputs).ok()
}

fn canon(eg: &crate::analysis::TEGraph, n: &TNode) -> TNode {
    TNode {
        op: n.op.clone(),
        children: n.children.iter().map(|&c| eg.find(c)).collect(),
    }
}

enum Trial {
    /// The rule did not fire on this instance.
    NotApplicable,
    /// Both sides agree.
    Agree,
    /// They disagree.
    Disagree(Counterexample),
}

fn bindings(inst: &Instance) -> String {
    inst.vars
        .iter()
        .map(|(v, val)| format!("{v} = {val}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn trial(rule: &Rule, rewrite: &Rewrite<TNode, TensorAnalysis>, asts: &[&PatternAst<TNode>], inst: &Instance, seed: u64) -> Result<Trial> {
    let Some(lhs) = lhs_graph(asts, inst) else {
        return Ok(Trial::NotApplicable);
    };
    let (egraph, classes) = graph_to_egraph(&lhs);
    let original: BTreeSet<TNode> = egraph.classes().flat_map(|c| c.nodes.iter().map(|n| canon(&egraph, n))).collect();
    let roots: Vec<Id> = lhs.outputs.iter().map(|o| classes[o]).collect();
    let iterations = if matches!(rule.lhs, Lhs::Builtin(_)) { 3 } else { 1 };
    let runner = Runner::<TNode, TensorAnalysis, ()>::new(TensorAnalysis::default())
        .with_egraph(egraph)
        .with_iter_limit(iterations)
        .with_node_limit(20_000)
        .with_time_limit(Duration::from_secs(5))
        .run(std::slice::from_ref(rewrite));
    let eg = runner.egraph;
    let fail = |detail: String| {
        Trial::Disagree(Counterexample {
            seed,
            bindings: bindings(inst),
            max_abs: f64::INFINITY,
            max_rel: f64::INFINITY,
            detail,
        })
    };
    if let Some(c) = eg.analysis.conflicts.first() {
        return Ok(fail(format!(
            "the rewritten term has {} where the matched term has type {}",
            c.merged, c.kept
        )));
    }
    // Each class of the left-hand side graph holds one e-node; the rule fired on a
    // root if that root's class now holds more (a new term, or another class merged in).
    let fired = roots.iter().all(|&r| eg[eg.find(r)].nodes.len() > 1);
    if !fired {
        return Ok(Trial::NotApplicable);
    }
    let classes = classes.into_iter().map(|(k, id)| (k, eg.find(id))).collect();
    let sat = Saturation {
        egraph: eg,
        classes,
        stop_reason: StopReason::Saturated,
        iterations: vec![],
        time_s: 0.0,
        provenance: Default::default(),
    };
    let prefer_new = |eg: &crate::analysis::TEGraph, n: &TNode| -> Option<f64> {
        if matches!(n.op, TOp::Attr(_) | TOp::Input | TOp::Const) {
            Some(0.0)
        } else if original.contains(&canon(eg, n)) {
            Some(1000.0)
        } else {
            Some(1.0)
        }
    };
    let rhs = match extract_graph_with(&lhs, &sat, &prefer_new, "greedy", Duration::from_secs(1)) {
        Ok((g, _)) => g,
        Err(e) => return Ok(fail(format!("the rewritten term could not be extracted: {e}"))),
    };
    let data: BTreeMap<String, Tensor> = inst
        .vars
        .iter()
        .filter_map(|(v, val)| match val {
            VarValue::Tensor { value, is_const: false } => Some((var_name(*v), value.clone())),
            _ => None,
        })
        .collect();
    let want = match run(&lhs, &data) {
        Ok(w) => w,
        Err(_) => return Ok(Trial::NotApplicable),
    };
    let got = match run(&rhs, &data) {
        Ok(g) => g,
        Err(e) => return Ok(fail(format!("the rewritten term does not evaluate: {e}"))),
    };
    let outputs = want.len();
    for (k, (name, w)) in want.iter().enumerate() {
        let c = compare(&got[name], w);
        if !c.shape_equal {
            return Ok(fail(format!("output {name}: shapes differ ({} vs {})", got[name].ty, w.ty)));
        }
        let scale = w.to_f64().iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let rel = c.max_abs / scale.max(f64::MIN_POSITIVE);
        let within = c.max_abs <= F32_ATOL + F32_RTOL * scale;
        if !within {
            return Ok(Trial::Disagree(Counterexample {
                seed,
                bindings: bindings(inst),
                max_abs: c.max_abs,
                max_rel: rel,
                detail: if outputs == 1 {
                    "the two sides compute different values".into()
                } else {
                    format!("pattern {} of {outputs}: the two sides compute different values", k + 1)
                },
            }));
        }
    }
    Ok(Trial::Agree)
}

fn name_seed(name: &str) -> u64 {
    name.bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// Checks one rule.
pub fn check_rule(rule: &Rule, opts: &CheckOptions) -> Result<RuleCheck> {
    let verdict = if rule.approx {
        let seed = opts.seed ^ name_seed(&rule.name);
        return super::check_approx::check_approx_rule(rule, opts.instances, seed);
    } else {
        let templates = builtin_templates(rule);
        let asts: Vec<Vec<&PatternAst<TNode>>> = match &rule.lhs {
            Lhs::Pattern(p) => vec![vec![&p.ast]],
            Lhs::Multi(items) => vec![items.iter().map(|(_, p)| &p.ast).collect()],
            Lhs::Builtin(_) => templates.iter().map(|p| vec![&p.ast]).collect(),
        };
        let rewrite = build_rewrite(rule)?;
        let mut passed = 0;
        let mut verdict = None;
        'outer: for (t, lhs) in asts.iter().enumerate() {
            let generator = Instantiator::new(lhs.clone(), &rule.conditions);
            let want = opts.instances.div_ceil(asts.len());
            let mut got = 0;
            for attempt in 0..opts.attempts {
                if got >= want {
                    break;
                }
                let seed = opts.seed ^ name_seed(&rule.name) ^ ((t as u64) << 40) ^ attempt as u64;
                let Some(inst) = generator.instance(seed) else { continue };
                match trial(rule, &rewrite, lhs, &inst, seed)? {
                    Trial::NotApplicable => {}
                    Trial::Agree => got += 1,
                    Trial::Disagree(c) => {
                        verdict = Some(Verdict::Failed(c));
                        break 'outer;
                    }
                }
            }
            passed += got;
        }
        verdict.unwrap_or(if passed == 0 {
            Verdict::Unchecked {
                reason: format!("no instance made the rule fire in {} attempts", opts.attempts),
            }
        } else {
            Verdict::Passed { instances: passed }
        })
    };
    Ok(RuleCheck {
        rule: rule.name.clone(),
        verdict,
    })
}

/// Checks every rule of `set`, in inventory order.
pub fn check_rules(set: &RuleSet, opts: &CheckOptions) -> Result<Vec<RuleCheck>> {
    set.rules().map(|r| check_rule(r, opts)).collect()
}
