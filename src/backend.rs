//! The CPU backend from the graph's side: lower a graph ([`crate::lower`]), plan its
//! memory ([`eqopt_kir::plan`]) and run it with `eqopt-cpu`'s kernels.
//!
//! ```
//! use eqopt::backend::CpuModel;
//! use eqopt::graph::json;
//! let g = json::parse(r#"{"format": "eqopt-graph", "version": 1, "name": "g",
//!   "inputs": [{"name": "x", "shape": [2, 3], "dtype": "f32"}], "outputs": ["y"],
//!   "nodes": [{"name": "y", "op": "Relu", "inputs": ["x"]}]}"#, "g.json".as_ref()).unwrap();
//! let model = CpuModel::compile(&g).unwrap();
//! let x = eqopt::graph::tensor::Tensor::from_f64(g.inputs[0].ty.clone(), &[-1.0, 2.0, -3.0, 4.0, 0.5, -0.5]);
//! let out = model.run(&[("x".to_string(), x)].into_iter().collect()).unwrap();
//! assert_eq!(out["y"].to_f64(), vec![0.0, 2.0, 0.0, 4.0, 0.5, 0.0]);
//! ```

use crate::dtype::{DType, TensorType};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::graph::tensor::{Tensor, TensorData};
use eqopt_cpu::exec::{Executable, InputData};
use eqopt_kir::Program;
use std::collections::BTreeMap;

/// Arena offsets are aligned to this many bytes (a cache line; AVX-512 loads).
pub const ARENA_ALIGN: usize = 64;

/// The memory figures of a planned program, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MemoryReport {
    /// Every intermediate in its own allocation.
    pub no_reuse_bytes: usize,
    /// The arena the planner laid out.
    pub arena_bytes: usize,
    /// The peak of live intermediate bytes over the kernel order: no plan can do better.
    pub lower_bound_bytes: usize,
    /// Elementwise kernels the plan runs in place, writing over a dead input.
    pub in_place_kernels: usize,
    /// Constants (weights) as stored: `f16`/`bf16` GEMM and convolution weights
    /// count 2 bytes an element, everything else 4 (`i64`: 8).
    pub constant_bytes: usize,
}

/// `(output, input)` buffer pairs where an elementwise kernel may write its
/// output over a dead input: both intermediates of the same size, the kernel
/// the output's first writer and the input's last reader, the output written
/// densely over its whole buffer, and every read of the input (by this kernel)
/// the same dense whole-buffer view of the output's shape. The planner honours
/// a pair when it can; the executor detects which it honoured.
fn inplace_candidates(program: &Program, lifetimes: &[Option<(usize, usize)>]) -> Vec<(usize, usize)> {
    let whole = |v: &eqopt_kir::View| v.offset == 0 && v.is_dense() && v.numel() == program.buffers[v.buffer].len;
    let temp = |b: usize| program.buffers[b].kind.is_none();
    let mut pairs = Vec::new();
    for (k, kernel) in program.kernels.iter().enumerate() {
        let eqopt_kir::Kernel::Elementwise { inputs, out, .. } = kernel else {
            continue;
        };
        if !temp(out.buffer) || !whole(out) || lifetimes[out.buffer].map(|l| l.0) != Some(k) {
            continue;
        }
        let candidate = inputs.iter().find(|v| {
            v.buffer != out.buffer
                && temp(v.buffer)
                && whole(v)
                && v.shape == out.shape
                && program.buffers[v.buffer].len == program.buffers[out.buffer].len
                && lifetimes[v.buffer].map(|l| l.1) == Some(k)
                && inputs.iter().filter(|w| w.buffer == v.buffer).all(|w| w == *v)
        });
        if let Some(v) = candidate {
            pairs.push((out.buffer, v.buffer));
        }
    }
    pairs
}

/// Plans the memory of `program`'s intermediates in one arena ([`eqopt_kir::plan`]),
/// letting elementwise kernels overwrite a dead input where that is legal: the
/// byte offset of every intermediate (`None` for inputs, outputs and constants)
/// and the plan's figures. Both backends place their arena with it.
pub fn plan_memory(program: &Program) -> Result<(Vec<Option<usize>>, MemoryReport)> {
    let lifetimes = program.lifetimes();
    let temps: Vec<usize> = (0..program.buffers.len()).filter(|&b| program.buffers[b].kind.is_none()).collect();
    let mut req_of = vec![None; program.buffers.len()];
    for (k, &b) in temps.iter().enumerate() {
        req_of[b] = Some(k);
    }
    let mut reqs: Vec<eqopt_kir::plan::BufferReq> = temps
        .iter()
        .map(|&b| {
            // A temp no kernel touches (none today) lives at kernel 0 only.
            let (def, last_use) = lifetimes[b].unwrap_or((0, 0));
            eqopt_kir::plan::BufferReq {
                size: program.buffers[b].bytes(),
                def,
                last_use,
                inplace_of: None,
            }
        })
        .collect();
    for (out, input) in inplace_candidates(program, &lifetimes) {
        if let (Some(o), Some(i)) = (req_of[out], req_of[input]) {
            reqs[o].inplace_of = Some(i);
        }
    }
    let plan = eqopt_kir::plan::plan(&reqs, ARENA_ALIGN)?;
    let mut offsets = vec![None; program.buffers.len()];
    for (k, &b) in temps.iter().enumerate() {
        offsets[b] = Some(plan.offsets[k]);
    }
    let memory = MemoryReport {
        no_reuse_bytes: plan.no_reuse_bytes,
        arena_bytes: plan.arena_bytes,
        lower_bound_bytes: plan.lower_bound,
        in_place_kernels: plan.inplace.iter().filter(|i| i.is_some()).count(),
        constant_bytes: program.constant_bytes(),
    };
    Ok((offsets, memory))
}

/// A graph input converted to what a backend takes: `f32` values, or `i64`
/// indices (from `i64` or `i32` tensors).
pub(crate) enum InputBuffer {
    /// `f32` values.
    F32(Vec<f32>),
    /// `i64` values.
    I64(Vec<i64>),
}

/// Every input of `types` (name and declared type, in the graph's order) from
/// `inputs`, converted; a missing input or one of another type is an error
/// naming it.
pub(crate) fn input_buffers(types: &[(String, TensorType)], inputs: &BTreeMap<String, Tensor>) -> Result<Vec<InputBuffer>> {
    types
        .iter()
        .map(|(name, ty)| {
            let t = inputs.get(name).ok_or_else(|| Error::MissingInputs {
                inputs: vec![format!("{name} ({ty})")],
            })?;
            if &t.ty != ty {
                return Err(Error::Usage {
                    option: format!("input \"{name}\""),
                    expected: ty.to_string(),
                    found: t.ty.to_string(),
                });
            }
            Ok(match &t.data {
                TensorData::I64(v) => InputBuffer::I64(v.clone()),
                TensorData::I32(v) => InputBuffer::I64(v.iter().map(|&x| x as i64).collect()),
                _ => InputBuffer::F32(t.to_f64().into_iter().map(|x| x as f32).collect()),
            })
        })
        .collect()
}

/// How a run of a [`CpuModel`] executes its kernels.
enum Mode<'a> {
    Plain,
    Timed,
    Streams(&'a [Vec<usize>], &'a [&'a rayon::ThreadPool]),
}

/// A graph compiled for the CPU backend.
pub struct CpuModel {
    exe: Executable,
    memory: MemoryReport,
    input_types: Vec<(String, TensorType)>,
    output_names: Vec<String>,
}

impl CpuModel {
    /// Lowers and plans `graph`.
    pub fn compile(graph: &Graph) -> Result<CpuModel> {
        let program = crate::lower::lower(graph)?;
        let (byte_offsets, memory) = plan_memory(&program)?;
        let offsets = byte_offsets.iter().map(|o| o.map(|b| b / 4)).collect();
        let arena_len = memory.arena_bytes.div_ceil(4);
        let input_types = graph.inputs.iter().map(|i| (i.name.clone(), i.ty.clone())).collect();
        let output_names = graph.outputs.clone();
        let exe = Executable::new(program, offsets, arena_len)?;
        Ok(CpuModel {
            exe,
            memory,
            input_types,
            output_names,
        })
    }

    /// The lowered program.
    pub fn program(&self) -> &Program {
        self.exe.program()
    }

    /// Memory figures of the plan.
    pub fn memory(&self) -> MemoryReport {
        self.memory
    }

    /// Runs the model on rayon's current thread pool (call inside `pool.install`
    /// to choose its size). `inputs` must hold every graph input with its declared type.
    pub fn run(&self, inputs: &BTreeMap<String, Tensor>) -> Result<BTreeMap<String, Tensor>> {
        Ok(self.run_inner(inputs, Mode::Plain)?.0)
    }

    /// As [`CpuModel::run`], and also returns each kernel's wall time, in the
    /// program's kernel order.
    pub fn run_timed(&self, inputs: &BTreeMap<String, Tensor>) -> Result<(BTreeMap<String, Tensor>, Vec<std::time::Duration>)> {
        self.run_inner(inputs, Mode::Timed)
    }

    /// Runs the kernels on several streams at once: `streams[s]` on a thread
    /// inside `pools[s]` (see [`eqopt_cpu::exec::Executable::run_streams`]).
    /// The model must come from [`CpuModel::compile_without_reuse`].
    pub fn run_streams(
        &self,
        inputs: &BTreeMap<String, Tensor>,
        streams: &[Vec<usize>],
        pools: &[&rayon::ThreadPool],
    ) -> Result<BTreeMap<String, Tensor>> {
        Ok(self.run_inner(inputs, Mode::Streams(streams, pools))?.0)
    }

    /// As [`CpuModel::compile`], with every intermediate in memory of its own
    /// (no reuse), as concurrent runs ([`CpuModel::run_streams`]) need.
    pub fn compile_without_reuse(graph: &Graph) -> Result<CpuModel> {
        let program = crate::lower::lower(graph)?;
        let (_, mut memory) = plan_memory(&program)?;
        let mut offsets = vec![None; program.buffers.len()];
        let mut at = 0usize;
        for (b, buf) in program.buffers.iter().enumerate() {
            if buf.kind.is_none() {
                offsets[b] = Some(at / 4);
                at = (at + buf.bytes()).next_multiple_of(ARENA_ALIGN);
            }
        }
        memory.arena_bytes = at;
        memory.in_place_kernels = 0;
        let exe = Executable::new(program, offsets, at.div_ceil(4))?;
        Ok(CpuModel {
            exe,
            memory,
            input_types: graph.inputs.iter().map(|i| (i.name.clone(), i.ty.clone())).collect(),
            output_names: graph.outputs.clone(),
        })
    }

    fn run_inner(&self, inputs: &BTreeMap<String, Tensor>, mode: Mode<'_>) -> Result<(BTreeMap<String, Tensor>, Vec<std::time::Duration>)> {
        let owned = input_buffers(&self.input_types, inputs)?;
        let data: Vec<InputData<'_>> = owned
            .iter()
            .map(|d| match d {
                InputBuffer::F32(v) => InputData::F32(v),
                InputBuffer::I64(v) => InputData::I64(v),
            })
            .collect();
        let (outs, times) = match mode {
            Mode::Timed => self.exe.run_timed(&data)?,
            Mode::Plain => (self.exe.run(&data)?, Vec::new()),
            Mode::Streams(streams, pools) => (self.exe.run_streams(&data, streams, pools)?, Vec::new()),
        };
        let program = self.exe.program();
        let mut result = BTreeMap::new();
        for ((name, v), (_, shape)) in self.output_names.iter().zip(outs).zip(&program.outputs) {
            let ty = TensorType::new(shape.clone(), DType::F32);
            result.insert(
                name.clone(),
                Tensor {
                    ty,
                    data: TensorData::F32(v),
                },
            );
        }
        Ok((result, times))
    }
}
