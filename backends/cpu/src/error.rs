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
    /// An index operand (say, of a gather) points outside its axis.
    #[error("{kernel}: index {index} at position {position} is out of range for an axis of {bound} elements")]
    IndexOutOfRange {
        /// The kernel that checked.
        kernel: &'static str,
        /// The offending index value.
        index: i64,
        /// Where it sits in the index operand (flat position).
        position: usize,
        /// Size of the indexed axis (valid: `-bound..bound`).
        bound: usize,
    },
    /// A strided view reaches element offsets outside its buffer.
    #[error("{kernel}: {operand} #{index} reaches element offsets {min}..={max}, its buffer holds {len}")]
    ViewOutOfBounds {
        /// The kernel that checked.
        kernel: &'static str,
        /// Which operand (for indexed operands, the kind; see `index`).
        operand: &'static str,
        /// The operand's index among operands of its kind (0 if unique).
        index: usize,
        /// Smallest offset reached.
        min: i64,
        /// Largest offset reached.
        max: i64,
        /// Elements in the buffer.
        len: usize,
    },
    /// A value is NaN or infinite where the kernel needs a finite one (say, a
    /// weight given to a quantizer).
    #[error("{kernel}: {operand} element {position} is not finite")]
    NonFinite {
        /// The kernel that checked.
        kernel: &'static str,
        /// Which operand.
        operand: &'static str,
        /// Flat position of the first non-finite element.
        position: usize,
    },
    /// An elementwise program is malformed.
    #[error("{kernel}: instruction {instr}: {reason}")]
    InvalidProgram {
        /// The kernel that checked.
        kernel: &'static str,
        /// Index of the offending instruction.
        instr: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl KernelError {
    /// [`KernelError::BufferLength`] for `operand` of `kernel` unless `found == expected`.
    pub(crate) fn check_len(kernel: &'static str, operand: &'static str, expected: usize, found: usize) -> Result<(), KernelError> {
        if expected == found {
            Ok(())
        } else {
            Err(KernelError::BufferLength {
                kernel,
                operand,
                expected,
                found,
            })
        }
    }
}
