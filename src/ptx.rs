//! The PTX backend from the graph's side: lower a graph ([`crate::lower`]), plan
//! its device memory with the CPU backend's planner ([`crate::backend::plan_memory`])
//! and emit it with `eqopt-ptx`, with a roofline estimate of every launch on a
//! GPU profile.
//!
//! ```
//! use eqopt::graph::json;
//! let g = json::parse(r#"{"format": "eqopt-graph", "version": 1, "name": "g",
//!   "inputs": [{"name": "x", "shape": [2, 3], "dtype": "f32"}], "outputs": ["y"],
//!   "nodes": [{"name": "y", "op": "Relu", "inputs": ["x"]}]}"#, "g.json".as_ref()).unwrap();
//! let m = eqopt::ptx::PtxModel::compile(&g, eqopt_ptx::SmTarget::Sm90).unwrap();
//! assert!(m.compiled.ptx.contains(".visible .entry k0_elementwise("));
//! let h100 = eqopt::cost::HardwareProfile::load("h100").unwrap();
//! assert_eq!(m.estimate(&h100).len(), 1);
//! ```

use crate::backend::{InputBuffer, MemoryReport, plan_memory};
use crate::cost::{ExecKind, HardwareProfile, Work};
use crate::dtype::DType;
use crate::dtype::TensorType;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::graph::tensor::{Tensor, TensorData};
use eqopt_kir::{GemmCompute, Kernel, Program};
use eqopt_ptx::{Compiled, SmTarget};
use std::collections::BTreeMap;

/// A graph lowered, planned and emitted as PTX.
pub struct PtxModel {
    /// The lowered kernel program.
    pub program: Program,
    /// The module and its launch plan.
    pub compiled: Compiled,
    /// The device arena's figures (the same planner as the CPU backend's).
    pub memory: MemoryReport,
    input_types: Vec<(String, TensorType)>,
    output_names: Vec<String>,
}

/// One launch's roofline estimate.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LaunchEstimate {
    /// Kernel index.
    pub kernel: usize,
    /// Entry name.
    pub entry: String,
    /// Floating-point operations.
    pub flops: u64,
    /// Bytes read and written.
    pub bytes: u64,
    /// The dtype whose peak applies (`bf16` for a tensor-core GEMM, else `f32`).
    pub dtype: DType,
    /// Estimated seconds, launch overhead included.
    pub seconds: f64,
}

impl PtxModel {
    /// Lowers, plans and emits `graph` for `target`.
    pub fn compile(graph: &Graph, target: SmTarget) -> Result<PtxModel> {
        let program = crate::lower::lower(graph)?;
        let (offsets, memory) = plan_memory(&program)?;
        let compiled = eqopt_ptx::compile(&program, &offsets, target)?;
        Ok(PtxModel {
            program,
            compiled,
            memory,
            input_types: graph.inputs.iter().map(|i| (i.name.clone(), i.ty.clone())).collect(),
            output_names: graph.outputs.clone(),
        })
    }

    /// Runs the module on `gpu` (the PTX interpreter, or a CUDA device): uploads
    /// the weights and `inputs` (every graph input, with its declared type),
    /// launches the plan, and returns the outputs by name.
    pub fn run<G: eqopt_ptx::host::Gpu>(&self, gpu: &mut G, inputs: &BTreeMap<String, Tensor>) -> Result<BTreeMap<String, Tensor>> {
        let data = crate::backend::input_buffers(&self.input_types, inputs)?;
        let host: Vec<eqopt_ptx::host::HostInput<'_>> = data
            .iter()
            .map(|d| match d {
                InputBuffer::F32(v) => eqopt_ptx::host::HostInput::F32(v),
                InputBuffer::I64(v) => eqopt_ptx::host::HostInput::I64(v),
            })
            .collect();
        let outs = eqopt_ptx::host::run(gpu, &self.compiled, &self.program, &host).map_err(|e| Error::Device {
            backend: "ptx",
            problem: e.to_string(),
        })?;
        Ok(self
            .output_names
            .iter()
            .zip(outs)
            .zip(&self.program.outputs)
            .map(|((name, v), (_, shape))| {
                let t = Tensor {
                    ty: TensorType::new(shape.clone(), DType::F32),
                    data: TensorData::F32(v),
                };
                (name.clone(), t)
            })
            .collect())
    }

    /// The roofline estimate of every launch on `profile`, in launch order: the
    /// kernel's FLOPs at the peak of its arithmetic (tensor-core `bf16` for a
    /// [`GemmCompute::Bf16`] GEMM, `f32` otherwise) against its bytes at the
    /// memory bandwidth, plus the launch overhead.
    pub fn estimate(&self, profile: &HardwareProfile) -> Vec<LaunchEstimate> {
        self.compiled
            .launches
            .iter()
            .map(|l| {
                let w = self.program.kernel_work(l.kernel).unwrap_or_default();
                let dtype = match &self.program.kernels[l.kernel] {
                    Kernel::Gemm {
                        compute: GemmCompute::Bf16,
                        ..
                    } => DType::BF16,
                    _ => DType::F32,
                };
                let work = Work {
                    flops: w.flops,
                    bytes_read: w.bytes_read,
                    bytes_written: w.bytes_written,
                    dtype,
                    kind: ExecKind::Kernel,
                    conv_layout: None,
                    relayout_bytes: 0,
                };
                LaunchEstimate {
                    kernel: l.kernel,
                    entry: l.entry.clone(),
                    flops: w.flops,
                    bytes: w.bytes_read.saturating_add(w.bytes_written),
                    dtype,
                    seconds: profile.kernel_time(&work),
                }
            })
            .collect()
    }
}
