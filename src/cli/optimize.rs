//! `eqopt optimize`.

use super::{SearchArgs, ShapeArgs, budget, load_rules, logging, positive, same_file};
use crate::error::{Error, Result};
use crate::graph::json;
use crate::optimize::{OptimizeOptions, optimize_observed};
use crate::saturate::{IterationView, Limits, Observer};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub(super) struct OptimizeArgs {
    /// Input model: graph.json, or ONNX (by the .onnx extension).
    input: PathBuf,
    /// Output model: .onnx writes ONNX; otherwise graph.json (weights, if any, go to <stem>.safetensors beside it).
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    shapes: ShapeArgs,
    /// Also write the report as JSON.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Print the report as one JSON object on stdout instead of the table (with
    /// --pareto, it gains a `pareto` member: the files written and the points).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    search: SearchArgs,
    /// Allow the output to be the input file.
    #[arg(long)]
    overwrite_input: bool,
    /// List the rules whose rewrites the optimized graph uses, with the nodes each built.
    #[arg(long)]
    explain: bool,
    #[command(flatten)]
    budget: budget::BudgetArgs,
}

pub(super) fn run_optimize(a: &OptimizeArgs, out: &mut dyn Write) -> Result<()> {
    if !a.overwrite_input && same_file(&a.input, &a.output) {
        return Err(Error::Usage {
            option: "--output".into(),
            expected: "a path other than the input (or --overwrite-input)".into(),
            found: a.output.display().to_string(),
        });
    }
    let (target, calibrated) = crate::calibrate::resolve_target(&a.search.target)?;
    if let Some(path) = calibrated {
        if a.json {
            tracing::info!("target cpu: the calibrated profile {}", path.display());
        } else {
            writeln!(out, "target cpu: the calibrated profile {}", path.display()).map_err(|e| Error::io("<stdout>", e))?;
        }
    }
    let rules = load_rules(&a.search.rules)?;
    let graph = a.shapes.load(&a.input)?;
    let limits = a.search.limits()?;
    let mut opts = OptimizeOptions::new(target)
        .with_limits(limits)
        .with_extractor(a.search.extractor.clone())
        .with_activations(a.budget.activations);
    opts.extract_time_limit_s = positive("--extract-time-limit", a.search.extract_time_limit)?;
    opts.explain = a.explain;
    opts.max_error = a.budget.max_error;
    a.budget.check()?;
    let mut meter = a.budget.meter(&graph)?;
    let meter = meter.as_mut().map(|m| m as &mut dyn crate::budget::ErrorMeter);
    let (optimized, report) = optimize_observed(&graph, &rules, &opts, meter, saturation_observer(&opts.limits))?;
    crate::onnx::save_any(&optimized, &a.output)?;
    tracing::info!("wrote {}", a.output.display());
    if let Some(r) = &a.report {
        let mut text = serde_json::to_string_pretty(&report).expect("reports serialize");
        text.push('\n');
        json::write_atomic(r, text.as_bytes())?;
    }
    let w = |out: &mut dyn Write, s: &str| out.write_all(s.as_bytes()).map_err(|e| Error::io("<stdout>", e));
    if !a.json {
        w(out, &report.table())?;
        w(out, &format!("wrote {}\n", a.output.display()))?;
    }
    let front = a.budget.pareto(&graph, &rules, &opts)?;
    if !a.json {
        return match &front {
            Some(f) => w(out, &f.table()),
            None => Ok(()),
        };
    }
    let mut v = serde_json::to_value(&report).expect("reports serialize");
    if let Some(f) = &front {
        v["pareto"] = f.json();
    }
    w(out, &(serde_json::to_string_pretty(&v).expect("plain values") + "\n"))
}

/// A progress bar over the saturation iterations (the e-graph's size as its
/// message), or `None` when bars are hidden. The bar is cleared when
/// saturation drops the observer.
pub(super) fn saturation_observer(limits: &Limits) -> Option<Observer> {
    let bar = logging::progress(limits.iter_limit as u64, "saturating");
    if bar.is_hidden() {
        return None;
    }
    Some(Box::new(move |view: &IterationView<'_>| {
        bar.set_position(view.index as u64);
        bar.set_message(format!(
            "{} e-nodes, {} e-classes",
            view.egraph.total_number_of_nodes(),
            view.egraph.number_of_classes()
        ));
    }))
}
