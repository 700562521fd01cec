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
use crate::graph::op::{BinaryOp, Op, PoolKind, PoolParams, UnaryOp};
use crate::graph::tensor::{ConstInit, Tensor, TensorData};
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeSet;

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
struct Ctx<'a, 'i, 'm> {
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
    fn op(&self) -> &str {
        &self.node.op_type
    }

    fn out(&self) -> String {
        self.node
            .output
            .first()
            .filter(|o| !o.is_empty())
            .cloned()
            .unwrap_or_else(|| self.label.clone())
    }

    fn err(&self, what: impl Into<String>, expected: impl Into<String>, found: impl Into<String>) -> Error {
        Error::OnnxNode {
            node: self.label.clone(),
            op: self.node.op_type.clone(),
            what: what.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    fn attr_err(&self, attr: &str, expected: impl Into<String>, found: impl Into<String>) -> Error {
        Error::BadAttr {
            node: self.label.clone(),
            op: self.node.op_type.clone(),
            attr: attr.to_string(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    fn check_attrs(&self, allowed: &[&str]) -> Result<()> {
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

    fn attr(&self, name: &str, ty: i32) -> Result<Option<&AttributeProto>> {
        let Some(a) = self.node.attribute.iter().find(|a| a.name == name) else {
            return Ok(None);
        };
        if a.r#type != ty && a.r#type != attr_type::UNDEFINED {
            return Err(self.attr_err(name, format!("attribute type {ty}"), format!("attribute type {}", a.r#type)));
        }
        Ok(Some(a))
    }

    fn int(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.attr(name, attr_type::INT)?.map_or(default, |a| a.i))
    }

    /// A float attribute. ONNX stores f32; the value is widened through its shortest
    /// decimal form, so `1e-5` reads as 1e-5 rather than 9.99999974e-6.
    fn float(&self, name: &str, default: f64) -> Result<f64> {
        Ok(self.attr(name, attr_type::FLOAT)?.map_or(default, |a| widen(a.f)))
    }

    fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        Ok(self.attr(name, attr_type::INTS)?.map(|a| a.ints.clone()))
    }

    fn string(&self, name: &str, default: &str) -> Result<String> {
        Ok(self
            .attr(name, attr_type::STRING)?
            .map_or(default.to_string(), |a| String::from_utf8_lossy(&a.s).into_owned()))
    }

    fn tensor_attr(&self, name: &str) -> Result<Option<Tensor>> {
        let Some(a) = self.attr(name, attr_type::TENSOR)? else {
            return Ok(None);
        };
        let Some(t) = &a.t else {
            return Err(self.attr_err(name, "a tensor", "an empty attribute"));
        };
        self.decode(t, name).map(Some)
    }

    fn decode(&self, t: &TensorProto, attr: &str) -> Result<Tensor> {
        let origin = Origin {
            model: self.imp.path,
            what: format!("{}.{attr} (attribute of the {} node)", self.label, self.node.op_type),
        };
        tensor_from_proto(t, &origin)
    }

    /// Input `i`, which the op requires.
    fn x(&self, i: usize) -> Result<Value> {
        self.imp
            .input(self.node, i)
            .ok_or_else(|| self.err(format!("input {i}"), "a tensor", "no input"))
    }

    fn opt(&self, i: usize) -> Option<Value> {
        self.imp.input(self.node, i)
    }

    /// Input `i` as integers known at import (`None` if the input is absent).
    fn const_ints(&self, i: usize, what: &str) -> Result<Option<Vec<i64>>> {
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
    fn unused_output(&self, i: usize, what: &str) -> Result<()> {
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

    fn apply(&mut self, name: &str, op: Op, inputs: &[Value]) -> Result<Value> {
        self.imp.apply(name, op, inputs)
    }

    fn build(&self, op: &str, attrs: Map<String, Json>, inputs: &[&Value]) -> Result<Op> {
        let tys: Vec<&TensorType> = inputs.iter().map(|v| v.ty()).collect();
        build_op(&self.label, op, &attrs, &tys)
    }

    fn scalar_like(&self, like: &Value, v: f64) -> Value {
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

    /// Explicit [top, left, bottom, right] pads for a 2-D window, from `auto_pad` or `pads`.
    fn pads_2d(&self, hw: [usize; 2], kernel: [usize; 2], strides: [usize; 2], dilations: [usize; 2]) -> Result<[usize; 4]> {
        let auto = self.string("auto_pad", "NOTSET")?;
        match auto.as_str() {
            "NOTSET" => {
                let pads = self.ints("pads")?.unwrap_or(vec![0; 4]);
                if pads.len() != 4 || pads.iter().any(|&p| p < 0) {
                    return Err(self.attr_err("pads", "4 non-negative integers (2-D window)", format!("{pads:?}")));
                }
                Ok([pads[0] as usize, pads[1] as usize, pads[2] as usize, pads[3] as usize])
            }
            "VALID" => Ok([0; 4]),
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut p = [0usize; 4];
                for d in 0..2 {
                    let out = hw[d].div_ceil(strides[d]);
                    let span = (kernel[d] - 1) * dilations[d] + 1;
                    let total = ((out - 1) * strides[d] + span).saturating_sub(hw[d]);
                    let small = total / 2;
                    let (begin, end) = if auto == "SAME_UPPER" {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                    p[d] = begin;
                    p[d + 2] = end;
                }
                Ok(p)
            }
            other => Err(self.attr_err("auto_pad", "NOTSET, SAME_UPPER, SAME_LOWER or VALID", format!("\"{other}\""))),
        }
    }

    fn pair(&self, name: &str, default: usize) -> Result<[usize; 2]> {
        match self.ints(name)? {
            None => Ok([default; 2]),
            Some(v) if v.len() == 2 && v.iter().all(|&x| x >= 1) => Ok([v[0] as usize, v[1] as usize]),
            Some(v) => Err(self.attr_err(name, "2 positive integers (2-D window)", format!("{v:?}"))),
        }
    }

    fn conv(&mut self, out: &str) -> Result<Value> {
        self.check_attrs(&["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"])?;
        let (x, w) = (self.x(0)?, self.x(1)?);
        if x.ty().rank() != 4 || w.ty().rank() != 4 {
            return Err(self.err(
                "inputs X, W",
                "a 2-D convolution (4-D NCHW input, 4-D OIHW weights)",
                format!("{}, {}", x.ty(), w.ty()),
            ));
        }
        let kernel = [w.ty().shape[2], w.ty().shape[3]];
        if let Some(k) = self.ints("kernel_shape")?
            && k != [kernel[0] as i64, kernel[1] as i64]
        {
            return Err(self.attr_err("kernel_shape", format!("{kernel:?} (the weight's spatial dims)"), format!("{k:?}")));
        }
        let strides = self.pair("strides", 1)?;
        let dilations = self.pair("dilations", 1)?;
        let pads = self.pads_2d([x.ty().shape[2], x.ty().shape[3]], kernel, strides, dilations)?;
        let a = attrs(&[
            ("strides", json!(strides)),
            ("pads", json!(pads)),
            ("dilations", json!(dilations)),
            ("group", json!(self.int("group", 1)?)),
        ]);
        let mut inputs = vec![x, w];
        inputs.extend(self.opt(2));
        let refs: Vec<&Value> = inputs.iter().collect();
        let o = self.build("Conv", a, &refs)?;
        self.apply(out, o, &inputs)
    }

    fn pool(&mut self, out: &str) -> Result<Value> {
        let max = self.op() == "MaxPool";
        let mut allowed = vec!["auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "strides"];
        allowed.push(if max { "storage_order" } else { "count_include_pad" });
        self.check_attrs(&allowed)?;
        if max {
            self.unused_output(1, "Indices")?;
        }
        let x = self.x(0)?;
        if x.ty().rank() != 4 {
            return Err(self.err("input 0", "a 4-D NCHW tensor (2-D pooling)", x.ty().to_string()));
        }
        let kernel = match self.ints("kernel_shape")? {
            Some(k) if k.len() == 2 && k.iter().all(|&v| v >= 1) => [k[0] as usize, k[1] as usize],
            other => return Err(self.attr_err("kernel_shape", "2 positive integers (2-D pooling)", format!("{other:?}"))),
        };
        let strides = self.pair("strides", 1)?;
        if self.pair("dilations", 1)? != [1, 1] {
            return Err(self.attr_err("dilations", "[1, 1]", format!("{:?}", self.ints("dilations")?)));
        }
        let hw = [x.ty().shape[2], x.ty().shape[3]];
        let mut pads = self.pads_2d(hw, kernel, strides, [1, 1])?;
        let include_pad = !max && self.int("count_include_pad", 0)? != 0;
        if self.int("ceil_mode", 0)? != 0 {
            for d in 0..2 {
                let span = hw[d] + pads[d] + pads[d + 2];
                if span < kernel[d] {
                    continue;
                }
                let floor_out = (span - kernel[d]) / strides[d] + 1;
                let mut ceil_out = (span - kernel[d]).div_ceil(strides[d]) + 1;
                // A last window starting inside the end padding is dropped (ONNX, PyTorch).
                if (ceil_out - 1) * strides[d] >= hw[d] + pads[d] {
                    ceil_out -= 1;
                }
                if ceil_out > floor_out {
                    if include_pad {
                        return Err(self.attr_err(
                            "ceil_mode",
                            "0, or a window that tiles the padded input exactly (count_include_pad=1)",
                            "1 with a partial last window",
                        ));
                    }
                    // Extra end padding never wins a max and never counts in an exclude-pad average.
                    pads[d + 2] += (ceil_out - 1) * strides[d] + kernel[d] - span;
                }
            }
        }
        let kind = if max {
            PoolKind::Max
        } else if include_pad {
            PoolKind::AvgIncludePad
        } else {
            PoolKind::AvgExcludePad
        };
        let params = PoolParams { kernel, strides, pads };
        self.apply(out, Op::Pool(kind, params), &[x])
    }

    fn batch_norm(&mut self, out: &str) -> Result<Value> {
        self.check_attrs(&["epsilon", "momentum", "spatial", "training_mode", "is_test", "consumed_inputs"])?;
        for (i, what) in [(1, "running mean"), (2, "running var"), (3, "saved mean"), (4, "saved var")] {
            self.unused_output(i, what)?;
        }
        if self.int("training_mode", 0)? != 0 {
            return Err(self.attr_err("training_mode", "0 (inference)", "1"));
        }
        let x = self.x(0)?;
        if self.int("spatial", 1)? == 0 && x.ty().rank() > 2 {
            return Err(self.attr_err("spatial", "1 (per-channel statistics)", "0"));
        }
        let inputs: Vec<Value> = (0..5).map(|i| self.x(i)).collect::<Result<_>>()?;
        let refs: Vec<&Value> = inputs.iter().collect();
        let o = self.build(
            "BatchNormalization",
            attrs(&[("epsilon", json!(self.float("epsilon", 1e-5)?))]),
            &refs,
        )?;
        self.apply(out, o, &inputs)
    }

    fn layer_norm(&mut self, out: &str) -> Result<Value> {
        self.check_attrs(&["axis", "epsilon", "stash_type"])?;
        self.unused_output(1, "Mean")?;
        self.unused_output(2, "InvStdDev")?;
        let (x, scale) = (self.x(0)?, self.x(1)?);
        let bias = match self.opt(2) {
            Some(b) => b,
            None => Value::Const(ConstVal {
                ty: scale.ty().clone(),
                init: ConstInit::Fill(0.0),
                key: None,
            }),
        };
        let a = attrs(&[
            ("axis", json!(self.int("axis", -1)?)),
            ("epsilon", json!(self.float("epsilon", 1e-5)?)),
        ]);
        let o = self.build("LayerNormalization", a, &[&x, &scale, &bias])?;
        self.apply(out, o, &[x, scale, bias])
    }

    /// y = x / (bias + alpha/size · Σ x² over a window of `size` channels)^beta, as
    /// x² → reshape [N, 1, C, H·W] → average pool (size × 1, counting pads) → reshape.
    fn lrn(&mut self, out: &str) -> Result<Value> {
        self.check_attrs(&["alpha", "beta", "bias", "size"])?;
        let x = self.x(0)?;
        let ty = x.ty().clone();
        if ty.rank() != 4 {
            return Err(self.err("input 0", "a 4-D NCHW tensor", ty.to_string()));
        }
        let size = self.int("size", 0)?;
        if size < 1 {
            return Err(self.attr_err("size", "a positive integer", size.to_string()));
        }
        let size = size as usize;
        let (alpha, beta, bias) = (self.float("alpha", 1e-4)?, self.float("beta", 0.75)?, self.float("bias", 1.0)?);
        let [n, c, h, w] = [ty.shape[0], ty.shape[1], ty.shape[2], ty.shape[3]];
        let sq = self.apply(&format!("{out}/square"), Op::Binary(BinaryOp::Mul), &[x.clone(), x.clone()])?;
        let flat = self.apply(
            &format!("{out}/channels"),
            Op::Reshape {
                shape: vec![n, 1, c, h * w],
            },
            &[sq],
        )?;
        let params = PoolParams {
            kernel: [size, 1],
            strides: [1, 1],
            pads: [(size - 1) / 2, 0, size / 2, 0],
        };
        let mean = self.apply(&format!("{out}/window_mean"), Op::Pool(PoolKind::AvgIncludePad, params), &[flat])?;
        let mean = self.apply(&format!("{out}/unflatten"), Op::Reshape { shape: ty.shape.clone() }, &[mean])?;
        let scaled = self.apply(
            &format!("{out}/scaled"),
            Op::Binary(BinaryOp::Mul),
            &[mean, self.scalar_like(&x, alpha)],
        )?;
        let shifted = self.apply(
            &format!("{out}/shifted"),
            Op::Binary(BinaryOp::Add),
            &[scaled, self.scalar_like(&x, bias)],
        )?;
        let denom = self.apply(
            &format!("{out}/denominator"),
            Op::Binary(BinaryOp::Pow),
            &[shifted, self.scalar_like(&x, beta)],
        )?;
        self.apply(out, Op::Binary(BinaryOp::Div), &[x, denom])
    }

    fn softmax(&mut self, out: &str) -> Result<Value> {
        self.check_attrs(&["axis"])?;
        let x = self.x(0)?;
        let rank = x.ty().rank();
        let new_style = self.imp.opset >= 13;
        let raw = self.int("axis", if new_style { -1 } else { 1 })?;
        let axis = if raw < 0 { raw + rank as i64 } else { raw };
        if axis < 0 || axis >= rank.max(1) as i64 {
            return Err(self.attr_err("axis", format!("an axis in -{rank}..{rank}"), raw.to_string()));
        }
        let axis = axis as usize;
        if new_style || axis + 1 == rank {
            return self.apply(out, Op::Softmax { axis }, &[x]);
        }
        // Opsets < 13: softmax over the input coerced to 2-D at `axis`.
        let shape = x.ty().shape.clone();
        let rows: usize = shape[..axis].iter().product();
        let cols: usize = shape[axis..].iter().product();
        let flat = self.apply(&format!("{out}/as_2d"), Op::Reshape { shape: vec![rows, cols] }, &[x])?;
        let s = self.apply(&format!("{out}/softmax_2d"), Op::Softmax { axis: 1 }, &[flat])?;
        self.apply(out, Op::Reshape { shape }, &[s])
    }

    fn squeeze(&mut self, out: &str) -> Result<Value> {
        self.check_attrs(&["axes"])?;
        let x = self.x(0)?;
        let axes = if self.imp.opset >= 13 {
            self.const_ints(1, "axes")?
        } else {
            self.ints("axes")?
        };
        let shape = &x.ty().shape;
        let unsqueeze = self.op() == "Unsqueeze";
        let out_rank = if unsqueeze {
            shape.len() + axes.as_ref().map_or(0, |a| a.len())
        } else {
            shape.len()
        };
        let norm = |a: i64| -> Result<usize> {
            let n = if a < 0 { a + out_rank as i64 } else { a };
            if n < 0 || n >= out_rank as i64 {
                return Err(self.err("axes", format!("axes in -{out_rank}..{out_rank}"), a.to_string()));
            }
            Ok(n as usize)
        };
        let new_shape: Vec<usize> = if unsqueeze {
            let Some(axes) = axes else {
                return Err(self.err("axes", "the axes to insert", "none"));
            };
            let mut ins: Vec<usize> = axes.iter().map(|&a| norm(a)).collect::<Result<_>>()?;
            ins.sort_unstable();
            ins.dedup();
            let mut rest = shape.iter();
            (0..out_rank)
                .map(|i| if ins.contains(&i) { 1 } else { *rest.next().unwrap_or(&1) })
                .collect()
        } else {
            let drop: Vec<usize> = match axes {
                Some(a) => a.iter().map(|&a| norm(a)).collect::<Result<_>>()?,
                None => (0..shape.len()).filter(|&i| shape[i] == 1).collect(),
            };
            if let Some(&bad) = drop.iter().find(|&&a| shape[a] != 1) {
                return Err(self.err("axes", "axes of size 1", format!("axis {bad} of size {} in {}", shape[bad], x.ty())));
            }
            shape
                .iter()
                .enumerate()
                .filter(|(i, _)| !drop.contains(i))
                .map(|(_, &d)| d)
                .collect()
        };
        self.apply(out, Op::Reshape { shape: new_shape }, &[x])
    }

    fn split(&mut self) -> Result<Vec<Value>> {
        self.check_attrs(&["axis", "split", "num_outputs"])?;
        let x = self.x(0)?;
        let rank = x.ty().rank() as i64;
        let raw = self.int("axis", 0)?;
        let axis = if raw < 0 { raw + rank } else { raw };
        if axis < 0 || axis >= rank {
            return Err(self.attr_err("axis", format!("an axis in -{rank}..{rank}"), raw.to_string()));
        }
        let dim = x.ty().shape[axis as usize];
        let n_out = self.node.output.len();
        let given = if self.imp.opset >= 13 {
            self.const_ints(1, "split")?
        } else {
            self.ints("split")?
        };
        let sizes: Vec<usize> = match given {
            Some(s) if s.len() == n_out && s.iter().all(|&v| v >= 0) && s.iter().sum::<i64>() == dim as i64 => {
                s.iter().map(|&v| v as usize).collect()
            }
            Some(s) => return Err(self.err("split", format!("{n_out} non-negative sizes summing to {dim}"), format!("{s:?}"))),
            None => {
                let chunk = dim.div_ceil(n_out.max(1));
                if self.imp.opset < 18 && dim % n_out.max(1) != 0 {
                    return Err(self.err("outputs", format!("a count dividing the axis size {dim}"), n_out.to_string()));
                }
                (0..n_out).map(|i| chunk.min(dim.saturating_sub(i * chunk))).collect()
            }
        };
        let mut start = 0;
        let mut values = Vec::with_capacity(n_out);
        for (name, size) in self.node.output.clone().iter().zip(sizes) {
            let a = attrs(&[
                ("starts", json!([start])),
                ("ends", json!([start + size])),
                ("axes", json!([axis])),
                ("steps", json!([1])),
            ]);
            let o = self.build("Slice", a, &[&x])?;
            let label = if name.is_empty() {
                format!("{}/part{}", self.label, values.len())
            } else {
                name.clone()
            };
            values.push(self.apply(&label, o, std::slice::from_ref(&x))?);
            start += size;
        }
        Ok(values)
    }

    fn slice(&mut self, out: &str) -> Result<Value> {
        let x = self.x(0)?;
        let (starts, ends, axes, steps) = if self.imp.opset < 10 {
            self.check_attrs(&["starts", "ends", "axes"])?;
            (self.ints("starts")?, self.ints("ends")?, self.ints("axes")?, None)
        } else {
            self.check_attrs(&[])?;
            (
                self.const_ints(1, "starts")?,
                self.const_ints(2, "ends")?,
                self.const_ints(3, "axes")?,
                self.const_ints(4, "steps")?,
            )
        };
        let (Some(starts), Some(ends)) = (starts, ends) else {
            return Err(self.err("starts, ends", "both given", "a missing one"));
        };
        if let Some(s) = steps.as_ref().and_then(|s| s.iter().find(|&&v| v < 1)) {
            return Err(self.err("steps", "positive steps (eqopt has no reversed slices)", s.to_string()));
        }
        let mut a = attrs(&[("starts", json!(starts)), ("ends", json!(ends))]);
        if let Some(axes) = axes {
            a.insert("axes".into(), json!(axes));
        }
        if let Some(steps) = steps {
            a.insert("steps".into(), json!(steps));
        }
        let o = self.build("Slice", a, &[&x])?;
        self.apply(out, o, &[x])
    }

    fn gather(&mut self, out: &str) -> Result<Value> {
        self.check_attrs(&["axis"])?;
        let (data, mut idx) = (self.x(0)?, self.x(1)?);
        let o = self.build("Gather", attrs(&[("axis", json!(self.int("axis", 0)?))]), &[&data, &idx])?;
        let Op::Gather { axis } = o else {
            unreachable!("build gives a Gather")
        };
        // Negative constant indices count from the end: normalize them now.
        if let Value::Const(c) = &idx
            && c.ty.dtype.is_index()
        {
            let dim = data.ty().shape[axis] as i64;
            let vals = ints_of(&c.tensor());
            if vals.iter().any(|&v| v < 0) {
                let fixed: Vec<f64> = vals.iter().map(|&v| if v < 0 { (v + dim) as f64 } else { v as f64 }).collect();
                idx = Value::Const(ConstVal::data(Tensor::from_f64(c.ty.clone(), &fixed)));
            }
        }
        self.apply(out, o, &[data, idx])
    }

    fn reduce(&mut self, out: &str) -> Result<Value> {
        self.check_attrs(&["axes", "keepdims", "noop_with_empty_axes"])?;
        let x = self.x(0)?;
        let axes_as_input = if self.op() == "ReduceSum" {
            self.imp.opset >= 13
        } else {
            self.imp.opset >= 18
        };
        let axes = if axes_as_input {
            self.const_ints(1, "axes")?
        } else {
            self.ints("axes")?
        };
        let axes = axes.unwrap_or_default();
        if axes.is_empty() && self.int("noop_with_empty_axes", 0)? != 0 {
            return self.apply(out, Op::Unary(UnaryOp::Identity), &[x]);
        }
        let mut a = attrs(&[("keepdims", json!(self.int("keepdims", 1)?))]);
        if !axes.is_empty() {
            a.insert("axes".into(), json!(axes));
        }
        let o = self.build(self.op(), a, &[&x])?;
        self.apply(out, o, &[x])
    }

    fn constant(&mut self) -> Result<Value> {
        self.check_attrs(&["value", "value_float", "value_floats", "value_int", "value_ints"])?;
        if let Some(t) = self.tensor_attr("value")? {
            return Ok(Value::Const(ConstVal::data(t)));
        }
        if let Some(a) = self.attr("value_float", attr_type::FLOAT)? {
            return Ok(Value::scalar(DType::F32, widen(a.f)));
        }
        if let Some(a) = self.attr("value_int", attr_type::INT)? {
            return Ok(Value::scalar(DType::I64, a.i as f64));
        }
        if let Some(a) = self.attr("value_floats", attr_type::FLOATS)? {
            let ty = TensorType::new(vec![a.floats.len()], DType::F32);
            return Ok(Value::Const(ConstVal::data(Tensor {
                ty,
                data: TensorData::F32(a.floats.clone()),
            })));
        }
        if let Some(a) = self.attr("value_ints", attr_type::INTS)? {
            return Ok(ints_value(&a.ints));
        }
        Err(self.err("attributes", "one of value, value_float(s), value_int(s)", "none"))
    }
}

fn widen(f: f32) -> f64 {
    f.to_string().parse().unwrap_or(f as f64)
}

fn attrs(pairs: &[(&str, Json)]) -> Map<String, Json> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// Integer elements of a tensor, exactly for i64 (ONNX's "to the end" is i64::MAX).
fn ints_of(t: &Tensor) -> Vec<i64> {
    match &t.data {
        TensorData::I64(v) => v.clone(),
        TensorData::I32(v) => v.iter().map(|&x| x as i64).collect(),
        _ => t.to_f64().iter().map(|&x| x as i64).collect(),
    }
}

fn ints_value(v: &[i64]) -> Value {
    Value::Const(ConstVal::data(Tensor {
        ty: TensorType::new(vec![v.len()], DType::I64),
        data: TensorData::I64(v.to_vec()),
    }))
}
