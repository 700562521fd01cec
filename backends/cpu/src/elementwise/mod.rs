//! Fused elementwise kernels: a small SSA program ([`EwProgram`]) evaluated at
//! SIMD width over tiles of the output.
//!
//! # Execution
//!
//! The output's dimensions are first simplified (size-1 dimensions dropped,
//! adjacent dimensions merged where every input's strides allow), then the output
//! is walked row by row along the innermost remaining dimension. Within a row each
//! input is *contiguous* (inner stride 1, read in place), *broadcast* (stride 0, one
//! scalar for the row) or *strided* (gathered into a small buffer). The program runs
//! over tiles of up to 512 elements: each instruction is one SIMD loop over the tile,
//! writing a tile-sized buffer (buffers are reused once a value is dead, and the last
//! instruction writes the output directly). Values whose operands are all scalars for
//! the row (constants, broadcast inputs) are computed once, as scalars.
//!
//! Outputs above 32 Ki elements are split into contiguous chunks run in parallel on
//! rayon's current pool.
//!
//! Rows are the unit of work, so an output whose innermost (merged) dimension is
//! short — say `[N, 3] + [3]`, which cannot merge — runs at scalar-like speed.

mod exec;
mod program;
mod view;

use rayon::prelude::*;

pub use program::{BinaryOp, EwProgram, Instr, UnaryOp};
pub use view::EwInput;
pub(crate) use view::{check_view, row_major_strides};

use crate::KernelError;
use crate::simd::Isa;
use exec::Chunk;
use view::Layout;

const KERNEL: &str = "elementwise";

/// Outputs with more elements than this run in parallel.
const PAR_MIN: usize = 32 * 1024;
/// Elements per parallel task.
const PAR_CHUNK: usize = 16 * 1024;

/// Evaluates `prog` into `out` (dense, row-major, shape `out_shape`) with the best
/// ISA of this CPU. See [`eval_with`].
pub fn eval(prog: &EwProgram, inputs: &[EwInput<'_>], out: &mut [f32], out_shape: &[usize]) -> Result<(), KernelError> {
    eval_with(Isa::detect(), prog, inputs, out, out_shape)
}

/// Evaluates `prog` into `out` with the given ISA (which falls back as
/// [`Isa::dispatch`] does).
///
/// `out[i]`, for the row-major flat index `i` of output coordinates `c`, becomes the
/// program's value with input `k` read at `inputs[k]`'s view of `c`.
///
/// Errors, checked before anything is written:
/// - [`KernelError::Shape`]: `inputs.len() != prog.num_inputs()`, an input's
///   `strides.len() != out_shape.len()`, or the element count overflows `usize`;
/// - [`KernelError::BufferLength`]: `out.len()` is not the product of `out_shape`;
/// - [`KernelError::ViewOutOfBounds`]: an input's view reaches outside its `data`.
///
/// An empty output (a zero dimension) checks no input bounds and writes nothing.
pub fn eval_with(isa: Isa, prog: &EwProgram, inputs: &[EwInput<'_>], out: &mut [f32], out_shape: &[usize]) -> Result<(), KernelError> {
    if inputs.len() != prog.num_inputs() {
        return Err(KernelError::Shape {
            kernel: KERNEL,
            what: format!("the program takes {} inputs, {} given", prog.num_inputs(), inputs.len()),
        });
    }
    for (k, inp) in inputs.iter().enumerate() {
        if inp.strides.len() != out_shape.len() {
            return Err(KernelError::Shape {
                kernel: KERNEL,
                what: format!(
                    "input {k} has {} strides, the output has {} dimensions",
                    inp.strides.len(),
                    out_shape.len()
                ),
            });
        }
    }
    let numel = out_shape
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .ok_or_else(|| KernelError::Shape {
            kernel: KERNEL,
            what: format!("output shape {out_shape:?} overflows usize"),
        })?;
    if out.len() != numel {
        return Err(KernelError::BufferLength {
            kernel: KERNEL,
            operand: "out",
            expected: numel,
            found: out.len(),
        });
    }
    if numel == 0 {
        return Ok(());
    }
    for (k, inp) in inputs.iter().enumerate() {
        check_view(KERNEL, "input", k, inp.data.len(), inp.offset, out_shape, &inp.strides)?;
    }
    let layout = Layout::new(out_shape, inputs);
    let plan = &prog.plan;
    if numel <= PAR_MIN {
        isa.dispatch(Chunk {
            plan,
            layout: &layout,
            inputs,
            out,
            start: 0,
        });
    } else {
        out.par_chunks_mut(PAR_CHUNK).enumerate().for_each(|(i, out)| {
            isa.dispatch(Chunk {
                plan,
                layout: &layout,
                inputs,
                out,
                start: i * PAR_CHUNK,
            });
        });
    }
    Ok(())
}
