//! The whole pipeline, graph in, graph out: saturate, extract, fold, report.

use crate::budget::{BudgetReport, ErrorMeter, extract_within_budget};
use crate::cost::{HardwareProfile, Totals, graph_totals};
use crate::error::{Error, Result};
use crate::extraction::{ExtractStats, extract_graph};
use crate::graph::Graph;
use crate::rules::{ActivationPrecision, RuleSet};
use crate::saturate::{IterationStats, Limits, Observer, StopReason, saturate_observed};
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
    /// The accuracy budget: the largest relative output error allowed
    /// (`‖y − ŷ‖₂ / ‖y‖₂`, worst output). `None` or `Some(0.0)`: no approximate
    /// rule runs and the result computes the same function as the input.
    pub max_error: Option<f64>,
    /// The precision approximate rewrites may compute activations in (see
    /// [`crate::rules::ACTIVATION_FAMILIES`]); without a positive `max_error`
    /// no approximate rule runs and this has no effect.
    pub activations: ActivationPrecision,
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
            max_error: None,
            activations: ActivationPrecision::F32,
        }
    }
    /// Sets the accuracy budget (see [`OptimizeOptions::max_error`]).
    pub fn with_max_error(mut self, max_error: f64) -> Self {
        self.max_error = Some(max_error);
        self
    }
    /// Sets the precision approximate rewrites may compute activations in
    /// (see [`OptimizeOptions::activations`]).
    pub fn with_activations(mut self, activations: ActivationPrecision) -> Self {
        self.activations = activations;
        self
    }
    /// The budget when approximate rules may run (a positive one).
    fn budget(&self) -> Option<f64> {
        self.max_error.filter(|&e| e > 0.0)
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
    /// The budgeted extraction (with a positive `OptimizeOptions::max_error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetSummary>,
}

/// The accuracy-budget part of a [`Report`].
#[derive(Clone, Debug, serde::Serialize)]
pub struct BudgetSummary {
    /// The search and its measurements.
    #[serde(flatten)]
    pub search: BudgetReport,
    /// Bytes of the input graph's constants (weights) as stored.
    pub weight_bytes_before: u64,
    /// Bytes of the optimized graph's constants as stored.
    pub weight_bytes_after: u64,
}

/// Bytes of `graph`'s constants as stored (f16/bf16 at 2 bytes per element).
pub fn weight_bytes(graph: &Graph) -> u64 {
    graph.constants.iter().fold(0u64, |a, c| a.saturating_add(c.ty.size_bytes()))
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
    optimize_measured(graph, rules, opts, None)
}

/// [`optimize`] with an accuracy budget: with a positive
/// [`OptimizeOptions::max_error`], the approximate rule families
/// ([`crate::rules::APPROX_FAMILIES`], unless `rules` already has families of
/// those names) join `rules`, and the result is extracted within the budget
/// ([`crate::budget`]), each candidate measured by `meter`. Without a budget,
/// approximate rules in `rules` are dropped.
///
/// # Errors
/// [`Error::Usage`] for a negative or non-finite budget, or a positive one
/// without a meter; otherwise as [`optimize`], plus what `meter` reports.
pub fn optimize_measured(
    graph: &Graph,
    rules: &RuleSet,
    opts: &OptimizeOptions,
    meter: Option<&mut dyn ErrorMeter>,
) -> Result<(Graph, Report)> {
    optimize_observed(graph, rules, opts, meter, None)
}

/// [`optimize_measured`], with `observer` called at the start of every
/// saturation iteration (see [`crate::saturate::saturate_observed`]; a
/// progress bar, say). The observer is dropped when saturation ends, before
/// extraction starts.
///
/// # Errors
/// As [`optimize_measured`].
pub fn optimize_observed(
    graph: &Graph,
    rules: &RuleSet,
    opts: &OptimizeOptions,
    meter: Option<&mut dyn ErrorMeter>,
    observer: Option<Observer>,
) -> Result<(Graph, Report)> {
    if let Some(e) = opts.max_error.filter(|e| !(e.is_finite() && *e >= 0.0)) {
        return Err(Error::Usage {
            option: "--max-error".into(),
            expected: "a non-negative relative error".into(),
            found: e.to_string(),
        });
    }
    let before = graph_totals(graph, &opts.target);
    let time_limit = Duration::from_secs_f64(opts.extract_time_limit_s);
    let (sat, out, extraction, budget) = match opts.budget() {
        Some(max_error) => {
            let Some(meter) = meter else {
                return Err(Error::Usage {
                    option: "--max-error".into(),
                    expected: "a way to measure the error (a calibration input set)".into(),
                    found: "none".into(),
                });
            };
            let rules = rules.with_approx_families()?.for_activations(opts.activations)?;
            let sat = saturate_observed(graph, &rules, &opts.limits, observer)?;
            let (out, extraction, search) =
                extract_within_budget(graph, &sat, &opts.target, &opts.extractor, time_limit, max_error, meter)?;
            let summary = BudgetSummary {
                search,
                weight_bytes_before: weight_bytes(graph),
                weight_bytes_after: weight_bytes(&out),
            };
            (sat, out, extraction, Some(summary))
        }
        None => {
            let sat = saturate_observed(graph, &rules.without_approx(), &opts.limits, observer)?;
            let (out, extraction) = extract_graph(graph, &sat, &opts.target, &opts.extractor, time_limit)?;
            (sat, out, extraction, None)
        }
    };
    let after = graph_totals(&out, &opts.target);
    tracing::info!(
        graph = %graph.name,
        target = %opts.target.name,
        before_s = before.latency_s,
        after_s = after.latency_s,
        kernels = after.kernels,
        "optimized"
    );
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
        budget,
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
        if let Some(b) = &self.budget {
            s += &b.table();
        }
        if let Some(e) = &self.explain {
            s += &e.table();
        }
        s
    }
}

impl BudgetSummary {
    /// The lines `eqopt optimize --max-error` prints.
    pub fn table(&self) -> String {
        let b = &self.search;
        let mut s = format!("accuracy budget        max relative error {:e}\n", b.max_error);
        for (i, r) in b.rounds.iter().enumerate() {
            s += &format!(
                "  round {}              {} approximate nodes, estimated {:.3e}, measured {:.3e}{}\n",
                i + 1,
                r.approx_nodes,
                r.estimated_error,
                r.measured_error,
                if r.measured_error <= b.max_error {
                    ""
                } else {
                    " (over: tightened)"
                }
            );
        }
        s += &match (b.measured_error, b.fell_back_to_exact) {
            (Some(m), _) => format!(
                "  chosen               {} approximate nodes, estimated error {:.3e}, measured {:.3e}\n",
                b.approx.len(),
                b.estimated_error,
                m
            ),
            (None, true) => "  chosen               the exact graph: no approximate graph met the budget\n".to_string(),
            (None, false) => "  chosen               the exact graph: no approximation fits the budget's estimate\n".to_string(),
        };
        s += &format!(
            "  weights              {} before, {} after\n",
            si(self.weight_bytes_before as f64, "B"),
            si(self.weight_bytes_after as f64, "B")
        );
        s
    }
}
