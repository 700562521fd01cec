//! eqopt's CPU backend kernels.
//!
//! Every kernel works on `f32` activations in plain slices with explicit shapes
//! (weights may also be `f16`/`bf16`, or int8/int4 from [`quant`], converted
//! inside the kernel). Kernels parallelise
//! with rayon's *current* thread pool: the executor sizes one pool (`--threads`)
//! and runs the program inside `pool.install`, so no kernel creates threads.
//!
//! SIMD code sits behind the [`simd`] module's small trait, with one
//! implementation per instruction set (AVX-512, AVX2+FMA, scalar) chosen at run
//! time by feature detection.
#![warn(missing_docs)]

pub mod attention;
pub mod conv;
pub mod elementwise;
pub mod error;
pub mod exec;
pub mod gemm;
pub mod layout;
mod phases;
pub mod pool;
pub mod probe;
pub mod quant;
pub mod reduce;
pub mod simd;
mod window;

pub use error::KernelError;
