//! Experiments: sweeps over models, rule sets, targets, limits, extractors and
//! accuracy budgets, recorded run by run, with tables and plots.
//!
//! An experiment file ([`spec::ExperimentFile`], TOML or JSON) names the axes;
//! [`runner::run_sweep`] runs their product, `jobs` at a time, appending one
//! [`results::RunRecord`] per finished run to `results.jsonl` and
//! `results.csv`, so an interrupted sweep keeps what it did and `resume`
//! skips it. A run that fails is recorded with its error and the sweep goes
//! on. [`report::write_report`] regenerates `tables.md`, `plots.json` and
//! `plots/*.svg` from the records alone.
//!
//! ```
//! use eqopt::experiment::spec::Experiment;
//! let text = r#"
//! models = ["examples/mlp.json"]
//! extractors = ["greedy", "eqopt"]
//! [[limits]]
//! name = "short"
//! iter_limit = 3
//! "#;
//! let exp = Experiment::parse(text, std::path::Path::new("sweep.toml")).unwrap();
//! assert_eq!(exp.combinations().len(), 2);
//! assert_eq!(exp.key(&exp.combinations()[0]), "examples/mlp.json | default | cpu | short | greedy | 0");
//! ```

pub mod plots;
pub mod report;
pub mod results;
pub mod runner;
pub mod spec;
