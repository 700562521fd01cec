//! One run's record, and the results files: `results.jsonl` (one record per
//! line, the source of truth) and `results.csv` (the scalar fields, one row per
//! record, in the same order).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The JSON lines file in a results directory.
pub const RESULTS_JSONL: &str = "results.jsonl";
/// The CSV file in a results directory.
pub const RESULTS_CSV: &str = "results.csv";

/// Whether a run finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It ran to the end.
    Ok,
    /// It stopped with an error (or a panic), recorded in [`RunRecord::error`].
    Failed,
}

/// The e-graph's size at the start of one iteration (or, last, at the end).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Growth {
    /// E-classes.
    pub classes: usize,
    /// E-nodes.
    pub nodes: usize,
}

/// What one run recorded. Fields a run did not reach (a failed run) or was
/// not asked for (measurement, the optimum) are `None`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's key (see `Experiment::key`).
    pub key: String,
    /// Model path, as in the experiment.
    pub model: String,
    /// Rule set name.
    pub ruleset: String,
    /// Target name.
    pub target: String,
    /// Limits name.
    pub limits: String,
    /// Extractor.
    pub extractor: String,
    /// Accuracy budget (0: exact).
    pub budget: f64,
    /// Whether it finished.
    pub status: Option<Status>,
    /// The error of a failed run.
    pub error: Option<String>,
    /// Wall time of the whole run, seconds.
    pub wall_s: f64,
    /// Nodes of the input graph.
    pub graph_nodes: Option<usize>,
    /// Saturation iterations run.
    pub iterations: Option<usize>,
    /// Why saturation stopped.
    pub stop_reason: Option<String>,
    /// E-classes after saturation.
    pub egraph_classes: Option<usize>,
    /// E-nodes after saturation.
    pub egraph_nodes: Option<usize>,
    /// Size at the start of every iteration, then at the end.
    #[serde(default)]
    pub growth: Vec<Growth>,
    /// Estimated cost (greedy DAG extraction, seconds on the target) at the
    /// start of every iteration, then at the end (`trace_cost`).
    #[serde(default)]
    pub cost_trace: Vec<f64>,
    /// Saturation wall time, seconds.
    pub saturation_s: Option<f64>,
    /// Extraction wall time, seconds.
    pub extraction_s: Option<f64>,
    /// Estimated latency of the input graph on the target, seconds.
    pub cost_before_s: Option<f64>,
    /// Estimated latency of the optimized graph on the target, seconds.
    pub cost_after_s: Option<f64>,
    /// The extractor's DAG cost of the chosen term, seconds.
    pub dag_cost_s: Option<f64>,
    /// The exact extraction's DAG cost (ILP, `optimum_time_limit`), seconds.
    pub optimum_s: Option<f64>,
    /// Whether the ILP proved that cost optimal within its time limit.
    pub optimum_proven: Option<bool>,
    /// Kernels of the input graph.
    pub kernels_before: Option<usize>,
    /// Kernels of the optimized graph.
    pub kernels_after: Option<usize>,
    /// Approximate nodes in the result (budgeted runs).
    pub approx_nodes: Option<usize>,
    /// Estimated relative output error of the result (budgeted runs).
    pub estimated_error: Option<f64>,
    /// Bytes of the input graph's weights as stored.
    pub weight_bytes_before: Option<u64>,
    /// Bytes of the result's weights as stored.
    pub weight_bytes_after: Option<u64>,
    /// Measured median latency of the input graph on the CPU backend, seconds.
    pub measured_before_s: Option<f64>,
    /// Measured median latency of the result on the CPU backend, seconds.
    pub measured_after_s: Option<f64>,
    /// Measured relative output error of the result against the input graph
    /// (worst output, seeded random inputs, CPU backend).
    pub measured_error: Option<f64>,
}

impl RunRecord {
    /// Whether the run finished without error.
    pub fn is_ok(&self) -> bool {
        self.status == Some(Status::Ok)
    }
}

/// The columns of results.csv, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "key",
    "model",
    "ruleset",
    "target",
    "limits",
    "extractor",
    "budget",
    "status",
    "error",
    "wall_s",
    "graph_nodes",
    "iterations",
    "stop_reason",
    "egraph_classes",
    "egraph_nodes",
    "saturation_s",
    "extraction_s",
    "cost_before_s",
    "cost_after_s",
    "dag_cost_s",
    "optimum_s",
    "optimum_proven",
    "kernels_before",
    "kernels_after",
    "approx_nodes",
    "estimated_error",
    "weight_bytes_before",
    "weight_bytes_after",
    "measured_before_s",
    "measured_after_s",
    "measured_error",
];

/// The header line of results.csv (with its newline).
pub fn csv_header() -> String {
    let mut s = CSV_COLUMNS.join(",");
    s.push('\n');
    s
}

/// One record as a CSV line (with its newline), columns as [`CSV_COLUMNS`].
pub fn csv_row(r: &RunRecord) -> String {
    fn opt<T: ToString>(v: &Option<T>) -> String {
        v.as_ref().map(ToString::to_string).unwrap_or_default()
    }
    let status = match r.status {
        Some(Status::Ok) => "ok",
        Some(Status::Failed) => "failed",
        None => "",
    };
    let fields = [
        r.key.clone(),
        r.model.clone(),
        r.ruleset.clone(),
        r.target.clone(),
        r.limits.clone(),
        r.extractor.clone(),
        r.budget.to_string(),
        status.to_string(),
        opt(&r.error),
        r.wall_s.to_string(),
        opt(&r.graph_nodes),
        opt(&r.iterations),
        opt(&r.stop_reason),
        opt(&r.egraph_classes),
        opt(&r.egraph_nodes),
        opt(&r.saturation_s),
        opt(&r.extraction_s),
        opt(&r.cost_before_s),
        opt(&r.cost_after_s),
        opt(&r.dag_cost_s),
        opt(&r.optimum_s),
        opt(&r.optimum_proven),
        opt(&r.kernels_before),
        opt(&r.kernels_after),
        opt(&r.approx_nodes),
        opt(&r.estimated_error),
        opt(&r.weight_bytes_before),
        opt(&r.weight_bytes_after),
        opt(&r.measured_before_s),
        opt(&r.measured_after_s),
        opt(&r.measured_error),
    ];
    debug_assert_eq!(fields.len(), CSV_COLUMNS.len());
    let mut line = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
    line.push('\n');
    line
}

/// RFC 4180 quoting: fields with a comma, quote or line break are quoted.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The records of a results.jsonl file, in file order. A last line without
/// its newline (a run interrupted while writing) is not a record: it is
/// reported in the second value (its byte offset) so the caller can cut it.
///
/// # Errors
/// [`Error::Io`] if it cannot be read; [`Error::Experiment`] for a complete
/// line that is not a record, naming the line.
pub fn read_jsonl(path: &Path) -> Result<(Vec<RunRecord>, Option<usize>)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_jsonl(&text, path)
}

/// [`read_jsonl`] on text.
///
/// # Errors
/// As [`read_jsonl`].
pub fn parse_jsonl(text: &str, path: &Path) -> Result<(Vec<RunRecord>, Option<usize>)> {
    let mut records = Vec::new();
    let mut offset = 0usize;
    let mut partial = None;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if !line.ends_with('\n') {
            partial = Some(offset);
            break;
        }
        offset += line.len();
        if line.trim().is_empty() {
            continue;
        }
        let r: RunRecord = serde_json::from_str(line).map_err(|e| Error::Experiment {
            file: path.to_path_buf(),
            problem: format!("line {}: expected a run record, found {e}", i + 1),
        })?;
        records.push(r);
    }
    Ok((records, partial))
}

/// The two results files of a directory, open for appending.
pub struct ResultsWriter {
    jsonl: std::fs::File,
    csv: std::fs::File,
    jsonl_path: PathBuf,
    csv_path: PathBuf,
}

impl ResultsWriter {
    /// Opens `dir`'s results files for appending. `existing` are the records
    /// already in results.jsonl (after cutting any partial line): results.csv
    /// is rewritten from them first (through a temporary file), so the two
    /// files agree whatever state an interruption left the CSV in.
    ///
    /// # Errors
    /// [`Error::Io`] for a file that cannot be written.
    pub fn open(dir: &Path, existing: &[RunRecord]) -> Result<ResultsWriter> {
        let jsonl_path = dir.join(RESULTS_JSONL);
        let csv_path = dir.join(RESULTS_CSV);
        let mut text = csv_header();
        for r in existing {
            text.push_str(&csv_row(r));
        }
        crate::graph::json::write_atomic(&csv_path, text.as_bytes())?;
        let append = |p: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| Error::io(p, e))
        };
        Ok(ResultsWriter {
            jsonl: append(&jsonl_path)?,
            csv: append(&csv_path)?,
            jsonl_path,
            csv_path,
        })
    }

    /// Appends one record to both files, each with one write, then flushes.
    ///
    /// # Errors
    /// [`Error::Io`] if a write fails.
    pub fn append(&mut self, r: &RunRecord) -> Result<()> {
        let mut line = serde_json::to_string(r).expect("records serialize");
        line.push('\n');
        self.jsonl
            .write_all(line.as_bytes())
            .and_then(|()| self.jsonl.flush())
            .map_err(|e| Error::io(&self.jsonl_path, e))?;
        self.csv
            .write_all(csv_row(r).as_bytes())
            .and_then(|()| self.csv.flush())
            .map_err(|e| Error::io(&self.csv_path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_last_line_is_not_a_record() {
        let r = RunRecord {
            key: "k".into(),
            status: Some(Status::Ok),
            ..RunRecord::default()
        };
        let line = serde_json::to_string(&r).unwrap();
        let text = format!("{line}\n{}", &line[..10]);
        let (records, partial) = parse_jsonl(&text, Path::new("r.jsonl")).unwrap();
        assert_eq!(records, vec![r]);
        assert_eq!(partial, Some(line.len() + 1));
    }

    #[test]
    fn a_bad_complete_line_is_an_error_naming_it() {
        let err = parse_jsonl("{\"key\": 1}\n", Path::new("r.jsonl")).unwrap_err().to_string();
        assert!(err.starts_with("r.jsonl: line 1: expected a run record"), "{err}");
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        let r = RunRecord {
            key: "a, b".into(),
            error: Some("said \"no\"".into()),
            ..RunRecord::default()
        };
        let row = csv_row(&r);
        assert!(row.starts_with("\"a, b\","), "{row}");
        assert!(row.contains("\"said \"\"no\"\"\""), "{row}");
        assert_eq!(row.matches(',').count() - 1, CSV_COLUMNS.len() - 1, "{row}");
    }
}
