//! The errors of PTX emission.

/// Why a program cannot be emitted as PTX.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PtxError {
    /// A kernel this backend cannot emit.
    #[error("kernel {kernel} ({kind}): {reason}")]
    Unsupported {
        /// Index in the program's kernel order.
        kernel: usize,
        /// The kernel's kind ([`eqopt_kir::Kernel::name`]).
        kind: &'static str,
        /// What is missing.
        reason: String,
    },
    /// A buffer too large for the 32-bit element offsets the kernels use.
    #[error("buffer {buffer} (\"{name}\") has {len} elements; the PTX kernels index at most {max}")]
    TooLarge {
        /// The buffer's id.
        buffer: usize,
        /// Its name.
        name: String,
        /// Its element count.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The memory plan given does not cover the program.
    #[error("the memory plan has {found} offsets; the program has {expected} buffers")]
    PlanMismatch {
        /// Buffers in the program.
        expected: usize,
        /// Offsets given.
        found: usize,
    },
    /// An intermediate buffer without an arena offset.
    #[error("intermediate buffer {buffer} (\"{name}\") has no arena offset")]
    Unplaced {
        /// The buffer's id.
        buffer: usize,
        /// Its name.
        name: String,
    },
}
