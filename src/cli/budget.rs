//! `eqopt optimize --max-error`: the accuracy budget's options and input sets.

use crate::budget::{CpuMeter, DEFAULT_CALIBRATION_SETS};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::graph::tensor::Tensor;
use crate::tensor_io;
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub(super) struct BudgetArgs {
    /// Allow approximate rewrites (weights in f16/bf16, rules/quant.rules) whose
    /// measured relative output error ‖y − ŷ‖₂ / ‖y‖₂ (worst output) stays within
    /// E. Without it (or with 0), the result computes the same function.
    #[arg(long, value_name = "E")]
    pub max_error: Option<f64>,
    /// Input sets the error is measured on: every .npz file of DIR is one set
    /// (keyed by input name); without .npz files, DIR's .npy files are one set
    /// (file stem = input name). Default: seeded random inputs.
    #[arg(long, value_name = "DIR", requires = "max_error")]
    pub calibration: Option<PathBuf>,
}

impl BudgetArgs {
    /// The meter for `graph` when a positive budget is given.
    pub fn meter(&self, graph: &Graph) -> Result<Option<CpuMeter>> {
        if !self.max_error.is_some_and(|e| e > 0.0) {
            return Ok(None);
        }
        let meter = match &self.calibration {
            Some(dir) => CpuMeter::new(graph, calibration_sets(dir)?)?,
            None => CpuMeter::seeded(graph, 0, DEFAULT_CALIBRATION_SETS)?,
        };
        Ok(Some(meter))
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
