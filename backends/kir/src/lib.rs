//! eqopt's kernel-level program: what a backend executes.
//!
//! A [`Program`] is a list of kernels in execution order over numbered
//! buffers; operands are strided views of buffers, so reshapes, unit-step slices
//! and transposes a kernel can read through strides cost no copy. The static
//! memory planner ([`plan`]) places every intermediate buffer in one arena from
//! the buffers' lifetimes over that order. Nothing here knows of egg or of the
//! graph IR: the root crate lowers its extracted graphs to this form.
#![warn(missing_docs)]

pub mod plan;
pub mod program;
mod text;
mod validate;
pub mod work;

pub use program::*;
pub use validate::ProgramError;
pub use work::KernelWork;
