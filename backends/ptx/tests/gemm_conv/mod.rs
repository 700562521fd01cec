//! GEMM and convolution test programs, shared by the `ptxas` and the
//! interpreter tests (`ptxas_gemm_conv.rs`, `sim_gemm_conv.rs`).
#![allow(dead_code)]

use crate::common::{P, Rng};
use eqopt_kir::{BinaryOp, ConstData, ConvGeometry, Epilogue, Expr, GemmCompute, Instr, Kernel, Program, UnaryOp, View};
use std::sync::Arc;

/// The stored type of a GEMM's `b` or a convolution's weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    /// An `f32` graph input.
    Input,
    /// `f32` constant.
    F32,
    /// `f16` constant.
    F16,
    /// `bf16` constant.
    Bf16,
    /// int8 with column scales (GEMM only).
    Int8,
    /// int4 with scales per `group` rows (GEMM only).
    Int4 { group: usize },
}

/// A GEMM test case.
#[derive(Clone, Debug)]
pub struct GemmCase {
    /// The output's batch dims.
    pub batch: Vec<usize>,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub b: Weights,
    /// `GemmCompute::Bf16` (needs `b: Bf16`).
    pub bf16: bool,
    /// `a` stored `[.., K, M]` and read through swapped strides.
    pub a_transposed: bool,
    /// `b` stored `[.., N, K]` and read through swapped strides (not quantized).
    pub b_transposed: bool,
    /// `a` broadcast (stride 0) along the first batch dim.
    pub a_broadcast: bool,
    /// `b` one matrix for every batch index (stride 0; always so when quantized).
    pub b_broadcast: bool,
    /// An epilogue `gelu(acc + bias[n]) + residual[.., m, n]`.
    pub epilogue: bool,
    /// Elements of `a`'s buffer before its view starts.
    pub a_offset: usize,
}

impl GemmCase {
    /// A plain `f32` GEMM.
    pub fn new(batch: &[usize], m: usize, k: usize, n: usize) -> GemmCase {
        GemmCase {
            batch: batch.to_vec(),
            m,
            k,
            n,
            b: Weights::Input,
            bf16: false,
            a_transposed: false,
            b_transposed: false,
            a_broadcast: false,
            b_broadcast: false,
            epilogue: false,
            a_offset: 0,
        }
    }
}

fn weights(p: &mut P, rng: &mut Rng, kind: Weights, len: usize, k: usize, n: usize) -> usize {
    let v = rng.vec(len);
    match kind {
        Weights::Input => p.input("b", &[len]),
        Weights::F32 => p.const_f32("w", v),
        Weights::F16 => p.constant("w", ConstData::F16(Arc::new(v.iter().map(|&x| half::f16::from_f32(x)).collect()))),
        Weights::Bf16 => p.constant("w", ConstData::BF16(Arc::new(v.iter().map(|&x| half::bf16::from_f32(x)).collect()))),
        Weights::Int8 => {
            let data = (0..k * n).map(|_| (rng.below(255) as i32 - 127) as i8).collect();
            let scales = (0..n).map(|_| (rng.next_f32() + 1.5) / 127.0).collect();
            p.constant(
                "w",
                ConstData::Int8 {
                    data: Arc::new(data),
                    scales: Arc::new(scales),
                    k,
                    n,
                },
            )
        }
        Weights::Int4 { group } => {
            let data = (0..k * n.div_ceil(2)).map(|_| rng.below(256) as u8).collect();
            let scales = (0..k.div_ceil(group) * n).map(|_| (rng.next_f32() + 1.5) / 7.0).collect();
            p.constant(
                "w",
                ConstData::Int4 {
                    data: Arc::new(data),
                    scales: Arc::new(scales),
                    k,
                    n,
                    group,
                },
            )
        }
    }
}

fn dense_strides(shape: &[usize]) -> Vec<isize> {
    eqopt_kir::dense_strides(shape)
}

/// The view of a stored `[.., rows, cols]` matrix stack as `[.., cols, rows]`
/// when `transposed`, else as stored; batch dims with stride 0 when `broadcast`
/// (one stored matrix).
fn matrix_view(buffer: usize, batch: &[usize], rows: usize, cols: usize, transposed: bool, broadcast: bool) -> View {
    let stored_batch: Vec<usize> = if broadcast { vec![1; batch.len()] } else { batch.to_vec() };
    let (sr, sc) = if transposed { (cols, rows) } else { (rows, cols) };
    let mut shape = stored_batch.clone();
    shape.extend([sr, sc]);
    let mut strides = dense_strides(&shape);
    if transposed {
        let r = strides.len();
        strides.swap(r - 2, r - 1);
    }
    let mut shape = batch.to_vec();
    shape.extend([rows, cols]);
    for (d, s) in strides.iter_mut().take(batch.len()).enumerate() {
        if broadcast || batch[d] == 1 {
            *s = 0;
        }
    }
    View {
        buffer,
        offset: 0,
        shape,
        strides,
    }
}

/// The program of one GEMM case (constants drawn from `seed`).
pub fn gemm_program(case: &GemmCase, seed: u64) -> Program {
    let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    let GemmCase { m, k, n, .. } = *case;
    let batch = &case.batch;
    let nb: usize = batch.iter().product();
    let mut p = P::new("gemm");
    let a_batch = if case.a_broadcast && !batch.is_empty() {
        batch[1..].iter().product::<usize>()
    } else {
        nb
    };
    let a_buf = p.input("a", &[case.a_offset + a_batch * m * k]);
    let quant = matches!(case.b, Weights::Int8 | Weights::Int4 { .. });
    let b_one = case.b_broadcast || quant;
    let b_len = if b_one { k * n } else { nb * k * n };
    let b_buf = weights(&mut p, &mut rng, case.b, b_len, k, n);
    let mut a = matrix_view(a_buf, batch, m, k, case.a_transposed, false);
    if case.a_broadcast && !batch.is_empty() {
        let mut stored = batch.clone();
        stored[0] = 1;
        stored.extend(if case.a_transposed { [k, m] } else { [m, k] });
        let mut s = dense_strides(&stored);
        if case.a_transposed {
            let r = s.len();
            s.swap(r - 2, r - 1);
        }
        s[0] = 0;
        a.strides = s;
    }
    a.offset = case.a_offset;
    let b = matrix_view(b_buf, batch, k, n, case.b_transposed && !quant, b_one);
    let mut out_shape = batch.clone();
    out_shape.extend([m, n]);
    let epilogue = case.epilogue.then(|| {
        let bias = p.const_f32("bias", rng.vec(n));
        let res = p.input("res", &out_shape);
        let mut bias_strides = vec![0; out_shape.len()];
        *bias_strides.last_mut().unwrap() = 1;
        Epilogue {
            expr: Expr {
                instrs: vec![
                    Instr::Input(0),
                    Instr::Input(1),
                    Instr::Binary(BinaryOp::Add, 0, 1),
                    Instr::Unary(UnaryOp::Gelu, 2),
                    Instr::Input(2),
                    Instr::Binary(BinaryOp::Add, 3, 4),
                ],
                num_inputs: 3,
            },
            extras: vec![
                View {
                    buffer: bias,
                    offset: 0,
                    shape: out_shape.clone(),
                    strides: bias_strides,
                },
                View::dense(res, &out_shape),
            ],
        }
    });
    let y = p.output("y", &out_shape);
    p.0.kernels.push(Kernel::Gemm {
        a,
        b,
        out: View::dense(y, &out_shape),
        epilogue,
        compute: if case.bf16 { GemmCompute::Bf16 } else { GemmCompute::F32 },
    });
    p.0.validate().unwrap_or_else(|e| panic!("{case:?}: {e}"));
    p.0
}

/// A convolution test case.
#[derive(Clone, Debug)]
pub struct ConvCase {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub strides: [usize; 2],
    pub pads: [usize; 4],
    pub dilations: [usize; 2],
    pub group: usize,
    pub nhwc: bool,
    pub weights: Weights,
    pub bias: bool,
    /// An epilogue `relu(acc) + residual`.
    pub epilogue: bool,
    /// Elements of `x`'s buffer before its view starts.
    pub x_offset: usize,
}

impl ConvCase {
    /// A 3×3 convolution, stride 1, padding 1, one group, NCHW, `f32` weights.
    pub fn new(n: usize, c: usize, h: usize, w: usize, o: usize) -> ConvCase {
        ConvCase {
            n,
            c,
            h,
            w,
            o,
            kh: 3,
            kw: 3,
            strides: [1, 1],
            pads: [1; 4],
            dilations: [1, 1],
            group: 1,
            nhwc: false,
            weights: Weights::F32,
            bias: false,
            epilogue: false,
            x_offset: 0,
        }
    }

    /// Output height and width.
    pub fn out_hw(&self) -> (usize, usize) {
        let dim = |size: usize, p0: usize, p1: usize, k: usize, d: usize, s: usize| (size + p0 + p1 - ((k - 1) * d + 1)) / s + 1;
        (
            dim(self.h, self.pads[0], self.pads[2], self.kh, self.dilations[0], self.strides[0]),
            dim(self.w, self.pads[1], self.pads[3], self.kw, self.dilations[1], self.strides[1]),
        )
    }
}

/// The program of one convolution case (weights drawn from `seed`).
pub fn conv_program(case: &ConvCase, seed: u64) -> Program {
    let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    let c = case;
    let (oh, ow) = c.out_hw();
    let ig = c.c / c.group;
    let mut p = P::new("conv");
    let (x_shape, w_shape, out_shape) = if c.nhwc {
        (vec![c.n, c.h, c.w, c.c], vec![c.kh, c.kw, ig, c.o], vec![c.n, oh, ow, c.o])
    } else {
        (vec![c.n, c.c, c.h, c.w], vec![c.o, ig, c.kh, c.kw], vec![c.n, c.o, oh, ow])
    };
    let x = p.input("x", &[c.x_offset + x_shape.iter().product::<usize>()]);
    let wlen: usize = w_shape.iter().product();
    let w = weights(&mut p, &mut rng, c.weights, wlen, 0, 0);
    let bias = c.bias.then(|| View::dense(p.const_f32("bias", rng.vec(c.o)), &[c.o]));
    let epilogue = c.epilogue.then(|| {
        let res = p.input("res", &out_shape);
        Epilogue {
            expr: Expr {
                instrs: vec![
                    Instr::Input(0),
                    Instr::Unary(UnaryOp::Relu, 0),
                    Instr::Input(1),
                    Instr::Binary(BinaryOp::Add, 1, 2),
                ],
                num_inputs: 2,
            },
            extras: vec![View::dense(res, &out_shape)],
        }
    });
    let y = p.output("y", &out_shape);
    p.0.kernels.push(Kernel::Conv {
        x: View {
            offset: c.x_offset,
            ..View::dense(x, &x_shape)
        },
        w: View::dense(w, &w_shape),
        bias,
        out: View::dense(y, &out_shape),
        geometry: ConvGeometry {
            strides: c.strides,
            pads: c.pads,
            dilations: c.dilations,
            group: c.group,
            nhwc: c.nhwc,
        },
        epilogue,
    });
    p.0.validate().unwrap_or_else(|e| panic!("{case:?}: {e}"));
    p.0
}
