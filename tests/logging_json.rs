//! `--json`, `-v`/`-q` and progress bars, through the real binary: with
//! `--json` stdout is exactly one JSON document; logs go to stderr at the
//! level the flags ask for; progress bars never draw when stderr is not a
//! terminal (here it is a pipe).

mod common;

use common::bin::{eqopt, ok, stderr};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Output;

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("logging_json");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// Parses the whole of stdout as one JSON value (anything else on stdout fails).
fn json(o: &Output) -> Value {
    let text = ok(o);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{text}"))
}

/// Asserts stderr shows no trace of a progress bar or spinner.
fn assert_no_bars(o: &Output) {
    let e = stderr(o);
    for mark in ["\r", "\x1b[", "[=", "eta ", "e-nodes,", "pareto sweep", "evaluating 0s"] {
        assert!(!e.contains(mark), "progress output {mark:?} on stderr:\n{e}");
    }
}

#[test]
fn optimize_json_is_the_report() {
    let (out, report) = (tmp("opt-mlp.json"), tmp("opt-mlp.report.json"));
    let o = eqopt(&[
        "optimize",
        "examples/mlp.json",
        "-o",
        path(&out),
        "--json",
        "--report",
        path(&report),
    ]);
    let v = json(&o);
    for key in [
        "graph",
        "target",
        "before",
        "after",
        "stop_reason",
        "limits",
        "iterations",
        "extraction",
        "per_iteration",
    ] {
        assert!(v.get(key).is_some(), "no {key} in {v}");
    }
    assert_eq!(v["graph"], "mlp");
    assert_eq!(v["target"], "cpu");
    assert!(
        v["after"]["kernels"].as_u64().unwrap() < v["before"]["kernels"].as_u64().unwrap(),
        "{v}"
    );
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(file, v, "--report and --json write the same report");
    assert!(out.exists());
    assert_no_bars(&o);
}

#[test]
fn optimize_json_with_pareto_adds_the_front() {
    let (out, csv) = (tmp("pareto-mlp.json"), tmp("pareto-mlp.csv"));
    let o = eqopt(&[
        "optimize",
        "examples/mlp.json",
        "-o",
        path(&out),
        "--json",
        "--pareto",
        path(&csv),
        "--budgets",
        "1e-2",
    ]);
    let v = json(&o);
    let front = &v["pareto"];
    assert_eq!(front["csv"], path(&csv));
    assert_eq!(front["svg"], path(&csv.with_extension("svg")));
    let points = front["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "the exact point and one budget: {front}");
    assert_eq!(points[0]["budget"], 0.0);
    assert!(
        points
            .iter()
            .all(|p| p.get("measured_error").is_some() && p.get("on_front").is_some())
    );
    assert_no_bars(&o);
}

#[test]
fn run_json_lists_inputs_and_outputs() {
    let o = eqopt(&["run", "examples/mlp.json", "--random-inputs", "1", "--threads", "1", "--json"]);
    let v = json(&o);
    assert_eq!(v["model"], "examples/mlp.json");
    assert_eq!(v["engine"]["kind"], "cpu");
    assert_eq!(v["engine"]["threads"], 1);
    let inputs = v["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 1);
    assert_eq!(inputs[0]["name"], "x");
    assert_eq!(inputs[0]["dtype"], "f32");
    assert_eq!(inputs[0]["source"], "random (seed 1)");
    let outputs = v["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1);
    let y = &outputs[0];
    assert_eq!(y["name"], "probs");
    assert_eq!(y["dtype"], "f32");
    assert_eq!(y["shape"], serde_json::json!([1, 10]));
    let (min, max, mean) = (y["min"].as_f64().unwrap(), y["max"].as_f64().unwrap(), y["mean"].as_f64().unwrap());
    assert!(0.0 <= min && min <= mean && mean <= max && max <= 1.0, "{y}");
    assert!((mean - 0.1).abs() < 1e-6, "softmax over 10 classes: {y}");
    assert_eq!((y["nan"].as_u64(), y["inf"].as_u64()), (Some(0), Some(0)));
    assert!(v["saved"].is_null());
    assert_no_bars(&o);
}

#[test]
fn run_json_with_the_reference_is_deterministic_and_names_saved_outputs() {
    let npz = tmp("run-mlp.npz");
    let args = [
        "run",
        "examples/mlp.json",
        "--random-inputs",
        "3",
        "--reference",
        "--json",
        "-o",
        path(&npz),
    ];
    let (a, b) = (eqopt(&args), eqopt(&args));
    let v = json(&a);
    assert_eq!(ok(&a), ok(&b), "same command, same stdout");
    assert_eq!(v["engine"]["kind"], "reference");
    assert_eq!(v["saved"]["path"], path(&npz));
    assert_eq!(v["saved"]["bf16_saved_as_f32"], serde_json::json!([]));
    assert!(npz.exists());
}

#[test]
fn bench_json_is_pure() {
    let o = eqopt(&[
        "bench",
        "examples/mlp.json",
        "--runs",
        "2",
        "--warmup",
        "0",
        "--threads",
        "1",
        "--json",
    ]);
    let v = json(&o);
    assert_eq!(v["model"], "examples/mlp.json");
    assert_eq!(v["threads"], 1);
    assert_eq!(v["runs"], 2);
    assert!(v["kernels"].as_u64().unwrap() > 0);
    let l = &v["latency_s"];
    assert!(l["min"].as_f64().unwrap() <= l["median"].as_f64().unwrap(), "{v}");
    assert!(l["median"].as_f64().unwrap() <= l["max"].as_f64().unwrap(), "{v}");
    assert!(v.get("memory").is_some());
    assert_no_bars(&o);
}

#[test]
fn estimate_json_is_pure() {
    let o = eqopt(&[
        "estimate",
        "examples/mlp.json",
        "--platform",
        "cpu-h100",
        "--sensitivity",
        "--top",
        "3",
        "--json",
    ]);
    let v = json(&o);
    assert!(v["estimate"].is_object(), "{v}");
    assert!(v["sensitivity"].as_array().unwrap().len() <= 3, "{v}");
    assert_no_bars(&o);
}

#[test]
fn quiet_runs_print_nothing_on_stderr() {
    let out = tmp("quiet-mlp.json");
    for args in [
        vec!["-q", "optimize", "examples/mlp.json", "-o", path(&out)],
        vec!["run", "-q", "examples/mlp.json", "--random-inputs", "0"],
        vec!["--quiet", "optimize", "examples/mlp.json", "-o", path(&out), "--json"],
    ] {
        let o = eqopt(&args);
        ok(&o);
        assert_eq!(stderr(&o), "", "eqopt {args:?}");
    }
}

#[test]
fn verbose_logs_stages_on_stderr_and_keeps_stdout_json() {
    let out = tmp("verbose-mlp.json");
    let o = eqopt(&["-v", "optimize", "examples/mlp.json", "-o", path(&out), "--json"]);
    json(&o);
    let e = stderr(&o);
    assert!(e.lines().all(|l| l.contains("INFO ")), "only INFO lines at -v:\n{e}");
    for stage in ["loaded examples/mlp.json", "saturation stopped: saturated", "optimized"] {
        assert!(e.contains(stage), "no {stage:?} on stderr:\n{e}");
    }
    assert!(!e.contains("DEBUG"), "{e}");
    assert_no_bars(&o);

    let o = eqopt(&["optimize", "examples/mlp.json", "-o", path(&out), "-vv"]);
    ok(&o);
    let e = stderr(&o);
    assert!(e.contains("DEBUG") && e.contains("saturation iteration iteration=0"), "{e}");
    assert_no_bars(&o);
}

#[test]
fn default_level_is_silent_on_success_and_errors_stay_one_line() {
    let out = tmp("default-mlp.json");
    let o = eqopt(&["optimize", "examples/mlp.json", "-o", path(&out), "--json"]);
    json(&o);
    assert_eq!(stderr(&o), "");

    let o = eqopt(&["run", "examples/no-such-model.json", "--json", "-v"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty(), "nothing on stdout when --json fails");
    assert!(stderr(&o).lines().last().unwrap().starts_with("error: "), "{}", stderr(&o));
}
