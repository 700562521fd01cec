//! `eqopt experiment` and `eqopt plot`: resume, failures, plots.

use eqopt::experiment::plots::plots;
use eqopt::experiment::report::tables_md;
use eqopt::experiment::results::{RESULTS_CSV, RESULTS_JSONL, Status, read_jsonl};
use eqopt::experiment::runner::{SweepOptions, latest_records, run_sweep};
use eqopt::experiment::spec::Experiment;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An experiment file in `dir` over two small example models.
fn small_experiment(dir: &Path, extra: &str) -> PathBuf {
    let text = format!(
        r#"
name = "test sweep"
models = ["{root}/examples/mlp.json", "{root}/examples/transpose_chain.json"]
extractors = ["greedy", "eqopt"]
trace_cost = true
[[limits]]
name = "short"
iter_limit = 4
{extra}
"#,
        root = root().display()
    );
    let path = dir.join("sweep.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().count()
}

#[test]
fn a_sweep_records_every_run_and_resume_skips_the_finished_ones() {
    let dir = tempfile::tempdir().unwrap();
    let exp = Experiment::load(&small_experiment(dir.path(), "")).unwrap();
    let out = dir.path().join("out");
    let seen = Mutex::new(Vec::new());
    let summary = run_sweep(&exp, &SweepOptions::new(&out).with_jobs(2), &|r| {
        seen.lock().unwrap().push(r.key.clone())
    })
    .unwrap();
    assert_eq!((summary.total, summary.skipped, summary.ok, summary.failed), (4, 0, 4, 0));
    assert_eq!(seen.lock().unwrap().len(), 4, "progress is told of every run");
    let (records, partial) = read_jsonl(&out.join(RESULTS_JSONL)).unwrap();
    assert_eq!(partial, None);
    assert_eq!(records.len(), 4);
    for r in &records {
        assert_eq!(r.status, Some(Status::Ok), "{r:?}");
        assert!(r.cost_after_s.unwrap() <= r.cost_before_s.unwrap() * (1.0 + 1e-9), "{r:?}");
        assert_eq!(r.growth.len(), r.iterations.unwrap() + 1, "{r:?}");
        assert_eq!(r.cost_trace.len(), r.iterations.unwrap() + 1, "{r:?}");
        assert!(r.iterations.unwrap() <= 4);
    }
    assert_eq!(lines(&out.join(RESULTS_CSV)), 5, "header and one row per run");

    // Without --resume a directory with results is refused, untouched.
    let err = run_sweep(&exp, &SweepOptions::new(&out), &|_| {}).unwrap_err().to_string();
    assert!(err.contains("already holds 4 run records: pass --resume"), "{err}");

    // Resuming a finished sweep runs nothing.
    let again = run_sweep(&exp, &SweepOptions::new(&out).with_resume(true), &|_| panic!("nothing to run")).unwrap();
    assert_eq!((again.skipped, again.ok, again.failed), (4, 0, 0));
    assert_eq!(lines(&out.join(RESULTS_JSONL)), 4);

    // An interrupted sweep: two records kept and half a line written. Resume
    // cuts the half line and runs only the two missing combinations.
    let text = std::fs::read_to_string(out.join(RESULTS_JSONL)).unwrap();
    let kept: Vec<&str> = text.lines().take(2).collect();
    let cut = format!("{}\n{}\n{}", kept[0], kept[1], &text.lines().nth(2).unwrap()[..40]);
    std::fs::write(out.join(RESULTS_JSONL), cut).unwrap();
    let ran = Mutex::new(Vec::new());
    let resumed = run_sweep(&exp, &SweepOptions::new(&out).with_resume(true), &|r| {
        ran.lock().unwrap().push(r.key.clone())
    })
    .unwrap();
    assert_eq!((resumed.skipped, resumed.ok, resumed.failed), (2, 2, 0));
    let kept_keys: Vec<String> = kept
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for k in ran.lock().unwrap().iter() {
        assert!(!kept_keys.contains(k), "{k} was finished and ran again");
    }
    let (records, partial) = read_jsonl(&out.join(RESULTS_JSONL)).unwrap();
    assert_eq!(partial, None);
    let mut keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 4, "every combination once");
    assert_eq!(records.len(), 4);
    assert_eq!(lines(&out.join(RESULTS_CSV)), 5, "the CSV is rebuilt from the JSON lines");
}

#[test]
fn a_failing_combination_is_recorded_and_the_sweep_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.json"), "{\"format\": \"eqopt-graph\", \"nodes\": [").unwrap();
    let text = format!(
        r#"
models = ["{root}/examples/mlp.json", "broken.json"]
targets = ["cpu", "no-such-target"]
"#,
        root = root().display()
    );
    let path = dir.path().join("sweep.toml");
    std::fs::write(&path, text).unwrap();
    let exp = Experiment::load(&path).unwrap();
    let out = dir.path().join("out");
    let summary = run_sweep(&exp, &SweepOptions::new(&out), &|_| {}).unwrap();
    assert_eq!((summary.total, summary.ok, summary.failed), (4, 1, 3));
    let records = latest_records(&out).unwrap();
    assert_eq!(records.len(), 4);
    let ok: Vec<_> = records.iter().filter(|r| r.is_ok()).collect();
    assert_eq!(ok.len(), 1);
    assert!(ok[0].model.ends_with("mlp.json") && ok[0].target == "cpu");
    for r in records.iter().filter(|r| !r.is_ok()) {
        let e = r.error.as_deref().unwrap();
        if r.model == "broken.json" {
            assert!(e.contains("broken.json"), "the error names the file: {e}");
        } else {
            assert!(e.contains("no-such-target"), "the error names the target: {e}");
        }
    }
    // Resume leaves failures alone unless asked to retry them.
    let mut opts = SweepOptions::new(&out).with_resume(true);
    assert_eq!(run_sweep(&exp, &opts, &|_| {}).unwrap().skipped, 4);
    opts.retry_failed = true;
    let retried = run_sweep(&exp, &opts, &|_| {}).unwrap();
    assert_eq!((retried.skipped, retried.failed), (1, 3));
    assert_eq!(latest_records(&out).unwrap().len(), 4, "readers keep the last record of a key");
    let tables = tables_md("t", &latest_records(&out).unwrap());
    assert!(tables.contains("## Failures"), "{tables}");
}

#[test]
fn experiment_files_are_checked_with_clear_errors() {
    let cases = [
        ("models = []", "\"models\": expected at least one entry, found none"),
        (
            "models = [\"x\"]\nextractors = [\"fastest\"]",
            "\"extractors\": expected one of greedy, eqopt, ilp, found \"fastest\"",
        ),
        (
            "models = [\"x\"]\nbudgets = [-1.0]",
            "\"budgets\": expected non-negative relative errors, found -1",
        ),
        (
            "models = [\"x\"]\ntargets = [\"cpu\", \"cpu\"]",
            "\"targets\": the name \"cpu\" is used twice",
        ),
        ("models = [\"x\"]\nmodel = 3", "line 2: unknown field `model`"),
        (
            "models = [\"no-such-model-*.json\"]",
            "model pattern \"no-such-model-*.json\": expected at least one file, found none",
        ),
    ];
    for (text, want) in cases {
        let err = Experiment::parse(text, Path::new("bad.toml")).unwrap_err().to_string();
        assert!(err.starts_with("bad.toml: "), "{err}");
        assert!(err.contains(want), "for {text:?}: {err}");
    }
    let err = Experiment::parse("{\"models\": [\"x\"], \"limits\": 3}", Path::new("bad.json"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("bad.json: line 1, column"), "{err}");
}

#[test]
fn plots_and_tables_come_from_a_small_results_file() {
    let fixture = root().join("tests/experiment/results.jsonl");
    let (records, _) = read_jsonl(&fixture).unwrap();
    let data = plots(&records);
    let names: Vec<&str> = data.iter().map(|p| p.file.as_str()).collect();
    assert_eq!(
        names,
        [
            "egraph-growth",
            "cost-vs-iterations",
            "estimated-vs-measured",
            "pareto",
            "extractors"
        ]
    );
    insta::with_settings!({snapshot_path => root().join("snapshots"), prepend_module_to_snapshot => false, omit_expression => true}, {
        insta::assert_json_snapshot!("experiment__plot_data", data);
        insta::assert_snapshot!("experiment__tables", tables_md("fixture", &records));
    });

    // The command writes the same data, and SVGs with one marker per point.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&fixture, dir.path().join(RESULTS_JSONL)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_eqopt"))
        .args(["plot", dir.path().to_str().unwrap(), "--title", "fixture"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let written = std::fs::read_to_string(dir.path().join("plots.json")).unwrap();
    assert_eq!(written.trim_end(), serde_json::to_string_pretty(&data).unwrap());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("tables.md")).unwrap(),
        tables_md("fixture", &records)
    );
    for p in &data {
        let svg = std::fs::read_to_string(dir.path().join("plots").join(format!("{}.svg", p.file))).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{}", p.file);
        assert!(svg.contains(&p.title), "{} has its title", p.file);
        let points: usize = p.series.iter().map(|s| s.points.len()).sum();
        // One circle per point and one legend marker per series.
        assert_eq!(svg.matches("<circle").count(), points + p.series.len(), "{}", p.file);
        for s in &p.series {
            assert!(svg.contains(&s.name), "{}: legend names {}", p.file, s.name);
        }
    }
    // Regenerating gives byte-identical files.
    let first = std::fs::read(dir.path().join("plots/pareto.svg")).unwrap();
    let again = Command::new(env!("CARGO_BIN_EXE_eqopt"))
        .args(["plot", dir.path().join(RESULTS_JSONL).to_str().unwrap(), "--title", "fixture"])
        .output()
        .unwrap();
    assert!(again.status.success());
    assert_eq!(std::fs::read(dir.path().join("plots/pareto.svg")).unwrap(), first);
}

#[test]
fn the_command_runs_a_sweep_then_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = small_experiment(dir.path(), "");
    let out_dir = dir.path().join("out");
    let run = |extra: &[&str]| {
        let mut args = vec!["experiment", file.to_str().unwrap(), "--out", out_dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_eqopt")).args(&args).output().unwrap()
    };
    let first = run(&["--jobs", "2"]);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(stdout.contains("= 4 runs"), "{stdout}");
    assert!(
        stdout.contains("4 runs: 0 skipped (already recorded), 4 finished, 0 failed"),
        "{stdout}"
    );
    for f in [
        "tables.md",
        "plots.json",
        "plots/egraph-growth.svg",
        "plots/cost-vs-iterations.svg",
        "plots/extractors.svg",
    ] {
        assert!(out_dir.join(f).is_file(), "{f} written");
    }
    assert!(
        first.stderr.is_empty(),
        "no progress bar when stderr is not a terminal: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    let refused = run(&[]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("pass --resume"));
    let resumed = run(&["--resume"]);
    assert!(resumed.status.success());
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("4 runs: 4 skipped (already recorded), 0 finished, 0 failed"));
}
