//! The executor runs a `Kernel::Gemm` with `GemmCompute::Bf16` as a bf16-compute
//! GEMM (`A` rounded to bf16, bf16 `B`, f32 sums) with its fused epilogue, and
//! reports a non-bf16 `b` as an error.

use std::sync::Arc;

use eqopt_cpu::exec::{Executable, InputData};
use eqopt_kir::{BinaryOp, Buffer, BufferKind, ConstData, ElemType, Epilogue, Expr, GemmCompute, Instr, Kernel, Program, UnaryOp, View};
use half::bf16;

const BATCH: usize = 2;
const M: usize = 9;
const K: usize = 37;
const N: usize = 21;

fn values(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let h = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed.wrapping_mul(40_503));
            (h >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0 + 1e-4
        })
        .collect()
}

/// `out = relu(bf16(x) · w + bias)`, `x: [BATCH, M, K]`, `w: [K, N]` broadcast over the batch.
fn program(w: ConstData, bias: &[f32], compute: GemmCompute) -> Program {
    let elem = w.elem();
    let buffers = vec![
        Buffer {
            name: "x".into(),
            elem: ElemType::F32,
            len: BATCH * M * K,
            kind: Some(BufferKind::Input),
        },
        Buffer {
            name: "w".into(),
            elem,
            len: K * N,
            kind: Some(BufferKind::Constant(w)),
        },
        Buffer {
            name: "bias".into(),
            elem: ElemType::F32,
            len: N,
            kind: Some(BufferKind::Constant(ConstData::F32(Arc::new(bias.to_vec())))),
        },
        Buffer {
            name: "y".into(),
            elem: ElemType::F32,
            len: BATCH * M * N,
            kind: Some(BufferKind::Output),
        },
    ];
    let broadcast = |buffer, shape: &[usize], strides: &[isize]| View {
        buffer,
        offset: 0,
        shape: shape.to_vec(),
        strides: strides.to_vec(),
    };
    let epilogue = Epilogue {
        expr: Expr {
            instrs: vec![
                Instr::Input(0),
                Instr::Input(1),
                Instr::Binary(BinaryOp::Add, 0, 1),
                Instr::Unary(UnaryOp::Relu, 2),
            ],
            num_inputs: 2,
        },
        extras: vec![broadcast(2, &[BATCH, M, N], &[0, 0, 1])],
    };
    Program {
        name: "bf16-gemm".into(),
        buffers,
        kernels: vec![Kernel::Gemm {
            a: View::dense(0, &[BATCH, M, K]),
            b: broadcast(1, &[BATCH, K, N], &[0, N as isize, 1]),
            out: View::dense(3, &[BATCH, M, N]),
            epilogue: Some(epilogue),
            compute,
        }],
        inputs: vec![(0, vec![BATCH, M, K])],
        outputs: vec![(3, vec![BATCH, M, N])],
    }
}

#[test]
fn bf16_gemm_with_epilogue_matches_rounded_reference() {
    let x = values(BATCH * M * K, 1);
    let w: Vec<bf16> = values(K * N, 2).into_iter().map(bf16::from_f32).collect();
    let bias = values(N, 3);
    let p = program(ConstData::BF16(Arc::new(w.clone())), &bias, GemmCompute::Bf16);
    p.validate().unwrap();
    let exe = Executable::new(p, vec![None; 4], 0).unwrap();
    let out = exe.run(&[InputData::F32(&x)]).unwrap();
    let y = &out[0];
    let mut differs_from_f32 = false;
    for b in 0..BATCH {
        for i in 0..M {
            for j in 0..N {
                let (mut s, mut mag, mut raw) = (0.0f64, 0.0f64, 0.0f64);
                for p in 0..K {
                    let a = x[(b * M + i) * K + p];
                    let wv = w[p * N + j].to_f64();
                    s += bf16::from_f32(a).to_f64() * wv;
                    raw += a as f64 * wv;
                    mag += (bf16::from_f32(a).to_f64() * wv).abs();
                }
                let want = (s + bias[j] as f64).max(0.0);
                let bound = (K as f64 + 1.0) * 2f64.powi(-23) * (mag + (bias[j] as f64).abs());
                let got = y[(b * M + i) * N + j] as f64;
                assert!((got - want).abs() <= bound, "({b},{i},{j}): got {got}, want {want} ± {bound}");
                let raw = (raw + bias[j] as f64).max(0.0);
                differs_from_f32 |= (got - raw).abs() > 10.0 * bound;
            }
        }
    }
    assert!(differs_from_f32, "the rounding of x to bf16 is not visible");
}

#[test]
fn bf16_gemm_with_f32_weights_is_an_error() {
    let w = values(K * N, 2);
    // `Program::validate` rejects this; the executor must not panic on it either.
    let p = program(ConstData::F32(Arc::new(w)), &values(N, 3), GemmCompute::Bf16);
    assert!(p.validate().is_err());
    let exe = Executable::new(p, vec![None; 4], 0).unwrap();
    let x = values(BATCH * M * K, 1);
    assert!(exe.run(&[InputData::F32(&x)]).is_err());
}
