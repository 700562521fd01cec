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
use egg::{Applier, BackoffScheduler, Id, PatternAst, Rewrite, RewriteScheduler, Runner, SearchMatches, Searcher, Subst, Symbol, Var};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
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
    /// E-nodes at the start of the iteration (egg records sizes before applying rewrites;
    /// the final size is `Report::egraph_nodes`).
    pub nodes: usize,
    /// E-classes at the start of the iteration.
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
    /// Which rule added each e-node (for `optimize --explain`).
    pub provenance: Provenance,
}

/// Which rule application added which e-nodes. E-node ids index `egraph.nodes()`,
/// which egg appends to as nodes are added: ids below `initial_nodes` encode the
/// input graph; each span records the ids one rule's matches added in one iteration.
#[derive(Clone, Debug, Default)]
pub struct Provenance {
    /// Nodes of the input graph's encoding.
    pub initial_nodes: usize,
    /// `(first id, end id, rule)` for every application that added nodes, in order.
    pub spans: Vec<(usize, usize, String)>,
    /// Rule name → applications that changed the e-graph (including those that only merged classes).
    pub applications: BTreeMap<String, usize>,
}

impl Provenance {
    /// The rule that added e-node `id`, or `None` for the input graph's nodes.
    pub fn rule_of(&self, id: usize) -> Option<&str> {
        if id < self.initial_nodes {
            return None;
        }
        let k = self.spans.partition_point(|(_, end, _)| *end <= id);
        self.spans.get(k).filter(|(start, _, _)| *start <= id).map(|(_, _, r)| r.as_str())
    }
}

/// A rule's searcher, shared with the rule it came from.
struct SharedSearcher(Arc<dyn Searcher<TNode, TensorAnalysis> + Sync + Send>);

impl Searcher<TNode, TensorAnalysis> for SharedSearcher {
    fn search_eclass_with_limit(&self, egraph: &TEGraph, eclass: Id, limit: usize) -> Option<SearchMatches<'_, TNode>> {
        self.0.search_eclass_with_limit(egraph, eclass, limit)
    }

    fn search_with_limit(&self, egraph: &TEGraph, limit: usize) -> Vec<SearchMatches<'_, TNode>> {
        self.0.search_with_limit(egraph, limit)
    }

    fn get_pattern_ast(&self) -> Option<&PatternAst<TNode>> {
        self.0.get_pattern_ast()
    }

    fn vars(&self) -> Vec<Var> {
        self.0.vars()
    }
}

/// Wraps a rule's applier to record which e-nodes its applications add.
struct Recorder {
    inner: Arc<dyn Applier<TNode, TensorAnalysis> + Sync + Send>,
    log: Arc<Mutex<Provenance>>,
}

impl Applier<TNode, TensorAnalysis> for Recorder {
    fn apply_matches(&self, egraph: &mut TEGraph, matches: &[SearchMatches<TNode>], rule_name: Symbol) -> Vec<Id> {
        let before = egraph.nodes().len();
        let ids = self.inner.apply_matches(egraph, matches, rule_name);
        let after = egraph.nodes().len();
        let mut log = self.log.lock().expect("the log is never poisoned: recording cannot panic");
        // egg returns the classes a match changed: matches whose conditions
        // failed, or whose result was already equal, are not applications.
        *log.applications.entry(rule_name.to_string()).or_default() += ids.len();
        if after > before {
            log.spans.push((before, after, rule_name.to_string()));
        }
        ids
    }

    fn apply_one(
        &self,
        egraph: &mut TEGraph,
        eclass: Id,
        subst: &Subst,
        searcher_ast: Option<&PatternAst<TNode>>,
        rule_name: Symbol,
    ) -> Vec<Id> {
        self.inner.apply_one(egraph, eclass, subst, searcher_ast, rule_name)
    }

    fn get_pattern_ast(&self) -> Option<&PatternAst<TNode>> {
        self.inner.get_pattern_ast()
    }

    fn vars(&self) -> Vec<Var> {
        self.inner.vars()
    }
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

/// What an [`Observer`] sees at the start of each iteration.
pub struct IterationView<'a> {
    /// The iteration about to run (0 is the first).
    pub index: usize,
    /// The e-graph, rebuilt (canonical) after the previous iteration.
    pub egraph: &'a TEGraph,
    /// The class of every tensor name of the input graph, as created; pass
    /// through `egraph.find` for the current canonical id.
    pub classes: &'a BTreeMap<String, Id>,
}

/// Called at the start of every iteration (progress bars, per-iteration cost
/// traces). It must not take long: it runs inside the time limit.
pub type Observer = Box<dyn FnMut(&IterationView<'_>)>;

/// Runs the rules of `rules` on `graph` under `limits`.
pub fn saturate(graph: &Graph, rules: &RuleSet, limits: &Limits) -> Result<Saturation> {
    saturate_observed(graph, rules, limits, None)
}

/// [`saturate`], calling `observer` at the start of every iteration.
pub fn saturate_observed(graph: &Graph, rules: &RuleSet, limits: &Limits, observer: Option<Observer>) -> Result<Saturation> {
    let rewrites = build_rewrites(rules)?;
    tracing::info!(rules = rewrites.len(), nodes = graph.nodes.len(), "saturating {}", graph.name);
    let multi: BTreeSet<Symbol> = rules
        .rules()
        .filter(|r| r.is_multi())
        .map(|r| Symbol::from(r.name.as_str()))
        .collect();
    let (egraph, classes) = graph_to_egraph(graph);
    let log = Arc::new(Mutex::new(Provenance {
        initial_nodes: egraph.nodes().len(),
        ..Provenance::default()
    }));
    let rewrites: Vec<Rewrite<TNode, TensorAnalysis>> = rewrites
        .into_iter()
        .map(|rw| {
            let recorder = Recorder {
                inner: rw.applier,
                log: log.clone(),
            };
            Rewrite::new(rw.name, SharedSearcher(rw.searcher), recorder).expect("wrapping keeps the rule's variables bound")
        })
        .collect();
    let scheduler = GatedScheduler {
        inner: BackoffScheduler::default()
            .with_initial_match_limit(limits.match_limit)
            .with_ban_length(limits.ban_length),
        multi,
        multi_iters: limits.multi_pattern_iters,
    };
    let start = Instant::now();
    let mut observer = observer;
    let observed_classes = classes.clone();
    // Destructured from the temporary so the hooks, and the observer with them,
    // are dropped as soon as the run ends.
    let Runner {
        mut egraph,
        iterations: egg_iterations,
        stop_reason: egg_stop,
        ..
    } = Runner::<TNode, TensorAnalysis, ()>::new(TensorAnalysis::default())
        .with_egraph(egraph)
        .with_node_limit(limits.node_limit)
        .with_iter_limit(limits.iter_limit)
        .with_time_limit(Duration::from_secs_f64(limits.time_limit_s.max(0.0)))
        .with_scheduler(scheduler)
        .with_hook(move |runner| {
            tracing::debug!(
                iteration = runner.iterations.len(),
                nodes = runner.egraph.total_number_of_nodes(),
                classes = runner.egraph.number_of_classes(),
                "saturation iteration"
            );
            if let Some(observe) = observer.as_mut() {
                observe(&IterationView {
                    index: runner.iterations.len(),
                    egraph: &runner.egraph,
                    classes: &observed_classes,
                });
            }
            if runner.egraph.analysis.conflicts.is_empty() {
                Ok(())
            } else {
                Err("unsound rule".to_string())
            }
        })
        .run(&rewrites);
    let time_s = start.elapsed().as_secs_f64();
    if let Some(c) = egraph.analysis.conflicts.first() {
        return Err(Error::UnsoundRule {
            rule: c.rule.clone(),
            lhs: c.kept.clone(),
            rhs: c.merged.clone(),
            detail: format!("{} conflicting merges in all", egraph.analysis.conflicts.len()),
        });
    }
    let stop_reason = match egg_stop {
        Some(egg::StopReason::Saturated) | None => StopReason::Saturated,
        Some(egg::StopReason::IterationLimit(n)) => StopReason::IterationLimit(n),
        Some(egg::StopReason::NodeLimit(n)) => StopReason::NodeLimit(n),
        Some(egg::StopReason::TimeLimit(s)) => StopReason::TimeLimit(s),
        Some(egg::StopReason::Other(_)) => StopReason::Saturated,
    };
    tracing::info!(
        iterations = egg_iterations.len(),
        nodes = egraph.total_number_of_nodes(),
        classes = egraph.number_of_classes(),
        seconds = time_s,
        "saturation stopped: {stop_reason}"
    );
    let iterations = egg_iterations
        .iter()
        .map(|it| IterationStats {
            nodes: it.egraph_nodes,
            classes: it.egraph_classes,
            applied: it.applied.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        })
        .collect();
    egraph.rebuild();
    let classes = classes.into_iter().map(|(k, id)| (k, egraph.find(id))).collect();
    let provenance = log.lock().expect("saturation is over: nothing else holds the log").clone();
    Ok(Saturation {
        egraph,
        classes,
        stop_reason,
        iterations,
        time_s,
        provenance,
    })
}
