//! `eqopt run`.

use super::{ShapeArgs, backend, logging};
use crate::dtype::{DType, TensorType};
use crate::error::{Error, Result};
use crate::graph::tensor::Tensor;
use crate::tensor_io;
use clap::Args;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub(super) struct RunArgs {
    /// The model to evaluate: graph.json, or ONNX (by the .onnx extension).
    graph: PathBuf,
    #[command(flatten)]
    shapes: ShapeArgs,
    /// A graph input's value from a .npy file (C order; f32, f64, f16, i8, i32, i64 or bool). Repeatable.
    #[arg(long = "input", value_name = "NAME=FILE.npy", value_parser = parse_input_arg)]
    input: Vec<(String, PathBuf)>,
    /// Graph input values from a safetensors file (or an .npz, by extension), keyed by input name.
    #[arg(long = "inputs", value_name = "FILE.safetensors")]
    inputs: Option<PathBuf>,
    /// Fill every input not given above with deterministic random values from SEED
    /// (normal for floats, valid indices for Gather index inputs).
    #[arg(long, value_name = "SEED")]
    random_inputs: Option<u64>,
    /// Save the outputs: a path ending in .npz gets one archive holding every output;
    /// any other path is a directory (created if needed) that gets one <output>.npy per
    /// output, with '/' in names replaced by '_'. bf16 outputs are saved as f32 (NumPy
    /// has no bf16). Files are written atomically.
    #[arg(short, long, value_name = "OUT.npz|DIR")]
    output: Option<PathBuf>,
    /// Evaluate with the reference interpreter instead of a backend.
    #[arg(long, conflicts_with = "backend")]
    reference: bool,
    /// The backend that runs the model: `cpu` (SIMD kernels), `ptx-sim` (the
    /// PTX module on the PTX interpreter: slow, for checking), `cuda` (the PTX
    /// module on GPU 0; needs a build with `--features cuda`).
    #[arg(long, value_enum, default_value = "cpu")]
    backend: RunBackend,
    /// Threads of the CPU backend's pool (default: all cores).
    #[arg(long, conflicts_with = "reference")]
    threads: Option<usize>,
    /// Print one JSON object instead of text: the model, the engine, every
    /// input with its source, and every output's dtype, shape, min, max and mean
    /// of the finite values and NaN/inf counts.
    #[arg(long)]
    json: bool,
}

/// A backend `eqopt run` can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum RunBackend {
    /// The CPU backend.
    Cpu,
    /// The PTX module (sm_90) on the PTX interpreter.
    PtxSim,
    /// The PTX module on GPU 0 (the `cuda` feature).
    Cuda,
}

fn parse_input_arg(s: &str) -> std::result::Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => Ok((name.to_string(), PathBuf::from(path))),
        _ => Err(format!("expected NAME=FILE.npy, found \"{s}\"")),
    }
}

/// The value given for a graph input, and where it came from (for messages).
struct GivenInput {
    tensor: Tensor,
    source: String,
}

pub(super) fn run_graph(a: &RunArgs, out: &mut dyn Write) -> Result<()> {
    let graph = a.shapes.load(&a.graph)?;
    let declared: BTreeMap<&str, &TensorType> = graph.inputs.iter().map(|i| (i.name.as_str(), &i.ty)).collect();
    let known = || {
        if graph.inputs.is_empty() {
            "the graph has none".to_string()
        } else {
            let list: Vec<String> = graph.inputs.iter().map(|i| format!("{} ({})", i.name, i.ty)).collect();
            format!("one of {}", list.join(", "))
        }
    };
    let mut given: BTreeMap<String, GivenInput> = BTreeMap::new();
    let check_name = |name: &str, source: &str| -> Result<()> {
        if declared.contains_key(name) {
            Ok(())
        } else {
            Err(Error::Usage {
                option: source.to_string(),
                expected: format!("a graph input name ({})", known()),
                found: format!("\"{name}\""),
            })
        }
    };
    let mut add = |name: String, tensor: Tensor, source: String, from_npy: bool| -> Result<()> {
        let ty = declared[name.as_str()];
        if &tensor.ty != ty {
            let hint = if from_npy && ty.dtype == DType::BF16 {
                " (NumPy has no bf16: give it in a safetensors file with --inputs)"
            } else {
                ""
            };
            return Err(Error::Usage {
                option: source,
                expected: format!("{ty} for graph input \"{name}\"{hint}"),
                found: tensor.ty.to_string(),
            });
        }
        if let Some(first) = given.get(&name) {
            return Err(Error::Usage {
                option: source,
                expected: "each graph input given once".into(),
                found: format!("\"{name}\" also given by {}", first.source),
            });
        }
        given.insert(name, GivenInput { tensor, source });
        Ok(())
    };
    if let Some(p) = &a.inputs {
        let source = format!("--inputs {}", p.display());
        for (name, t) in tensor_io::read_tensors(p)? {
            check_name(&name, &source)?;
            add(name, t, source.clone(), false)?;
        }
    }
    for (name, p) in &a.input {
        let source = format!("--input {name}={}", p.display());
        check_name(name, &source)?;
        add(name.clone(), tensor_io::read_npy(p)?, source, true)?;
    }
    let missing: Vec<&crate::graph::Input> = graph.inputs.iter().filter(|i| !given.contains_key(&i.name)).collect();
    if !missing.is_empty() {
        let Some(seed) = a.random_inputs else {
            return Err(Error::MissingInputs {
                inputs: missing.iter().map(|i| format!("{} ({})", i.name, i.ty)).collect(),
            });
        };
        let mut random = crate::eval::random_inputs(&graph, seed);
        for i in missing {
            let tensor = random.remove(&i.name).expect("random_inputs fills every graph input");
            let source = format!("random (seed {seed})");
            given.insert(i.name.clone(), GivenInput { tensor, source });
        }
    }
    let w = |out: &mut dyn Write, s: String| out.write_all(s.as_bytes()).map_err(|e| Error::io("<stdout>", e));
    // Compiled before anything is printed, so a graph the backend cannot run fails cleanly.
    enum Engine {
        Reference,
        Cpu(crate::backend::CpuModel, rayon::ThreadPool),
        Ptx(crate::ptx::PtxModel, RunBackend),
    }
    let engine = match (a.reference, a.backend) {
        (true, _) => Engine::Reference,
        (false, RunBackend::Cpu) => Engine::Cpu(crate::backend::CpuModel::compile(&graph)?, backend::pool(a.threads)?),
        (false, b) => {
            if cfg!(not(feature = "cuda")) && b == RunBackend::Cuda {
                return Err(Error::Usage {
                    option: "--backend".into(),
                    expected: "cpu or ptx-sim (cuda needs eqopt built with --features cuda)".into(),
                    found: "cuda".into(),
                });
            }
            Engine::Ptx(crate::ptx::PtxModel::compile(&graph, eqopt_ptx::SmTarget::Sm90)?, b)
        }
    };
    let name = match &engine {
        Engine::Reference => "the reference interpreter".to_string(),
        Engine::Cpu(_, pool) => format!("the cpu backend ({} threads)", pool.current_num_threads()),
        Engine::Ptx(m, RunBackend::Cuda) => format!("the ptx backend on GPU 0 ({} launches)", m.compiled.launches.len()),
        Engine::Ptx(m, _) => format!("the ptx backend on the PTX interpreter ({} launches)", m.compiled.launches.len()),
    };
    let engine_json = match &engine {
        Engine::Reference => serde_json::json!({"kind": "reference"}),
        Engine::Cpu(_, pool) => serde_json::json!({"kind": "cpu", "threads": pool.current_num_threads()}),
        Engine::Ptx(m, b) => serde_json::json!({
            "kind": if *b == RunBackend::Cuda { "cuda" } else { "ptx-sim" },
            "launches": m.compiled.launches.len(),
        }),
    };
    let inputs_json: Vec<serde_json::Value> = graph
        .inputs
        .iter()
        .map(|i| {
            serde_json::json!({
                "name": i.name,
                "dtype": i.ty.dtype.to_string(),
                "shape": i.ty.shape,
                "source": given[&i.name].source,
            })
        })
        .collect();
    if !a.json {
        w(out, format!("{}: evaluated with {name}\n", a.graph.display()))?;
        for i in &graph.inputs {
            w(out, format!("input {} {}: {}\n", i.name, i.ty, given[&i.name].source))?;
        }
    }
    let inputs: BTreeMap<String, Tensor> = given.into_iter().map(|(k, g)| (k, g.tensor)).collect();
    tracing::info!("evaluating {} with {name}", a.graph.display());
    let spinner = logging::spinner("evaluating");
    let results = match &engine {
        Engine::Reference => crate::eval::run(&graph, &inputs).map_err(|source| Error::Eval {
            graph: a.graph.clone(),
            source: Box::new(source),
        })?,
        Engine::Cpu(model, pool) => pool.install(|| model.run(&inputs))?,
        Engine::Ptx(model, RunBackend::Cuda) => run_cuda(model, &inputs)?,
        Engine::Ptx(model, _) => {
            let mut gpu = eqopt_ptx::sim::SimGpu::new(&model.compiled.ptx).map_err(|e| Error::Device {
                backend: "ptx",
                problem: e.to_string(),
            })?;
            model.run(&mut gpu, &inputs)?
        }
    };
    spinner.finish_and_clear();
    let mut outputs: Vec<(&str, &Tensor)> = Vec::new();
    for name in &graph.outputs {
        if outputs.iter().all(|(n, _)| n != name) {
            outputs.push((name.as_str(), &results[name]));
        }
    }
    if !a.json {
        w(out, tensor_io::summary_table(&outputs))?;
    }
    let mut bf16_as_f32: Vec<&str> = Vec::new();
    if let Some(path) = &a.output {
        write_outputs(path, &outputs)?;
        bf16_as_f32 = outputs.iter().filter(|(_, t)| t.ty.dtype == DType::BF16).map(|(n, _)| *n).collect();
        if !a.json {
            if !bf16_as_f32.is_empty() {
                w(
                    out,
                    format!("note: bf16 outputs saved as f32 (NumPy has no bf16): {}\n", bf16_as_f32.join(", ")),
                )?;
            }
            w(out, format!("wrote {}\n", path.display()))?;
        }
    }
    if a.json {
        let v = serde_json::json!({
            "model": a.graph.display().to_string(),
            "engine": engine_json,
            "inputs": inputs_json,
            "outputs": outputs.iter().map(|(n, t)| output_json(n, t)).collect::<Vec<_>>(),
            "saved": a.output.as_ref().map(|p| serde_json::json!({
                "path": p.display().to_string(),
                "bf16_saved_as_f32": bf16_as_f32,
            })),
        });
        w(out, serde_json::to_string_pretty(&v).expect("plain values") + "\n")?;
    }
    Ok(())
}

/// One output's summary as JSON (the fields of [`tensor_io::summary_table`]'s row).
fn output_json(name: &str, t: &Tensor) -> serde_json::Value {
    let s = tensor_io::stats(t);
    serde_json::json!({
        "name": name,
        "dtype": t.ty.dtype.to_string(),
        "shape": t.ty.shape,
        "min": s.min,
        "max": s.max,
        "mean": s.mean,
        "nan": s.nan,
        "inf": s.inf,
    })
}

#[cfg(feature = "cuda")]
fn run_cuda(model: &crate::ptx::PtxModel, inputs: &BTreeMap<String, Tensor>) -> Result<BTreeMap<String, Tensor>> {
    let mut gpu = eqopt_ptx::cuda::CudaGpu::new(&model.compiled.ptx).map_err(|e| Error::Device {
        backend: "cuda",
        problem: e.to_string(),
    })?;
    model.run(&mut gpu, inputs)
}

#[cfg(not(feature = "cuda"))]
fn run_cuda(_: &crate::ptx::PtxModel, _: &BTreeMap<String, Tensor>) -> Result<BTreeMap<String, Tensor>> {
    unreachable!("refused before compiling: built without the cuda feature")
}

/// Writes `outputs` as one .npz (`path` ending in .npz) or as `<name>.npy` files in directory `path`.
fn write_outputs(path: &Path, outputs: &[(&str, &Tensor)]) -> Result<()> {
    if tensor_io::has_extension(path, "npz") {
        return tensor_io::write_npz(path, outputs);
    }
    if path.exists() && !path.is_dir() {
        return Err(Error::Usage {
            option: "--output".into(),
            expected: "a file name ending in .npz, or a directory".into(),
            found: format!("{} (an existing file)", path.display()),
        });
    }
    let mut files: BTreeMap<String, &str> = BTreeMap::new();
    for (name, _) in outputs {
        let file = tensor_io::npy_file_name(name);
        if let Some(other) = files.insert(file.clone(), name) {
            return Err(Error::Usage {
                option: "--output".into(),
                expected: "output names that give distinct file names (or an .npz file)".into(),
                found: format!("\"{other}\" and \"{name}\" both saved as {file}"),
            });
        }
    }
    std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
    for (name, t) in outputs {
        tensor_io::write_npy(&path.join(tensor_io::npy_file_name(name)), t)?;
    }
    Ok(())
}
