//! `eqopt experiment` and `eqopt plot`.

use crate::error::{Error, Result};
use crate::experiment::report::{Session, log_session, read_sessions, write_report};
use crate::experiment::results::{RESULTS_CSV, RESULTS_JSONL, Status};
use crate::experiment::runner::{SweepOptions, latest_records, run_sweep};
use crate::experiment::spec::Experiment;
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub(super) struct ExperimentArgs {
    /// The experiment file: TOML, or JSON by the .json extension (see docs/experiments.md).
    file: PathBuf,
    /// The results directory: results.jsonl and results.csv (appended as runs
    /// finish), tables.md, plots.json and plots/*.svg.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Continue a sweep in DIR: runs already recorded there are skipped.
    #[arg(long)]
    resume: bool,
    /// With --resume, run the recorded failures again.
    #[arg(long, requires = "resume")]
    retry_failed: bool,
    /// Runs at a time (default 1; measured latencies are only comparable with 1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    jobs: u64,
}

#[derive(Args, Debug)]
pub(super) struct PlotArgs {
    /// A results directory (holding results.jsonl) or a results.jsonl file.
    results: PathBuf,
    /// Where to write tables.md, plots.json and plots/ (default: beside the results).
    #[arg(short, long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The title of tables.md (default: the directory's name).
    #[arg(long)]
    title: Option<String>,
}

fn w(out: &mut dyn Write, s: String) -> Result<()> {
    out.write_all(s.as_bytes()).map_err(|e| Error::io("<stdout>", e))
}

pub(super) fn run_experiment(a: &ExperimentArgs, out: &mut dyn Write) -> Result<()> {
    let exp = Experiment::load(&a.file)?;
    let combos = exp.combinations().len();
    w(
        out,
        format!(
            "{}: {} models x {} rule sets x {} targets x {} limits x {} extractors x {} budgets = {combos} runs\n",
            a.file.display(),
            exp.models.len(),
            exp.file.rulesets.len(),
            exp.file.targets.len(),
            exp.file.limits.len(),
            exp.file.extractors.len(),
            exp.file.budgets.len()
        ),
    )?;
    let opts = SweepOptions {
        out: a.out.clone(),
        resume: a.resume,
        retry_failed: a.retry_failed,
        jobs: usize::try_from(a.jobs).unwrap_or(usize::MAX),
    };
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let mut session = Session::now(opts.jobs);
    let started = std::time::Instant::now();
    let bar = super::logging::progress(combos as u64, "runs");
    let summary = run_sweep(&exp, &opts, &|r| {
        bar.inc(1);
        if r.status == Some(Status::Failed) {
            bar.suspend(|| tracing::warn!("{}: failed: {}", r.key, r.error.as_deref().unwrap_or("")));
        }
    })?;
    bar.finish_and_clear();
    session.runs = summary.ok + summary.failed;
    session.wall_s = started.elapsed().as_secs_f64();
    if session.runs > 0 {
        log_session(&a.out, &session)?;
    }
    w(
        out,
        format!(
            "{} runs: {} skipped (already recorded), {} finished, {} failed\nwrote {} and {}\n",
            summary.total,
            summary.skipped,
            summary.ok,
            summary.failed,
            a.out.join(RESULTS_JSONL).display(),
            a.out.join(RESULTS_CSV).display()
        ),
    )?;
    let title = exp.file.name.clone().unwrap_or_else(|| title_of(&a.file));
    report(&a.out, &a.out, &title, out)
}

pub(super) fn run_plot(a: &PlotArgs, out: &mut dyn Write) -> Result<()> {
    let dir = if a.results.is_dir() {
        a.results.clone()
    } else {
        a.results.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    if !dir.join(RESULTS_JSONL).is_file() {
        return Err(Error::Usage {
            option: "RESULTS".into(),
            expected: format!("a results directory holding {RESULTS_JSONL} (from eqopt experiment), or that file"),
            found: a.results.display().to_string(),
        });
    }
    let target = a.out.clone().unwrap_or_else(|| dir.clone());
    std::fs::create_dir_all(&target).map_err(|e| Error::io(&target, e))?;
    let title = a.title.clone().unwrap_or_else(|| title_of(&dir));
    report(&dir, &target, &title, out)
}

fn title_of(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "experiment".into())
}

fn report(results: &Path, target: &Path, title: &str, out: &mut dyn Write) -> Result<()> {
    let records = latest_records(results)?;
    let written = write_report(target, title, &records, &read_sessions(results))?;
    for p in written {
        w(out, format!("wrote {}\n", p.display()))?;
    }
    Ok(())
}
