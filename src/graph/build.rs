//! Building typed [`Op`]s from graph.json op names and attribute maps.
//!
//! Attributes are normalized here, against the input types: negative axes become
//! non-negative, `Reshape`'s 0 and -1 are resolved, `Slice` bounds are clamped as
//! ONNX does. The resulting [`Op`] is then typed by [`super::infer`].

use super::op::{AttentionLayout, BinaryOp, ConvParams, Layout, Op, PoolKind, PoolParams, ReduceKind, UnaryOp};
use crate::dtype::{DType, TensorType};
use crate::error::{Error, Result};
use crate::ewexpr::EwExpr;
use serde_json::{Map, Value};

/// Every op name graph.json accepts, sorted.
pub fn known_ops() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = vec![
        "AveragePool",
        "BatchNormalization",
        "Cast",
        "Concat",
        "Conv",
        "DequantizeLinear",
        "Flatten",
        "FusedAttention",
        "FusedConv",
        "FusedElementwise",
        "FusedMatMul",
        "Gather",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "LayerNormalization",
        "MatMul",
        "MaxPool",
        "ReduceMax",
        "ReduceMean",
        "ReduceSum",
        "Reshape",
        "Slice",
        "Softmax",
        "Split",
        "Transpose",
    ];
    v.extend(UnaryOp::ALL.iter().map(|u| u.onnx_name()));
    v.extend(BinaryOp::ALL.iter().map(|b| b.onnx_name()));
    v.sort_unstable();
    v
}

/// Reads attributes of one node, producing errors that name the node and op.
pub struct Attrs<'a> {
    node: &'a str,
    op: &'a str,
    map: &'a Map<String, Value>,
}

impl<'a> Attrs<'a> {
    /// Wraps the attribute map of node `node` with op `op`.
    pub fn new(node: &'a str, op: &'a str, map: &'a Map<String, Value>) -> Self {
        Attrs { node, op, map }
    }

    fn bad(&self, attr: &str, expected: impl Into<String>, found: impl Into<String>) -> Error {
        Error::BadAttr {
            node: self.node.to_string(),
            op: self.op.to_string(),
            attr: attr.to_string(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    fn get(&self, attr: &str) -> Option<&'a Value> {
        self.map.get(attr)
    }

    /// An integer attribute, or `default` if absent.
    pub fn int(&self, attr: &str, default: Option<i64>) -> Result<i64> {
        match self.get(attr) {
            None => default.ok_or_else(|| self.bad(attr, "an integer", "nothing")),
            Some(v) => v.as_i64().ok_or_else(|| self.bad(attr, "an integer", v.to_string())),
        }
    }

    /// A number attribute, or `default` if absent.
    pub fn float(&self, attr: &str, default: f64) -> Result<f64> {
        match self.get(attr) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| self.bad(attr, "a number", v.to_string())),
        }
    }

    /// A list-of-integers attribute, or `default` if absent.
    pub fn ints(&self, attr: &str, default: Option<Vec<i64>>) -> Result<Vec<i64>> {
        match self.get(attr) {
            None => default.ok_or_else(|| self.bad(attr, "a list of integers", "nothing")),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_i64()
                        .ok_or_else(|| self.bad(attr, "a list of integers", Value::Array(items.clone()).to_string()))
                })
                .collect(),
            Some(v) => Err(self.bad(attr, "a list of integers", v.to_string())),
        }
    }

    /// A list of `n` non-negative integers, or `default` if absent.
    pub fn fixed<const N: usize>(&self, attr: &str, default: Option<[usize; N]>) -> Result<[usize; N]> {
        let Some(v) = self.get(attr) else {
            return default.ok_or_else(|| self.bad(attr, format!("a list of {N} non-negative integers"), "nothing"));
        };
        let items = self.ints(attr, None)?;
        let ok = items.len() == N && items.iter().all(|&i| i >= 0);
        if !ok {
            return Err(self.bad(attr, format!("a list of {N} non-negative integers"), v.to_string()));
        }
        let mut out = [0usize; N];
        for (o, i) in out.iter_mut().zip(items) {
            *o = i as usize;
        }
        Ok(out)
    }

    /// A string attribute.
    pub fn string(&self, attr: &str) -> Result<&'a str> {
        match self.get(attr) {
            Some(Value::String(s)) => Ok(s),
            Some(v) => Err(self.bad(attr, "a string", v.to_string())),
            None => Err(self.bad(attr, "a string", "nothing")),
        }
    }

    /// A possibly negative axis normalized against `rank` (`0..rank`, or `0..=rank` if `inclusive`).
    pub fn axis(&self, attr: &str, default: Option<i64>, rank: usize, inclusive: bool) -> Result<usize> {
        let a = self.int(attr, default)?;
        let limit = rank as i64 + i64::from(inclusive);
        let norm = if a < 0 { a + rank as i64 } else { a };
        if norm < 0 || norm >= limit {
            let range = if inclusive {
                format!("-{rank}..={rank}")
            } else {
                format!("-{rank}..{rank}")
            };
            return Err(self.bad(attr, format!("an axis in {range}"), a.to_string()));
        }
        Ok(norm as usize)
    }

    fn expr(&self, attr: &str) -> Result<EwExpr> {
        let text = self.string(attr)?;
        EwExpr::parse(text).map_err(|e| self.bad(attr, format!("an elementwise expression ({e})"), format!("\"{text}\"")))
    }

    fn conv_params(&self) -> Result<ConvParams> {
        Ok(ConvParams {
            strides: self.fixed("strides", Some([1, 1]))?,
            pads: self.fixed("pads", Some([0; 4]))?,
            dilations: self.fixed("dilations", Some([1, 1]))?,
            group: self.int("group", Some(1)).and_then(|g| {
                if g >= 1 {
                    Ok(g as usize)
                } else {
                    Err(self.bad("group", "an integer >= 1", g.to_string()))
                }
            })?,
            layout: self.layout()?,
        })
    }

    fn layout(&self) -> Result<Layout> {
        match self.map.get("layout") {
            None => Ok(Layout::Nchw),
            Some(v) => v
                .as_str()
                .and_then(Layout::from_name)
                .ok_or_else(|| self.bad("layout", "\"NCHW\" or \"NHWC\"", v.to_string())),
        }
    }

    fn pool_params(&self) -> Result<PoolParams> {
        let kernel: [usize; 2] = self.fixed("kernel_shape", None)?;
        Ok(PoolParams {
            kernel,
            strides: self.fixed("strides", Some([1, 1]))?,
            pads: self.fixed("pads", Some([0; 4]))?,
            layout: self.layout()?,
        })
    }
}

/// Builds the typed op for node `node` (op name `op`) given its attributes and input types.
/// `Split` is not handled here: it expands to several `Slice` nodes in the loader.
pub fn build_op(node: &str, op: &str, attrs: &Map<String, Value>, inputs: &[&TensorType]) -> Result<Op> {
    let built = build_op_unchecked(node, op, attrs, inputs)?;
    let allowed = allowed_attrs(op);
    if let Some(key) = attrs.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(Error::BadAttr {
            node: node.to_string(),
            op: op.to_string(),
            attr: key.clone(),
            expected: if allowed.is_empty() {
                "no attributes".into()
            } else {
                format!("one of {}", allowed.join(", "))
            },
            found: "an attribute eqopt does not support".into(),
        });
    }
    Ok(built)
}

/// The attribute names each op accepts (anything else is rejected rather than ignored).
pub fn allowed_attrs(op: &str) -> &'static [&'static str] {
    match op {
        "Cast" => &["to"],
        "DequantizeLinear" => &["axis", "block_size"],
        "Conv" => &["strides", "pads", "dilations", "group", "layout"],
        "FusedConv" => &["strides", "pads", "dilations", "group", "layout", "epilogue"],
        "MaxPool" => &["kernel_shape", "strides", "pads", "layout"],
        "AveragePool" => &["kernel_shape", "strides", "pads", "count_include_pad", "layout"],
        "BatchNormalization" => &["epsilon"],
        "Concat" | "Flatten" | "Gather" | "Softmax" => &["axis"],
        "Reshape" => &["shape"],
        "Transpose" => &["perm"],
        "Slice" => &["starts", "ends", "axes", "steps"],
        "Split" => &["axis", "split"],
        "LayerNormalization" => &["axis", "epsilon"],
        "ReduceSum" | "ReduceMean" | "ReduceMax" => &["axes", "keepdims"],
        "FusedElementwise" => &["expr"],
        "FusedMatMul" => &["epilogue"],
        "FusedAttention" => &["divide", "layout"],
        _ => &[],
    }
}

fn build_op_unchecked(node: &str, op: &str, attrs: &Map<String, Value>, inputs: &[&TensorType]) -> Result<Op> {
    let a = Attrs::new(node, op, attrs);
    let rank = inputs.first().map_or(0, |t| t.rank());
    if let Some(u) = UnaryOp::ALL.into_iter().find(|u| u.onnx_name() == op) {
        return Ok(Op::Unary(u));
    }
    if let Some(b) = BinaryOp::ALL.into_iter().find(|b| b.onnx_name() == op) {
        return Ok(Op::Binary(b));
    }
    Ok(match op {
        "Cast" => {
            let to = a.string("to")?;
            Op::Cast {
                to: to
                    .parse::<DType>()
                    .map_err(|_| a.bad("to", "a dtype (f32, f64, f16, bf16, i8, i4, i32, i64, bool)", format!("\"{to}\"")))?,
            }
        }
        "MatMul" => Op::MatMul,
        "DequantizeLinear" => {
            let block = a.int("block_size", Some(0))?;
            Op::Dequantize {
                // ONNX's default axis is 1; a vector or scalar has only axis 0.
                axis: a.axis("axis", Some(i64::from(rank > 1)), rank.max(1), false)?,
                block_size: usize::try_from(block).map_err(|_| a.bad("block_size", "a block size of at least 0", block.to_string()))?,
            }
        }
        "Conv" => Op::Conv(a.conv_params()?),
        "MaxPool" => Op::Pool(PoolKind::Max, a.pool_params()?),
        "AveragePool" => {
            let kind = if a.int("count_include_pad", Some(0))? != 0 {
                PoolKind::AvgIncludePad
            } else {
                PoolKind::AvgExcludePad
            };
            Op::Pool(kind, a.pool_params()?)
        }
        "GlobalAveragePool" => Op::GlobalPool(PoolKind::AvgExcludePad),
        "GlobalMaxPool" => Op::GlobalPool(PoolKind::Max),
        "BatchNormalization" => Op::BatchNorm {
            epsilon: a.float("epsilon", 1e-5)?,
        },
        "Concat" => Op::Concat {
            axis: a.axis("axis", None, rank, false)?,
        },
        "Flatten" => Op::Flatten {
            axis: a.axis("axis", Some(1), rank, true)?,
        },
        "Reshape" => Op::Reshape {
            shape: resolve_reshape(&a, inputs.first().copied())?,
        },
        "Transpose" => {
            let default: Vec<i64> = (0..rank as i64).rev().collect();
            let perm = a.ints("perm", Some(default))?;
            if perm.iter().any(|&p| p < 0) {
                return Err(a.bad("perm", "non-negative axes", format!("{perm:?}")));
            }
            Op::Transpose {
                perm: perm.into_iter().map(|p| p as usize).collect(),
            }
        }
        "Slice" => slice_op(&a, inputs.first().copied())?,
        "Gather" => Op::Gather {
            axis: a.axis("axis", Some(0), rank, false)?,
        },
        "Softmax" => Op::Softmax {
            axis: a.axis("axis", Some(-1), rank, false)?,
        },
        "LayerNormalization" => Op::LayerNorm {
            axis: a.axis("axis", Some(-1), rank, false)?,
            epsilon: a.float("epsilon", 1e-5)?,
        },
        "ReduceSum" | "ReduceMean" | "ReduceMax" => {
            let kind = match op {
                "ReduceSum" => ReduceKind::Sum,
                "ReduceMean" => ReduceKind::Mean,
                _ => ReduceKind::Max,
            };
            let all: Vec<i64> = (0..rank as i64).collect();
            let mut given = a.ints("axes", Some(all.clone()))?;
            if given.is_empty() {
                given = all;
            }
            let mut axes = Vec::new();
            for raw in given {
                let norm = if raw < 0 { raw + rank as i64 } else { raw };
                if norm < 0 || norm >= rank as i64 {
                    return Err(a.bad("axes", format!("axes in -{rank}..{rank}"), raw.to_string()));
                }
                axes.push(norm as usize);
            }
            axes.sort_unstable();
            axes.dedup();
            Op::Reduce {
                kind,
                axes,
                keepdims: a.int("keepdims", Some(1))? != 0,
            }
        }
        "FusedElementwise" => Op::FusedElementwise { expr: a.expr("expr")? },
        "FusedMatMul" => Op::FusedMatMul {
            epilogue: a.expr("epilogue")?,
        },
        "FusedAttention" => Op::FusedAttention {
            divide: a.int("divide", Some(0))? != 0,
            layout: match attrs.get("layout") {
                None => AttentionLayout::Bhsd,
                Some(v) => v
                    .as_str()
                    .and_then(AttentionLayout::from_name)
                    .ok_or_else(|| a.bad("layout", "\"BHSD\" or \"BSHD\"", v.to_string()))?,
            },
        },
        "FusedConv" => Op::FusedConv {
            params: a.conv_params()?,
            epilogue: a.expr("epilogue")?,
        },
        _ => {
            return Err(Error::UnknownOp {
                node: node.to_string(),
                op: op.to_string(),
                known: known_ops().join(", "),
            });
        }
    })
}

fn resolve_reshape(a: &Attrs<'_>, x: Option<&TensorType>) -> Result<Vec<usize>> {
    let raw = a.ints("shape", None)?;
    let Some(x) = x else {
        return Err(a.bad("shape", "an input to reshape", "none"));
    };
    let mut out = Vec::with_capacity(raw.len());
    let mut infer_at = None;
    for (i, &d) in raw.iter().enumerate() {
        match d {
            -1 if infer_at.is_none() => {
                infer_at = Some(i);
                out.push(1);
            }
            0 if i < x.rank() => out.push(x.shape[i]),
            d if d > 0 => out.push(d as usize),
            _ => {
                return Err(a.bad(
                    "shape",
                    "positive dims, 0 (copy the input dim) and at most one -1",
                    format!("{raw:?}"),
                ));
            }
        }
    }
    if let Some(i) = infer_at {
        let known: usize = out.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).unwrap_or(0);
        if known == 0 || x.numel() % known != 0 {
            return Err(a.bad(
                "shape",
                format!("a shape whose known dims divide {} elements", x.numel()),
                format!("{raw:?}"),
            ));
        }
        out[i] = x.numel() / known;
    }
    Ok(out)
}

fn slice_op(a: &Attrs<'_>, x: Option<&TensorType>) -> Result<Op> {
    let Some(x) = x else {
        return Err(a.bad("starts", "an input to slice", "none"));
    };
    let starts = a.ints("starts", None)?;
    let ends = a.ints("ends", None)?;
    let axes_raw = a.ints("axes", Some((0..starts.len() as i64).collect()))?;
    let steps_raw = a.ints("steps", Some(vec![1; starts.len()]))?;
    if ends.len() != starts.len() || axes_raw.len() != starts.len() || steps_raw.len() != starts.len() {
        return Err(a.bad(
            "ends",
            "starts, ends, axes and steps of one length",
            format!("{} {} {} {}", starts.len(), ends.len(), axes_raw.len(), steps_raw.len()),
        ));
    }
    let mut op = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..starts.len() {
        let r = x.rank() as i64;
        let axis = if axes_raw[i] < 0 { axes_raw[i] + r } else { axes_raw[i] };
        if axis < 0 || axis >= r {
            return Err(a.bad("axes", format!("axes in -{r}..{r}"), axes_raw[i].to_string()));
        }
        if steps_raw[i] < 1 {
            return Err(a.bad("steps", "steps >= 1", steps_raw[i].to_string()));
        }
        let dim = x.shape[axis as usize] as i64;
        let clamp = |v: i64| if v < 0 { (v + dim).max(0) } else { v.min(dim) };
        let (s, e) = (clamp(starts[i]), clamp(ends[i]).max(clamp(starts[i])));
        op.0.push(axis as usize);
        op.1.push(s as usize);
        op.2.push(e as usize);
        op.3.push(steps_raw[i] as usize);
    }
    Ok(Op::Slice {
        axes: op.0,
        starts: op.1,
        ends: op.2,
        steps: op.3,
    })
}

/// The attribute map that [`build_op`] turns back into `op` (used when writing graph.json).
pub fn op_attrs(op: &Op) -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    let conv = |p: &ConvParams, put: &mut dyn FnMut(&str, Value)| {
        put("strides", p.strides.to_vec().into());
        put("pads", p.pads.to_vec().into());
        put("dilations", p.dilations.to_vec().into());
        put("group", p.group.into());
        if p.layout != Layout::Nchw {
            put("layout", p.layout.name().into());
        }
    };
    match op {
        Op::Unary(_) | Op::Binary(_) | Op::MatMul | Op::GlobalPool(_) => {}
        Op::Cast { to } => put("to", to.name().into()),
        Op::Dequantize { axis, block_size } => {
            put("axis", (*axis).into());
            if *block_size > 0 {
                put("block_size", (*block_size).into());
            }
        }
        Op::Conv(p) => conv(p, &mut put),
        Op::Pool(kind, p) => {
            put("kernel_shape", p.kernel.to_vec().into());
            put("strides", p.strides.to_vec().into());
            put("pads", p.pads.to_vec().into());
            if *kind == PoolKind::AvgIncludePad {
                put("count_include_pad", 1.into());
            }
            if p.layout != Layout::Nchw {
                put("layout", p.layout.name().into());
            }
        }
        Op::BatchNorm { epsilon } => put("epsilon", (*epsilon).into()),
        Op::Concat { axis } | Op::Flatten { axis } | Op::Gather { axis } | Op::Softmax { axis } => put("axis", (*axis).into()),
        Op::Reshape { shape } => put("shape", shape.clone().into()),
        Op::Transpose { perm } => put("perm", perm.clone().into()),
        Op::Slice { axes, starts, ends, steps } => {
            put("starts", starts.clone().into());
            put("ends", ends.clone().into());
            put("axes", axes.clone().into());
            put("steps", steps.clone().into());
        }
        Op::LayerNorm { axis, epsilon } => {
            put("axis", (*axis).into());
            put("epsilon", (*epsilon).into());
        }
        Op::Reduce { axes, keepdims, .. } => {
            put("axes", axes.clone().into());
            put("keepdims", i64::from(*keepdims).into());
        }
        Op::FusedElementwise { expr } => put("expr", expr.to_string().into()),
        Op::FusedMatMul { epilogue } => put("epilogue", epilogue.to_string().into()),
        Op::FusedAttention { divide, layout } => {
            put("divide", i64::from(*divide).into());
            if *layout != AttentionLayout::Bhsd {
                put("layout", layout.name().to_uppercase().into());
            }
        }
        Op::FusedConv { params, epilogue } => {
            conv(params, &mut put);
            put("epilogue", epilogue.to_string().into());
        }
    }
    m
}
