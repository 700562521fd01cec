//! Running the sweep: each combination on its own, recorded as it finishes.

use super::results::{Growth, RESULTS_JSONL, ResultsWriter, RunRecord, Status, read_jsonl};
use super::spec::{Combination, Experiment, RuleSetSpec};
use crate::budget::{CpuMeter, DEFAULT_CALIBRATION_SETS, max_relative_error};
use crate::cost::{HardwareProfile, graph_totals};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::graph::tensor::Tensor;
use crate::optimize::{OptimizeOptions, optimize_measured, weight_bytes};
use crate::rules::RuleSet;
use crate::saturate::{IterationView, Observer, saturate_observed};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How [`run_sweep`] runs.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    /// The results directory (created if needed).
    pub out: PathBuf,
    /// Continue a sweep: runs already recorded in the directory are skipped.
    pub resume: bool,
    /// With `resume`, run the recorded failures again (their old records stay
    /// in the files; readers take the last record of a key).
    pub retry_failed: bool,
    /// Runs at a time (at least 1).
    pub jobs: usize,
}

impl SweepOptions {
    /// One job into `out`, not resuming.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        SweepOptions {
            out: out.into(),
            resume: false,
            retry_failed: false,
            jobs: 1,
        }
    }
    /// Sets `resume`.
    pub fn with_resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }
    /// Sets `jobs` (0 is taken as 1).
    pub fn with_jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }
}

/// What a sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepSummary {
    /// Combinations in the experiment.
    pub total: usize,
    /// Skipped because a record of them was already in the directory.
    pub skipped: usize,
    /// Run now and finished.
    pub ok: usize,
    /// Run now and failed (recorded with their error).
    pub failed: usize,
}

/// The records of a results directory's results.jsonl, the last per key
/// (in first-appearance order of the keys); empty when there is none.
///
/// # Errors
/// As [`read_jsonl`].
pub fn latest_records(dir: &Path) -> Result<Vec<RunRecord>> {
    let path = dir.join(RESULTS_JSONL);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let (records, _) = read_jsonl(&path)?;
    Ok(last_per_key(records))
}

fn last_per_key(records: Vec<RunRecord>) -> Vec<RunRecord> {
    let mut order: Vec<String> = Vec::new();
    let mut by_key: BTreeMap<String, RunRecord> = BTreeMap::new();
    for r in records {
        if !by_key.contains_key(&r.key) {
            order.push(r.key.clone());
        }
        by_key.insert(r.key.clone(), r);
    }
    order.into_iter().filter_map(|k| by_key.remove(&k)).collect()
}

/// Runs every combination of `exp` not yet recorded (with `resume`), `jobs`
/// at a time, appending each record to the results files as it finishes.
/// `done` is called after each record is written (progress).
///
/// # Errors
/// [`Error::Experiment`] when the directory already holds results and
/// `resume` is off; I/O errors of the results files. A run's own failure is
/// recorded, not returned.
pub fn run_sweep(exp: &Experiment, opts: &SweepOptions, done: &(dyn Fn(&RunRecord) + Sync)) -> Result<SweepSummary> {
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;
    let jsonl = opts.out.join(RESULTS_JSONL);
    let mut existing = Vec::new();
    if jsonl.exists() {
        let (records, partial) = read_jsonl(&jsonl)?;
        if !opts.resume && !records.is_empty() {
            return Err(Error::Experiment {
                file: jsonl,
                problem: format!(
                    "already holds {} run records: pass --resume to continue the sweep, or choose another --out",
                    records.len()
                ),
            });
        }
        if let Some(offset) = partial {
            // An interrupted write: the partial line is cut so appends start on a fresh line.
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&jsonl)
                .map_err(|e| Error::io(&jsonl, e))?;
            f.set_len(offset as u64).map_err(|e| Error::io(&jsonl, e))?;
            tracing::warn!("{}: cut an incomplete last line (an interrupted run)", jsonl.display());
        }
        existing = records;
    }
    let finished: BTreeSet<String> = last_per_key(existing.clone())
        .into_iter()
        .filter(|r| r.is_ok() || !opts.retry_failed)
        .map(|r| r.key)
        .collect();
    let combos = exp.combinations();
    let todo: Vec<&Combination> = combos.iter().filter(|c| !finished.contains(&exp.key(c))).collect();
    let writer = Mutex::new(ResultsWriter::open(&opts.out, &existing)?);
    let next = AtomicUsize::new(0);
    let (ok, failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let write_error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.min(todo.len()).max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(c) = todo.get(i) else { break };
                    if write_error.lock().expect("no writer panics").is_some() {
                        break;
                    }
                    let record = run_guarded(exp, c);
                    if record.is_ok() {
                        ok.fetch_add(1, Ordering::SeqCst);
                    } else {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                    let appended = writer.lock().expect("no writer panics").append(&record);
                    match appended {
                        Ok(()) => done(&record),
                        Err(e) => {
                            *write_error.lock().expect("no writer panics") = Some(e);
                            break;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = write_error.into_inner().expect("no writer panics") {
        return Err(e);
    }
    Ok(SweepSummary {
        total: combos.len(),
        skipped: combos.len() - todo.len(),
        ok: ok.into_inner(),
        failed: failed.into_inner(),
    })
}

/// [`run_one`], with an error or a panic turned into a failed record.
pub fn run_guarded(exp: &Experiment, c: &Combination) -> RunRecord {
    let start = Instant::now();
    let mut record = blank_record(exp, c);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_one(exp, c, &mut record)));
    let error = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(panic) => Some(format!(
            "panicked: {}",
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)")
        )),
    };
    record.status = Some(if error.is_none() { Status::Ok } else { Status::Failed });
    record.error = error;
    record.wall_s = start.elapsed().as_secs_f64();
    record
}

fn blank_record(exp: &Experiment, c: &Combination) -> RunRecord {
    let f = &exp.file;
    RunRecord {
        key: exp.key(c),
        model: exp.models[c.model].clone(),
        ruleset: f.rulesets[c.ruleset].name.clone(),
        target: f.targets[c.target].clone(),
        limits: f.limits[c.limits].name.clone(),
        extractor: f.extractors[c.extractor].clone(),
        budget: f.budgets[c.budget],
        ..RunRecord::default()
    }
}

/// The rule set a spec describes, paths relative to `base`.
///
/// # Errors
/// [`Error::Experiment`] for a family name the set does not have; errors of
/// the rule files.
pub fn rule_set(spec: &RuleSetSpec, base: &Path, experiment: &Path) -> Result<RuleSet> {
    let mut set = if spec.no_default_rules {
        RuleSet::empty()
    } else {
        RuleSet::defaults()?
    };
    for dir in &spec.rules {
        set.add_dir(&base.join(dir))?;
    }
    let names = set.family_names();
    let unknown = |f: &String| Error::Experiment {
        file: experiment.to_path_buf(),
        problem: format!(
            "rule set \"{}\": expected a family of {}, found \"{f}\"",
            spec.name,
            names.join(", ")
        ),
    };
    if let Some(only) = &spec.only {
        if let Some(f) = only.iter().find(|f| !names.contains(f)) {
            return Err(unknown(f));
        }
        set = set.retain_families(|f| only.iter().any(|o| o == f));
    }
    if let Some(f) = spec.disable.iter().find(|f| !names.contains(f)) {
        return Err(unknown(f));
    }
    Ok(set.retain_families(|f| !spec.disable.iter().any(|d| d == f)))
}

/// Runs one combination, filling `r` as it goes (so a failure keeps what was reached).
///
/// # Errors
/// Whatever loading, optimizing or measuring reports.
pub fn run_one(exp: &Experiment, c: &Combination, r: &mut RunRecord) -> Result<()> {
    let f = &exp.file;
    let base = exp.base();
    let model_path = base.join(&exp.models[c.model]);
    let mut import = crate::onnx::ImportOptions::default();
    for (name, dims) in &f.input_shapes {
        import = import.input_shape(name.clone(), dims.clone());
    }
    let graph = crate::onnx::load_any(&model_path, &import)?;
    r.graph_nodes = Some(graph.nodes.len());
    let spec = &f.rulesets[c.ruleset];
    let rules = rule_set(spec, base, &exp.path)?;
    let target_name = &f.targets[c.target];
    let target = if Path::new(target_name).extension().is_some_and(|e| e == "json") {
        HardwareProfile::load(&base.join(target_name).to_string_lossy())?
    } else {
        crate::calibrate::resolve_target(target_name)?.0
    };
    let limits = f.limits[c.limits].limits();
    let extractor = &f.extractors[c.extractor];
    let budget = f.budgets[c.budget];
    let extract_limit = Duration::from_secs_f64(f.extract_time_limit);
    let before = graph_totals(&graph, &target);
    r.cost_before_s = Some(before.latency_s);
    r.kernels_before = Some(before.kernels);
    r.weight_bytes_before = Some(weight_bytes(&graph));
    let optimized = if budget > 0.0 {
        let mut opts = OptimizeOptions::new(target.clone())
            .with_limits(limits)
            .with_extractor(extractor.clone())
            .with_max_error(budget);
        opts.extract_time_limit_s = f.extract_time_limit;
        let mut meter = CpuMeter::seeded(&graph, 0, DEFAULT_CALIBRATION_SETS)?;
        let (out, report) = optimize_measured(&graph, &rules, &opts, Some(&mut meter))?;
        r.iterations = Some(report.iterations);
        r.stop_reason = Some(report.stop_reason.to_string());
        r.egraph_classes = Some(report.egraph_classes);
        r.egraph_nodes = Some(report.egraph_nodes);
        r.growth = growth(&report.per_iteration, report.egraph_classes, report.egraph_nodes);
        r.saturation_s = Some(report.saturation_s);
        r.extraction_s = Some(report.extraction.time_s);
        r.dag_cost_s = Some(report.extraction.dag_cost_s);
        r.approx_nodes = Some(report.extraction.approx.len());
        r.estimated_error = Some(report.extraction.estimated_error());
        out
    } else {
        let trace = Rc::new(RefCell::new(Vec::new()));
        let observer = f.trace_cost.then(|| cost_tracer(&graph, &target, trace.clone()));
        let sat = saturate_observed(&graph, &rules.without_approx(), &limits, observer)?;
        r.iterations = Some(sat.iterations.len());
        r.stop_reason = Some(sat.stop_reason.to_string());
        r.egraph_classes = Some(sat.egraph.number_of_classes());
        r.egraph_nodes = Some(sat.egraph.total_number_of_nodes());
        r.growth = growth(&sat.iterations, sat.egraph.number_of_classes(), sat.egraph.total_number_of_nodes());
        r.saturation_s = Some(sat.time_s);
        if f.trace_cost {
            let roots = output_roots(&graph, &sat.egraph, &sat.classes);
            trace.borrow_mut().push(greedy_cost(&sat.egraph, &roots, &target));
            r.cost_trace = trace.borrow().clone();
        }
        let (out, stats) = crate::extraction::extract_graph(&graph, &sat, &target, extractor, extract_limit)?;
        r.extraction_s = Some(stats.time_s);
        r.dag_cost_s = Some(stats.dag_cost_s);
        if let Some(limit) = f.optimum_time_limit {
            let roots = output_roots(&graph, &sat.egraph, &sat.classes);
            let view = crate::extraction::costed_view(&sat.egraph, &roots, &target)?;
            let ilp = eqopt_extract::extractor_by_name("ilp")?;
            let opts = eqopt_extract::ExtractOptions::default().with_time_limit(Duration::from_secs_f64(limit));
            let outcome = ilp.extract_with_status(&view.costed, &opts)?;
            r.optimum_s = Some(outcome.extraction.dag_cost(&view.costed).value());
            r.optimum_proven = Some(outcome.proven_optimal);
        }
        out
    };
    let after = graph_totals(&optimized, &target);
    r.cost_after_s = Some(after.latency_s);
    r.kernels_after = Some(after.kernels);
    r.weight_bytes_after = Some(weight_bytes(&optimized));
    if let Some(m) = &f.measure {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(m.threads)
            .build()
            .map_err(|e| Error::Usage {
                option: "measure.threads".into(),
                expected: "a thread pool".into(),
                found: e.to_string(),
            })?;
        let inputs = crate::eval::random_inputs(&graph, 0);
        pool.install(|| -> Result<()> {
            let (want, t0) = time_model(&graph, &inputs, m.warmup, m.runs)?;
            let (got, t1) = time_model(&optimized, &inputs, m.warmup, m.runs)?;
            r.measured_before_s = Some(t0);
            r.measured_after_s = Some(t1);
            r.measured_error = Some(max_relative_error(&got, &want));
            Ok(())
        })?;
    }
    Ok(())
}

/// The size at the start of every iteration, then the final size.
fn growth(iterations: &[crate::saturate::IterationStats], classes: usize, nodes: usize) -> Vec<Growth> {
    iterations
        .iter()
        .map(|i| Growth {
            classes: i.classes,
            nodes: i.nodes,
        })
        .chain([Growth { classes, nodes }])
        .collect()
}

/// The outputs and median latency of `graph` on the CPU backend.
fn time_model(graph: &Graph, inputs: &BTreeMap<String, Tensor>, warmup: usize, runs: usize) -> Result<(BTreeMap<String, Tensor>, f64)> {
    let model = crate::backend::CpuModel::compile(graph)?;
    let outputs = model.run(inputs)?;
    for _ in 0..warmup {
        model.run(inputs)?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        model.run(inputs)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok((outputs, times[times.len() / 2]))
}

fn output_roots(graph: &Graph, egraph: &crate::analysis::TEGraph, classes: &BTreeMap<String, egg::Id>) -> Vec<egg::Id> {
    graph.outputs.iter().map(|o| egraph.find(classes[o])).collect()
}

/// The greedy extractor's DAG cost of the e-graph's outputs, seconds (NaN if it fails).
fn greedy_cost(egraph: &crate::analysis::TEGraph, roots: &[egg::Id], target: &HardwareProfile) -> f64 {
    let cost = || -> Result<f64> {
        let view = crate::extraction::costed_view(egraph, roots, target)?;
        let ex = eqopt_extract::extractor_by_name("greedy")?;
        let extraction = ex.extract(&view.costed, &eqopt_extract::ExtractOptions::default())?;
        Ok(extraction.dag_cost(&view.costed).value())
    };
    cost().unwrap_or(f64::NAN)
}

/// An observer pushing the greedy cost at the start of every iteration onto `trace`.
fn cost_tracer(graph: &Graph, target: &HardwareProfile, trace: Rc<RefCell<Vec<f64>>>) -> Observer {
    let outputs = graph.outputs.clone();
    let target = target.clone();
    Box::new(move |v: &IterationView<'_>| {
        let roots: Vec<egg::Id> = outputs.iter().map(|o| v.egraph.find(v.classes[o])).collect();
        trace.borrow_mut().push(greedy_cost(v.egraph, &roots, &target));
    })
}
