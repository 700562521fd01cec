//! Interpreter throughput, a measurement rather than a test (a timing must
//! not fail a test run): `cargo run --release -p eqopt-ptx-sim --example speed`.
//! Each case also checks its result and panics if it is wrong.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::*;
use eqopt_ptx_sim::{Device, Launch};

const KERNELS: &str = r#".version 8.0
.target sm_80
.address_size 64

// out[i] = x_n with x_0 = i, x_{k+1} = x_k * 0.5 + 1 (an ALU loop of 4 instructions)
.visible .entry alu_loop(
    .param .u64 alu_loop_param_0,
    .param .u64 alu_loop_param_1
)
{
    .reg .pred %p<2>;
    .reg .b32 %r<6>;
    .reg .b64 %rd<6>;
    .reg .f32 %f<3>;

    ld.param.u64 %rd1, [alu_loop_param_0];
    ld.param.u64 %rd2, [alu_loop_param_1];
    cvt.u32.u64 %r1, %rd2;
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mov.u32 %r4, %tid.x;
    mad.lo.s32 %r5, %r2, %r3, %r4;
    cvt.rn.f32.u32 %f1, %r5;
$L__loop:
    fma.rn.f32 %f1, %f1, 0f3f000000, 0f3f800000;
    sub.s32 %r1, %r1, 1;
    setp.ne.s32 %p1, %r1, 0;
    @%p1 bra $L__loop;
    mul.wide.u32 %rd3, %r5, 4;
    add.s64 %rd4, %rd1, %rd3;
    st.global.f32 [%rd4], %f1;
    ret;
}

// C (n x n) = A B, one thread per output, f32, row-major
.visible .entry matmul(
    .param .u64 matmul_param_0,
    .param .u64 matmul_param_1,
    .param .u64 matmul_param_2,
    .param .u64 matmul_param_3
)
{
    .reg .pred %p<2>;
    .reg .b32 %r<12>;
    .reg .b64 %rd<16>;
    .reg .f32 %f<4>;

    ld.param.u64 %rd1, [matmul_param_0];
    ld.param.u64 %rd2, [matmul_param_1];
    ld.param.u64 %rd3, [matmul_param_2];
    ld.param.u64 %rd4, [matmul_param_3];
    cvt.u32.u64 %r1, %rd4;
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mov.u32 %r4, %tid.x;
    mad.lo.s32 %r5, %r2, %r3, %r4;
    div.u32 %r6, %r5, %r1;            // row
    rem.u32 %r7, %r5, %r1;            // col
    mul.lo.s32 %r8, %r6, %r1;
    mul.wide.u32 %rd5, %r8, 4;
    add.s64 %rd6, %rd1, %rd5;         // &A[row][0]
    mul.wide.u32 %rd7, %r7, 4;
    add.s64 %rd8, %rd2, %rd7;         // &B[0][col]
    mul.wide.u32 %rd9, %r1, 4;        // row stride of B
    mov.f32 %f1, 0f00000000;
    mov.u32 %r9, %r1;
$L__k:
    ld.global.f32 %f2, [%rd6];
    ld.global.f32 %f3, [%rd8];
    fma.rn.f32 %f1, %f2, %f3, %f1;
    add.s64 %rd6, %rd6, 4;
    add.s64 %rd8, %rd8, %rd9;
    sub.s32 %r9, %r9, 1;
    setp.ne.s32 %p1, %r9, 0;
    @%p1 bra $L__k;
    mul.wide.u32 %rd10, %r5, 4;
    add.s64 %rd11, %rd3, %rd10;
    st.global.f32 [%rd11], %f1;
    ret;
}
"#;

fn main() {
    let m = module(KERNELS);
    let mut dev = Device::new();

    let (threads, iters) = (64 * 256, 2000u64);
    let out = dev.alloc(4 * threads);
    let t0 = Instant::now();
    let stats = dev
        .launch(&m, "alu_loop", &Launch::new([64, 1, 1], [256, 1, 1]), &[out, iters])
        .unwrap();
    let dt = t0.elapsed().as_secs_f64();
    println!(
        "alu_loop: {} instructions in {dt:.3} s = {:.1} M instructions/s",
        stats.instructions,
        stats.instructions as f64 / dt / 1e6
    );
    let got = download_f32(&dev, out, threads);
    let mut x = 7.0f32;
    for _ in 0..iters {
        x = x.mul_add(0.5, 1.0);
    }
    assert_eq!(got[7], x);

    let n = 256usize;
    let a: Vec<f32> = (0..n * n).map(|i| ((i % 7) as f32) - 3.0).collect();
    let b: Vec<f32> = (0..n * n).map(|i| ((i % 5) as f32) - 2.0).collect();
    let (pa, pb) = (upload_f32(&mut dev, &a), upload_f32(&mut dev, &b));
    let pc = dev.alloc(4 * n * n);
    let t0 = Instant::now();
    let stats = dev
        .launch(
            &m,
            "matmul",
            &Launch::new([(n * n / 256) as u32, 1, 1], [256, 1, 1]),
            &[pa, pb, pc, n as u64],
        )
        .unwrap();
    let dt = t0.elapsed().as_secs_f64();
    println!(
        "matmul {n}^3: {} instructions in {dt:.3} s = {:.1} M instructions/s",
        stats.instructions,
        stats.instructions as f64 / dt / 1e6
    );
    let c = download_f32(&dev, pc, n * n);
    let (i, j) = (17, 201);
    assert_eq!(c[i * n + j], (0..n).map(|k| a[i * n + k] * b[k * n + j]).sum::<f32>());
}
