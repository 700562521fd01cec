//! Layout and shape ops: Softmax (both opset semantics), Squeeze/Unsqueeze, Split,
//! Slice, Gather, the reductions, and Constant.

use super::{Ctx, attrs, ints_of, ints_value, widen};
use crate::dtype::{DType, TensorType};
use crate::error::Result;
use crate::graph::op::{Op, UnaryOp};
use crate::graph::tensor::{Tensor, TensorData};
use crate::onnx::import::{ConstVal, Value};
use crate::onnx::proto::attr_type;
use serde_json::json;

impl Ctx<'_, '_, '_> {
    pub(super) fn softmax(&mut self, out: &str) -> Result<Value> {
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

    pub(super) fn squeeze(&mut self, out: &str) -> Result<Value> {
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

    pub(super) fn split(&mut self) -> Result<Vec<Value>> {
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
            Some(s)
                if s.len() == n_out
                    && s.iter().all(|&v| v >= 0)
                    && s.iter().try_fold(0i64, |a, &v| a.checked_add(v)) == Some(dim as i64) =>
            {
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

    pub(super) fn slice(&mut self, out: &str) -> Result<Value> {
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

    pub(super) fn gather(&mut self, out: &str) -> Result<Value> {
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

    pub(super) fn reduce(&mut self, out: &str) -> Result<Value> {
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

    pub(super) fn constant(&mut self) -> Result<Value> {
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
