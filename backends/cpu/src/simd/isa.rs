//! Run-time choice of instruction set.

use std::sync::OnceLock;

use super::{Scalar, Simd};

/// An instruction set the kernels have an implementation for.
///
/// The variants exist on every target; on a CPU (or architecture) without one,
/// [`Isa::dispatch`] runs the kernel with the best available ISA below it instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// AVX-512 F/BW/DQ/VL with AVX2 and FMA: 16 lanes.
    Avx512,
    /// AVX2 with FMA: 8 lanes.
    Avx2,
    /// Plain `f32` arithmetic: 1 lane. Always available.
    Scalar,
}

/// A kernel body generic over the vector ISA; see the [module docs](super).
///
/// Implementations should mark `run` `#[inline(always)]` so that it compiles inside
/// the ISA's target-feature context.
pub trait SimdKernel {
    /// What the kernel returns.
    type Output;
    /// Runs the kernel with the vector token `s`.
    fn run<S: Simd>(self, s: S) -> Self::Output;
}

static DETECTED: OnceLock<Isa> = OnceLock::new();

impl Isa {
    /// The best ISA this CPU supports (detected once, then cached), capped by the
    /// environment variable `EQOPT_ISA` (`avx512`, `avx2` or `scalar`) when set, so
    /// the AVX2 and scalar paths of a whole program can be run on an AVX-512 machine
    /// (an unknown value is ignored).
    pub fn detect() -> Isa {
        *DETECTED.get_or_init(|| {
            let cap = match std::env::var("EQOPT_ISA").as_deref() {
                Ok("scalar") => Isa::Scalar,
                Ok("avx2") => Isa::Avx2,
                _ => Isa::Avx512,
            };
            let allowed = Isa::ALL.iter().position(|&i| i == cap).unwrap_or(0);
            Isa::ALL[allowed..]
                .iter()
                .copied()
                .find(|isa| isa.is_supported())
                .unwrap_or(Isa::Scalar)
        })
    }

    /// Every ISA this CPU supports, best first (always ends with [`Isa::Scalar`]).
    pub fn available() -> Vec<Isa> {
        Isa::ALL.iter().copied().filter(|isa| isa.is_supported()).collect()
    }

    /// All variants, best first.
    pub const ALL: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Scalar];

    /// Whether this CPU supports the ISA (uncached feature test).
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => super::Avx512::new().is_some(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => super::Avx2::new().is_some(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Lanes per vector.
    pub fn lanes(self) -> usize {
        match self {
            Isa::Avx512 => 16,
            Isa::Avx2 => 8,
            Isa::Scalar => 1,
        }
    }

    /// Runs `kernel` with this ISA's vector token, inside a function compiled with
    /// the ISA's target features. An ISA the CPU lacks falls back to the next one
    /// down (ultimately [`Isa::Scalar`]).
    pub fn dispatch<K: SimdKernel>(self, kernel: K) -> K::Output {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => match super::Avx512::new() {
                // SAFETY: the token exists, so the CPU supports every feature
                // `run_avx512` is compiled with.
                Some(s) => unsafe { run_avx512(s, kernel) },
                None => Isa::Avx2.dispatch(kernel),
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => match super::Avx2::new() {
                // SAFETY: as above, for AVX2 + FMA.
                Some(s) => unsafe { run_avx2(s, kernel) },
                None => kernel.run(Scalar),
            },
            _ => kernel.run(Scalar),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
fn run_avx512<K: SimdKernel>(s: super::Avx512, kernel: K) -> K::Output {
    kernel.run(s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn run_avx2<K: SimdKernel>(s: super::Avx2, kernel: K) -> K::Output {
    kernel.run(s)
}
