//! The kernel-level program: buffers, strided views of them, and kernels in
//! execution order.
//!
//! Contracts every producer (the lowering) guarantees and every backend may rely on:
//! - kernels run in the order of [`Program::kernels`]; a kernel reads only buffers
//!   written by earlier kernels, inputs, or constants;
//! - every view stays inside its buffer (checked by [`Program::validate`]);
//! - a kernel's output view is dense and row-major ([`View::is_dense`]) and does
//!   not overlap any of its inputs, except [`Kernel::Copy`], whose destination may
//!   be any non-overlapping strided region (a part of a concatenation);
//! - activations are `f32`; only [`Kernel::Gather`] indices are `i64`;
//! - `f16`/`bf16` buffers are constants, read only as the `b` operand of a
//!   [`Kernel::Gemm`] or the weights `w` of a [`Kernel::Conv`] (converted to `f32`
//!   inside the kernel, so the weights stay stored at 2 bytes an element);
//! - a [`Kernel::Gemm`] with [`GemmCompute::Bf16`] reads a `bf16` constant `b`;
//! - quantized buffers ([`ElemType::I8`], [`ElemType::I4`]) are constants holding
//!   a whole `k × n` matrix with its scales ([`ConstData::Int8`],
//!   [`ConstData::Int4`]), read only as the `b` operand of an `f32`
//!   [`Kernel::Gemm`] through a view of the whole matrix, row-major (batch dims
//!   broadcast, stride 0); the kernel dequantizes as it reads.

use std::fmt;

/// Index of a buffer in [`Program::buffers`].
pub type BufferId = usize;

/// Element type of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ElemType {
    /// 32-bit float.
    F32,
    /// 64-bit signed integer (gather indices).
    I64,
    /// IEEE 754 half precision (constant GEMM and convolution weights).
    F16,
    /// bfloat16 (constant GEMM and convolution weights).
    BF16,
    /// int8 with one `f32` scale per column (constant GEMM weights, [`ConstData::Int8`]).
    I8,
    /// int4 with one `f32` scale per group of rows and column (constant GEMM
    /// weights, [`ConstData::Int4`]); two elements to a byte.
    I4,
}

impl ElemType {
    /// Bytes per element, rounded up (an [`ElemType::I4`] element is half a
    /// byte; [`Buffer::bytes`] is exact, scales included).
    pub fn size(self) -> usize {
        match self {
            ElemType::F32 => 4,
            ElemType::I64 => 8,
            ElemType::F16 | ElemType::BF16 => 2,
            ElemType::I8 | ElemType::I4 => 1,
        }
    }

    /// True for the quantized formats ([`ElemType::I8`], [`ElemType::I4`]).
    pub fn is_quantized(self) -> bool {
        matches!(self, ElemType::I8 | ElemType::I4)
    }

    /// True for the stored weight formats a kernel converts to `f32` as it reads
    /// them: the 2-byte floats and the quantized formats.
    pub fn is_low_precision(self) -> bool {
        matches!(self, ElemType::F16 | ElemType::BF16 | ElemType::I8 | ElemType::I4)
    }
}

/// Where a buffer's memory comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum BufferKind {
    /// A graph input, supplied by the caller.
    Input,
    /// A graph output, returned to the caller.
    Output,
    /// A constant, with its data.
    Constant(ConstData),
}

/// The data of a constant buffer.
#[derive(Clone, Debug, PartialEq)]
pub enum ConstData {
    /// `f32` values.
    F32(std::sync::Arc<Vec<f32>>),
    /// `i64` values.
    I64(std::sync::Arc<Vec<i64>>),
    /// IEEE half-precision values.
    F16(std::sync::Arc<Vec<half::f16>>),
    /// bfloat16 values.
    BF16(std::sync::Arc<Vec<half::bf16>>),
    /// A `k × n` matrix as int8, `B̂[p, j] = data[p·n + j] · scales[j]` (the
    /// layout of `eqopt_cpu::quant::QuantInt8`).
    Int8 {
        /// `k·n` values, row-major.
        data: std::sync::Arc<Vec<i8>>,
        /// `n` column scales.
        scales: std::sync::Arc<Vec<f32>>,
        /// Rows (the reduction dimension).
        k: usize,
        /// Columns.
        n: usize,
    },
    /// A `k × n` matrix as int4 with one scale per `group` rows and column (the
    /// layout of `eqopt_cpu::quant::QuantInt4`: `k` rows of `⌈n/2⌉` bytes, even
    /// columns in the low nibble, stored as `q + 8`; scales `⌈k/group⌉ × n`).
    Int4 {
        /// `k·⌈n/2⌉` packed bytes.
        data: std::sync::Arc<Vec<u8>>,
        /// `⌈k/group⌉·n` scales, row-major.
        scales: std::sync::Arc<Vec<f32>>,
        /// Rows (the reduction dimension).
        k: usize,
        /// Columns.
        n: usize,
        /// Rows per scale group (at least 1).
        group: usize,
    },
}

impl ConstData {
    /// The element type of the data.
    pub fn elem(&self) -> ElemType {
        match self {
            ConstData::F32(_) => ElemType::F32,
            ConstData::I64(_) => ElemType::I64,
            ConstData::F16(_) => ElemType::F16,
            ConstData::BF16(_) => ElemType::BF16,
            ConstData::Int8 { .. } => ElemType::I8,
            ConstData::Int4 { .. } => ElemType::I4,
        }
    }

    /// Number of elements (`k·n` for a quantized matrix).
    pub fn len(&self) -> usize {
        match self {
            ConstData::F32(v) => v.len(),
            ConstData::I64(v) => v.len(),
            ConstData::F16(v) => v.len(),
            ConstData::BF16(v) => v.len(),
            ConstData::Int8 { k, n, .. } | ConstData::Int4 { k, n, .. } => k.saturating_mul(*n),
        }
    }

    /// Bytes as stored (a quantized matrix: its values and its scales).
    pub fn bytes(&self) -> usize {
        match self {
            ConstData::Int8 { data, scales, .. } => data.len() + 4 * scales.len(),
            ConstData::Int4 { data, scales, .. } => data.len() + 4 * scales.len(),
            d => d.len().saturating_mul(d.elem().size()),
        }
    }

    /// For a quantized matrix, why its parts disagree with its dimensions
    /// (`None` when they agree, and for the other variants).
    pub fn quant_mismatch(&self) -> Option<String> {
        let (data, scales, want_data, want_scales) = match self {
            ConstData::Int8 { data, scales, k, n } => (data.len(), scales.len(), k.checked_mul(*n), Some(*n)),
            ConstData::Int4 { data, scales, k, n, group } => {
                if *group == 0 {
                    return Some("int4 group size is 0".into());
                }
                (
                    data.len(),
                    scales.len(),
                    k.checked_mul(n.div_ceil(2)),
                    k.div_ceil(*group).checked_mul(*n),
                )
            }
            _ => return None,
        };
        match (want_data, want_scales) {
            (Some(d), Some(s)) if d == data && s == scales => None,
            (Some(d), Some(s)) => Some(format!("{data} values and {scales} scales, its dimensions need {d} and {s}")),
            _ => Some("its dimensions overflow".into()),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A buffer: a named, flat array of elements. Buffers without a [`BufferKind`]
/// are intermediates, placed in the arena by the memory planner.
#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    /// The graph value it holds (for reading the program).
    pub name: String,
    /// Element type.
    pub elem: ElemType,
    /// Number of elements.
    pub len: usize,
    /// `None` for an intermediate.
    pub kind: Option<BufferKind>,
}

impl Buffer {
    /// Size in bytes (a constant: as stored, scales of a quantized matrix included).
    pub fn bytes(&self) -> usize {
        match &self.kind {
            Some(BufferKind::Constant(d)) => d.bytes(),
            _ => self.len.saturating_mul(self.elem.size()),
        }
    }
}

/// A strided view of a buffer: element `c` (a coordinate per dim) is at
/// `offset + Σ c[i]·strides[i]`. Strides may be 0 (broadcast).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// The buffer viewed.
    pub buffer: BufferId,
    /// Element offset of coordinate 0.
    pub offset: usize,
    /// Shape.
    pub shape: Vec<usize>,
    /// Element stride per dim.
    pub strides: Vec<isize>,
}

/// Row-major strides of `shape`.
pub fn dense_strides(shape: &[usize]) -> Vec<isize> {
    let mut s = vec![0isize; shape.len()];
    let mut acc = 1isize;
    for i in (0..shape.len()).rev() {
        s[i] = acc;
        acc = acc.saturating_mul(shape[i] as isize);
    }
    s
}

impl View {
    /// The whole of `buffer` as a dense row-major `shape`.
    pub fn dense(buffer: BufferId, shape: &[usize]) -> View {
        View {
            buffer,
            offset: 0,
            shape: shape.to_vec(),
            strides: dense_strides(shape),
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the view is row-major and contiguous (strides of size-1 dims ignored).
    pub fn is_dense(&self) -> bool {
        let want = dense_strides(&self.shape);
        self.shape
            .iter()
            .zip(&self.strides)
            .zip(&want)
            .all(|((&d, &s), &w)| d <= 1 || s == w)
    }

    /// The smallest and largest element offsets the view reaches (`None` when empty).
    pub fn extent(&self) -> Option<(isize, isize)> {
        if self.shape.contains(&0) {
            return None;
        }
        let (mut lo, mut hi) = (self.offset as isize, self.offset as isize);
        for (&d, &s) in self.shape.iter().zip(&self.strides) {
            let span = s.saturating_mul(d as isize - 1);
            if span < 0 {
                lo = lo.saturating_add(span);
            } else {
                hi = hi.saturating_add(span);
            }
        }
        Some((lo, hi))
    }
}

/// A one-operand elementwise operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `max(x, 0)`; NaN stays NaN.
    Relu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// Exact GELU, `0.5 · x · (1 + erf(x / √2))`.
    Gelu,
    /// `e^x`.
    Exp,
    /// Natural logarithm.
    Log,
    /// Square root.
    Sqrt,
    /// `-x`.
    Neg,
    /// `|x|`.
    Abs,
    /// The error function.
    Erf,
    /// `1 / x`.
    Recip,
    /// `x`.
    Identity,
    /// `x` rounded to the nearest bfloat16 (ties to even; NaN stays NaN), kept
    /// in `f32`: the value a bf16 cast and back gives.
    RoundBf16,
}

/// A two-operand elementwise operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b`.
    Div,
    /// `a^b` as [`f32::powf`], per lane. A constant exponent of `1`, `2`, `3`, `0.5`,
    /// `-0.5` or `-1` is rewritten to `a`, `a·a`, `a·a·a`, `sqrt(a)`, `1/sqrt(a)` or
    /// `1/a` (which differ from `powf` only for NaN, infinite and zero `a`: e.g.
    /// `powf(-inf, 0.5) = inf` but `sqrt(-inf) = NaN`).
    Pow,
    /// `a.max(b)` ([`f32::max`]: a NaN operand yields the other).
    Max,
    /// `a.min(b)` ([`f32::min`]).
    Min,
}

/// One SSA instruction of an [`Expr`] (and of the CPU backend's compiled programs).
/// Instruction `i` defines value `i`; operands name earlier values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Instr {
    /// Operand `k` of the kernel (for an epilogue, operand 0 is the accumulator).
    Input(usize),
    /// A constant.
    Const(f32),
    /// A unary operation on a value.
    Unary(UnaryOp, usize),
    /// A binary operation on two values.
    Binary(BinaryOp, usize, usize),
}

/// An elementwise expression in SSA form; the last instruction is the result.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// Instructions; operands refer to earlier instructions only.
    pub instrs: Vec<Instr>,
    /// Number of operands it reads.
    pub num_inputs: usize,
}

/// An epilogue: an [`Expr`] applied to each element of a GEMM or convolution
/// accumulator (operand 0) and the `extras` views (operands 1..), which broadcast
/// to the output's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Epilogue {
    /// The expression.
    pub expr: Expr,
    /// Extra operands, with the output's shape (strides may be 0).
    pub extras: Vec<View>,
}

/// Convolution geometry (2-D).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Stride along H and W.
    pub strides: [usize; 2],
    /// Pads: top, left, bottom, right.
    pub pads: [usize; 4],
    /// Dilation along H and W.
    pub dilations: [usize; 2],
    /// Groups.
    pub group: usize,
    /// Channels last (NHWC activations, HWIO weights) instead of NCHW/OIHW.
    pub nhwc: bool,
}

/// Pooling reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// Maximum.
    Max,
    /// Average, excluding padding from the divisor.
    AvgExcludePad,
    /// Average, counting padding.
    AvgIncludePad,
}

/// Reduction along axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceKind {
    /// Sum.
    Sum,
    /// Mean.
    Mean,
    /// Maximum.
    Max,
}

/// The arithmetic of a [`Kernel::Gemm`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GemmCompute {
    /// Products and sums in `f32` (a reduced-precision `b` is widened exactly).
    #[default]
    F32,
    /// `a` rounded to bfloat16 (ties to even) and multiplied by a `bf16` `b`,
    /// products summed in `f32`: the arithmetic of AVX-512 BF16's `vdpbf16ps`
    /// and of tensor cores. Approximate: only a graph that asks for it (an
    /// activation rounded to bf16 feeding a bf16 weight) is lowered to it.
    Bf16,
}

/// A kernel: reads its input views, writes its output view.
#[derive(Clone, Debug, PartialEq)]
pub enum Kernel {
    /// `out = a · b` over the last two dims, batch dims broadcast; then the epilogue.
    Gemm {
        /// `[.., M, K]`.
        a: View,
        /// `[.., K, N]`.
        b: View,
        /// `[.., M, N]`, dense.
        out: View,
        /// Optional epilogue.
        epilogue: Option<Epilogue>,
        /// The arithmetic.
        compute: GemmCompute,
    },
    /// 2-D convolution, optional bias `[O]`, then the epilogue.
    Conv {
        /// Input activations.
        x: View,
        /// Weights.
        w: View,
        /// Optional bias.
        bias: Option<View>,
        /// Output, dense.
        out: View,
        /// Geometry.
        geometry: ConvGeometry,
        /// Optional epilogue.
        epilogue: Option<Epilogue>,
    },
    /// An elementwise expression of the inputs (broadcast to the output's shape).
    Elementwise {
        /// Expression.
        expr: Expr,
        /// Operands, with the output's shape (strides may be 0).
        inputs: Vec<View>,
        /// Output, dense.
        out: View,
    },
    /// Windowed pooling of a 4-D tensor.
    Pool {
        /// Reduction.
        kind: PoolKind,
        /// Window `[kh, kw]`.
        kernel: [usize; 2],
        /// Strides.
        strides: [usize; 2],
        /// Pads: top, left, bottom, right.
        pads: [usize; 4],
        /// Channels last.
        nhwc: bool,
        /// Input.
        x: View,
        /// Output, dense.
        out: View,
    },
    /// Softmax along the last axis.
    Softmax {
        /// Input.
        x: View,
        /// Output, dense.
        out: View,
    },
    /// Layer normalization over the trailing dims from `axis`, then `·scale + bias`.
    LayerNorm {
        /// Input.
        x: View,
        /// Scale, broadcast over the normalized dims.
        scale: View,
        /// Bias, broadcast over the normalized dims.
        bias: View,
        /// First normalized axis.
        axis: usize,
        /// Epsilon.
        epsilon: f32,
        /// Output, dense.
        out: View,
    },
    /// Reduction over `axes` (the output keeps them as size 1).
    Reduce {
        /// Reduction.
        kind: ReduceKind,
        /// Axes reduced, increasing.
        axes: Vec<usize>,
        /// Input.
        x: View,
        /// Output, dense, with the reduced axes of size 1.
        out: View,
    },
    /// Fused attention `softmax(q·kt ∘ s + mask) · v` per batch index, with `kt`
    /// given as `[.., D, T]` (a BSHD key view transposed by strides).
    Attention {
        /// Queries `[.., S, D]`.
        q: View,
        /// Keys, transposed: `[.., D, T]`.
        kt: View,
        /// Values `[.., T, E]`.
        v: View,
        /// Output `[.., S, E]` (dense, or the BSHD output's strided view).
        out: View,
        /// Optional additive mask broadcast to the scores `[.., S, T]`.
        mask: Option<View>,
        /// The one-element scale.
        scale: View,
        /// Divide by the scale instead of multiplying.
        divide: bool,
    },
    /// `out = data` gathered along `axis` at `indices` (i64, negative from the end).
    Gather {
        /// Data.
        data: View,
        /// Indices.
        indices: View,
        /// Axis.
        axis: usize,
        /// Output, dense.
        out: View,
    },
    /// `dst = src`, element by element in row-major order of the shape (a
    /// transpose, a materialized slice, one part of a concatenation).
    Copy {
        /// Source.
        src: View,
        /// Destination (same shape).
        dst: View,
    },
}

impl Kernel {
    /// A short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Kernel::Gemm { .. } => "gemm",
            Kernel::Conv { .. } => "conv",
            Kernel::Elementwise { .. } => "elementwise",
            Kernel::Pool { .. } => "pool",
            Kernel::Softmax { .. } => "softmax",
            Kernel::LayerNorm { .. } => "layernorm",
            Kernel::Reduce { .. } => "reduce",
            Kernel::Attention { .. } => "attention",
            Kernel::Gather { .. } => "gather",
            Kernel::Copy { .. } => "copy",
        }
    }

    /// The views it reads.
    pub fn inputs(&self) -> Vec<&View> {
        let mut v: Vec<&View> = Vec::new();
        match self {
            Kernel::Gemm { a, b, epilogue, .. } => {
                v.extend([a, b]);
                v.extend(epilogue.iter().flat_map(|e| e.extras.iter()));
            }
            Kernel::Conv { x, w, bias, epilogue, .. } => {
                v.extend([x, w]);
                v.extend(bias.iter());
                v.extend(epilogue.iter().flat_map(|e| e.extras.iter()));
            }
            Kernel::Elementwise { inputs, .. } => v.extend(inputs.iter()),
            Kernel::Pool { x, .. } | Kernel::Softmax { x, .. } | Kernel::Reduce { x, .. } => v.push(x),
            Kernel::LayerNorm { x, scale, bias, .. } => v.extend([x, scale, bias]),
            Kernel::Attention {
                q, kt, v: vv, mask, scale, ..
            } => {
                v.extend([q, kt, vv, scale]);
                v.extend(mask.iter());
            }
            Kernel::Gather { data, indices, .. } => v.extend([data, indices]),
            Kernel::Copy { src, .. } => v.push(src),
        }
        v
    }

    /// The view it writes.
    pub fn output(&self) -> &View {
        match self {
            Kernel::Gemm { out, .. }
            | Kernel::Conv { out, .. }
            | Kernel::Elementwise { out, .. }
            | Kernel::Pool { out, .. }
            | Kernel::Softmax { out, .. }
            | Kernel::LayerNorm { out, .. }
            | Kernel::Reduce { out, .. }
            | Kernel::Attention { out, .. }
            | Kernel::Gather { out, .. } => out,
            Kernel::Copy { dst, .. } => dst,
        }
    }
}

/// A program: buffers and the kernels over them, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// Name (the graph's).
    pub name: String,
    /// Every buffer.
    pub buffers: Vec<Buffer>,
    /// Kernels in execution order.
    pub kernels: Vec<Kernel>,
    /// Graph inputs, in the graph's order, with their shapes.
    pub inputs: Vec<(BufferId, Vec<usize>)>,
    /// Graph outputs, in the graph's order, with their shapes.
    pub outputs: Vec<(BufferId, Vec<usize>)>,
}

impl fmt::Display for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.buffer)?;
        if self.offset != 0 {
            write!(f, "+{}", self.offset)?;
        }
        write!(f, "{:?}", self.shape)?;
        if !self.is_dense() {
            write!(f, " strides {:?}", self.strides)?;
        }
        Ok(())
    }
}
