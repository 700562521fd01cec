//! Element types and tensor types (shape + dtype).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// IEEE 754 single precision.
    F32,
    /// IEEE 754 double precision.
    F64,
    /// IEEE 754 half precision.
    F16,
    /// bfloat16.
    BF16,
    /// Signed 8-bit integer.
    I8,
    /// Signed 4-bit integer in `[-8, 7]`, stored two to a byte (see
    /// [`TensorType::size_bytes`]); quantized weights read by a `DequantizeLinear`.
    I4,
    /// Signed 32-bit integer.
    I32,
    /// Signed 64-bit integer.
    I64,
    /// Boolean, one byte per element.
    Bool,
}

impl DType {
    /// Every dtype, in declaration order.
    pub const ALL: [DType; 9] = [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::BF16,
        DType::I8,
        DType::I4,
        DType::I32,
        DType::I64,
        DType::Bool,
    ];

    /// Bytes per element, rounded up: `i4` packs two elements to a byte, so a
    /// tensor's size is [`TensorType::size_bytes`], not `numel · size_bytes()`.
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::I8 | DType::I4 | DType::Bool => 1,
        }
    }

    /// Bytes of `numel` elements as stored (`i4`: ⌈numel / 2⌉), saturating.
    pub fn bytes_of(self, numel: usize) -> u64 {
        match self {
            DType::I4 => (numel as u64).div_ceil(2),
            d => (numel as u64).saturating_mul(d.size_bytes() as u64),
        }
    }

    /// True for the quantized integer types a `DequantizeLinear` reads (`i8`, `i4`).
    pub fn is_quantized(self) -> bool {
        matches!(self, DType::I8 | DType::I4)
    }

    /// True for floating-point types.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
    }

    /// True for the 2-byte floats (`f16`, `bf16`): every value widens to f32 exactly.
    pub fn is_reduced_float(self) -> bool {
        matches!(self, DType::F16 | DType::BF16)
    }

    /// True for the integer index types accepted by `Gather`.
    pub fn is_index(self) -> bool {
        matches!(self, DType::I32 | DType::I64)
    }

    /// The lowercase name used in graph.json (`f32`, `bf16`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I8 => "i8",
            DType::I4 => "i4",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::Bool => "bool",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        DType::ALL.into_iter().find(|d| d.name() == s).ok_or(())
    }
}

/// Static type of a tensor value: a fully known shape and an element type.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TensorType {
    /// Dimensions, outermost first. Empty for a scalar.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
}

impl TensorType {
    /// A tensor type from a shape and dtype.
    pub fn new(shape: Vec<usize>, dtype: DType) -> Self {
        TensorType { shape, dtype }
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements (product of dims; 1 for a scalar). Saturates on overflow;
    /// graphs are checked with [`checked_numel`] on load so this never saturates there.
    pub fn numel(&self) -> usize {
        self.shape.iter().fold(1usize, |a, &d| a.saturating_mul(d))
    }

    /// Size in bytes of the whole tensor as stored (saturating; `i4` at half a
    /// byte per element, rounded up).
    pub fn size_bytes(&self) -> u64 {
        self.dtype.bytes_of(self.numel())
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, ShapeDisplay(&self.shape))
    }
}

/// Product of dims, or `None` when the byte size for the given element size, or
/// the product of the non-zero dims (what array libraries index with), overflows
/// `isize`. An empty tensor with a dim of 2^63 − 1 is therefore rejected too.
pub fn checked_numel(shape: &[usize], elem_size: usize) -> Option<usize> {
    let mut nonzero: usize = 1;
    for &d in shape {
        nonzero = nonzero.checked_mul(d.max(1))?;
    }
    if nonzero.checked_mul(elem_size.max(1))? > isize::MAX as usize {
        return None;
    }
    Some(if shape.contains(&0) { 0 } else { nonzero })
}

/// Displays a shape as `[1, 3, 224, 224]`.
pub struct ShapeDisplay<'a>(pub &'a [usize]);

impl fmt::Display for ShapeDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}
