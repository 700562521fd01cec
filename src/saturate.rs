//! Equality saturation: a graph becomes an e-graph, rules run under limits.
//!
//! Limits are explicit and echoed in every report: nodes, iterations, wall time,
//! and how many iterations multi-pattern rules may run (they blow up e-graphs
//! quickly, so by default they run only in the first [`DEFAULT_MULTI_PATTERN_ITERS`]).
//! Rules are scheduled by egg's `BackoffScheduler`. Saturation is deterministic
//! unless the time limit is what stops it.

use crate::analysis::{TEGraph, TensorAnalysis};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::lang::{TNode, TOp, encode_op};
use crate::rules::{RuleSet, build_rewrites};
use egg::{BackoffScheduler, Id, Rewrite, RewriteScheduler, Runner, SearchMatches, Symbol};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Default e-node limit.
pub const DEFAULT_NODE_LIMIT: usize = 100_000;
/// Default iteration limit.
pub const DEFAULT_ITER_LIMIT: usize = 30;
/// Default wall-time limit for saturation, in seconds.
pub const DEFAULT_TIME_LIMIT_S: f64 = 10.0;
/// Multi-pattern rules run only in iterations `0..k` by default.
pub const DEFAULT_MULTI_PATTERN_ITERS: usize = 2;
/// Backoff scheduler: matches per rule per iteration before it is banned.
pub const DEFAULT_MATCH_LIMIT: usize = 1_000;
/// Backoff scheduler: iterations a banned rule sits out (doubling each time).
pub const DEFAULT_BAN_LENGTH: usize = 5;

/// Saturation limits (builder style).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Limits {
    /// Stop when the e-graph has more e-nodes than this.
    pub node_limit: usize,
    /// Stop after this many iterations.
    pub iter_limit: usize,
    /// Stop after this much wall time (seconds).
    pub time_limit_s: f64,
    /// Multi-pattern rules run only in the first this-many iterations.
    pub multi_pattern_iters: usize,
    /// Backoff scheduler match limit.
    pub match_limit: usize,
    /// Backoff scheduler ban length.
    pub ban_length: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            node_limit: DEFAULT_NODE_LIMIT,
            iter_limit: DEFAULT_ITER_LIMIT,
            time_limit_s: DEFAULT_TIME_LIMIT_S,
            multi_pattern_iters: DEFAULT_MULTI_PATTERN_ITERS,
            match_limit: DEFAULT_MATCH_LIMIT,
            ban_length: DEFAULT_BAN_LENGTH,
        }
    }
}

impl Limits {
    /// Sets the node limit.
    pub fn with_node_limit(mut self, n: usize) -> Self {
        self.node_limit = n;
        self
    }
    /// Sets the iteration limit.
    pub fn with_iter_limit(mut self, n: usize) -> Self {
        self.iter_limit = n;
        self
    }
    /// Sets the time limit in seconds.
    pub fn with_time_limit(mut self, s: f64) -> Self {
        self.time_limit_s = s;
        self
    }
    /// Sets how many iterations multi-pattern rules run.
    pub fn with_multi_pattern_iters(mut self, k: usize) -> Self {
        self.multi_pattern_iters = k;
        self
    }
}

/// Why saturation stopped.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "reason", content = "reached")]
pub enum StopReason {
    /// No rule changed the e-graph.
    Saturated,
    /// The iteration limit was reached; holds the iterations run.
    IterationLimit(usize),
    /// The e-node limit was exceeded; holds the e-graph's e-node count when it stopped.
    NodeLimit(usize),
    /// The time limit was exceeded; holds the seconds elapsed.
    TimeLimit(f64),
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Saturated => f.write_str("saturated"),
            StopReason::IterationLimit(n) => write!(f, "iteration limit (after {n} iterations)"),
            StopReason::NodeLimit(n) => write!(f, "node limit (e-graph reached {n} e-nodes)"),
            StopReason::TimeLimit(s) => write!(f, "time limit ({s:.3} s elapsed)"),
        }
    }
}

/// One iteration's statistics.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct IterationStats {
    /// E-nodes after the iteration.
    pub nodes: usize,
    /// E-classes after the iteration.
    pub classes: usize,
    /// Successful applications per rule (sorted by name).
    pub applied: BTreeMap<String, usize>,
}

/// A graph's e-graph after saturation.
pub struct Saturation {
    /// The e-graph.
    pub egraph: TEGraph,
    /// Class of every tensor name of the original graph.
    pub classes: BTreeMap<String, Id>,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Per-iteration statistics.
    pub iterations: Vec<IterationStats>,
    /// Wall time of saturation in seconds.
    pub time_s: f64,
}

/// Adds `graph` to a fresh e-graph; returns the e-graph and the class of every tensor name.
pub fn graph_to_egraph(graph: &Graph) -> (TEGraph, BTreeMap<String, Id>) {
    let mut eg = TEGraph::new(TensorAnalysis::for_graph(graph));
    let mut ids: BTreeMap<String, Id> = BTreeMap::new();
    let leaf = |eg: &mut TEGraph, op: TOp, name: &str| {
        let n = eg.add(TNode::attr(crate::lang::Attr::Sym(Symbol::from(name))));
        eg.add(TNode { op, children: vec![n] })
    };
    for i in &graph.inputs {
        let id = leaf(&mut eg, TOp::Input, &i.name);
        ids.insert(i.name.clone(), id);
    }
    for c in &graph.constants {
        let id = leaf(&mut eg, TOp::Const, &c.name);
        ids.insert(c.name.clone(), id);
    }
    for n in &graph.nodes {
        let (op, attrs) = encode_op(&n.op);
        let mut children: Vec<Id> = attrs.into_iter().map(|a| eg.add(TNode::attr(a))).collect();
        children.extend(n.inputs.iter().map(|i| ids[i]));
        let id = eg.add(TNode { op, children });
        ids.insert(n.name.clone(), id);
    }
    (eg, ids)
}

/// Backoff scheduling, with multi-pattern rules limited to the first iterations.
struct GatedScheduler {
    inner: BackoffScheduler,
    multi: BTreeSet<Symbol>,
    multi_iters: usize,
}

impl RewriteScheduler<TNode, TensorAnalysis> for GatedScheduler {
    fn can_stop(&mut self, iteration: usize) -> bool {
        RewriteScheduler::<TNode, TensorAnalysis>::can_stop(&mut self.inner, iteration)
    }

    fn search_rewrite<'a>(
        &mut self,
        iteration: usize,
        egraph: &TEGraph,
        rewrite: &'a Rewrite<TNode, TensorAnalysis>,
    ) -> Vec<SearchMatches<'a, TNode>> {
        if self.multi.contains(&rewrite.name) && iteration >= self.multi_iters {
            return Vec::new();
        }
        self.inner.search_rewrite(iteration, egraph, rewrite)
    }
}

/// Runs the rules of `rules` on `graph` under `limits`.
pub fn saturate(graph: &Graph, rules: &RuleSet, limits: &Limits) -> Result<Saturation> {
    let rewrites = build_rewrites(rules)?;
    let multi: BTreeSet<Symbol> = rules
        .rules()
        .filter(|r| r.is_multi())
        .map(|r| Symbol::from(r.name.as_str()))
        .collect();
    let (egraph, classes) = graph_to_egraph(graph);
    let scheduler = GatedScheduler {
        inner: BackoffScheduler::default()
            .with_initial_match_limit(limits.match_limit)
            .with_ban_length(limits.ban_length),
        multi,
        multi_iters: limits.multi_pattern_iters,
    };
    let start = Instant::now();
    let runner = Runner::<TNode, TensorAnalysis, ()>::new(TensorAnalysis::default())
        .with_egraph(egraph)
        .with_node_limit(limits.node_limit)
        .with_iter_limit(limits.iter_limit)
        .with_time_limit(Duration::from_secs_f64(limits.time_limit_s.max(0.0)))
        .with_scheduler(scheduler)
        .with_hook(|runner| {
            if runner.egraph.analysis.conflicts.is_empty() {
                Ok(())
            } else {
                Err("unsound rule".to_string())
            }
        })
        .run(&rewrites);
    let time_s = start.elapsed().as_secs_f64();
    if let Some(c) = runner.egraph.analysis.conflicts.first() {
        return Err(Error::UnsoundRule {
            rule: c.rule.clone(),
            lhs: c.kept.clone(),
            rhs: c.merged.clone(),
            detail: format!("{} conflicting merges in all", runner.egraph.analysis.conflicts.len()),
        });
    }
    let stop_reason = match runner.stop_reason.clone() {
        Some(egg::StopReason::Saturated) | None => StopReason::Saturated,
        Some(egg::StopReason::IterationLimit(n)) => StopReason::IterationLimit(n),
        Some(egg::StopReason::NodeLimit(n)) => StopReason::NodeLimit(n),
        Some(egg::StopReason::TimeLimit(s)) => StopReason::TimeLimit(s),
        Some(egg::StopReason::Other(_)) => StopReason::Saturated,
    };
    let iterations = runner
        .iterations
        .iter()
        .map(|it| IterationStats {
            nodes: it.egraph_nodes,
            classes: it.egraph_classes,
            applied: it.applied.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        })
        .collect();
    let mut egraph = runner.egraph;
    egraph.rebuild();
    let classes = classes.into_iter().map(|(k, id)| (k, egraph.find(id))).collect();
    Ok(Saturation {
        egraph,
        classes,
        stop_reason,
        iterations,
        time_s,
    })
}
