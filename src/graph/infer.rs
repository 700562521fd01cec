//! Shape and dtype inference for every op of the op set.
//!
//! [`infer`] is the single source of truth for output types: graph loading, the
//! e-graph analysis and rule checking all call it.

use super::op::{AttentionLayout, ConvParams, Layout, Op, PoolParams};
use crate::dtype::{DType, ShapeDisplay, TensorType};
use crate::error::Error;

/// Why an op cannot be applied to the given input types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InferError {
    /// What the op requires.
    pub expected: String,
    /// What it was given.
    pub found: String,
}

fn fail<T>(expected: impl Into<String>, found: impl Into<String>) -> Result<T, InferError> {
    Err(InferError {
        expected: expected.into(),
        found: found.into(),
    })
}

fn list(tys: &[&TensorType]) -> String {
    tys.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
}

/// Infers the output type of `op` on inputs of types `inputs`, naming the node in errors.
pub fn infer_node(node: &str, op: &Op, inputs: &[&TensorType]) -> Result<TensorType, Error> {
    let (lo, hi) = op.arity();
    if inputs.len() < lo || inputs.len() > hi {
        return Err(Error::Arity {
            node: node.to_string(),
            op: op.name().to_string(),
            expected: arity_text(lo, hi),
            found: inputs.len(),
        });
    }
    infer(op, inputs).map_err(|e| Error::TypeMismatch {
        node: node.to_string(),
        op: op.name().to_string(),
        expected: e.expected,
        found: e.found,
    })
}

/// `2`, `2 to 3` or `at least 1`.
pub fn arity_text(lo: usize, hi: usize) -> String {
    if lo == hi {
        lo.to_string()
    } else if hi == usize::MAX {
        format!("at least {lo}")
    } else {
        format!("{lo} to {hi}")
    }
}

/// NumPy broadcasting of two shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
        let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(out)
}

fn same_dtype(inputs: &[&TensorType]) -> Result<DType, InferError> {
    let d = inputs[0].dtype;
    if inputs.iter().any(|t| t.dtype != d) {
        return fail("inputs of one dtype", list(inputs));
    }
    Ok(d)
}

fn float_input(t: &TensorType) -> Result<(), InferError> {
    if !t.dtype.is_float() {
        return fail("a floating-point input", t.to_string());
    }
    Ok(())
}

fn broadcast_all(inputs: &[&TensorType]) -> Result<Vec<usize>, InferError> {
    let mut shape: Vec<usize> = Vec::new();
    for t in inputs {
        shape = match broadcast(&shape, &t.shape) {
            Some(s) => s,
            None => return fail("shapes that broadcast together", list(inputs)),
        };
    }
    Ok(shape)
}

/// Output size of a strided window: `(n + pad - dilation·(k−1) − 1) / stride + 1`.
fn window_out(n: usize, k: usize, stride: usize, dil: usize, pad: usize) -> Option<usize> {
    let span = dil.checked_mul(k.checked_sub(1)?)?.checked_add(1)?;
    let padded = n.checked_add(pad)?;
    if padded < span || stride == 0 {
        return None;
    }
    Some((padded - span) / stride + 1)
}

/// `[n, c, h, w]` of a 4-D activation in `layout`.
fn nchw_dims(x: &TensorType, layout: Layout) -> [usize; 4] {
    let [h, w] = layout.spatial_axes();
    [x.shape[0], x.shape[layout.channel_axis()], x.shape[h], x.shape[w]]
}

/// The 4-D activation shape of `[n, c, h, w]` in `layout`.
fn in_layout(dims: [usize; 4], layout: Layout) -> Vec<usize> {
    let [n, c, h, w] = dims;
    match layout {
        Layout::Nchw => vec![n, c, h, w],
        Layout::Nhwc => vec![n, h, w, c],
    }
}

fn conv_type(p: &ConvParams, x: &TensorType, w: &TensorType) -> Result<TensorType, InferError> {
    if x.rank() != 4 || w.rank() != 4 {
        let expected = match p.layout {
            Layout::Nchw => "x of rank 4 (NCHW) and w of rank 4 (OIHW)",
            Layout::Nhwc => "x of rank 4 (NHWC) and w of rank 4 (HWIO)",
        };
        return fail(expected, list(&[x, w]));
    }
    let [n, c, h, wd] = nchw_dims(x, p.layout);
    let (o, ci, kh, kw) = match p.layout {
        Layout::Nchw => (w.shape[0], w.shape[1], w.shape[2], w.shape[3]),
        Layout::Nhwc => (w.shape[3], w.shape[2], w.shape[0], w.shape[1]),
    };
    if p.strides.contains(&0) || p.dilations.contains(&0) {
        return fail(
            "strides and dilations >= 1",
            format!("strides {:?} dilations {:?}", p.strides, p.dilations),
        );
    }
    if p.group == 0 || c % p.group != 0 || o % p.group != 0 || ci * p.group != c {
        let wdim = match p.layout {
            Layout::Nchw => "w.shape[1]",
            Layout::Nhwc => "w.shape[2]",
        };
        return fail(
            format!(
                "input channels = {wdim} · group ({}) and output channels divisible by group",
                p.group
            ),
            list(&[x, w]),
        );
    }
    let oh = window_out(h, kh, p.strides[0], p.dilations[0], p.pads[0] + p.pads[2]);
    let ow = window_out(wd, kw, p.strides[1], p.dilations[1], p.pads[1] + p.pads[3]);
    match (oh, ow) {
        (Some(oh), Some(ow)) if oh > 0 && ow > 0 => Ok(TensorType::new(in_layout([n, o, oh, ow], p.layout), x.dtype)),
        _ => fail("a kernel window that fits the padded input", list(&[x, w])),
    }
}

fn pool_type(p: &PoolParams, x: &TensorType) -> Result<TensorType, InferError> {
    if x.rank() != 4 {
        return fail(format!("x of rank 4 ({})", p.layout.name()), x.to_string());
    }
    if p.strides.contains(&0) || p.kernel.contains(&0) {
        return fail("kernel and strides >= 1", format!("kernel {:?} strides {:?}", p.kernel, p.strides));
    }
    if p.pads[0] >= p.kernel[0] || p.pads[2] >= p.kernel[0] || p.pads[1] >= p.kernel[1] || p.pads[3] >= p.kernel[1] {
        return fail("pads smaller than the kernel", format!("pads {:?} kernel {:?}", p.pads, p.kernel));
    }
    let [n, c, h, w] = nchw_dims(x, p.layout);
    let oh = window_out(h, p.kernel[0], p.strides[0], 1, p.pads[0] + p.pads[2]);
    let ow = window_out(w, p.kernel[1], p.strides[1], 1, p.pads[1] + p.pads[3]);
    match (oh, ow) {
        (Some(oh), Some(ow)) => Ok(TensorType::new(in_layout([n, c, oh, ow], p.layout), x.dtype)),
        _ => fail("a pooling window that fits the padded input", x.to_string()),
    }
}

fn matmul_shape(a: &TensorType, b: &TensorType) -> Result<Vec<usize>, InferError> {
    if a.rank() == 0 || b.rank() == 0 {
        return fail("matmul operands of rank >= 1", list(&[a, b]));
    }
    let a2: Vec<usize> = if a.rank() == 1 { vec![1, a.shape[0]] } else { a.shape.clone() };
    let b2: Vec<usize> = if b.rank() == 1 { vec![b.shape[0], 1] } else { b.shape.clone() };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != k2 {
        return fail(format!("a.shape[-1] == b.shape[-2] ({k} vs {k2})"), list(&[a, b]));
    }
    let Some(mut out) = broadcast(&a2[..a2.len() - 2], &b2[..b2.len() - 2]) else {
        return fail("batch dims that broadcast", list(&[a, b]));
    };
    if a.rank() > 1 {
        out.push(m);
    }
    if b.rank() > 1 {
        out.push(n);
    }
    Ok(out)
}

fn axis_in(axis: usize, t: &TensorType) -> Result<(), InferError> {
    if axis >= t.rank() {
        return fail(format!("axis {axis} < rank"), t.to_string());
    }
    Ok(())
}

/// `DequantizeLinear`: `x` quantized (`i8`/`i4`), `scale` a float of the shape
/// the axis and block size call for (see [`Op::Dequantize`]).
fn dequantize_type(x: &TensorType, scale: &TensorType, axis: usize, block: usize) -> Result<TensorType, InferError> {
    if !x.dtype.is_quantized() {
        return fail("x of dtype i8 or i4", x.to_string());
    }
    if !scale.dtype.is_float() {
        return fail("a float scale", scale.to_string());
    }
    let per_tensor = block == 0 && scale.numel() == 1 && scale.rank() <= 1;
    if !per_tensor {
        axis_in(axis, x)?;
        let want: Vec<usize> = if block == 0 {
            vec![x.shape[axis]]
        } else {
            let mut s = x.shape.clone();
            s[axis] = x.shape[axis].div_ceil(block);
            s
        };
        if scale.shape != want {
            let how = if block == 0 {
                format!("one per element of axis {axis}")
            } else {
                format!("one per block of {block} along axis {axis}")
            };
            return fail(
                format!("scale of shape {} ({how} of x {x})", ShapeDisplay(&want)),
                scale.to_string(),
            );
        }
    }
    Ok(TensorType::new(x.shape.clone(), scale.dtype))
}

/// Infers the output type of `op` applied to inputs of the given types.
/// The caller has checked the arity.
pub fn infer(op: &Op, inputs: &[&TensorType]) -> Result<TensorType, InferError> {
    let x = inputs[0];
    match op {
        Op::Unary(_) => {
            float_input(x)?;
            Ok(x.clone())
        }
        Op::Binary(_) => {
            let d = same_dtype(inputs)?;
            Ok(TensorType::new(broadcast_all(inputs)?, d))
        }
        Op::Cast { to } => Ok(TensorType::new(x.shape.clone(), *to)),
        Op::Dequantize { axis, block_size } => dequantize_type(x, inputs[1], *axis, *block_size),
        Op::MatMul => {
            let d = same_dtype(inputs)?;
            float_input(x)?;
            Ok(TensorType::new(matmul_shape(x, inputs[1])?, d))
        }
        Op::Conv(p) => {
            let d = same_dtype(inputs)?;
            float_input(x)?;
            let out = conv_type(p, x, inputs[1])?;
            if let Some(b) = inputs.get(2) {
                let channels = out.shape[p.layout.channel_axis()];
                if b.shape != [channels] {
                    return fail(format!("bias of shape [{channels}]"), b.to_string());
                }
            }
            Ok(TensorType::new(out.shape, d))
        }
        Op::Pool(_, p) => {
            float_input(x)?;
            pool_type(p, x)
        }
        Op::GlobalPool(_) => {
            float_input(x)?;
            if x.rank() != 4 {
                return fail("x of rank 4 (NCHW)", x.to_string());
            }
            Ok(TensorType::new(vec![x.shape[0], x.shape[1], 1, 1], x.dtype))
        }
        Op::BatchNorm { .. } => {
            same_dtype(inputs)?;
            float_input(x)?;
            if x.rank() < 2 {
                return fail("x of rank >= 2", x.to_string());
            }
            let c = x.shape[1];
            if inputs[1..].iter().any(|t| t.shape != [c]) {
                return fail(format!("scale, bias, mean and var of shape [{c}]"), list(inputs));
            }
            Ok(x.clone())
        }
        Op::Concat { axis } => {
            let d = same_dtype(inputs)?;
            axis_in(*axis, x)?;
            let mut shape = x.shape.clone();
            shape[*axis] = 0;
            for t in inputs {
                let agrees = t.rank() == x.rank() && (0..x.rank()).all(|i| i == *axis || t.shape[i] == x.shape[i]);
                if !agrees {
                    return fail(format!("inputs equal in every dim but axis {axis}"), list(inputs));
                }
                shape[*axis] += t.shape[*axis];
            }
            Ok(TensorType::new(shape, d))
        }
        Op::Flatten { axis } => {
            if *axis > x.rank() {
                return fail(format!("axis {axis} <= rank"), x.to_string());
            }
            let outer: usize = x.shape[..*axis].iter().product();
            let inner: usize = x.shape[*axis..].iter().product();
            Ok(TensorType::new(vec![outer, inner], x.dtype))
        }
        Op::Reshape { shape } => {
            if crate::dtype::checked_numel(shape, 1) != Some(x.numel()) {
                return fail(
                    format!("a shape with {} elements", x.numel()),
                    format!("{} for input {x}", ShapeDisplay(shape)),
                );
            }
            Ok(TensorType::new(shape.clone(), x.dtype))
        }
        Op::Transpose { perm } => {
            let mut seen = vec![false; x.rank()];
            let ok = perm.len() == x.rank() && perm.iter().all(|&p| p < x.rank() && !std::mem::replace(&mut seen[p], true));
            if !ok {
                return fail(format!("a permutation of 0..{}", x.rank()), format!("perm {perm:?}"));
            }
            Ok(TensorType::new(perm.iter().map(|&p| x.shape[p]).collect(), x.dtype))
        }
        Op::Slice { axes, starts, ends, steps } => {
            let mut shape = x.shape.clone();
            let n = axes.len();
            if starts.len() != n || ends.len() != n || steps.len() != n {
                return fail(
                    "axes, starts, ends and steps of one length",
                    format!("{axes:?} {starts:?} {ends:?} {steps:?}"),
                );
            }
            for i in 0..n {
                let a = axes[i];
                axis_in(a, x)?;
                if axes[..i].contains(&a) {
                    return fail("each axis sliced at most once", format!("axes {axes:?}"));
                }
                if steps[i] == 0 || starts[i] > ends[i] || ends[i] > x.shape[a] {
                    return fail(
                        format!("0 <= start <= end <= {} and step >= 1 on axis {a}", x.shape[a]),
                        format!("start {} end {} step {}", starts[i], ends[i], steps[i]),
                    );
                }
                shape[a] = (ends[i] - starts[i]).div_ceil(steps[i]);
            }
            Ok(TensorType::new(shape, x.dtype))
        }
        Op::Gather { axis } => {
            axis_in(*axis, x)?;
            let idx = inputs[1];
            if !idx.dtype.is_index() {
                return fail("indices of dtype i32 or i64", idx.to_string());
            }
            let mut shape = x.shape[..*axis].to_vec();
            shape.extend_from_slice(&idx.shape);
            shape.extend_from_slice(&x.shape[axis + 1..]);
            Ok(TensorType::new(shape, x.dtype))
        }
        Op::Softmax { axis } => {
            float_input(x)?;
            axis_in(*axis, x)?;
            Ok(x.clone())
        }
        Op::LayerNorm { axis, .. } => {
            same_dtype(inputs)?;
            float_input(x)?;
            axis_in(*axis, x)?;
            let norm = &x.shape[*axis..];
            for t in &inputs[1..] {
                if broadcast(norm, &t.shape).as_deref() != Some(norm) {
                    return fail(format!("scale and bias broadcastable to {}", ShapeDisplay(norm)), list(inputs));
                }
            }
            Ok(x.clone())
        }
        Op::Reduce { axes, keepdims, .. } => {
            float_input(x)?;
            for &a in axes {
                axis_in(a, x)?;
            }
            let shape = (0..x.rank())
                .filter_map(|i| match (axes.contains(&i), keepdims) {
                    (false, _) => Some(x.shape[i]),
                    (true, true) => Some(1),
                    (true, false) => None,
                })
                .collect();
            Ok(TensorType::new(shape, x.dtype))
        }
        Op::FusedElementwise { .. } => {
            let d = same_dtype(inputs)?;
            float_input(x)?;
            Ok(TensorType::new(broadcast_all(inputs)?, d))
        }
        Op::FusedMatMul { .. } => {
            let d = same_dtype(inputs)?;
            float_input(x)?;
            let acc = TensorType::new(matmul_shape(x, inputs[1])?, d);
            epilogue_type(acc, &inputs[2..])
        }
        Op::FusedConv { params, .. } => {
            same_dtype(inputs)?;
            float_input(x)?;
            let acc = conv_type(params, x, inputs[1])?;
            epilogue_type(acc, &inputs[2..])
        }
        Op::FusedAttention {
            layout: AttentionLayout::Bshd,
            ..
        } => {
            let d = same_dtype(inputs)?;
            float_input(x)?;
            let (q, k, v) = (x, inputs[1], inputs[2]);
            let fits = q.rank() == 4
                && k.rank() == 4
                && v.rank() == 4
                && inputs[3].numel() == 1
                && k.shape[0] == q.shape[0]
                && v.shape[0] == q.shape[0]
                && k.shape[2] == q.shape[2]
                && v.shape[2] == q.shape[2]
                && k.shape[3] == q.shape[3]
                && v.shape[1] == k.shape[1];
            if !fits {
                return fail("q [B,S,H,D], k [B,T,H,D], v [B,T,H,E] and a one-element scale", list(inputs));
            }
            let scores = TensorType::new(vec![q.shape[0], q.shape[2], q.shape[1], k.shape[1]], d);
            epilogue_type(scores, &inputs[3..])?;
            Ok(TensorType::new(vec![q.shape[0], q.shape[1], q.shape[2], v.shape[3]], d))
        }
        Op::FusedAttention { .. } => {
            let d = same_dtype(inputs)?;
            float_input(x)?;
            let scores = TensorType::new(matmul_shape(x, inputs[1])?, d);
            if scores.rank() < 2 || inputs[3].numel() != 1 {
                return fail("q and kt of rank >= 2 and a one-element scale", list(inputs));
            }
            // The scale and the mask broadcast into the scores without growing them.
            let scores = epilogue_type(scores, &inputs[3..])?;
            Ok(TensorType::new(matmul_shape(&scores, inputs[2])?, d))
        }
    }
}

/// The epilogue may broadcast extra inputs into the accumulator but not grow it.
fn epilogue_type(acc: TensorType, extra: &[&TensorType]) -> Result<TensorType, InferError> {
    let mut all: Vec<&TensorType> = vec![&acc];
    all.extend_from_slice(extra);
    let shape = broadcast_all(&all)?;
    if shape != acc.shape {
        return fail(format!("epilogue inputs broadcastable to the product {}", acc), list(&all));
    }
    Ok(acc)
}
