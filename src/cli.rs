//! The `eqopt` command line. `main.rs` calls [`main`]; everything else is here.

use crate::cost::HardwareProfile;
use crate::error::{Error, Result};
use crate::graph::json;
use crate::optimize::{OptimizeOptions, optimize};
use crate::rules::RuleSet;
use crate::saturate::Limits;
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// eqopt: an equality-saturation optimizer for ML model graphs.
#[derive(Parser, Debug)]
#[command(name = "eqopt", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Optimize a graph.json for a target.
    ///
    /// Example: eqopt optimize examples/bert_layer.json -o /tmp/bert.opt.json --target h100 --report /tmp/report.json
    Optimize(OptimizeArgs),
    /// Run extraction on an egraph-serialize JSON file and print the DAG cost.
    ///
    /// Example: eqopt extract bert.json --extractor all
    Extract(ExtractArgs),
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

#[derive(Args, Debug)]
struct OptimizeArgs {
    /// Input graph.json.
    input: PathBuf,
    /// Output graph.json (weights, if any, go to <stem>.safetensors beside it).
    #[arg(short, long)]
    output: PathBuf,
    /// Hardware target: a built-in name (cpu, h100, a100) or a profile JSON file.
    #[arg(long, default_value = "cpu")]
    target: String,
    /// Also write the report as JSON.
    #[arg(long)]
    report: Option<PathBuf>,
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
    /// Allow the output to be the input file.
    #[arg(long)]
    overwrite_input: bool,
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
    let mut set = if args.no_default_rules {
        RuleSet::empty()
    } else {
        RuleSet::defaults()?
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

fn run_optimize(a: &OptimizeArgs, out: &mut dyn Write) -> Result<()> {
    if !a.overwrite_input && same_file(&a.input, &a.output) {
        return Err(Error::Usage {
            option: "--output".into(),
            expected: "a path other than the input (or --overwrite-input)".into(),
            found: a.output.display().to_string(),
        });
    }
    let target = HardwareProfile::load(&a.target)?;
    let rules = load_rules(&a.rules)?;
    let graph = json::load(&a.input)?;
    let limits = Limits::default()
        .with_node_limit(a.node_limit)
        .with_iter_limit(a.iter_limit)
        .with_time_limit(positive("--time-limit", a.time_limit)?)
        .with_multi_pattern_iters(a.multi_pattern_iters);
    let mut opts = OptimizeOptions::new(target).with_limits(limits).with_extractor(a.extractor.clone());
    opts.extract_time_limit_s = positive("--extract-time-limit", a.extract_time_limit)?;
    let (optimized, report) = optimize(&graph, &rules, &opts)?;
    json::save(&optimized, &a.output)?;
    if let Some(r) = &a.report {
        let mut text = serde_json::to_string_pretty(&report).expect("reports serialize");
        text.push('\n');
        json::write_atomic(r, text.as_bytes())?;
    }
    write!(out, "{}", report.table()).map_err(|e| Error::io("<stdout>", e))?;
    writeln!(out, "wrote {}", a.output.display()).map_err(|e| Error::io("<stdout>", e))
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

/// Runs a parsed command line, writing human output to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<()> {
    match &cli.command {
        Command::Optimize(a) => run_optimize(a, out),
        Command::Extract(a) => run_extract(a, out),
        Command::Rules {
            command: RulesCommand::List(a),
        } => {
            let set = load_rules(a)?;
            out.write_all(set.inventory().as_bytes()).map_err(|e| Error::io("<stdout>", e))
        }
    }
}

/// Entry point of the binary: runs with the process arguments; errors go to stderr with exit code 1.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
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
