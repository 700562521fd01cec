//! The `eqopt` command line. `main.rs` calls [`main`]; everything else is here.

use crate::error::{Error, Result};
use crate::rules::RuleSet;
use clap::{Args, Parser, Subcommand};

mod backend;
mod budget;
mod calibrate;
mod docs;
mod experiment;
mod inspect;
mod logging;
mod optimize;
mod ptx;
mod run;
mod schedule;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// eqopt: an equality-saturation optimizer for ML model graphs.
#[derive(Parser, Debug)]
#[command(name = "eqopt", version, about)]
pub struct Cli {
    #[command(flatten)]
    global: logging::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Optimize a model (graph.json or ONNX) for a target.
    ///
    /// The output format follows the output's extension: `.onnx` writes a standard
    /// ONNX model (fused kernels decomposed into standard ops), anything else graph.json.
    ///
    /// Example: eqopt optimize examples/bert_layer.json -o /tmp/bert.opt.json --target h100 --report /tmp/report.json
    ///
    /// Example: eqopt optimize model.onnx -o model.opt.onnx
    Optimize(optimize::OptimizeArgs),
    /// Import an ONNX model as graph.json (weights go to <stem>.safetensors beside it).
    ///
    /// Shape arithmetic (Shape, Gather, Unsqueeze, Concat, ConstantOfShape, ...) is
    /// folded at import; graph inputs with symbolic dims need --input-shape.
    ///
    /// Example: eqopt import model.onnx -o graph.json --input-shape input_ids=1,128
    Import(ConvertArgs),
    /// Export a model (graph.json or ONNX) as a standard ONNX model (opset 17).
    ///
    /// Example: eqopt export graph.json -o model.onnx
    Export(ConvertArgs),
    /// Run extraction on an egraph-serialize JSON file and print the DAG cost.
    ///
    /// Example: eqopt extract bert.json --extractor all
    Extract(ExtractArgs),
    /// Evaluate a graph on given or random inputs and summarize (or save) its outputs.
    ///
    /// The graph runs on the CPU backend (SIMD kernels, one thread pool sized by
    /// --threads); --reference evaluates it with the reference interpreter
    /// (eqopt::eval) instead, the ground truth that optimized graphs are tested
    /// against (simple, not fast, and the only one for non-f32 graphs). Inputs come from .npy files (--input), a safetensors or .npz file keyed by
    /// input name (--inputs) and, for any input still missing, seeded random values
    /// (--random-inputs). A summary line per output (dtype, shape, min, max and
    /// mean of the finite values, NaN/inf counts) is always printed.
    ///
    /// Example: eqopt run examples/mlp.json --random-inputs 1 -o /tmp/mlp-outputs.npz
    Run(run::RunArgs),
    /// Lower a model to the CPU backend's kernel program and plan its memory.
    ///
    /// Prints the kernel count and the memory plan (bytes without reuse, arena,
    /// lower bound); -o DIR writes the readable program (program.txt) and memory.json.
    ///
    /// Example: eqopt compile examples/bert_layer.json --optimize -o /tmp/bert-cpu
    Compile(backend::CompileArgs),
    /// Place a model's kernels on the devices and streams of a platform (HEFT) and write the schedule.
    ///
    /// Prints T_est, throughput, the speedup over one stream on the best single
    /// device, the scale-out S(n) over identical devices and the memory per device.
    ///
    /// Example: eqopt schedule examples/inception_block.json --platform cpu-h100 -o /tmp/schedule.json --svg /tmp/gantt.svg
    Schedule(schedule::ScheduleArgs),
    /// Estimate a model's latency on a platform analytically, optionally with the sensitivity of each decision.
    ///
    /// Example: eqopt estimate examples/bert_layer.json --platform 4xh100-nvlink --sensitivity
    Estimate(schedule::EstimateArgs),
    /// Time a model on the CPU backend: median, min and max latency after warm-up.
    ///
    /// Example: eqopt bench model.onnx --optimize --threads 2 --runs 20
    Bench(backend::BenchArgs),
    /// Measure this machine's roofline and write a calibrated `cpu` hardware profile.
    ///
    /// Measures, per thread count: the FMA ceiling of the vector unit, the backend's
    /// GEMM throughput with f32, f16 and bf16 weights, the copy bandwidth and the
    /// executor's cost per kernel (about 20 s on two cores; --quick for a rough
    /// one). Written to the configuration directory, it replaces the built-in `cpu`
    /// profile wherever `--target cpu` is used.
    ///
    /// Example: eqopt calibrate && eqopt bench model.onnx --per-kernel
    Calibrate(calibrate::CalibrateArgs),
    /// Run a sweep: every combination of an experiment file's models, rule sets,
    /// targets, limits, extractors and budgets, recorded as results.jsonl and
    /// results.csv in --out (appended as each run finishes), then tables and plots.
    ///
    /// Example: eqopt experiment experiments/corpus.toml --out /tmp/sweep --jobs 2
    Experiment(experiment::ExperimentArgs),
    /// Regenerate an experiment's tables and plots from its results.
    ///
    /// Example: eqopt plot /tmp/sweep
    Plot(experiment::PlotArgs),
    /// Write a graph (or, with --egraph, its saturated e-graph) as Graphviz DOT.
    ///
    /// Example: eqopt dot examples/mlp.json --optimize -o /tmp/mlp.dot
    Dot(inspect::DotArgs),
    /// Show where the optimized graph differs from the input and the rules that justify each change.
    ///
    /// Example: eqopt explain examples/bert_layer.json --target h100
    Explain(inspect::ExplainArgs),
    /// Print a shell completion script.
    ///
    /// Example: eqopt completions bash > ~/.local/share/bash-completion/completions/eqopt
    Completions(docs::CompletionsArgs),
    /// Print the manual page, or write one per subcommand into a directory.
    ///
    /// Example: eqopt man -o /usr/local/share/man/man1
    Man(docs::ManArgs),
    /// Inspect rule files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(Subcommand, Debug)]
enum RulesCommand {
    /// Print the rule inventory: family, name, sides, direction, conditions.
    ///
    /// Example: eqopt rules list --rules my-rules/
    List(RuleArgs),
    /// Check every rule by running it: random well-typed instances of its left-hand
    /// side are rewritten and both sides evaluated by the reference interpreter.
    /// Exits non-zero if any rule fails or cannot be checked.
    ///
    /// Example: eqopt rules check --rules my-rules/ --instances 50
    Check(CheckArgs),
}

#[derive(Args, Debug)]
struct CheckArgs {
    #[command(flatten)]
    rules: RuleArgs,
    /// Instances each rule must pass.
    #[arg(long, default_value_t = crate::rules::check::DEFAULT_INSTANCES)]
    instances: usize,
    /// Attempts to find instances that make a rule fire before it is reported unchecked.
    #[arg(long, default_value_t = crate::rules::check::DEFAULT_ATTEMPTS)]
    attempts: usize,
    /// Base seed of the random instances.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args, Debug)]
struct RuleArgs {
    /// Directory of *.rules files; each file adds or replaces the family of its name (repeatable).
    #[arg(long = "rules", value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// Start from no rules instead of the embedded default families.
    #[arg(long)]
    no_default_rules: bool,
}

/// Target, rules, limits and extractor: how the model is optimized.
#[derive(Args, Debug)]
struct SearchArgs {
    /// Hardware target: a built-in name (cpu, h100, a100) or a profile JSON file.
    #[arg(long, default_value = "cpu")]
    target: String,
    #[command(flatten)]
    rules: RuleArgs,
    /// E-node limit for saturation.
    #[arg(long, default_value_t = crate::saturate::DEFAULT_NODE_LIMIT)]
    node_limit: usize,
    /// Iteration limit for saturation.
    #[arg(long, default_value_t = crate::saturate::DEFAULT_ITER_LIMIT)]
    iter_limit: usize,
    /// Time limit for saturation, seconds.
    #[arg(long, default_value_t = crate::saturate::DEFAULT_TIME_LIMIT_S)]
    time_limit: f64,
    /// Multi-pattern rules run only in the first K iterations.
    #[arg(long, default_value_t = crate::saturate::DEFAULT_MULTI_PATTERN_ITERS)]
    multi_pattern_iters: usize,
    /// Extractor (greedy, eqopt, ilp).
    #[arg(long, default_value = eqopt_extract::DEFAULT_EXTRACTOR)]
    extractor: String,
    /// Time limit for extraction, seconds.
    #[arg(long, default_value_t = crate::optimize::DEFAULT_EXTRACT_TIME_LIMIT_S)]
    extract_time_limit: f64,
}

impl SearchArgs {
    /// The saturation limits these flags give.
    fn limits(&self) -> Result<crate::saturate::Limits> {
        Ok(crate::saturate::Limits::default()
            .with_node_limit(self.node_limit)
            .with_iter_limit(self.iter_limit)
            .with_time_limit(positive("--time-limit", self.time_limit)?)
            .with_multi_pattern_iters(self.multi_pattern_iters))
    }
}

/// How ONNX graph inputs with symbolic dims get static shapes.
#[derive(Args, Debug)]
struct ShapeArgs {
    /// Static shape of an ONNX graph input whose dims are symbolic or unknown, e.g.
    /// `--input-shape input_ids=1,128`. Repeatable.
    #[arg(long = "input-shape", value_name = "NAME=D0,D1,...", value_parser = parse_shape_arg)]
    input_shape: Vec<(String, Vec<usize>)>,
}

impl ShapeArgs {
    fn options(&self) -> crate::onnx::ImportOptions {
        let mut o = crate::onnx::ImportOptions::default();
        for (name, dims) in &self.input_shape {
            o = o.input_shape(name.clone(), dims.clone());
        }
        o
    }

    fn load(&self, path: &Path) -> Result<crate::graph::Graph> {
        crate::onnx::load_any(path, &self.options())
    }
}

fn parse_shape_arg(s: &str) -> std::result::Result<(String, Vec<usize>), String> {
    crate::onnx::parse_input_shape(s).map_err(|e| e.to_string())
}

#[derive(Args, Debug)]
struct ConvertArgs {
    /// The model to read (graph.json, or .onnx by extension).
    input: PathBuf,
    /// The file to write (.onnx writes ONNX; anything else graph.json + <stem>.safetensors).
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    shapes: ShapeArgs,
}

#[derive(Args, Debug)]
struct ExtractArgs {
    /// An egraph-serialize JSON file.
    file: PathBuf,
    /// Extractor name, or `all`.
    #[arg(long, default_value = eqopt_extract::DEFAULT_EXTRACTOR)]
    extractor: String,
    /// Time limit per extractor, seconds.
    #[arg(long, default_value_t = 10.0)]
    time_limit: f64,
}

fn load_rules(args: &RuleArgs) -> Result<RuleSet> {
    // The approximate families come with the defaults: `rules list` and `rules
    // check` show and check them, and `optimize` runs them only under --max-error.
    let mut set = if args.no_default_rules {
        RuleSet::empty()
    } else {
        RuleSet::defaults()?
            .with_approx_families()?
            .for_activations(crate::rules::ActivationPrecision::Bf16)?
    };
    for dir in &args.rules {
        set.add_dir(dir)?;
    }
    Ok(set)
}

fn positive(option: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(Error::Usage {
            option: option.into(),
            expected: "a non-negative number of seconds".into(),
            found: v.to_string(),
        })
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn run_extract(a: &ExtractArgs, out: &mut dyn Write) -> Result<()> {
    let g = eqopt_extract::CostedEGraph::read_json(&a.file)?;
    let names: Vec<&str> = if a.extractor == "all" {
        eqopt_extract::extractor_names().to_vec()
    } else {
        vec![a.extractor.as_str()]
    };
    let opts = eqopt_extract::ExtractOptions::default().with_time_limit(Duration::from_secs_f64(positive("--time-limit", a.time_limit)?));
    let w = |out: &mut dyn Write, s: String| out.write_all(s.as_bytes()).map_err(|e| Error::io("<stdout>", e));
    w(
        out,
        format!(
            "{}: {} classes, {} nodes, {} roots\n",
            a.file.display(),
            g.num_classes(),
            g.num_nodes(),
            g.roots().len()
        ),
    )?;
    w(
        out,
        format!(
            "{:<10} {:>14} {:>8} {:>10} {:>8}\n",
            "extractor", "dag cost", "acyclic", "optimal", "seconds"
        ),
    )?;
    for name in names {
        let ex = eqopt_extract::extractor_by_name(name)?;
        let start = Instant::now();
        let outcome = ex.extract_with_status(&g, &opts)?;
        let secs = start.elapsed().as_secs_f64();
        let acyclic = outcome.extraction.find_cycle(&g).is_none();
        let cost = outcome.extraction.dag_cost(&g);
        w(
            out,
            format!(
                "{:<10} {:>14.6} {:>8} {:>10} {:>8.3}\n",
                ex.name(),
                cost.value(),
                if acyclic { "yes" } else { "NO" },
                if outcome.proven_optimal { "proven" } else { "-" },
                secs
            ),
        )?;
    }
    Ok(())
}

fn run_convert(a: &ConvertArgs, to_onnx: bool, out: &mut dyn Write) -> Result<()> {
    let graph = a.shapes.load(&a.input)?;
    if crate::onnx::is_onnx(&a.output) != to_onnx {
        return Err(Error::Usage {
            option: "--output".into(),
            expected: if to_onnx {
                "a path ending in .onnx"
            } else {
                "a graph.json path (not .onnx)"
            }
            .into(),
            found: a.output.display().to_string(),
        });
    }
    if same_file(&a.input, &a.output) {
        return Err(Error::Usage {
            option: "--output".into(),
            expected: "a path other than the input".into(),
            found: a.output.display().to_string(),
        });
    }
    crate::onnx::save_any(&graph, &a.output)?;
    let params: usize = graph.constants.iter().map(|c| c.ty.numel()).sum();
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &graph.nodes {
        *ops.entry(n.op.name()).or_default() += 1;
    }
    let ops: Vec<String> = ops.iter().map(|(op, k)| format!("{op} {k}")).collect();
    let w = |out: &mut dyn Write, s: String| out.write_all(s.as_bytes()).map_err(|e| Error::io("<stdout>", e));
    w(
        out,
        format!(
            "{}: {} inputs, {} constants ({params} elements), {} nodes ({})\n",
            a.input.display(),
            graph.inputs.len(),
            graph.constants.len(),
            graph.nodes.len(),
            ops.join(", ")
        ),
    )?;
    w(out, format!("wrote {}\n", a.output.display()))
}

fn run_rules_check(a: &CheckArgs, out: &mut dyn Write) -> Result<()> {
    use crate::rules::check::{CheckOptions, Verdict, check_rule};
    let set = load_rules(&a.rules)?;
    let mut opts = CheckOptions::default().with_instances(a.instances).with_seed(a.seed);
    opts.attempts = a.attempts;
    let (mut passed, mut failed, mut unchecked) = (0, Vec::new(), Vec::new());
    for rule in set.rules() {
        let r = check_rule(rule, &opts)?;
        writeln!(out, "{r}").map_err(|e| Error::io("<stdout>", e))?;
        match r.verdict {
            Verdict::Passed { .. } => passed += 1,
            Verdict::Failed(_) => failed.push(r.rule),
            Verdict::Unchecked { .. } => unchecked.push(r.rule),
        }
    }
    writeln!(out, "{passed} passed, {} failed, {} unchecked", failed.len(), unchecked.len()).map_err(|e| Error::io("<stdout>", e))?;
    if failed.is_empty() && unchecked.is_empty() {
        Ok(())
    } else {
        Err(Error::RulesCheck { failed, unchecked })
    }
}

/// Runs a parsed command line, writing human output to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<()> {
    match &cli.command {
        Command::Optimize(a) => optimize::run_optimize(a, out),
        Command::Extract(a) => run_extract(a, out),
        Command::Run(a) => run::run_graph(a, out),
        Command::Compile(a) => backend::run_compile(a, out),
        Command::Bench(a) => backend::run_bench(a, out),
        Command::Schedule(a) => schedule::run_schedule(a, out),
        Command::Estimate(a) => schedule::run_estimate(a, out),
        Command::Calibrate(a) => calibrate::run_calibrate(a, out),
        Command::Experiment(a) => experiment::run_experiment(a, out),
        Command::Plot(a) => experiment::run_plot(a, out),
        Command::Dot(a) => inspect::run_dot(a, out),
        Command::Explain(a) => inspect::run_explain(a, out),
        Command::Completions(a) => docs::run_completions(a, out),
        Command::Man(a) => docs::run_man(a, out),
        Command::Import(a) => run_convert(a, false, out),
        Command::Export(a) => run_convert(a, true, out),
        Command::Rules {
            command: RulesCommand::List(a),
        } => {
            let set = load_rules(a)?;
            out.write_all(set.inventory().as_bytes()).map_err(|e| Error::io("<stdout>", e))
        }
        Command::Rules {
            command: RulesCommand::Check(a),
        } => run_rules_check(a, out),
    }
}

/// Entry point of the binary: runs with the process arguments; errors go to stderr with exit code 1.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init(&cli.global);
    let mut stdout = std::io::stdout().lock();
    match run(&cli, &mut stdout) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let _ = stdout.flush();
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
