//! The CPU backend's commands: `compile`, `bench`, and the backend side of `run`.

use super::ShapeArgs;
use crate::backend::{CpuModel, MemoryReport};
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
}

#[derive(Args, Debug)]
pub(super) struct CompileArgs {
    /// The model: graph.json, or ONNX (by the .onnx extension).
    graph: PathBuf,
    #[command(flatten)]
    shapes: ShapeArgs,
    /// The backend to compile for.
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendName,
    /// Optimize the model for the cpu target first (else it is lowered as given).
    #[arg(long)]
    optimize: bool,
    /// Directory for program.txt (the kernel program) and memory.json (the plan's figures).
    #[arg(short, long, value_name = "DIR")]
    output: Option<PathBuf>,
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

fn load(graph: &std::path::Path, shapes: &ShapeArgs, optimize: bool) -> Result<Graph> {
    let g = shapes.load(graph)?;
    if !optimize {
        return Ok(g);
    }
    let rules = crate::rules::RuleSet::defaults()?;
    let opts = crate::optimize::OptimizeOptions::new(crate::cost::HardwareProfile::load("cpu")?);
    Ok(crate::optimize::optimize(&g, &rules, &opts)?.0)
}

fn mib(b: usize) -> String {
    format!("{:.2} MiB", b as f64 / (1024.0 * 1024.0))
}

fn memory_lines(m: &MemoryReport) -> String {
    let ratio = if m.lower_bound_bytes == 0 {
        1.0
    } else {
        m.arena_bytes as f64 / m.lower_bound_bytes as f64
    };
    format!(
        "memory: no reuse {}, arena {}, lower bound {} (arena / lower bound {ratio:.3}); constants (weights) as stored {}\n",
        mib(m.no_reuse_bytes),
        mib(m.arena_bytes),
        mib(m.lower_bound_bytes),
        mib(m.constant_bytes)
    )
}

fn w(out: &mut dyn Write, s: &str) -> Result<()> {
    out.write_all(s.as_bytes()).map_err(|e| Error::io("<stdout>", e))
}

pub(super) fn run_compile(a: &CompileArgs, out: &mut dyn Write) -> Result<()> {
    let BackendName::Cpu = a.backend;
    let g = load(&a.graph, &a.shapes, a.optimize)?;
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
        write_atomic(&dir.join("program.txt"), program.to_string().as_bytes())?;
        let json = serde_json::to_string_pretty(&model.memory()).expect("plain struct") + "\n";
        write_atomic(&dir.join("memory.json"), json.as_bytes())?;
        w(out, &format!("wrote {}/program.txt and memory.json\n", dir.display()))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file in the same directory, renamed
/// into place, so a reader never sees a half-written file.
fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
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
    let g = load(&a.graph, &a.shapes, a.optimize)?;
    let model = CpuModel::compile(&g)?;
    let inputs = crate::eval::random_inputs(&g, a.seed);
    let pool = pool(a.threads)?;
    let mut times = Vec::with_capacity(a.runs);
    pool.install(|| -> Result<()> {
        for _ in 0..a.warmup {
            model.run(&inputs)?;
        }
        for _ in 0..a.runs {
            let t = Instant::now();
            model.run(&inputs)?;
            times.push(t.elapsed().as_secs_f64());
        }
        Ok(())
    })?;
    times.sort_by(f64::total_cmp);
    let ms = |s: f64| s * 1e3;
    let median = times[times.len() / 2];
    w(
        out,
        &format!(
            "{}: {} kernels, {} threads, {} runs after {} warm-up\nlatency: median {:.3} ms, min {:.3} ms, max {:.3} ms\n{}",
            a.graph.display(),
            model.program().kernels.len(),
            pool.current_num_threads(),
            a.runs,
            a.warmup,
            ms(median),
            ms(times[0]),
            ms(times[times.len() - 1]),
            memory_lines(&model.memory())
        ),
    )?;
    if let Some(rss) = peak_rss_bytes() {
        w(out, &format!("peak resident memory of the process: {}\n", mib(rss)))?;
    }
    Ok(())
}
