//! The CPU backend's commands: `compile`, `bench`, and the backend side of `run`.

use super::ShapeArgs;
use crate::backend::{CpuModel, MemoryReport};
use crate::calibrate::agreement::{self, Agreement};
use crate::cost::HardwareProfile;
use crate::error::{Error, Result};
use crate::graph::Graph;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// A backend `compile` can emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum BackendName {
    /// The CPU backend's kernel program.
    Cpu,
    /// CUDA PTX for NVIDIA GPUs: one module, a launch plan and the weights image.
    Ptx,
}

/// A GPU architecture `--backend ptx` emits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum ArchName {
    /// Ampere (A100).
    #[value(name = "sm_80")]
    Sm80,
    /// Hopper (H100).
    #[value(name = "sm_90")]
    Sm90,
}

#[derive(Args, Debug)]
pub(super) struct CompileArgs {
    /// The model: graph.json, or ONNX (by the .onnx extension).
    pub(super) graph: PathBuf,
    #[command(flatten)]
    pub(super) shapes: ShapeArgs,
    /// The backend to compile for.
    #[arg(long, value_enum, default_value = "cpu")]
    pub(super) backend: BackendName,
    /// Optimize the model for the cpu target first (else it is lowered as given).
    #[arg(long)]
    pub(super) optimize: bool,
    /// Directory for program.txt (the kernel program) and memory.json (the plan's
    /// figures); with `--backend ptx` also model.ptx, plan.json (launches, buffer
    /// placements, per-launch estimates) and weights.bin (the constants image).
    #[arg(short, long, value_name = "DIR")]
    pub(super) output: Option<PathBuf>,
    /// With `--backend ptx`: the GPU architecture of the module.
    #[arg(long, value_enum, default_value = "sm_90")]
    pub(super) arch: ArchName,
    /// With `--backend ptx`: the hardware profile of the per-launch roofline estimate.
    #[arg(long, default_value = "h100")]
    pub(super) target: String,
}

#[derive(Args, Debug)]
pub(super) struct BenchArgs {
    /// The model: graph.json, or ONNX (by the .onnx extension).
    graph: PathBuf,
    #[command(flatten)]
    shapes: ShapeArgs,
    /// Optimize the model for the cpu target first (else it runs as given).
    #[arg(long)]
    optimize: bool,
    /// Threads of the one pool every kernel runs on (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Timed runs after the warm-up.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also time every kernel and compare it with its roofline prediction on
    /// --target: the slowest kernels, the rank correlation and the median ratio.
    #[arg(long)]
    per_kernel: bool,
    /// Hardware profile for --per-kernel (and --optimize): a built-in name or a
    /// profile file; `cpu` is the calibrated profile when `eqopt calibrate` wrote one.
    #[arg(long, default_value = "cpu")]
    target: String,
    /// Print one JSON object instead of text (with --per-kernel, every kernel).
    #[arg(long)]
    json: bool,
}

/// A rayon pool of `threads` threads (all cores by default).
pub(super) fn pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    let n = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if n == 0 {
        return Err(Error::Usage {
            option: "--threads".into(),
            expected: "at least 1".into(),
            found: "0".into(),
        });
    }
    rayon::ThreadPoolBuilder::new().num_threads(n).build().map_err(|e| Error::Usage {
        option: "--threads".into(),
        expected: "a thread pool that can start".into(),
        found: e.to_string(),
    })
}

pub(super) fn load(graph: &std::path::Path, shapes: &ShapeArgs, optimize: bool, target: &str) -> Result<Graph> {
    let g = shapes.load(graph)?;
    if !optimize {
        return Ok(g);
    }
    let rules = crate::rules::RuleSet::defaults()?;
    let opts = crate::optimize::OptimizeOptions::new(crate::calibrate::resolve_target(target)?.0);
    let bar = super::optimize::saturation_observer(&opts.limits);
    Ok(crate::optimize::optimize_observed(&g, &rules, &opts, None, bar)?.0)
}

fn mib(b: usize) -> String {
    format!("{:.2} MiB", b as f64 / (1024.0 * 1024.0))
}

pub(super) fn memory_lines(m: &MemoryReport) -> String {
    let ratio = if m.lower_bound_bytes == 0 {
        1.0
    } else {
        m.arena_bytes as f64 / m.lower_bound_bytes as f64
    };
    format!(
        "memory: no reuse {}, arena {}, lower bound {} (arena / lower bound {ratio:.3}); {} elementwise kernels in place; constants (weights) as stored {}\n",
        mib(m.no_reuse_bytes),
        mib(m.arena_bytes),
        mib(m.lower_bound_bytes),
        m.in_place_kernels,
        mib(m.constant_bytes)
    )
}

pub(super) fn w(out: &mut dyn Write, s: &str) -> Result<()> {
    out.write_all(s.as_bytes()).map_err(|e| Error::io("<stdout>", e))
}

pub(super) fn run_compile(a: &CompileArgs, out: &mut dyn Write) -> Result<()> {
    if a.backend == BackendName::Ptx {
        return super::ptx::run_compile_ptx(a, out);
    }
    let g = load(&a.graph, &a.shapes, a.optimize, "cpu")?;
    let model = CpuModel::compile(&g)?;
    let program = model.program();
    w(
        out,
        &format!(
            "{}: {} kernels, {} buffers\n{}",
            a.graph.display(),
            program.kernels.len(),
            program.buffers.len(),
            memory_lines(&model.memory())
        ),
    )?;
    if let Some(dir) = &a.output {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        crate::graph::json::write_atomic(&dir.join("program.txt"), program.to_string().as_bytes())?;
        let json = serde_json::to_string_pretty(&model.memory()).expect("plain struct") + "\n";
        crate::graph::json::write_atomic(&dir.join("memory.json"), json.as_bytes())?;
        w(out, &format!("wrote {}/program.txt and memory.json\n", dir.display()))?;
    }
    Ok(())
}

/// The process's peak resident set (VmHWM), where the OS reports it.
fn peak_rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub(super) fn run_bench(a: &BenchArgs, out: &mut dyn Write) -> Result<()> {
    if a.runs == 0 {
        return Err(Error::Usage {
            option: "--runs".into(),
            expected: "at least 1".into(),
            found: "0".into(),
        });
    }
    let g = load(&a.graph, &a.shapes, a.optimize, &a.target)?;
    let model = CpuModel::compile(&g)?;
    let inputs = crate::eval::random_inputs(&g, a.seed);
    let pool = pool(a.threads)?;
    let threads = pool.current_num_threads();
    let mut times = Vec::with_capacity(a.runs);
    let agreement = pool.install(|| -> Result<Option<(Agreement, HardwareProfile)>> {
        for _ in 0..a.warmup {
            model.run(&inputs)?;
        }
        for _ in 0..a.runs {
            let t = Instant::now();
            model.run(&inputs)?;
            times.push(t.elapsed().as_secs_f64());
        }
        if !a.per_kernel {
            return Ok(None);
        }
        let (profile, _) = crate::calibrate::resolve_target(&a.target)?;
        let profile = profile.for_threads(threads);
        Ok(Some((agreement::measure(&model, &inputs, &profile, 0, a.runs)?, profile)))
    })?;
    let (agreement, profile) = agreement.unzip();
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let (min, max) = (times[0], times[times.len() - 1]);
    if a.json {
        let v = serde_json::json!({
            "model": a.graph.display().to_string(),
            "kernels": model.program().kernels.len(),
            "threads": threads,
            "runs": a.runs,
            "warmup": a.warmup,
            "latency_s": {"median": median, "min": min, "max": max},
            "memory": model.memory(),
            "peak_rss_bytes": peak_rss_bytes(),
            "per_kernel": agreement,
            "target": profile.map(|p| serde_json::json!({"name": p.name, "description": p.description})),
        });
        return w(out, &(serde_json::to_string_pretty(&v).expect("plain data") + "\n"));
    }
    let ms = |s: f64| s * 1e3;
    w(
        out,
        &format!(
            "{}: {} kernels, {threads} threads, {} runs after {} warm-up\nlatency: median {:.3} ms, min {:.3} ms, max {:.3} ms\n{}",
            a.graph.display(),
            model.program().kernels.len(),
            a.runs,
            a.warmup,
            ms(median),
            ms(min),
            ms(max),
            memory_lines(&model.memory())
        ),
    )?;
    if let Some(rss) = peak_rss_bytes() {
        w(out, &format!("peak resident memory of the process: {}\n", mib(rss)))?;
    }
    if let Some(ag) = &agreement {
        w(out, &agreement_lines(ag, &a.target))?;
    }
    Ok(())
}

/// The per-kernel comparison as text: the totals, the agreement figures and the
/// slowest kernels.
fn agreement_lines(ag: &Agreement, target: &str) -> String {
    let mut s = format!(
        "per kernel on target {target}: predicted total {:.3} ms, measured total {:.3} ms; rank correlation {:.3}, median measured/predicted {:.2}\n",
        ag.predicted_total_s * 1e3,
        ag.measured_total_s * 1e3,
        ag.spearman,
        ag.median_ratio
    );
    let mut slow: Vec<_> = ag.kernels.iter().collect();
    slow.sort_by(|a, b| b.measured_s.total_cmp(&a.measured_s).then(a.index.cmp(&b.index)));
    s += "slowest kernels:\n  #     kind         output                          GFLOP     MB   predicted µs  measured µs  ratio\n";
    for k in slow.iter().take(SLOWEST_SHOWN) {
        s += &format!(
            "  {:<5} {:<12} {:<30} {:>7.3} {:>7.2} {:>12.1} {:>12.1} {:>6.2}\n",
            k.index,
            k.kind,
            truncate(&k.output, 30),
            k.flops as f64 / 1e9,
            k.bytes as f64 / 1e6,
            k.predicted_s * 1e6,
            k.measured_s * 1e6,
            k.measured_s / k.predicted_s
        );
    }
    s
}

/// Kernels listed by `bench --per-kernel` in text form (`--json` lists all).
const SLOWEST_SHOWN: usize = 15;

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(std::iter::once('…')).collect()
    }
}
