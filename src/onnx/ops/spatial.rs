//! Spatial and normalization ops: Conv, MaxPool/AveragePool (with `auto_pad` and
//! `ceil_mode` resolved to explicit pads), BatchNormalization, LayerNormalization, LRN.

use super::{Ctx, attrs};
use crate::error::Result;
use crate::graph::op::{BinaryOp, Layout, Op, PoolKind, PoolParams};
use crate::graph::tensor::ConstInit;
use crate::onnx::import::{ConstVal, Value};
use serde_json::json;

impl Ctx<'_, '_, '_> {
    /// Explicit [top, left, bottom, right] pads for a 2-D window, from `auto_pad` or `pads`.
    pub(super) fn pads_2d(&self, hw: [usize; 2], kernel: [usize; 2], strides: [usize; 2], dilations: [usize; 2]) -> Result<[usize; 4]> {
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
                    // In u128: absurd kernels or strides cannot overflow.
                    let (h, s, k, dl) = (hw[d] as u128, strides[d] as u128, kernel[d] as u128, dilations[d] as u128);
                    let span = k.saturating_sub(1) * dl + 1;
                    let total = ((h.div_ceil(s).saturating_sub(1)) * s + span).saturating_sub(h);
                    let total =
                        usize::try_from(total).map_err(|_| self.attr_err("auto_pad", "a window of addressable size", auto.clone()))?;
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

    pub(super) fn pair(&self, name: &str, default: usize) -> Result<[usize; 2]> {
        match self.ints(name)? {
            None => Ok([default; 2]),
            Some(v) if v.len() == 2 && v.iter().all(|&x| x >= 1) => Ok([v[0] as usize, v[1] as usize]),
            Some(v) => Err(self.attr_err(name, "2 positive integers (2-D window)", format!("{v:?}"))),
        }
    }

    pub(super) fn conv(&mut self, out: &str) -> Result<Value> {
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

    pub(super) fn pool(&mut self, out: &str) -> Result<Value> {
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
        let params = PoolParams {
            kernel,
            strides,
            pads,
            layout: Layout::Nchw,
        };
        self.apply(out, Op::Pool(kind, params), &[x])
    }

    pub(super) fn batch_norm(&mut self, out: &str) -> Result<Value> {
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

    pub(super) fn layer_norm(&mut self, out: &str) -> Result<Value> {
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
    pub(super) fn lrn(&mut self, out: &str) -> Result<Value> {
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
            layout: Layout::Nchw,
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
}
