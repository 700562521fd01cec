//! Built-in approximate rules: weights stored in a lower precision.
//!
//! `rule quant/weights-f16 approx = @weights-f16` (and `-bf16`) finds every
//! GEMM or convolution e-node (`matmul`, `fused_matmul`, `conv`, `fused_conv`)
//! whose weight input (its second tensor input) is an `f32` constant of at least
//! [`MIN_WEIGHT_ELEMENTS`] elements, and adds to the node's class
//!
//! ```text
//! (approx ERR (OP ... x (cast f32 (const W.f16)) ...))
//! ```
//!
//! (a weight read through a transpose, as an NHWC convolution's HWIO weights
//! are, keeps it: `(transpose P (cast f32 (const W.f16)))`),
//!
//! where `W.f16` is the constant rounded to the format (computed once per
//! constant and format) and `ERR = ‖W − Ŵ‖₂ / ‖W‖₂` its relative rounding error
//! (Frobenius norm). For a product `x·W` the relative output error is about
//! `ERR` for inputs `x` spread over many directions, so `ERR` is the node's
//! declared error; `eqopt rules check` verifies it on random instances.
//!
//! The backend keeps such weights at 2 bytes per element and converts them
//! inside the GEMM/convolution kernels (see `src/lower/consts.rs`).
//!
//! `@weights-int8`, `@weights-int4` and `@weights-int4-g64` quantize the weight
//! of a `matmul`/`fused_matmul` (a `[k, n]` f32 constant of at least
//! [`MIN_WEIGHT_ELEMENTS`] elements; convolutions are not quantized) with the CPU
//! backend's quantizers ([`crate::quant`]) and add
//!
//! ```text
//! (approx ERR (OP ... x (dequantize AXIS BLOCK (const W.int8) (const W.int8.scale)) ...))
//! ```
//!
//! int8: one scale per column (`AXIS 1`, `BLOCK 0`); int4: one scale per 32 (or
//! 64) rows and column (`AXIS 0`, `BLOCK 32`). `ERR` is again `‖W − Ŵ‖₂ / ‖W‖₂`,
//! computed once per constant and format. The backend keeps the quantized matrix
//! (1 or ½ byte per element plus the scales) and dequantizes it inside the GEMM
//! (see `src/lower/quant.rs`).

use super::builtins::{add_attr, const_name};
use crate::analysis::{Facts, TEGraph};
use crate::dtype::{DType, TensorType};
use crate::graph::tensor::Tensor;
use crate::lang::{Attr, TNode, TOp};
use crate::quant::QuantFormat;
use egg::{Id, Symbol};

/// Weights smaller than this many elements are left alone: the bytes they
/// would save do not pay for the accuracy they cost (biases, small kernels).
pub const MIN_WEIGHT_ELEMENTS: usize = 1024;

/// A storage format for constant weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WeightFormat {
    /// IEEE half precision (10-bit mantissa): relative error about 2.1e-4.
    F16,
    /// bfloat16 (7-bit mantissa, f32's range): relative error about 1.7e-3.
    Bf16,
    /// int8, one scale per output column (GEMMs only): about 1e-2 for Gaussian weights.
    Int8,
    /// int4, one scale per 32 rows and column (GEMMs only): about 0.1.
    Int4,
    /// int4, one scale per 64 rows and column (GEMMs only).
    Int4G64,
}

impl WeightFormat {
    /// Every format, in declaration order.
    pub const ALL: [WeightFormat; 5] = [
        WeightFormat::F16,
        WeightFormat::Bf16,
        WeightFormat::Int8,
        WeightFormat::Int4,
        WeightFormat::Int4G64,
    ];

    /// The name used in built-in rule names (`@weights-NAME`) and constant names.
    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::F16 => "f16",
            WeightFormat::Bf16 => "bf16",
            WeightFormat::Int8 => "int8",
            WeightFormat::Int4 => "int4",
            WeightFormat::Int4G64 => "int4-g64",
        }
    }

    /// The quantized format, for the integer formats.
    pub fn quant(self) -> Option<QuantFormat> {
        match self {
            WeightFormat::F16 | WeightFormat::Bf16 => None,
            WeightFormat::Int8 => Some(QuantFormat::Int8),
            WeightFormat::Int4 => Some(QuantFormat::Int4 { group: 32 }),
            WeightFormat::Int4G64 => Some(QuantFormat::Int4 { group: 64 }),
        }
    }

    /// The format of built-in rule `weights-NAME`.
    pub fn by_rule_name(rule: &str) -> Option<WeightFormat> {
        let fmt = rule.strip_prefix("weights-")?;
        WeightFormat::ALL.into_iter().find(|f| f.name() == fmt)
    }

    fn dtype(self) -> DType {
        match self {
            WeightFormat::Bf16 => DType::BF16,
            _ => DType::F16,
        }
    }
}

/// True for the operators whose second tensor input is a weight the kernels
/// read in reduced precision.
fn is_weighted(op: &TOp) -> bool {
    matches!(op, TOp::MatMul | TOp::FusedMatMul | TOp::Conv | TOp::FusedConv)
}

/// Where a weight comes from: a constant, possibly read through a transpose
/// (the HWIO weights of an NHWC convolution are `(transpose [2,3,1,0] (const W))`).
pub(super) struct WeightSource {
    /// The constant's name.
    pub(super) name: String,
    /// The transpose's permutation leaf, if any.
    perm: Option<Id>,
}

/// The weight source of `n` if the rule for `fmt` applies to it: an `f32`
/// class of at least [`MIN_WEIGHT_ELEMENTS`] elements holding `(const W)` or
/// `(transpose P (const W))`; for the quantized formats, only the `[k, n]`
/// `(const W)` of a GEMM.
pub(super) fn eligible_weight(egraph: &TEGraph, n: &TNode, fmt: WeightFormat) -> Option<WeightSource> {
    if !is_weighted(&n.op) {
        return None;
    }
    let w = *n.inputs().get(1)?;
    let ty = egraph[w].data.ty()?;
    if ty.dtype != DType::F32 || ty.numel() < MIN_WEIGHT_ELEMENTS {
        return None;
    }
    if fmt.quant().is_some() {
        let gemm = matches!(n.op, TOp::MatMul | TOp::FusedMatMul) && ty.rank() == 2;
        return gemm
            .then(|| const_name(egraph, w))
            .flatten()
            .map(|name| WeightSource { name, perm: None });
    }
    if let Some(name) = const_name(egraph, w) {
        return Some(WeightSource { name, perm: None });
    }
    egraph[w].nodes.iter().find_map(|t| {
        if t.op != TOp::Transpose {
            return None;
        }
        let (&perm, &x) = (t.children.first()?, t.children.get(1)?);
        Some(WeightSource {
            name: const_name(egraph, x)?,
            perm: Some(perm),
        })
    })
}

/// True if class `eclass` holds a node the rule for `fmt` applies to.
pub fn class_has_weights(egraph: &TEGraph, eclass: Id, fmt: WeightFormat) -> bool {
    egraph[eclass].nodes.iter().any(|n| eligible_weight(egraph, n, fmt).is_some())
}

/// The quantized constants (values, scales) for `name` in `q` and the relative
/// error of the dequantized weight, computed once per (constant, format) and
/// remembered in the analysis.
fn quantized_weight(egraph: &mut TEGraph, name: &str, q: QuantFormat) -> Option<(String, String, f64)> {
    let key = format!("weights-{}:{name}", q.name());
    let scales_key = format!("weights-{}-scales:{name}", q.name());
    let scales_base = format!("{name}.{}.scale", q.name());
    let analysis = &mut egraph.analysis;
    let values = analysis.memo_constant(&key, &format!("{name}.{}", q.name()), |a| {
        let w = a.constant_data(name)?;
        let quantized = crate::quant::quantize(&w, q)?;
        a.remember_value(&key, quantized.error);
        a.memo_constant(&scales_key, &scales_base, |_| Some(quantized.scales))?;
        Some(quantized.values)
    })?;
    let scales = analysis.memo_constant(&scales_key, &scales_base, |_| None)?;
    let err = analysis.remembered_value(&key)?;
    Some((values, scales, err))
}

/// `(dequantize AXIS BLOCK (const values) (const scales))` for `q`.
fn add_dequantize(egraph: &mut TEGraph, values: &str, scales: &str, q: QuantFormat) -> Id {
    let (axis, block) = q.dequantize_attrs();
    let mut konst = |name: &str| {
        let leaf = add_attr(egraph, Attr::Sym(Symbol::from(name)));
        egraph.add(TNode {
            op: TOp::Const,
            children: vec![leaf],
        })
    };
    let (v, s) = (konst(values), konst(scales));
    let axis = add_attr(egraph, Attr::Int(axis as i64));
    let block = add_attr(egraph, Attr::Int(block as i64));
    egraph.add(TNode {
        op: TOp::Dequantize,
        children: vec![axis, block, v, s],
    })
}

/// The reduced constant for `name` in `fmt` and its relative error, computed
/// once per (constant, format) and remembered in the analysis.
pub(super) fn reduced_weight(egraph: &mut TEGraph, name: &str, fmt: WeightFormat) -> Option<(String, f64)> {
    let key = format!("weights-{}:{name}", fmt.name());
    let analysis = &mut egraph.analysis;
    let reduced = analysis.memo_constant(&key, &format!("{name}.{}", fmt.name()), |a| {
        let w = a.constant_data(name)?;
        let values = w.to_f64();
        let t = Tensor::from_f64(TensorType::new(w.ty.shape.clone(), fmt.dtype()), &values);
        let back = t.to_f64();
        let (diff, norm) = values
            .iter()
            .zip(&back)
            .fold((0.0f64, 0.0f64), |(d, n), (x, y)| (d + (x - y) * (x - y), n + x * x));
        let err = if norm > 0.0 { (diff / norm).sqrt() } else { 0.0 };
        a.remember_value(&key, err);
        Some(t)
    })?;
    let err = analysis.remembered_value(&key)?;
    Some((reduced, err))
}

/// Adds the reduced-weight variant of every eligible node of `eclass`; returns
/// `(eclass, new)` pairs to unify.
pub fn reduce_weights(egraph: &mut TEGraph, eclass: Id, fmt: WeightFormat) -> Vec<(Id, Id)> {
    let nodes: Vec<TNode> = egraph[eclass].nodes.clone();
    let mut out = Vec::new();
    for n in nodes {
        let Some(source) = eligible_weight(egraph, &n, fmt) else { continue };
        if let Some(q) = fmt.quant() {
            let Some((values, scales, err)) = quantized_weight(egraph, &source.name, q) else {
                continue;
            };
            let weight = add_dequantize(egraph, &values, &scales, q);
            let mut children = n.children.clone();
            children[n.op.attr_count() + 1] = weight;
            out.extend(add_approx(egraph, &n.op, children, err).map(|a| (eclass, a)));
            continue;
        }
        let Some((reduced, err)) = reduced_weight(egraph, &source.name, fmt) else {
            continue;
        };
        let widened = widened_weight(egraph, &source, &reduced);
        let mut children = n.children.clone();
        children[n.op.attr_count() + 1] = widened;
        out.extend(add_approx(egraph, &n.op, children, err).map(|a| (eclass, a)));
    }
    out
}

/// Adds the weight `(cast f32 (const REDUCED))` read the way `source` is
/// (through its transpose, if any) and returns its class.
pub(super) fn widened_weight(egraph: &mut TEGraph, source: &WeightSource, reduced: &str) -> Id {
    let leaf = add_attr(egraph, Attr::Sym(Symbol::from(reduced)));
    let konst = egraph.add(TNode {
        op: TOp::Const,
        children: vec![leaf],
    });
    let widened = cast(egraph, DType::F32, konst);
    match source.perm {
        Some(perm) => egraph.add(TNode {
            op: TOp::Transpose,
            children: vec![perm, widened],
        }),
        None => widened,
    }
}

/// Adds `(cast TO x)` and returns its class.
pub(super) fn cast(egraph: &mut TEGraph, to: DType, x: Id) -> Id {
    let to = add_attr(egraph, Attr::DType(to));
    egraph.add(TNode {
        op: TOp::Cast,
        children: vec![to, x],
    })
}

/// Adds `(approx err (op children...))` and returns it, or `None` when the
/// variant `(op children...)` is not a well-typed tensor (it is then left
/// unwrapped, never to be extracted).
pub(super) fn add_approx(egraph: &mut TEGraph, op: &TOp, children: Vec<Id>, err: f64) -> Option<Id> {
    let variant = egraph.add(TNode { op: op.clone(), children });
    if !matches!(egraph[variant].data, Facts::Tensor(_)) {
        return None;
    }
    let err_leaf = add_attr(egraph, Attr::float(err));
    Some(egraph.add(TNode {
        op: TOp::Approx,
        children: vec![err_leaf, variant],
    }))
}
