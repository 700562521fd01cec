//! The whole pipeline, graph in, graph out: saturate, extract, fold, report.

use crate::cost::{HardwareProfile, Totals, graph_totals};
use crate::error::Result;
use crate::extraction::{ExtractStats, extract_graph};
use crate::graph::Graph;
use crate::rules::RuleSet;
use crate::saturate::{IterationStats, Limits, StopReason, saturate};
use std::time::Duration;

/// Default time limit for extraction, in seconds.
pub const DEFAULT_EXTRACT_TIME_LIMIT_S: f64 = 1.0;

/// Options of [`optimize`] (builder style).
#[derive(Clone, Debug)]
pub struct OptimizeOptions {
    /// Hardware target for the cost model.
    pub target: HardwareProfile,
    /// Saturation limits.
    pub limits: Limits,
    /// Extractor name (see `eqopt_extract::extractor_names`).
    pub extractor: String,
    /// Extraction time limit in seconds.
    pub extract_time_limit_s: f64,
    /// Trace the result's nodes to the rules that built them (`Report::explain`).
    pub explain: bool,
}

impl OptimizeOptions {
    /// Defaults for `target`.
    pub fn new(target: HardwareProfile) -> Self {
        OptimizeOptions {
            target,
            limits: Limits::default(),
            extractor: eqopt_extract::DEFAULT_EXTRACTOR.to_string(),
            extract_time_limit_s: DEFAULT_EXTRACT_TIME_LIMIT_S,
            explain: false,
        }
    }
    /// Sets the saturation limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
    /// Sets the extractor.
    pub fn with_extractor(mut self, name: impl Into<String>) -> Self {
        self.extractor = name.into();
        self
    }
}

/// What `eqopt optimize` reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    /// Graph name.
    pub graph: String,
    /// Target name.
    pub target: String,
    /// Totals of the input graph.
    pub before: Totals,
    /// Totals of the optimized graph.
    pub after: Totals,
    /// E-classes after saturation.
    pub egraph_classes: usize,
    /// E-nodes after saturation.
    pub egraph_nodes: usize,
    /// Iterations run.
    pub iterations: usize,
    /// Why saturation stopped.
    pub stop_reason: StopReason,
    /// The limits in force.
    pub limits: Limits,
    /// Saturation wall time, seconds.
    pub saturation_s: f64,
    /// Extraction statistics.
    pub extraction: ExtractStats,
    /// Per-iteration statistics.
    pub per_iteration: Vec<IterationStats>,
    /// Which rules built the result's nodes (with `OptimizeOptions::explain`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<crate::explain::Explanation>,
}

/// Optimizes `graph` with `rules` for `opts.target`.
///
/// ```
/// use eqopt::{cost::HardwareProfile, graph::json, optimize::{optimize, OptimizeOptions}, rules::RuleSet};
/// let text = r#"{"format": "eqopt-graph", "version": 1,
///   "inputs": [{"name": "x", "shape": [4, 8], "dtype": "f32"}], "outputs": ["y"],
///   "constants": [{"name": "b", "shape": [8], "dtype": "f32", "fill": 0.5}],
///   "nodes": [{"name": "t", "op": "Add", "inputs": ["x", "b"]},
///             {"name": "y", "op": "Relu", "inputs": ["t"]}]}"#;
/// let g = json::parse(text, "doc.json".as_ref()).unwrap();
/// let opts = OptimizeOptions::new(HardwareProfile::load("cpu").unwrap());
/// let (opt, report) = optimize(&g, &RuleSet::defaults().unwrap(), &opts).unwrap();
/// assert_eq!(opt.nodes.len(), 1); // add + relu fused into one kernel
/// assert!(report.after.latency_s < report.before.latency_s);
/// ```
pub fn optimize(graph: &Graph, rules: &RuleSet, opts: &OptimizeOptions) -> Result<(Graph, Report)> {
    let before = graph_totals(graph, &opts.target);
    let sat = saturate(graph, rules, &opts.limits)?;
    let (out, extraction) = extract_graph(
        graph,
        &sat,
        &opts.target,
        &opts.extractor,
        Duration::from_secs_f64(opts.extract_time_limit_s),
    )?;
    let after = graph_totals(&out, &opts.target);
    let explain = opts
        .explain
        .then(|| crate::explain::explain(&sat.egraph, &sat.provenance, &extraction.chosen, &out));
    let report = Report {
        graph: graph.name.clone(),
        target: opts.target.name.clone(),
        before,
        after,
        egraph_classes: sat.egraph.number_of_classes(),
        egraph_nodes: sat.egraph.total_number_of_nodes(),
        iterations: sat.iterations.len(),
        stop_reason: sat.stop_reason.clone(),
        limits: opts.limits.clone(),
        saturation_s: sat.time_s,
        extraction,
        per_iteration: sat.iterations,
        explain,
    };
    Ok((out, report))
}

fn si(v: f64, unit: &str) -> String {
    let (scale, prefix) = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        .into_iter()
        .find(|(s, _)| v.abs() >= *s)
        .unwrap_or((1.0, ""));
    format!("{:.3} {prefix}{unit}", v / scale)
}

fn time(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.3} us", s * 1e6)
    }
}

impl Report {
    /// The before/after table printed by `eqopt optimize`.
    pub fn table(&self) -> String {
        let (b, a) = (&self.before, &self.after);
        let row = |name: &str, x: String, y: String| format!("{name:<22} {x:>16} {y:>16}\n");
        let mut s = format!("{} on {}\n", self.graph, self.target);
        s += &row("", "before".into(), "after".into());
        s += &row("ops", b.ops.to_string(), a.ops.to_string());
        s += &row("kernels", b.kernels.to_string(), a.kernels.to_string());
        s += &row("FLOPs", si(b.flops as f64, "FLOP"), si(a.flops as f64, "FLOP"));
        s += &row("bytes moved", si(b.bytes as f64, "B"), si(a.bytes as f64, "B"));
        s += &row("estimated latency", time(b.latency_s), time(a.latency_s));
        s += &format!("speedup (estimated)    {:.3}x\n", b.latency_s / a.latency_s.max(f64::MIN_POSITIVE));
        s += &format!(
            "e-graph                {} classes, {} nodes\n",
            self.egraph_classes, self.egraph_nodes
        );
        s += &format!(
            "saturation             {} iterations, stopped: {}, {}\n",
            self.iterations,
            self.stop_reason,
            time(self.saturation_s)
        );
        let l = &self.limits;
        s += &format!(
            "limits                 nodes {}, iterations {}, time {} s, multi-pattern iterations {}\n",
            l.node_limit, l.iter_limit, l.time_limit_s, l.multi_pattern_iters
        );
        s += &format!(
            "extraction             {} (DAG cost {}), {}\n",
            self.extraction.extractor,
            time(self.extraction.dag_cost_s),
            time(self.extraction.time_s)
        );
        if let Some(e) = &self.explain {
            s += &e.table();
        }
        s
    }
}
