//! One emitter per kernel kind. Each turns one [`Kernel`] of a program into
//! one PTX entry specialised to its shapes, plus its launch configuration.

mod attention;
mod conv;
mod gemm;
mod norm;
mod simple;
mod tile;
mod warp;
mod window;

use crate::builder::{Kb, R64};
use crate::error::PtxError;
use eqopt_kir::{BufferId, ElemType, Kernel, Program};

/// Threads per block of the one-thread-per-element kernels.
pub const ELEMENTWISE_BLOCK: u32 = 256;
/// The most blocks a grid-stride kernel launches (each block then loops).
pub const MAX_GRID_BLOCKS: u32 = 65_535;

/// A kernel's entry text and launch configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emitted {
    /// The `.entry` text.
    pub text: String,
    /// Grid dimensions.
    pub grid: [u32; 3],
    /// Block dimensions.
    pub block: [u32; 3],
    /// Static shared memory bytes.
    pub shared_bytes: u32,
    /// The buffer whose address each parameter takes, in order.
    pub buffers: Vec<BufferId>,
}

/// An entry under construction together with the program it belongs to and
/// the registers holding each of its buffers' base addresses.
pub struct Kc<'p> {
    /// The entry's builder.
    pub kb: Kb,
    /// The program.
    pub program: &'p Program,
    bases: Vec<(BufferId, R64)>,
}

impl<'p> Kc<'p> {
    /// Starts entry `name` with one parameter per distinct buffer `kernel`
    /// touches (its inputs in order, then its output), loaded up front.
    pub fn new(program: &'p Program, name: &str, threads: u32, kernel: &Kernel) -> Kc<'p> {
        let mut kb = Kb::new(name, threads);
        let mut bases: Vec<(BufferId, R64)> = Vec::new();
        for v in kernel.inputs().into_iter().chain([kernel.output()]) {
            if !bases.iter().any(|(b, _)| *b == v.buffer) {
                let r = kb.param_ptr();
                bases.push((v.buffer, r));
            }
        }
        Kc { kb, program, bases }
    }

    /// The register holding `buffer`'s base address.
    ///
    /// # Panics
    /// If the kernel does not touch `buffer` (an emitter bug).
    pub fn base(&self, buffer: BufferId) -> R64 {
        self.bases
            .iter()
            .find(|(b, _)| *b == buffer)
            .map(|(_, r)| *r)
            .expect("the kernel touches the buffer")
    }

    /// The element type of `buffer`.
    pub fn elem(&self, buffer: BufferId) -> ElemType {
        self.program.buffers[buffer].elem
    }

    /// The finished entry with its launch configuration.
    pub fn finish(self, grid: [u32; 3], block: [u32; 3]) -> Emitted {
        let shared_bytes = self.kb.shared_bytes() as u32;
        Emitted {
            text: self.kb.finish(),
            grid,
            block,
            shared_bytes,
            buffers: self.bases.iter().map(|(b, _)| *b).collect(),
        }
    }
}

/// Blocks of `block` threads for `n` elements, at most [`MAX_GRID_BLOCKS`]
/// (grid-stride kernels loop over the rest), at least 1.
pub fn blocks_for(n: usize, block: u32) -> u32 {
    (n.div_ceil(block as usize)).clamp(1, MAX_GRID_BLOCKS as usize) as u32
}

/// Emits kernel `index` of `program` as entry `name`.
pub fn emit(program: &Program, index: usize, name: &str) -> Result<Emitted, PtxError> {
    let kernel = &program.kernels[index];
    match kernel {
        Kernel::Elementwise { .. } => Ok(simple::elementwise(program, name, kernel)),
        Kernel::Copy { .. } => Ok(simple::copy(program, name, kernel)),
        Kernel::Gather { .. } => Ok(simple::gather(program, name, kernel)),
        Kernel::Gemm { .. } => gemm::emit(program, name, kernel, index),
        Kernel::Conv { .. } => conv::emit(program, name, kernel, index),
        Kernel::Softmax { .. } | Kernel::LayerNorm { .. } => norm::emit(program, name, kernel, index),
        Kernel::Reduce { .. } | Kernel::Pool { .. } => window::emit(program, name, kernel, index),
        Kernel::Attention { .. } => attention::emit(program, name, kernel, index),
    }
}
