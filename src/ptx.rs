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

use crate::backend::{MemoryReport, plan_memory};
use crate::cost::{ExecKind, HardwareProfile, Work};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::Graph;
use eqopt_kir::{GemmCompute, Kernel, Program};
use eqopt_ptx::{Compiled, SmTarget};

/// A graph lowered, planned and emitted as PTX.
pub struct PtxModel {
    /// The lowered kernel program.
    pub program: Program,
    /// The module and its launch plan.
    pub compiled: Compiled,
    /// The device arena's figures (the same planner as the CPU backend's).
    pub memory: MemoryReport,
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
        Ok(PtxModel { program, compiled, memory })
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
                        compute: GemmCompute::Bf16, ..
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
