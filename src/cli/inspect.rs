//! `eqopt dot` and `eqopt explain`: look at a graph, its optimized graph, its
//! e-graph, and what optimization changed.

use super::{SearchArgs, ShapeArgs, load_rules, positive, same_file};
use crate::error::{Error, Result};
use crate::extraction::{ExtractStats, extract_graph};
use crate::graph::Graph;
use crate::graph::json::write_atomic;
use crate::rules::RuleSet;
use crate::saturate::{Limits, Saturation, saturate};
use clap::Args;
use egg::Language;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Default largest e-graph `eqopt dot --egraph` draws, in e-nodes.
const DEFAULT_MAX_DOT_ENODES: usize = 2000;

/// A saturated and extracted model, and what it took.
struct Optimized {
    sat: Saturation,
    rules: RuleSet,
    result: Graph,
    stats: ExtractStats,
    target: String,
    limits: Limits,
}

impl SearchArgs {
    /// Saturates `graph` under `limits` with the exact rules (as `eqopt
    /// optimize` without `--max-error`); extracts unless `check` refuses the e-graph.
    fn optimize(&self, graph: &Graph, limits: Limits, check: &dyn Fn(&Saturation) -> Result<()>) -> Result<Optimized> {
        let (target, _) = crate::calibrate::resolve_target(&self.target)?;
        let rules = load_rules(&self.rules)?.without_approx();
        let sat = saturate(graph, &rules, &limits)?;
        check(&sat)?;
        let time_limit = Duration::from_secs_f64(positive("--extract-time-limit", self.extract_time_limit)?);
        let (result, stats) = extract_graph(graph, &sat, &target, &self.extractor, time_limit)?;
        Ok(Optimized {
            sat,
            rules,
            result,
            stats,
            target: target.name,
            limits,
        })
    }
}

/// `eqopt dot`.
#[derive(Args, Debug)]
pub(super) struct DotArgs {
    /// The model: graph.json, or ONNX (by the .onnx extension).
    input: PathBuf,
    /// Write the DOT here (atomically) instead of to stdout.
    #[arg(short, long, value_name = "FILE.dot")]
    output: Option<PathBuf>,
    /// Draw the optimized graph (fused kernels as clusters of the ops they fuse).
    #[arg(long)]
    optimize: bool,
    /// Draw the saturated e-graph instead: a cluster per e-class, the extracted
    /// e-nodes filled. For small models: refused above --max-nodes e-nodes.
    #[arg(long)]
    egraph: bool,
    /// With --egraph: the most e-nodes (attribute leaves included) to draw.
    #[arg(long, default_value_t = DEFAULT_MAX_DOT_ENODES, value_name = "N")]
    max_nodes: usize,
    #[command(flatten)]
    shapes: ShapeArgs,
    #[command(flatten)]
    search: SearchArgs,
}

/// `eqopt explain`.
#[derive(Args, Debug)]
pub(super) struct ExplainArgs {
    /// The model: graph.json, or ONNX (by the .onnx extension).
    input: PathBuf,
    /// Print one JSON object instead of the listing.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    shapes: ShapeArgs,
    #[command(flatten)]
    search: SearchArgs,
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<()> {
    out.write_all(text.as_bytes()).map_err(|e| Error::io("<stdout>", e))
}

pub(super) fn run_dot(a: &DotArgs, out: &mut dyn Write) -> Result<()> {
    if let Some(o) = a.output.as_deref().filter(|o| same_file(&a.input, o)) {
        return Err(Error::Usage {
            option: "--output".into(),
            expected: "a path other than the input".into(),
            found: o.display().to_string(),
        });
    }
    let graph = a.shapes.load(&a.input)?;
    let text = if a.egraph {
        egraph_text(a, &graph)?
    } else if a.optimize {
        let o = a.search.optimize(&graph, a.search.limits()?, &|_| Ok(()))?;
        let title = format!("{} optimized for {} ({} nodes)", graph.name, o.target, o.result.nodes.len());
        crate::dot::graph_dot(&o.result, &title)
    } else {
        crate::dot::graph_dot(&graph, &format!("{} ({} nodes)", graph.name, graph.nodes.len()))
    };
    match &a.output {
        Some(path) => {
            write_atomic(path, text.as_bytes())?;
            write_out(out, &format!("wrote {}\n", path.display()))
        }
        None => write_out(out, &text),
    }
}

/// The e-graph's DOT, or a usage error when it has more than `--max-nodes` e-nodes.
fn egraph_text(a: &DotArgs, graph: &Graph) -> Result<String> {
    let mut limits = a.search.limits()?;
    // Saturating beyond the drawable size is wasted work: stop just past it.
    let capped = limits.node_limit > a.max_nodes;
    limits.node_limit = limits.node_limit.min(a.max_nodes.saturating_add(1));
    let max = a.max_nodes;
    let check = |sat: &Saturation| {
        let n = sat.egraph.total_number_of_nodes();
        if n <= max {
            return Ok(());
        }
        let stopped = matches!(sat.stop_reason, crate::saturate::StopReason::NodeLimit(_)) && capped;
        Err(Error::Usage {
            option: "--egraph".into(),
            expected: format!("an e-graph of at most {max} e-nodes (--max-nodes) to draw"),
            found: format!(
                "{}{n} e-nodes in {} classes{}",
                if stopped { "at least " } else { "" },
                sat.egraph.number_of_classes(),
                if stopped { " (saturation stopped there)" } else { "" }
            ),
        })
    };
    let o = a.search.optimize(graph, limits, &check)?;
    let eg = &o.sat.egraph;
    let mut marks = crate::dot::EGraphMarks::default();
    for out in &graph.outputs {
        if let Some(&c) = o.sat.classes.get(out) {
            marks.roots.entry(eg.find(c)).or_default().push(out.clone());
        }
    }
    let inputs = graph
        .inputs
        .iter()
        .filter_map(|i| o.sat.classes.get(&i.name))
        .flat_map(|&c| eg[c].nodes.iter().filter(|n| n.op == crate::lang::TOp::Input));
    marks.chosen = o
        .stats
        .chosen
        .values()
        .chain(inputs)
        .map(|n| n.clone().map_children(|c| eg.find(c)))
        .collect::<BTreeSet<_>>();
    let title = format!(
        "e-graph of {}: {} e-classes, {} e-nodes; saturation stopped: {}; filled: extracted for {}",
        graph.name,
        eg.number_of_classes(),
        eg.total_number_of_nodes(),
        o.sat.stop_reason,
        o.target
    );
    Ok(crate::dot::egraph_dot(eg, &title, &marks))
}

pub(super) fn run_explain(a: &ExplainArgs, out: &mut dyn Write) -> Result<()> {
    let graph = a.shapes.load(&a.input)?;
    let o = a.search.optimize(&graph, a.search.limits()?, &|_| Ok(()))?;
    let changes = crate::explain::changes(&graph, &o.sat, &o.stats.chosen, &o.result, &o.rules);
    let l = &o.limits;
    if a.json {
        let mut v = serde_json::json!({
            "target": o.target,
            "egraph_classes": o.sat.egraph.number_of_classes(),
            "egraph_nodes": o.sat.egraph.total_number_of_nodes(),
            "iterations": o.sat.iterations.len(),
            "stop_reason": o.sat.stop_reason,
            "limits": l,
            "extractor": o.stats.extractor,
        });
        if let (Some(obj), serde_json::Value::Object(rest)) = (v.as_object_mut(), serde_json::to_value(&changes).expect("plain values")) {
            obj.extend(rest);
        }
        return write_out(out, &(serde_json::to_string_pretty(&v).expect("plain values") + "\n"));
    }
    let head = format!(
        "{} on {}: e-graph {} classes, {} nodes; {} iterations, stopped: {}\n\
         limits: nodes {}, iterations {}, time {} s, multi-pattern iterations {}; extractor {}\n\n",
        graph.name,
        o.target,
        o.sat.egraph.number_of_classes(),
        o.sat.egraph.total_number_of_nodes(),
        o.sat.iterations.len(),
        o.sat.stop_reason,
        l.node_limit,
        l.iter_limit,
        l.time_limit_s,
        l.multi_pattern_iters,
        o.stats.extractor
    );
    write_out(out, &head)?;
    write_out(out, &changes.table())
}
