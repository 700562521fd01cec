//! The crate's error type.

/// Why a kernel refused its arguments. Kernels check the lengths of the slices
/// they are given against the shapes they are told; a mismatch is a bug in the
/// caller (the lowering), reported rather than panicking.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// A buffer is shorter or longer than its shape requires.
    #[error("{kernel}: {operand} holds {found} elements, its shape needs {expected}")]
    BufferLength {
        /// The kernel that checked.
        kernel: &'static str,
        /// Which operand.
        operand: &'static str,
        /// Elements required by the shape.
        expected: usize,
        /// Elements in the slice.
        found: usize,
    },
    /// Shapes that do not fit together (say, a GEMM's inner dims).
    #[error("{kernel}: {what}")]
    Shape {
        /// The kernel that checked.
        kernel: &'static str,
        /// What did not fit, with the numbers.
        what: String,
    },
}
