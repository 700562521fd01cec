//! The ONNX op table: how each supported ONNX op (opsets 7 to 21) becomes eqopt ops.
//!
//! Attributes are checked strictly: an attribute the translation does not know,
//! or a mode eqopt cannot express (training-mode dropout, a used `mask` output,
//! 3-D convolution, ...), is an error naming the node, never silently ignored.
//! Ops with no eqopt counterpart are decomposed exactly: `Gemm` into
//! transposes, `MatMul`, scaling and `Add`; `LRN` into a square, an average pool
//! over channels and a power; `Clip` into `Max`/`Min`; `Squeeze`/`Unsqueeze`
//! into `Reshape`; `Split` into `Slice`s; old-style `Softmax` into reshapes around
//! a per-axis softmax.

use super::import::{ConstVal, Importer, Value, node_label};
use super::proto::{AttributeProto, NodeProto, TensorProto, attr_type};
use super::tensor::{Origin, dtype_from_onnx, tensor_from_proto};
use crate::dtype::{DType, TensorType};
use crate::error::{Error, Result};
use crate::graph::build::build_op;
use crate::graph::op::{BinaryOp, Op, PoolKind, UnaryOp};
use crate::graph::tensor::{ConstInit, Tensor, TensorData};
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeSet;

mod shape;
mod spatial;

/// Every ONNX op type the importer translates (default domain), sorted.
pub const SUPPORTED_OPS: &[&str] = &[
    "Abs",
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "DequantizeLinear",
    "Div",
    "Dropout",
    "Erf",
    "Exp",
    "Flatten",
    "Gather",
    "Gelu",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Identity",
    "LRN",
    "LayerNormalization",
    "LeakyRelu",
    "Log",
    "MatMul",
    "Max",
    "MaxPool",
    "Mean",
    "Min",
    "Mul",
    "Neg",
    "Pow",
    "Reciprocal",
    "ReduceMax",
    "ReduceMean",
    "ReduceSum",
    "Relu",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Size",
    "Slice",
    "Softmax",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "Tanh",
    "Transpose",
    "Unsqueeze",
];

/// One node being translated.
pub(super) struct Ctx<'a, 'i, 'm> {
    imp: &'i mut Importer<'m>,
    node: &'a NodeProto,
    label: String,
    uses: &'a BTreeSet<String>,
}

/// Translates `node`; returns one value per ONNX output (unused trailing outputs may be missing).
pub(crate) fn translate(imp: &mut Importer<'_>, node: &NodeProto, uses: &BTreeSet<String>) -> Result<Vec<Value>> {
    let mut cx = Ctx {
        label: node_label(node),
        imp,
        node,
        uses,
    };
    cx.translate()
}

impl Ctx<'_, '_, '_> {
    pub(super) fn op(&self) -> &str {
        &self.node.op_type
    }

    pub(super) fn out(&self) -> String {
        self.node
            .output
            .first()
            .filter(|o| !o.is_empty())
            .cloned()
            .unwrap_or_else(|| self.label.clone())
    }

    pub(super) fn err(&self, what: impl Into<String>, expected: impl Into<String>, found: impl Into<String>) -> Error {
        Error::OnnxNode {
            node: self.label.clone(),
            op: self.node.op_type.clone(),
            what: what.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    pub(super) fn attr_err(&self, attr: &str, expected: impl Into<String>, found: impl Into<String>) -> Error {
        Error::BadAttr {
            node: self.label.clone(),
            op: self.node.op_type.clone(),
            attr: attr.to_string(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    pub(super) fn check_attrs(&self, allowed: &[&str]) -> Result<()> {
        for a in &self.node.attribute {
            if !allowed.contains(&a.name.as_str()) {
                let expected = if allowed.is_empty() {
                    "no attributes".to_string()
                } else {
                    format!("one of {}", allowed.join(", "))
                };
                return Err(self.attr_err(&a.name, expected, "an attribute eqopt does not support"));
            }
        }
        Ok(())
    }

    pub(super) fn attr(&self, name: &str, ty: i32) -> Result<Option<&AttributeProto>> {
        let Some(a) = self.node.attribute.iter().find(|a| a.name == name) else {
            return Ok(None);
        };
        if a.r#type != ty && a.r#type != attr_type::UNDEFINED {
            return Err(self.attr_err(name, format!("attribute type {ty}"), format!("attribute type {}", a.r#type)));
        }
        Ok(Some(a))
    }

    pub(super) fn int(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.attr(name, attr_type::INT)?.map_or(default, |a| a.i))
    }

    /// A float attribute. ONNX stores f32; the value is widened through its shortest
    /// decimal form, so `1e-5` reads as 1e-5 rather than 9.99999974e-6.
    pub(super) fn float(&self, name: &str, default: f64) -> Result<f64> {
        Ok(self.attr(name, attr_type::FLOAT)?.map_or(default, |a| widen(a.f)))
    }

    pub(super) fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        Ok(self.attr(name, attr_type::INTS)?.map(|a| a.ints.clone()))
    }

    pub(super) fn string(&self, name: &str, default: &str) -> Result<String> {
        Ok(self
            .attr(name, attr_type::STRING)?
            .map_or(default.to_string(), |a| String::from_utf8_lossy(&a.s).into_owned()))
    }

    pub(super) fn tensor_attr(&self, name: &str) -> Result<Option<Tensor>> {
        let Some(a) = self.attr(name, attr_type::TENSOR)? else {
            return Ok(None);
        };
        let Some(t) = &a.t else {
            return Err(self.attr_err(name, "a tensor", "an empty attribute"));
        };
        self.decode(t, name).map(Some)
    }

    pub(super) fn decode(&self, t: &TensorProto, attr: &str) -> Result<Tensor> {
        let origin = Origin {
            model: self.imp.path,
            what: format!("{}.{attr} (attribute of the {} node)", self.label, self.node.op_type),
        };
        tensor_from_proto(t, &origin)
    }

    /// Input `i`, which the op requires.
    pub(super) fn x(&self, i: usize) -> Result<Value> {
        self.imp
            .input(self.node, i)
            .ok_or_else(|| self.err(format!("input {i}"), "a tensor", "no input"))
    }

    pub(super) fn opt(&self, i: usize) -> Option<Value> {
        self.imp.input(self.node, i)
    }

    /// Input `i` as integers known at import (`None` if the input is absent).
    pub(super) fn const_ints(&self, i: usize, what: &str) -> Result<Option<Vec<i64>>> {
        match self.opt(i) {
            None => Ok(None),
            Some(Value::Const(c)) => Ok(Some(ints_of(&c.tensor()))),
            Some(Value::Dyn { name, .. }) => Err(self.err(
                format!("input {i} ({what})"),
                "a constant known at import (an initializer, or computed from constants and static shapes)",
                format!("\"{name}\", computed at run time"),
            )),
        }
    }

    /// Fails if output `i` (an optional extra output) is used.
    pub(super) fn unused_output(&self, i: usize, what: &str) -> Result<()> {
        if let Some(o) = self.node.output.get(i)
            && !o.is_empty()
            && self.uses.contains(o)
        {
            return Err(self.err(
                format!("output {i} ({what})"),
                "an unused output (eqopt imports inference graphs)",
                format!("\"{o}\", which is used"),
            ));
        }
        Ok(())
    }

    pub(super) fn apply(&mut self, name: &str, op: Op, inputs: &[Value]) -> Result<Value> {
        self.imp.apply(name, op, inputs)
    }

    pub(super) fn build(&self, op: &str, attrs: Map<String, Json>, inputs: &[&Value]) -> Result<Op> {
        let tys: Vec<&TensorType> = inputs.iter().map(|v| v.ty()).collect();
        build_op(&self.label, op, &attrs, &tys)
    }

    /// `DequantizeLinear` (opsets 10 to 21) of `i8`/`i4` data with no zero point,
    /// or an all-zero one.
    fn dequantize_linear(&mut self, out: &str) -> Result<Value> {
        self.check_attrs(&["axis", "block_size", "output_dtype"])?;
        let (x, scale) = (self.x(0)?, self.x(1)?);
        if !x.ty().dtype.is_quantized() {
            return Err(self.err("input 0", "INT8 or INT4 data", x.ty().to_string()));
        }
        if self.int("output_dtype", 0)? != 0 {
            return Err(self.attr_err("output_dtype", "0 (the scale's type)", self.int("output_dtype", 0)?.to_string()));
        }
        match self.opt(2) {
            None => {}
            Some(Value::Const(c)) if c.tensor().to_f64().iter().all(|&z| z == 0.0) => {}
            Some(z) => {
                return Err(self.err(
                    "input 2 (zero point)",
                    "no zero point, or a constant one of zeros (eqopt quantizes symmetrically)",
                    z.ty().to_string(),
                ));
            }
        }
        let mut attrs = Map::new();
        attrs.insert("axis".into(), json!(self.int("axis", 1)?));
        attrs.insert("block_size".into(), json!(self.int("block_size", 0)?));
        let op = self.build("DequantizeLinear", attrs, &[&x, &scale])?;
        self.apply(out, op, &[x, scale])
    }

    pub(super) fn scalar_like(&self, like: &Value, v: f64) -> Value {
        Value::scalar(like.ty().dtype, v)
    }

    fn translate(&mut self) -> Result<Vec<Value>> {
        let out = self.out();
        let op = self.node.op_type.clone();
        if let Some(u) = UnaryOp::ALL
            .into_iter()
            .find(|u| u.onnx_name() == op && !matches!(u, UnaryOp::Gelu | UnaryOp::Dropout))
        {
            self.check_attrs(&[])?;
            let x = self.x(0)?;
            return Ok(vec![self.apply(&out, Op::Unary(u), &[x])?]);
        }
        if let Some(b) = BinaryOp::ALL
            .into_iter()
            .find(|b| b.onnx_name() == op && !matches!(b, BinaryOp::Max | BinaryOp::Min))
        {
            self.check_attrs(&[])?;
            let (a, c) = (self.x(0)?, self.x(1)?);
            return Ok(vec![self.apply(&out, Op::Binary(b), &[a, c])?]);
        }
        let v = match op.as_str() {
            "Max" | "Min" | "Sum" | "Mean" => self.variadic(&out)?,
            "Gelu" => {
                self.check_attrs(&["approximate"])?;
                let approx = self.string("approximate", "none")?;
                if approx != "none" {
                    return Err(self.attr_err("approximate", "\"none\" (exact erf GELU)", format!("\"{approx}\"")));
                }
                let x = self.x(0)?;
                self.apply(&out, Op::Unary(UnaryOp::Gelu), &[x])?
            }
            "Dropout" => self.dropout(&out)?,
            "Clip" => self.clip(&out)?,
            "LeakyRelu" => {
                self.check_attrs(&["alpha"])?;
                let alpha = self.float("alpha", 0.01)?;
                let x = self.x(0)?;
                let scaled = self.apply(
                    &format!("{out}/scaled"),
                    Op::Binary(BinaryOp::Mul),
                    &[x.clone(), self.scalar_like(&x, alpha)],
                )?;
                // For 0 <= alpha <= 1, leaky_relu(x) = max(x, alpha x); for alpha > 1 it is the min.
                let pick = if alpha <= 1.0 { BinaryOp::Max } else { BinaryOp::Min };
                if alpha < 0.0 {
                    return Err(self.attr_err("alpha", "alpha >= 0", alpha.to_string()));
                }
                self.apply(&out, Op::Binary(pick), &[x, scaled])?
            }
            "Cast" => {
                self.check_attrs(&["to", "saturate"])?;
                let to = self.int("to", -1)?;
                let dtype = dtype_from_onnx(to as i32).ok_or_else(|| {
                    self.attr_err(
                        "to",
                        "FLOAT, DOUBLE, FLOAT16, BFLOAT16, INT8, INT32, INT64 or BOOL",
                        super::proto::data_type::name(to as i32),
                    )
                })?;
                let x = self.x(0)?;
                if x.ty().dtype == dtype {
                    self.apply(&out, Op::Unary(UnaryOp::Identity), &[x])?
                } else {
                    self.apply(&out, Op::Cast { to: dtype }, &[x])?
                }
            }
            "MatMul" => {
                self.check_attrs(&[])?;
                let (a, b) = (self.x(0)?, self.x(1)?);
                self.apply(&out, Op::MatMul, &[a, b])?
            }
            "Gemm" => self.gemm(&out)?,
            "DequantizeLinear" => self.dequantize_linear(&out)?,
            "Conv" => self.conv(&out)?,
            "MaxPool" | "AveragePool" => self.pool(&out)?,
            "GlobalAveragePool" | "GlobalMaxPool" => {
                self.check_attrs(&[])?;
                let x = self.x(0)?;
                if x.ty().rank() != 4 {
                    return Err(self.err("input 0", "a 4-D NCHW tensor", x.ty().to_string()));
                }
                let kind = if op == "GlobalMaxPool" {
                    PoolKind::Max
                } else {
                    PoolKind::AvgExcludePad
                };
                self.apply(&out, Op::GlobalPool(kind), &[x])?
            }
            "BatchNormalization" => self.batch_norm(&out)?,
            "LayerNormalization" => self.layer_norm(&out)?,
            "LRN" => self.lrn(&out)?,
            "Softmax" => self.softmax(&out)?,
            "Concat" => {
                self.check_attrs(&["axis"])?;
                let xs: Vec<Value> = (0..self.node.input.len()).filter_map(|i| self.opt(i)).collect();
                if xs.is_empty() {
                    return Err(self.err("inputs", "at least one tensor", "none"));
                }
                let refs: Vec<&Value> = xs.iter().collect();
                let axis = self.int("axis", i64::MIN)?;
                if axis == i64::MIN {
                    return Err(self.attr_err("axis", "an integer", "nothing"));
                }
                let o = self.build("Concat", attrs(&[("axis", json!(axis))]), &refs)?;
                self.apply(&out, o, &xs)?
            }
            "Flatten" => {
                self.check_attrs(&["axis"])?;
                let x = self.x(0)?;
                let o = self.build("Flatten", attrs(&[("axis", json!(self.int("axis", 1)?))]), &[&x])?;
                self.apply(&out, o, &[x])?
            }
            "Reshape" => {
                self.check_attrs(&["allowzero"])?;
                let x = self.x(0)?;
                let shape = self
                    .const_ints(1, "shape")?
                    .ok_or_else(|| self.err("input 1 (shape)", "a shape", "no input"))?;
                if self.int("allowzero", 0)? != 0 && shape.contains(&0) {
                    return Err(self.attr_err("allowzero", "0, or a shape without zeros", "1 with a zero in the shape"));
                }
                let o = self.build("Reshape", attrs(&[("shape", json!(shape))]), &[&x])?;
                self.apply(&out, o, &[x])?
            }
            "Transpose" => {
                self.check_attrs(&["perm"])?;
                let x = self.x(0)?;
                let mut a = Map::new();
                if let Some(perm) = self.ints("perm")? {
                    a.insert("perm".into(), json!(perm));
                }
                let o = self.build("Transpose", a, &[&x])?;
                self.apply(&out, o, &[x])?
            }
            "Squeeze" | "Unsqueeze" => self.squeeze(&out)?,
            "Split" => return self.split(),
            "Slice" => self.slice(&out)?,
            "Gather" => self.gather(&out)?,
            "ReduceSum" | "ReduceMean" | "ReduceMax" => self.reduce(&out)?,
            "Shape" => {
                self.check_attrs(&["start", "end"])?;
                let x = self.x(0)?;
                let dims: Vec<i64> = x.ty().shape.iter().map(|&d| d as i64).collect();
                let r = dims.len() as i64;
                let clamp = |v: i64| if v < 0 { (v + r).clamp(0, r) } else { v.min(r) } as usize;
                let (s, e) = (clamp(self.int("start", 0)?), clamp(self.int("end", r)?));
                let part = if s < e { dims[s..e].to_vec() } else { Vec::new() };
                ints_value(&part)
            }
            "Size" => {
                self.check_attrs(&[])?;
                let x = self.x(0)?;
                Value::scalar(DType::I64, x.ty().numel() as f64)
            }
            "Constant" => self.constant()?,
            "ConstantOfShape" => {
                self.check_attrs(&["value"])?;
                let shape = self
                    .const_ints(0, "shape")?
                    .ok_or_else(|| self.err("input 0 (shape)", "a shape", "no input"))?;
                if shape.iter().any(|&d| d < 0) {
                    return Err(self.err("input 0 (shape)", "non-negative dims", format!("{shape:?}")));
                }
                let (dtype, fill) = match self.tensor_attr("value")? {
                    None => (DType::F32, 0.0),
                    Some(t) if t.ty.numel() == 1 => (t.ty.dtype, t.to_f64()[0]),
                    Some(t) => return Err(self.attr_err("value", "a one-element tensor", t.ty.to_string())),
                };
                let ty = TensorType::new(shape.iter().map(|&d| d as usize).collect(), dtype);
                crate::graph::check_size(&self.label, &ty)?;
                Value::Const(ConstVal {
                    ty,
                    init: ConstInit::Fill(fill),
                    key: None,
                })
            }
            _ => unreachable!("{op} passed the supported-op check but has no translation"),
        };
        Ok(vec![v])
    }

    fn variadic(&mut self, out: &str) -> Result<Value> {
        self.check_attrs(&[])?;
        let xs: Vec<Value> = (0..self.node.input.len()).filter_map(|i| self.opt(i)).collect();
        let Some(first) = xs.first().cloned() else {
            return Err(self.err("inputs", "at least one tensor", "none"));
        };
        let b = match self.op() {
            "Max" => BinaryOp::Max,
            "Min" => BinaryOp::Min,
            _ => BinaryOp::Add,
        };
        let mean = self.op() == "Mean";
        if xs.len() == 1 && !mean {
            return self.apply(out, Op::Unary(UnaryOp::Identity), &[first]);
        }
        let mut acc = first;
        for (k, x) in xs.iter().enumerate().skip(1) {
            let last = k + 1 == xs.len() && !mean;
            let name = if last { out.to_string() } else { format!("{out}/acc{k}") };
            acc = self.apply(&name, Op::Binary(b), &[acc, x.clone()])?;
        }
        if mean {
            let n = self.scalar_like(&acc, xs.len() as f64);
            acc = self.apply(out, Op::Binary(BinaryOp::Div), &[acc, n])?;
        }
        Ok(acc)
    }

    fn dropout(&mut self, out: &str) -> Result<Value> {
        self.check_attrs(&["ratio", "seed", "is_test"])?;
        self.unused_output(1, "mask")?;
        if self.imp.opset >= 12 {
            match self.opt(2) {
                None => {}
                Some(Value::Const(c)) if c.tensor().to_f64().iter().all(|&v| v == 0.0) => {}
                Some(_) => {
                    return Err(self.err("input 2 (training_mode)", "absent or a constant false (inference)", "training mode"));
                }
            }
        }
        let x = self.x(0)?;
        self.apply(out, Op::Unary(UnaryOp::Dropout), &[x])
    }

    fn clip(&mut self, out: &str) -> Result<Value> {
        let x = self.x(0)?;
        let (lo, hi) = if self.imp.opset < 11 {
            self.check_attrs(&["min", "max"])?;
            let lo = self.float("min", f64::NEG_INFINITY)?;
            let hi = self.float("max", f64::INFINITY)?;
            let lo = lo.is_finite().then(|| self.scalar_like(&x, lo));
            let hi = hi.is_finite().then(|| self.scalar_like(&x, hi));
            (lo, hi)
        } else {
            self.check_attrs(&[])?;
            (self.opt(1), self.opt(2))
        };
        let mut y = x;
        if let Some(lo) = lo {
            let name = if hi.is_some() { format!("{out}/min") } else { out.to_string() };
            y = self.apply(&name, Op::Binary(BinaryOp::Max), &[y, lo])?;
        }
        if let Some(hi) = hi {
            y = self.apply(out, Op::Binary(BinaryOp::Min), &[y, hi])?;
        }
        if let Value::Dyn { name, .. } = &y
            && name != out
        {
            y = self.apply(out, Op::Unary(UnaryOp::Identity), &[y])?;
        }
        Ok(y)
    }

    fn gemm(&mut self, out: &str) -> Result<Value> {
        self.check_attrs(&["alpha", "beta", "transA", "transB"])?;
        let (mut a, mut b) = (self.x(0)?, self.x(1)?);
        for (v, t) in [(&a, "A"), (&b, "B")] {
            if v.ty().rank() != 2 {
                return Err(self.err(format!("input {t}"), "a 2-D matrix", v.ty().to_string()));
            }
        }
        let t = Op::Transpose { perm: vec![1, 0] };
        if self.int("transA", 0)? != 0 {
            a = self.apply(&format!("{out}/a_t"), t.clone(), &[a])?;
        }
        if self.int("transB", 0)? != 0 {
            b = self.apply(&format!("{out}/b_t"), t, &[b])?;
        }
        let (alpha, beta) = (self.float("alpha", 1.0)?, self.float("beta", 1.0)?);
        let c = self.opt(2).filter(|_| beta != 0.0);
        let mut steps: Vec<&str> = vec!["matmul"];
        if alpha != 1.0 {
            steps.push("alpha");
        }
        if c.is_some() {
            steps.push("bias");
        }
        let name = |step: &str| {
            if steps.last() == Some(&step) {
                out.to_string()
            } else {
                format!("{out}/{step}")
            }
        };
        let mut y = self.apply(&name("matmul"), Op::MatMul, &[a, b])?;
        if alpha != 1.0 {
            let s = self.scalar_like(&y, alpha);
            y = self.apply(&name("alpha"), Op::Binary(BinaryOp::Mul), &[y, s])?;
        }
        if let Some(mut c) = c {
            if beta != 1.0 {
                let s = self.scalar_like(&c, beta);
                c = self.apply(&format!("{out}/beta"), Op::Binary(BinaryOp::Mul), &[c, s])?;
            }
            y = self.apply(&name("bias"), Op::Binary(BinaryOp::Add), &[y, c])?;
        }
        Ok(y)
    }
}

pub(super) fn widen(f: f32) -> f64 {
    f.to_string().parse().unwrap_or(f as f64)
}

pub(super) fn attrs(pairs: &[(&str, Json)]) -> Map<String, Json> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// Integer elements of a tensor, exactly for i64 (ONNX's "to the end" is i64::MAX).
pub(super) fn ints_of(t: &Tensor) -> Vec<i64> {
    match &t.data {
        TensorData::I64(v) => v.clone(),
        TensorData::I32(v) => v.iter().map(|&x| x as i64).collect(),
        _ => t.to_f64().iter().map(|&x| x as i64).collect(),
    }
}

pub(super) fn ints_value(v: &[i64]) -> Value {
    Value::Const(ConstVal::data(Tensor {
        ty: TensorType::new(vec![v.len()], DType::I64),
        data: TensorData::I64(v.to_vec()),
    }))
}
