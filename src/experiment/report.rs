//! The tables (`tables.md`) and plots (`plots.json`, `plots/*.svg`) of a
//! results directory, regenerated from its results.jsonl alone.

use super::plots::{plots, sig3, svg};
use super::results::RunRecord;
use super::spec::budget_label;
use crate::error::Result;
use crate::graph::json::write_atomic;
use std::path::{Path, PathBuf};

/// The Markdown tables file of a results directory.
pub const TABLES_MD: &str = "tables.md";
/// The plot data file of a results directory.
pub const PLOTS_JSON: &str = "plots.json";
/// The folder of SVG plots in a results directory.
pub const PLOTS_DIR: &str = "plots";
/// The log of `eqopt experiment` invocations in a results directory.
pub const SESSIONS_JSONL: &str = "sessions.jsonl";

/// One `eqopt experiment` invocation on a results directory: when, where, how.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    /// Start, UTC, `YYYY-MM-DD HH:MM`.
    pub started: String,
    /// The CPU (from /proc/cpuinfo where there is one).
    pub cpu: String,
    /// Logical cores.
    pub cores: usize,
    /// eqopt's version.
    pub eqopt: String,
    /// Runs at a time.
    pub jobs: usize,
    /// Runs made in this session (finished or failed).
    pub runs: usize,
    /// Wall time of the session, seconds.
    pub wall_s: f64,
}

impl Session {
    /// A session starting now on this machine.
    pub fn now(jobs: usize) -> Session {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Session {
            started: utc_minute(secs),
            cpu: crate::calibrate::cpu_name(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            eqopt: env!("CARGO_PKG_VERSION").to_string(),
            jobs,
            runs: 0,
            wall_s: 0.0,
        }
    }
}

/// Appends `s` to `dir`'s sessions log.
///
/// # Errors
/// [`crate::Error::Io`] if it cannot be written.
pub fn log_session(dir: &Path, s: &Session) -> Result<()> {
    use std::io::Write;
    let path = dir.join(SESSIONS_JSONL);
    let mut line = serde_json::to_string(s).expect("sessions serialize");
    line.push('\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|e| crate::Error::io(&path, e))
}

/// The sessions logged in `dir` (none if there is no log; unreadable lines are skipped).
pub fn read_sessions(dir: &Path) -> Vec<Session> {
    std::fs::read_to_string(dir.join(SESSIONS_JSONL))
        .map(|t| t.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
        .unwrap_or_default()
}

/// `secs` since the Unix epoch as `YYYY-MM-DD HH:MM` UTC.
fn utc_minute(secs: u64) -> String {
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let (y, mo, d) = crate::calibrate::civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}")
}

/// Writes the tables and plots of `records` into `dir` (each file through a
/// temporary file and a rename); returns the files written, in order.
///
/// # Errors
/// [`crate::Error::Io`] if a file cannot be written.
pub fn write_report(dir: &Path, title: &str, records: &[RunRecord], sessions: &[Session]) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let tables = dir.join(TABLES_MD);
    let mut text = tables_md(title, records);
    if !sessions.is_empty() {
        text += "\n## Sessions\n\nThe `eqopt experiment` invocations that made these runs.\n\n";
        text += &row(&["started (UTC)", "machine", "cores", "eqopt", "jobs", "runs", "wall s"].map(String::from));
        text += &row(&["---", "---", "---:", "---", "---:", "---:", "---:"].map(String::from));
        for s in sessions {
            text += &row(&[
                s.started.clone(),
                s.cpu.clone(),
                s.cores.to_string(),
                s.eqopt.clone(),
                s.jobs.to_string(),
                s.runs.to_string(),
                sig3(s.wall_s),
            ]);
        }
    }
    write_atomic(&tables, text.as_bytes())?;
    written.push(tables);
    let data = plots(records);
    let json = dir.join(PLOTS_JSON);
    let mut text = serde_json::to_string_pretty(&data).expect("plot data serializes");
    text.push('\n');
    write_atomic(&json, text.as_bytes())?;
    written.push(json);
    let folder = dir.join(PLOTS_DIR);
    std::fs::create_dir_all(&folder).map_err(|e| crate::Error::io(&folder, e))?;
    for p in &data {
        let path = folder.join(format!("{}.svg", p.file));
        write_atomic(&path, svg(p).as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

fn ms(s: Option<f64>) -> String {
    s.map_or("-".into(), |s| sig3(s * 1e3))
}

fn secs(s: Option<f64>) -> String {
    s.map_or("-".into(), sig3)
}

fn num<T: ToString>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

fn sci(v: Option<f64>) -> String {
    // `+ 0.0` turns -0 (an empty sum, in older records) into 0.
    v.map_or("-".into(), |v| format!("{:.2e}", v + 0.0))
}

/// The tables as Markdown: every run, extractors against the optimum (when
/// the ILP ran), and failures. Rows are in key order.
pub fn tables_md(title: &str, records: &[RunRecord]) -> String {
    let mut rs: Vec<&RunRecord> = records.iter().collect();
    rs.sort_by(|a, b| a.key.cmp(&b.key));
    let (ok, failed): (Vec<&RunRecord>, Vec<&RunRecord>) = rs.iter().partition(|r| r.is_ok());
    let mut s = format!(
        "# {title}\n\n{} runs: {} finished, {} failed.\n\n",
        rs.len(),
        ok.len(),
        failed.len()
    );
    let measured = ok.iter().any(|r| r.measured_after_s.is_some());
    let budgeted = ok.iter().any(|r| r.budget > 0.0);
    s += "## Runs\n\nEstimated latencies are the roofline cost model's on the target; \
          saturation and extraction times are wall-clock seconds on the machine that ran the sweep.\n\n";
    let mut head = vec![
        "model",
        "rules",
        "target",
        "limits",
        "extractor",
        "iters",
        "stop",
        "e-classes",
        "e-nodes",
        "sat. s",
        "ext. s",
        "est. before ms",
        "est. after ms",
        "est. speedup",
        "kernels",
    ];
    if budgeted {
        head.extend(["budget", "approx", "est. error"]);
    }
    if measured {
        head.extend(["meas. before ms", "meas. after ms", "meas. speedup", "meas. error"]);
    }
    s += &row(&head.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    s += &row(&head
        .iter()
        .map(|h| {
            if ["model", "rules", "target", "limits", "extractor", "stop"].contains(h) {
                "---".to_string()
            } else {
                "---:".to_string()
            }
        })
        .collect::<Vec<_>>());
    for r in &ok {
        let speedup = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
            _ => "-".into(),
        };
        let mut cells = vec![
            r.model.clone(),
            r.ruleset.clone(),
            r.target.clone(),
            r.limits.clone(),
            r.extractor.clone(),
            num(r.iterations),
            r.stop_reason
                .clone()
                .unwrap_or_default()
                .split(' ')
                .next()
                .unwrap_or("")
                .to_string(),
            num(r.egraph_classes),
            num(r.egraph_nodes),
            secs(r.saturation_s),
            secs(r.extraction_s),
            ms(r.cost_before_s),
            ms(r.cost_after_s),
            speedup(r.cost_before_s, r.cost_after_s),
            format!("{} → {}", num(r.kernels_before), num(r.kernels_after)),
        ];
        if budgeted {
            cells.extend([budget_label(r.budget), num(r.approx_nodes), sci(r.estimated_error)]);
        }
        if measured {
            cells.extend([
                ms(r.measured_before_s),
                ms(r.measured_after_s),
                speedup(r.measured_before_s, r.measured_after_s),
                sci(r.measured_error),
            ]);
        }
        s += &row(&cells);
    }
    let with_optimum: Vec<&&RunRecord> = ok.iter().filter(|r| r.optimum_s.is_some()).collect();
    if !with_optimum.is_empty() {
        s += "\n## Extractors against the optimum\n\nThe ILP's DAG cost on the same e-graph; \
              \"proven\" when it finished within its time limit (otherwise the best it found).\n\n";
        s += &row(&[
            "model",
            "rules",
            "target",
            "extractor",
            "cost ms",
            "optimum ms",
            "cost / optimum",
            "proven",
        ]
        .map(String::from));
        s += &row(&["---", "---", "---", "---", "---:", "---:", "---:", "---"].map(String::from));
        for r in with_optimum {
            let ratio = match (r.dag_cost_s, r.optimum_s) {
                (Some(c), Some(o)) if o > 0.0 => format!("{:.4}", c / o),
                _ => "-".into(),
            };
            s += &row(&[
                r.model.clone(),
                r.ruleset.clone(),
                r.target.clone(),
                r.extractor.clone(),
                ms(r.dag_cost_s),
                ms(r.optimum_s),
                ratio,
                r.optimum_proven.map_or("-", |p| if p { "yes" } else { "no" }).to_string(),
            ]);
        }
    }
    if !failed.is_empty() {
        s += "\n## Failures\n\n";
        s += &row(&["run".to_string(), "error".to_string()]);
        s += &row(&["---".to_string(), "---".to_string()]);
        for r in &failed {
            s += &row(&[r.key.clone(), r.error.clone().unwrap_or_default()]);
        }
    }
    s
}

/// A Markdown table row; `|` and line breaks in cells are escaped.
fn row(cells: &[String]) -> String {
    let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|").replace('\n', " ")).collect();
    format!("| {} |\n", cells.join(" | "))
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_minutes_are_civil_dates() {
        assert_eq!(super::utc_minute(0), "1970-01-01 00:00");
        assert_eq!(super::utc_minute(951_782_400 + 3_660), "2000-02-29 01:01");
        assert_eq!(super::utc_minute(1_795_568_400), "2026-11-25 01:00");
    }
}
