//! eqopt's CUDA PTX backend: a kernel-level program ([`eqopt_kir::Program`])
//! emitted as one PTX module with a launch plan, for NVIDIA GPUs (`sm_80`, `sm_90`).
//!
//! Every kernel of the program becomes one `.entry`, specialised to its shapes
//! and strides (they are constants in the instructions). The module uses only
//! the PTX subset written down in this crate's `SUBSET.md`, which the
//! interpreter `eqopt-ptx-sim` executes, so the emitted code is verified
//! without a GPU; `ptxas` assembles the same text for real hardware.
//!
//! Memory: graph inputs, outputs and constants each have an allocation of their
//! own; intermediates live in one device arena at the offsets of the memory
//! planner ([`eqopt_kir::plan`]). Each entry takes one `.u64` parameter per
//! buffer it touches: that buffer's base address ([`LaunchSpec::buffers`]).
//!
//! ```
//! use eqopt_kir::{Buffer, BufferKind, Expr, Instr, Kernel, Program, UnaryOp, View};
//! let program = Program {
//!     name: "relu".into(),
//!     buffers: vec![
//!         Buffer { name: "x".into(), elem: eqopt_kir::ElemType::F32, len: 8, kind: Some(BufferKind::Input) },
//!         Buffer { name: "y".into(), elem: eqopt_kir::ElemType::F32, len: 8, kind: Some(BufferKind::Output) },
//!     ],
//!     kernels: vec![Kernel::Elementwise {
//!         expr: Expr { instrs: vec![Instr::Input(0), Instr::Unary(UnaryOp::Relu, 0)], num_inputs: 1 },
//!         inputs: vec![View::dense(0, &[8])],
//!         out: View::dense(1, &[8]),
//!     }],
//!     inputs: vec![(0, vec![8])],
//!     outputs: vec![(1, vec![8])],
//! };
//! let compiled = eqopt_ptx::compile(&program, &[None, None], eqopt_ptx::SmTarget::Sm90).unwrap();
//! assert!(compiled.ptx.contains(".target sm_90"));
//! assert_eq!(compiled.launches.len(), 1);
//! ```

#![warn(missing_docs)]

pub mod builder;
#[cfg(feature = "cuda")]
pub mod cuda;
mod error;
pub mod expr;
pub mod host;
pub mod index;
pub mod kernels;
mod math;
pub mod plan;
pub mod sim;

pub use error::PtxError;
pub use plan::{BufferPlacement, Compiled, LaunchSpec, Placement};

use eqopt_kir::{BufferKind, Program};

/// The GPU architecture a module is assembled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SmTarget {
    /// Ampere (A100): `sm_80`.
    Sm80,
    /// Hopper (H100): `sm_90`.
    Sm90,
}

impl SmTarget {
    /// Both targets, oldest first.
    pub const ALL: [SmTarget; 2] = [SmTarget::Sm80, SmTarget::Sm90];

    /// The `.target` name (`sm_80`).
    pub fn name(self) -> &'static str {
        match self {
            SmTarget::Sm80 => "sm_80",
            SmTarget::Sm90 => "sm_90",
        }
    }
}

/// The PTX ISA version the module declares (supported by `ptxas` 12.0 and later).
pub const PTX_VERSION: &str = "8.0";

/// The largest buffer (in elements) the kernels can index: element offsets are
/// signed 32-bit.
pub const MAX_BUFFER_ELEMENTS: usize = i32::MAX as usize;

/// Emits `program` as PTX for `target`. `arena_offsets[b]` is the byte offset
/// of intermediate buffer `b` in the device arena (`None` for inputs, outputs
/// and constants), as the memory planner laid it out.
pub fn compile(program: &Program, arena_offsets: &[Option<usize>], target: SmTarget) -> Result<Compiled, PtxError> {
    if arena_offsets.len() != program.buffers.len() {
        return Err(PtxError::PlanMismatch {
            expected: program.buffers.len(),
            found: arena_offsets.len(),
        });
    }
    for (b, buf) in program.buffers.iter().enumerate() {
        if buf.len > MAX_BUFFER_ELEMENTS {
            return Err(PtxError::TooLarge {
                buffer: b,
                name: buf.name.clone(),
                len: buf.len,
                max: MAX_BUFFER_ELEMENTS,
            });
        }
        if buf.kind.is_none() && arena_offsets[b].is_none() {
            return Err(PtxError::Unplaced {
                buffer: b,
                name: buf.name.clone(),
            });
        }
    }
    let mut ptx = format!(
        "// eqopt: program \"{}\", {} kernels\n.version {PTX_VERSION}\n.target {}\n.address_size 64\n",
        program.name,
        program.kernels.len(),
        target.name()
    );
    let mut launches = Vec::with_capacity(program.kernels.len());
    for k in 0..program.kernels.len() {
        let entry = format!("k{k}_{}", program.kernels[k].name());
        let e = kernels::emit(program, k, &entry)?;
        ptx.push('\n');
        ptx.push_str(&e.text);
        launches.push(LaunchSpec {
            kernel: k,
            entry,
            kind: program.kernels[k].name().to_string(),
            grid: e.grid,
            block: e.block,
            shared_bytes: e.shared_bytes,
            buffers: e.buffers,
        });
    }
    let (buffers, weights_bytes) = plan::place_buffers(program, arena_offsets);
    let arena_bytes = program
        .buffers
        .iter()
        .zip(arena_offsets)
        .filter(|(b, _)| b.kind.is_none())
        .map(|(b, o)| o.unwrap_or(0) + b.bytes())
        .max()
        .unwrap_or(0);
    Ok(Compiled {
        target,
        ptx,
        launches,
        buffers,
        arena_bytes,
        weights_bytes,
    })
}

/// True for a buffer that holds a constant.
pub fn is_constant(program: &Program, buffer: usize) -> bool {
    matches!(program.buffers[buffer].kind, Some(BufferKind::Constant(_)))
}
