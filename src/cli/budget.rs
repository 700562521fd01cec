//! `eqopt optimize --max-error`: the accuracy budget's options and input sets.

use crate::budget::{CpuMeter, DEFAULT_CALIBRATION_SETS};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::graph::tensor::Tensor;
use crate::pareto::ParetoPoint;
use crate::tensor_io;
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub(super) struct BudgetArgs {
    /// Allow approximate rewrites (weights in f16/bf16/int8/int4,
    /// rules/quant.rules; truncated-SVD low rank, rules/lowrank.rules; pruned
    /// hidden units, rules/prune.rules) whose measured relative output error
    /// ‖y − ŷ‖₂ / ‖y‖₂ (worst output) stays within E. Without it (or with 0),
    /// the result computes the same function.
    #[arg(long, value_name = "E")]
    pub max_error: Option<f64>,
    /// The precision approximate rewrites may compute activations in: `bf16`
    /// lets matrix products round their activation to bfloat16 against bf16
    /// weights (rules/activations.rules; twice the f32 rate on AVX-512 BF16
    /// CPUs). Needs --max-error.
    #[arg(long, value_enum, default_value_t = crate::rules::ActivationPrecision::F32, value_name = "PRECISION")]
    pub activations: crate::rules::ActivationPrecision,
    /// Input sets the error is measured on: every .npz file of DIR is one set
    /// (keyed by input name); without .npz files, DIR's .npy files are one set
    /// (file stem = input name). Default: seeded random inputs.
    #[arg(long, value_name = "DIR")]
    pub calibration: Option<PathBuf>,
    /// Also sweep accuracy budgets over one saturation and write the
    /// latency/error front: FILE (CSV, one row per budget, the exact graph
    /// first) and FILE with the extension .svg (a plot of it).
    #[arg(long, value_name = "FILE.csv")]
    pub pareto: Option<PathBuf>,
    /// The budgets `--pareto` sweeps (default: 1e-4,3e-4,1e-3,3e-3,1e-2,3e-2,1e-1).
    #[arg(long, value_delimiter = ',', value_name = "E,..", requires = "pareto")]
    pub budgets: Option<Vec<f64>>,
}

impl BudgetArgs {
    /// Rejects option combinations that would be silently ignored.
    pub fn check(&self) -> Result<()> {
        let budgeted = self.max_error.is_some_and(|e| e > 0.0) || self.pareto.is_some();
        if self.activations != crate::rules::ActivationPrecision::F32 && !budgeted {
            return Err(Error::Usage {
                option: "--activations".into(),
                expected: "f32 unless --max-error (or --pareto) allows approximate rewrites".into(),
                found: format!("{:?}", self.activations).to_lowercase(),
            });
        }
        Ok(())
    }

    /// The meter for `graph` when a positive budget is given.
    pub fn meter(&self, graph: &Graph) -> Result<Option<CpuMeter>> {
        if !self.max_error.is_some_and(|e| e > 0.0) {
            return Ok(None);
        }
        self.any_meter(graph).map(Some)
    }

    /// The meter for `graph`: on the calibration sets, else seeded random inputs.
    pub fn any_meter(&self, graph: &Graph) -> Result<CpuMeter> {
        match &self.calibration {
            Some(dir) => CpuMeter::new(graph, calibration_sets(dir)?),
            None => CpuMeter::seeded(graph, 0, DEFAULT_CALIBRATION_SETS),
        }
    }

    /// Runs the `--pareto` sweep, if asked, with a progress bar over the
    /// points, and writes its CSV and SVG files.
    pub fn pareto(&self, graph: &Graph, rules: &crate::rules::RuleSet, opts: &crate::optimize::OptimizeOptions) -> Result<Option<Front>> {
        let Some(csv) = &self.pareto else { return Ok(None) };
        let mut meter = self.any_meter(graph)?;
        let budgets = self.budgets.clone().unwrap_or_else(|| crate::pareto::DEFAULT_BUDGETS.to_vec());
        let saturation = super::optimize::saturation_observer(&opts.limits);
        let bar = super::logging::progress(budgets.len() as u64 + 1, "pareto sweep");
        let mut on_point = |p: &ParetoPoint| {
            bar.inc(1);
            let which = if p.budget == 0.0 {
                "exact".to_string()
            } else {
                format!("budget {:.0e}", p.budget)
            };
            bar.set_message(format!("{which}: measured error {:.2e}", p.measured_error));
        };
        let points = crate::pareto::sweep_observed(graph, rules, opts, &budgets, &mut meter, saturation, &mut on_point)?;
        bar.finish_and_clear();
        let title = format!("{}: latency against error ({})", graph.name, opts.target.name);
        crate::pareto::write(&points, csv, &title)?;
        tracing::info!("wrote {} and {}", csv.display(), csv.with_extension("svg").display());
        Ok(Some(Front { csv: csv.clone(), points }))
    }
}

/// The result of a `--pareto` sweep: its points and the CSV file written
/// (the SVG plot lies beside it).
pub(super) struct Front {
    csv: PathBuf,
    points: Vec<ParetoPoint>,
}

impl Front {
    /// The table `eqopt optimize --pareto` prints, and the files written.
    pub fn table(&self) -> String {
        let mut s = format!("latency/error front ({} points; * on the front)\n", self.points.len());
        s += &format!(
            "{:>9} {:>7} {:>11} {:>11} {:>12} {:>12} {:>12}\n",
            "budget", "approx", "est. error", "meas. error", "est. ms", "meas. ms", "weights (B)"
        );
        for p in &self.points {
            s += &format!(
                "{:>9.1e} {:>7} {:>11.3e} {:>11.3e} {:>12.3} {:>12.3} {:>12}{}\n",
                p.budget,
                p.approx_nodes,
                p.estimated_error,
                p.measured_error,
                p.estimated_latency_s * 1e3,
                p.measured_latency_s * 1e3,
                p.weight_bytes,
                if p.on_front { " *" } else { "" }
            );
        }
        s + &format!("wrote {} and {}\n", self.csv.display(), self.csv.with_extension("svg").display())
    }

    /// The sweep as JSON: `{"csv", "svg", "points"}`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "csv": self.csv.display().to_string(),
            "svg": self.csv.with_extension("svg").display().to_string(),
            "points": self.points,
        })
    }
}

/// The input sets of a calibration directory (see [`BudgetArgs::calibration`]),
/// in file-name order.
fn calibration_sets(dir: &Path) -> Result<Vec<BTreeMap<String, Tensor>>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.map(|e| e.path()).map_err(|err| Error::io(dir, err)))
        .collect::<Result<_>>()?;
    files.sort();
    let npz: Vec<&PathBuf> = files.iter().filter(|p| tensor_io::has_extension(p, "npz")).collect();
    if !npz.is_empty() {
        return npz.into_iter().map(|p| tensor_io::read_npz(p)).collect();
    }
    let mut set = BTreeMap::new();
    for p in files.iter().filter(|p| tensor_io::has_extension(p, "npy")) {
        let name = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        set.insert(name, tensor_io::read_npy(p)?);
    }
    if set.is_empty() {
        return Err(Error::Usage {
            option: "--calibration".into(),
            expected: "a directory holding .npz input sets or .npy inputs".into(),
            found: format!("none in {}", dir.display()),
        });
    }
    Ok(vec![set])
}
