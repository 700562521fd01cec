//! The experiment file (TOML or JSON) and its expansion into runs.
//!
//! Every list is one axis; the runs are the product of the axes, in the
//! order models × rule sets × targets × limits × extractors × budgets. Paths
//! (models, rule directories) are relative to the experiment file's directory.

use crate::error::{Error, Result};
use crate::saturate::Limits;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Default time limit of an extraction in an experiment, seconds.
pub const DEFAULT_EXTRACT_TIME_LIMIT_S: f64 = 10.0;
/// Default timed runs of a latency measurement (after the warm-up).
pub const DEFAULT_MEASURE_RUNS: usize = 10;
/// Default warm-up runs of a latency measurement.
pub const DEFAULT_MEASURE_WARMUP: usize = 2;

/// An experiment file as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentFile {
    /// A name for the tables and plots.
    #[serde(default)]
    pub name: Option<String>,
    /// Free text, copied into the tables.
    #[serde(default)]
    pub description: Option<String>,
    /// Model paths or glob patterns (graph.json or .onnx); each pattern must match.
    pub models: Vec<String>,
    /// Static shapes for ONNX inputs with symbolic dims, by input name, for every model.
    #[serde(default)]
    pub input_shapes: BTreeMap<String, Vec<usize>>,
    /// Rule sets (default: one, `default`, the embedded families).
    #[serde(default = "default_rulesets")]
    pub rulesets: Vec<RuleSetSpec>,
    /// Hardware targets: built-in names or profile files (default: `cpu`).
    #[serde(default = "default_targets")]
    pub targets: Vec<String>,
    /// Saturation limits (default: one, `default`, the built-in limits).
    #[serde(default = "default_limits")]
    pub limits: Vec<LimitsSpec>,
    /// Extractors: `greedy`, `eqopt`, `ilp` (default: eqopt).
    #[serde(default = "default_extractors")]
    pub extractors: Vec<String>,
    /// Time limit of each extraction, seconds.
    #[serde(default = "default_extract_time_limit")]
    pub extract_time_limit: f64,
    /// Accuracy budgets (largest relative output error); 0 is the exact
    /// optimization (default: only 0).
    #[serde(default = "default_budgets")]
    pub budgets: Vec<f64>,
    /// Also solve the exact extraction (ILP) with this time limit, seconds, and
    /// record its cost, to compare each extractor with the optimum.
    #[serde(default)]
    pub optimum_time_limit: Option<f64>,
    /// Record the estimated cost (greedy DAG extraction) at every iteration.
    #[serde(default)]
    pub trace_cost: bool,
    /// Measure latency and error on the CPU backend.
    #[serde(default)]
    pub measure: Option<MeasureSpec>,
}

/// One rule set: the embedded families, some switched off, plus directories.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSetSpec {
    /// The name in results.
    pub name: String,
    /// Families to leave out (e.g. `layout`).
    #[serde(default)]
    pub disable: Vec<String>,
    /// Keep only these families (applied before `disable`).
    #[serde(default)]
    pub only: Option<Vec<String>>,
    /// Directories of *.rules files added after (a family of the same name is replaced).
    #[serde(default)]
    pub rules: Vec<PathBuf>,
    /// Start from no rules instead of the embedded families.
    #[serde(default)]
    pub no_default_rules: bool,
}

/// Named saturation limits; unset fields take the built-in defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// The name in results.
    pub name: String,
    /// E-node limit.
    #[serde(default)]
    pub node_limit: Option<usize>,
    /// Iteration limit.
    #[serde(default)]
    pub iter_limit: Option<usize>,
    /// Wall-time limit, seconds.
    #[serde(default)]
    pub time_limit: Option<f64>,
    /// Iterations multi-pattern rules run.
    #[serde(default)]
    pub multi_pattern_iters: Option<usize>,
}

impl LimitsSpec {
    /// The limits these settings give.
    pub fn limits(&self) -> Limits {
        let mut l = Limits::default();
        if let Some(n) = self.node_limit {
            l = l.with_node_limit(n);
        }
        if let Some(n) = self.iter_limit {
            l = l.with_iter_limit(n);
        }
        if let Some(s) = self.time_limit {
            l = l.with_time_limit(s);
        }
        if let Some(k) = self.multi_pattern_iters {
            l = l.with_multi_pattern_iters(k);
        }
        l
    }
}

/// What to measure on the CPU backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasureSpec {
    /// Timed runs (the median is recorded).
    #[serde(default = "default_runs")]
    pub runs: usize,
    /// Warm-up runs.
    #[serde(default = "default_warmup")]
    pub warmup: usize,
    /// Threads of the backend's pool.
    #[serde(default = "default_threads")]
    pub threads: usize,
}

fn default_rulesets() -> Vec<RuleSetSpec> {
    vec![RuleSetSpec {
        name: "default".into(),
        disable: Vec::new(),
        only: None,
        rules: Vec::new(),
        no_default_rules: false,
    }]
}
fn default_targets() -> Vec<String> {
    vec!["cpu".into()]
}
fn default_limits() -> Vec<LimitsSpec> {
    vec![LimitsSpec {
        name: "default".into(),
        node_limit: None,
        iter_limit: None,
        time_limit: None,
        multi_pattern_iters: None,
    }]
}
fn default_extractors() -> Vec<String> {
    vec![eqopt_extract::DEFAULT_EXTRACTOR.into()]
}
fn default_extract_time_limit() -> f64 {
    DEFAULT_EXTRACT_TIME_LIMIT_S
}
fn default_budgets() -> Vec<f64> {
    vec![0.0]
}
fn default_runs() -> usize {
    DEFAULT_MEASURE_RUNS
}
fn default_warmup() -> usize {
    DEFAULT_MEASURE_WARMUP
}
fn default_threads() -> usize {
    1
}

/// A loaded experiment: the file, where it is, and its models found.
#[derive(Clone, Debug)]
pub struct Experiment {
    /// The experiment file.
    pub path: PathBuf,
    /// Its contents.
    pub file: ExperimentFile,
    /// The model files, in pattern order (each pattern's matches sorted), as
    /// given (relative to the experiment file's directory unless absolute).
    pub models: Vec<String>,
}

/// One run: a point of the product.
#[derive(Clone, Debug, PartialEq)]
pub struct Combination {
    /// Index of the model in [`Experiment::models`].
    pub model: usize,
    /// Index into the rule sets.
    pub ruleset: usize,
    /// Index into the targets.
    pub target: usize,
    /// Index into the limits.
    pub limits: usize,
    /// Index into the extractors.
    pub extractor: usize,
    /// Index into the budgets.
    pub budget: usize,
}

impl Experiment {
    /// Reads and checks an experiment file (`.json` is JSON, anything else TOML)
    /// and expands its model patterns.
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be read; [`Error::Experiment`] for a syntax
    /// error, an unknown key, an empty axis, a duplicate name, a bad value or a
    /// model pattern that matches no file.
    pub fn load(path: &Path) -> Result<Experiment> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Experiment::parse(&text, path)
    }

    /// [`Experiment::load`] from text (`path` names it and anchors relative paths).
    ///
    /// # Errors
    /// As [`Experiment::load`].
    pub fn parse(text: &str, path: &Path) -> Result<Experiment> {
        let bad = |problem: String| Error::Experiment {
            file: path.to_path_buf(),
            problem,
        };
        let file: ExperimentFile = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(text).map_err(|e| bad(format!("line {}, column {}: {e}", e.line(), e.column())))?
        } else {
            toml::from_str(text).map_err(|e| bad(toml_message(text, &e)))?
        };
        check(&file).map_err(bad)?;
        let base = path.parent().unwrap_or(Path::new(""));
        let mut models = Vec::new();
        for pattern in &file.models {
            let found = expand(base, pattern).map_err(bad)?;
            for m in found {
                if !models.contains(&m) {
                    models.push(m);
                }
            }
        }
        Ok(Experiment {
            path: path.to_path_buf(),
            file,
            models,
        })
    }

    /// The directory relative paths are resolved against.
    pub fn base(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new(""))
    }

    /// Every run, in product order.
    pub fn combinations(&self) -> Vec<Combination> {
        let f = &self.file;
        let mut out = Vec::new();
        for model in 0..self.models.len() {
            for ruleset in 0..f.rulesets.len() {
                for target in 0..f.targets.len() {
                    for limits in 0..f.limits.len() {
                        for extractor in 0..f.extractors.len() {
                            for budget in 0..f.budgets.len() {
                                out.push(Combination {
                                    model,
                                    ruleset,
                                    target,
                                    limits,
                                    extractor,
                                    budget,
                                });
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// The key of a run in the results: the same settings give the same key,
    /// so `--resume` recognises finished runs.
    pub fn key(&self, c: &Combination) -> String {
        let f = &self.file;
        format!(
            "{} | {} | {} | {} | {} | {}",
            self.models[c.model],
            f.rulesets[c.ruleset].name,
            f.targets[c.target],
            f.limits[c.limits].name,
            f.extractors[c.extractor],
            budget_label(f.budgets[c.budget])
        )
    }
}

/// A budget as written in keys and tables: `0` for exact, else `1e-2` style.
pub fn budget_label(b: f64) -> String {
    if b == 0.0 { "0".into() } else { format!("{b:e}") }
}

fn toml_message(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {}", e.message())
        }
        None => e.message().to_string(),
    }
}

/// Rejects empty axes, duplicate names and values no run could use.
fn check(f: &ExperimentFile) -> std::result::Result<(), String> {
    let nonempty = |axis: &str, n: usize| {
        if n == 0 {
            Err(format!("\"{axis}\": expected at least one entry, found none"))
        } else {
            Ok(())
        }
    };
    nonempty("models", f.models.len())?;
    nonempty("rulesets", f.rulesets.len())?;
    nonempty("targets", f.targets.len())?;
    nonempty("limits", f.limits.len())?;
    nonempty("extractors", f.extractors.len())?;
    nonempty("budgets", f.budgets.len())?;
    unique("rulesets", f.rulesets.iter().map(|r| r.name.as_str()))?;
    unique("limits", f.limits.iter().map(|l| l.name.as_str()))?;
    unique("targets", f.targets.iter().map(String::as_str))?;
    unique("extractors", f.extractors.iter().map(String::as_str))?;
    let known = eqopt_extract::extractor_names();
    if let Some(x) = f.extractors.iter().find(|x| !known.contains(&x.as_str())) {
        return Err(format!("\"extractors\": expected one of {}, found \"{x}\"", known.join(", ")));
    }
    if let Some(b) = f.budgets.iter().find(|b| !(b.is_finite() && **b >= 0.0)) {
        return Err(format!("\"budgets\": expected non-negative relative errors, found {b}"));
    }
    let seconds = |what: &str, v: f64| {
        if v.is_finite() && v >= 0.0 {
            Ok(())
        } else {
            Err(format!("\"{what}\": expected a non-negative number of seconds, found {v}"))
        }
    };
    seconds("extract_time_limit", f.extract_time_limit)?;
    if let Some(t) = f.optimum_time_limit {
        seconds("optimum_time_limit", t)?;
    }
    for l in &f.limits {
        if let Some(t) = l.time_limit {
            seconds(&format!("limits \"{}\" time_limit", l.name), t)?;
        }
    }
    if let Some(m) = &f.measure
        && (m.runs == 0 || m.threads == 0)
    {
        return Err(format!(
            "\"measure\": expected runs and threads of at least 1, found runs = {}, threads = {}",
            m.runs, m.threads
        ));
    }
    Ok(())
}

fn unique<'a>(axis: &str, names: impl Iterator<Item = &'a str>) -> std::result::Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for n in names {
        if n.is_empty() || n.contains('|') {
            return Err(format!("\"{axis}\": expected names without '|', found \"{n}\""));
        }
        if !seen.insert(n) {
            return Err(format!("\"{axis}\": the name \"{n}\" is used twice"));
        }
    }
    Ok(())
}

/// The files `pattern` names relative to `base`, sorted, as paths relative to
/// `base` (absolute patterns stay absolute).
fn expand(base: &Path, pattern: &str) -> std::result::Result<Vec<String>, String> {
    let anchored = base.join(pattern);
    let full = anchored.to_string_lossy().to_string();
    let paths = glob::glob(&full).map_err(|e| format!("model pattern \"{pattern}\": {e}"))?;
    let mut found = Vec::new();
    for p in paths {
        let p = p.map_err(|e| format!("model pattern \"{pattern}\": {e}"))?;
        if p.is_file() {
            let shown = p.strip_prefix(base).map(Path::to_path_buf).unwrap_or(p);
            found.push(shown.to_string_lossy().to_string());
        }
    }
    if found.is_empty() {
        return Err(format!(
            "model pattern \"{pattern}\": expected at least one file, found none under {}",
            if base.as_os_str().is_empty() {
                ".".into()
            } else {
                base.display().to_string()
            }
        ));
    }
    found.sort();
    Ok(found)
}
