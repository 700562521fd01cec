//! Straight-line and control-flow kernels: grid indexing with a bounds guard,
//! special registers, predication, moves, narrow and half-precision loads,
//! bf16 packing.

mod common;

use common::*;
use eqopt_ptx_sim::{Device, Launch, Module};

const VADD: &str = r#".version 8.0
.target sm_80
.address_size 64

// c[i] = a[i] + b[i] for i < n
.visible .entry vadd(
    .param .u64 vadd_param_0,
    .param .u64 vadd_param_1,
    .param .u64 vadd_param_2,
    .param .u64 vadd_param_3
)
.maxntid 128, 1, 1
{
    .reg .pred %p<2>;
    .reg .b32 %r<6>;
    .reg .b64 %rd<12>;
    .reg .f32 %f<4>;

    ld.param.u64 %rd1, [vadd_param_0];
    ld.param.u64 %rd2, [vadd_param_1];
    ld.param.u64 %rd3, [vadd_param_2];
    ld.param.u64 %rd4, [vadd_param_3];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    cvta.to.global.u64 %rd3, %rd3;
    mov.u32 %r1, %ctaid.x;
    mov.u32 %r2, %ntid.x;
    mov.u32 %r3, %tid.x;
    mad.lo.s32 %r4, %r1, %r2, %r3;
    cvt.u64.u32 %rd5, %r4;
    setp.ge.u64 %p1, %rd5, %rd4;
    @%p1 bra $L__done;
    mul.wide.u32 %rd6, %r4, 4;
    add.s64 %rd7, %rd1, %rd6;
    ld.global.nc.f32 %f1, [%rd7];
    add.s64 %rd8, %rd2, %rd6;
    ld.global.f32 %f2, [%rd8];
    add.rn.f32 %f3, %f1, %f2;
    add.s64 %rd9, %rd3, %rd6;
    st.global.f32 [%rd9], %f3;
$L__done:
    ret;
}
"#;

#[test]
fn vector_add_over_a_grid_with_bounds_guard() {
    let m = module(VADD);
    assert_eq!(m.entries(), ["vadd"]);
    assert_eq!(m.target(), "sm_80");
    let n = 1000;
    let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
    let b: Vec<f32> = (0..n).map(|i| 1000.0 - i as f32).collect();
    let mut dev = Device::new();
    let (pa, pb) = (upload_f32(&mut dev, &a), upload_f32(&mut dev, &b));
    // Exactly n floats: a thread past the guard would fault on the store.
    let pc = dev.alloc(4 * n);
    let stats = run1d(&mut dev, &m, "vadd", 8, 128, &[pa, pb, pc, n as u64]).unwrap();
    assert_eq!(stats.blocks, 8);
    let c = download_f32(&dev, pc, n);
    for i in 0..n {
        assert_eq!(c[i], a[i] + b[i], "element {i}");
    }
    // 1000 threads issue 23 instructions; 24 issue 14 and branch to ret (15).
    assert_eq!(stats.instructions, 1000 * 23 + 24 * 15);
}

const SPECIALS: &str = r#".version 8.0
.target sm_90
.address_size 64

// out[linear global thread][k] = the 13 special registers
.visible .entry specials(
    .param .u64 specials_param_0
)
{
    .reg .b32 %r<20>;
    .reg .b64 %rd<4>;

    ld.param.u64 %rd1, [specials_param_0];
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, %tid.y;
    mov.u32 %r3, %tid.z;
    mov.u32 %r4, %ntid.x;
    mov.u32 %r5, %ntid.y;
    mov.u32 %r6, %ntid.z;
    mov.u32 %r7, %ctaid.x;
    mov.u32 %r8, %ctaid.y;
    mov.u32 %r9, %ctaid.z;
    mov.u32 %r10, %nctaid.x;
    mov.u32 %r11, %nctaid.y;
    mov.u32 %r12, %nctaid.z;
    mov.u32 %r13, %laneid;
    // block linear = (ctaid.z * nctaid.y + ctaid.y) * nctaid.x + ctaid.x
    mad.lo.u32 %r14, %r9, %r11, %r8;
    mad.lo.u32 %r14, %r14, %r10, %r7;
    // thread linear = (tid.z * ntid.y + tid.y) * ntid.x + tid.x
    mad.lo.u32 %r15, %r3, %r5, %r2;
    mad.lo.u32 %r15, %r15, %r4, %r1;
    mul.lo.u32 %r16, %r4, %r5;
    mul.lo.u32 %r16, %r16, %r6;
    mad.lo.u32 %r17, %r14, %r16, %r15;
    mul.wide.u32 %rd2, %r17, 52;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r1;
    st.global.u32 [%rd3+4], %r2;
    st.global.u32 [%rd3+8], %r3;
    st.global.u32 [%rd3+12], %r4;
    st.global.u32 [%rd3+16], %r5;
    st.global.u32 [%rd3+20], %r6;
    st.global.u32 [%rd3+24], %r7;
    st.global.u32 [%rd3+28], %r8;
    st.global.u32 [%rd3+32], %r9;
    st.global.u32 [%rd3+36], %r10;
    st.global.u32 [%rd3+40], %r11;
    st.global.u32 [%rd3+44], %r12;
    st.global.u32 [%rd3+48], %r13;
    ret;
}
"#;

#[test]
fn special_registers_in_a_3d_grid_of_3d_blocks() {
    let m = module(SPECIALS);
    assert_eq!(m.target(), "sm_90");
    let (grid, block) = ([3u32, 2, 2], [5u32, 4, 3]);
    let per_block = 60;
    let total = 12 * per_block;
    let mut dev = Device::new();
    let out = dev.alloc(total * 52);
    let stats = dev.launch(&m, "specials", &Launch::new(grid, block), &[out]).unwrap();
    assert_eq!(stats.blocks, 12);
    let v = download_u32(&dev, out, total * 13);
    let mut seen = 0;
    for bz in 0..2 {
        for by in 0..2 {
            for bx in 0..3 {
                for tz in 0..3 {
                    for ty in 0..4 {
                        for tx in 0..5 {
                            let b = (bz * 2 + by) * 3 + bx;
                            let t = (tz * 4 + ty) * 5 + tx;
                            let row = &v[(b * per_block + t) * 13..][..13];
                            let want = [tx, ty, tz, 5, 4, 3, bx, by, bz, 3, 2, 2, t % 32];
                            assert_eq!(row, want.map(|x| x as u32), "block {b} thread {t}");
                            seen += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(seen, total);
}

const PREDICATES: &str = r#".version 8.0
.target sm_80
.address_size 64

.visible .entry preds(
    .param .u64 preds_param_0
)
{
    .reg .pred %p<8>;
    .reg .b32 %r<12>;
    .reg .b64 %rd<4>;

    ld.param.u64 %rd1, [preds_param_0];
    mov.u32 %r1, %tid.x;
    mul.wide.u32 %rd2, %r1, 32;
    add.s64 %rd3, %rd1, %rd2;
    setp.lt.u32 %p1, %r1, 4;          // p = tid < 4
    and.b32 %r2, %r1, 1;
    setp.ne.s32 %p2, %r2, 0;          // q = tid odd
    mov.u32 %r3, 100;
    @%p1 add.s32 %r3, %r3, 1;
    @!%p2 add.s32 %r3, %r3, 10;
    st.global.u32 [%rd3], %r3;
    and.pred %p3, %p1, %p2;
    or.pred %p4, %p1, %p2;
    xor.pred %p5, %p1, %p2;
    not.pred %p6, %p1;
    selp.u32 %r4, 1, 0, %p3;
    selp.u32 %r5, 1, 0, %p4;
    selp.u32 %r6, 1, 0, %p5;
    selp.u32 %r7, 1, 0, %p6;
    st.global.u32 [%rd3+4], %r4;
    st.global.u32 [%rd3+8], %r5;
    st.global.u32 [%rd3+12], %r6;
    st.global.u32 [%rd3+16], %r7;
    mov.u32 %r8, 7;
    @%p1 st.global.u32 [%rd3+20], %r8;
    mov.pred %p7, 0;
    @%p7 st.global.u32 [%rd3+24], %r8;
    mov.pred %p7, %p2;
    @%p7 ret;
    st.global.u32 [%rd3+28], %r8;
    ret;
}
"#;

#[test]
fn predicated_instructions_and_predicate_logic() {
    let m = module(PREDICATES);
    let mut dev = Device::new();
    let out = dev.alloc(8 * 32);
    run1d(&mut dev, &m, "preds", 1, 8, &[out]).unwrap();
    let v = download_u32(&dev, out, 8 * 8);
    for t in 0..8u32 {
        let (p, q) = (t < 4, t % 2 == 1);
        let want = [
            100 + u32::from(p) + if q { 0 } else { 10 },
            u32::from(p && q),
            u32::from(p || q),
            u32::from(p ^ q),
            u32::from(!p),
            if p { 7 } else { 0 },
            0,
            if q { 0 } else { 7 },
        ];
        assert_eq!(&v[t as usize * 8..][..8], want, "thread {t}");
    }
}

const MOVES_AND_LOADS: &str = r#".version 8.0
.target sm_80
.address_size 64

.visible .entry loads(
    .param .u64 loads_param_0,
    .param .u64 loads_param_1
)
{
    .reg .b16 %h<3>;
    .reg .b32 %r<12>;
    .reg .s32 %s<2>;
    .reg .b64 %rd<8>;
    .reg .u64 %ud<2>;
    .reg .f32 %f<6>;

    ld.param.u64 %rd1, [loads_param_0];
    ld.param.u64 %rd2, [loads_param_1];
    ld.global.u8 %r1, [%rd1+3];       // 0xf3
    ld.global.s8 %r2, [%rd1+3];       // sign-extended 0xfffffff3
    ld.global.u16 %r3, [%rd1+2];      // 0xf3f2
    ld.global.b16 %h1, [%rd1+4];      // f16 bits
    cvt.f32.f16 %f1, %h1;
    ld.global.b16 %h2, [%rd1+6];
    cvt.f32.f16 %f2, %h2;
    mov.b32 %r4, {%h1, %h2};
    ld.global.u64 %rd3, [%rd1+8];
    ld.global.s64 %ud1, [%rd1+8];
    ld.global.s32 %s1, [%rd1+16];
    ld.global.u32 %r5, [%rd1+-0];
    st.global.u32 [%rd2], %r1;
    st.global.u32 [%rd2+4], %r2;
    st.global.u32 [%rd2+8], %r3;
    st.global.f32 [%rd2+12], %f1;
    st.global.f32 [%rd2+16], %f2;
    st.global.u32 [%rd2+20], %r4;
    cvt.u32.u64 %r6, %rd3;
    shr.b64 %rd4, %ud1, 32;
    cvt.u32.u64 %r7, %rd4;
    st.global.u32 [%rd2+24], %r6;
    st.global.u32 [%rd2+28], %r7;
    st.global.u32 [%rd2+32], %s1;
    st.global.u32 [%rd2+36], %r5;
    mov.f32 %f3, 0f3fc00000;          // 1.5
    mov.b32 %r8, %f3;                 // reinterpret
    st.global.u32 [%rd2+40], %r8;
    mov.b32 %f4, %r3;
    st.global.f32 [%rd2+44], %f4;
    mov.s32 %r9, -2;
    st.global.u32 [%rd2+48], %r9;
    mov.u64 %rd5, 0x123456789;
    mov.b64 %rd6, %rd5;
    shr.u64 %rd6, %rd6, 4;
    cvt.u32.u64 %r10, %rd6;
    st.global.u32 [%rd2+52], %r10;
    mov.b32 %r11, 0f40490fdb;
    st.global.b32 [%rd2+56], %r11;
    ld.global.f32 %f5, [%rd2+56];
    add.f32 %f5, %f5, 0f3f800000;
    st.global.f32 [%rd2+60], %f5;
    ret;
}
"#;

#[test]
fn moves_narrow_loads_and_half_precision() {
    let m = module(MOVES_AND_LOADS);
    let mut dev = Device::new();
    let h1 = half::f16::from_f32(-2.75).to_bits();
    let h2 = half::f16::from_f32(65504.0).to_bits();
    let mut input = vec![0xf0u8, 0xf1, 0xf2, 0xf3];
    input.extend(h1.to_le_bytes());
    input.extend(h2.to_le_bytes());
    input.extend(0x8000_0001_2345_6789u64.to_le_bytes());
    input.extend((-5i32).to_le_bytes());
    input.extend([0; 4]);
    let pin = upload(&mut dev, &input);
    let out = dev.alloc(64);
    run1d(&mut dev, &m, "loads", 1, 1, &[pin, out]).unwrap();
    let v = download_u32(&dev, out, 16);
    assert_eq!(v[0], 0xf3);
    assert_eq!(v[1], 0xffff_fff3);
    assert_eq!(v[2], 0xf3f2);
    assert_eq!(f32::from_bits(v[3]), -2.75);
    assert_eq!(f32::from_bits(v[4]), 65504.0);
    assert_eq!(v[5], u32::from(h1) | (u32::from(h2) << 16));
    assert_eq!(v[6], 0x2345_6789);
    assert_eq!(v[7], 0x8000_0001);
    assert_eq!(v[8] as i32, -5);
    assert_eq!(v[9], 0xf3f2_f1f0);
    assert_eq!(f32::from_bits(v[10]), 1.5);
    assert_eq!(v[11], 0xf3f2);
    assert_eq!(v[12] as i32, -2);
    assert_eq!(v[13], 0x1234_5678);
    assert_eq!(f32::from_bits(v[14]), std::f32::consts::PI);
    assert_eq!(f32::from_bits(v[15]), std::f32::consts::PI + 1.0);
}

const BF16: &str = r#".version 8.0
.target sm_80
.address_size 64

// out[i] = bf16x2(hi = x[2i+1], lo = x[2i])
.visible .entry pack(
    .param .u64 pack_param_0,
    .param .u64 pack_param_1
)
{
    .reg .b32 %r<4>;
    .reg .b64 %rd<6>;
    .reg .f32 %f<3>;

    ld.param.u64 %rd1, [pack_param_0];
    ld.param.u64 %rd2, [pack_param_1];
    mov.u32 %r1, %tid.x;
    mul.wide.u32 %rd3, %r1, 8;
    add.s64 %rd4, %rd1, %rd3;
    ld.global.f32 %f1, [%rd4];
    ld.global.f32 %f2, [%rd4+4];
    cvt.rn.bf16x2.f32 %r2, %f2, %f1;
    mul.wide.u32 %rd3, %r1, 4;
    add.s64 %rd5, %rd2, %rd3;
    st.global.u32 [%rd5], %r2;
    ret;
}
"#;

#[test]
fn bf16x2_packing_rounds_to_nearest_even() {
    let m = module(BF16);
    let xs: Vec<f32> = vec![
        1.0,
        -3.0,
        f32::from_bits(0x3f80_8000), // tie: stays 1.0 (0x3f80)
        f32::from_bits(0x3f81_8000), // tie: rounds up to even 0x3f82
        f32::from_bits(0x3f80_8001), // above the tie: 0x3f81
        f32::from_bits(0xbf80_7fff), // below the tie: 0xbf80
        f32::MAX,                    // rounds to +inf
        f32::NAN,
        f32::INFINITY,
        -0.0,
        1e-40,                       // subnormal
        f32::from_bits(0x7f7f_0000), // largest finite bf16, exact
    ];
    let mut dev = Device::new();
    let pin = upload_f32(&mut dev, &xs);
    let out = dev.alloc(4 * xs.len() / 2);
    run1d(&mut dev, &m, "pack", 1, xs.len() as u32 / 2, &[pin, out]).unwrap();
    let v = download_u32(&dev, out, xs.len() / 2);
    let want_halves: [u16; 12] = [
        0x3f80, 0xc040, 0x3f80, 0x3f82, 0x3f81, 0xbf80, 0x7f80, 0x7fc0, 0x7f80, 0x8000, 0x0001, 0x7f7f,
    ];
    for i in 0..xs.len() / 2 {
        assert_eq!(v[i] & 0xffff, u32::from(want_halves[2 * i]), "lo of pair {i}");
        assert_eq!(v[i] >> 16, u32::from(want_halves[2 * i + 1]), "hi of pair {i}");
        // Finite, non-tie values agree with the half crate.
        for (k, half) in [(2 * i, v[i] & 0xffff), (2 * i + 1, v[i] >> 16)] {
            if !xs[k].is_nan() {
                assert_eq!(half as u16, half::bf16::from_f32(xs[k]).to_bits(), "value {}", xs[k]);
            }
        }
    }
}

const LOOP: &str = r#".version 8.0
.target sm_80
.address_size 64

// out[tid] = sum_{i < n} i * tid, by a counted loop (two loop labels, a backward branch)
.visible .entry sum_loop(
    .param .u64 sum_loop_param_0,
    .param .u64 sum_loop_param_1
)
{
    .reg .pred %p<2>;
    .reg .b32 %r<6>;
    .reg .b64 %rd<5>;

    ld.param.u64 %rd1, [sum_loop_param_0];
    ld.param.u64 %rd2, [sum_loop_param_1];
    cvt.u32.u64 %r1, %rd2;
    mov.u32 %r2, %tid.x;
    mov.u32 %r3, 0;
    mov.u32 %r4, 0;
    setp.eq.u32 %p1, %r1, 0;
    @%p1 bra.uni $L__end;
$L__loop:
    mad.lo.u32 %r4, %r3, %r2, %r4;
    add.u32 %r3, %r3, 1;
    setp.lt.u32 %p1, %r3, %r1;
    @%p1 bra $L__loop;
$L__end:
    mul.wide.u32 %rd3, %r2, 4;
    add.s64 %rd4, %rd1, %rd3;
    st.global.u32 [%rd4], %r4;
    ret;
}
"#;

#[test]
fn counted_loop_and_instruction_count() {
    let m = module(LOOP);
    let mut dev = Device::new();
    let out = dev.alloc(4 * 64);
    let n = 100u64;
    let stats = run1d(&mut dev, &m, "sum_loop", 1, 64, &[out, n]).unwrap();
    let v = download_u32(&dev, out, 64);
    for (t, &x) in v.iter().enumerate() {
        assert_eq!(x, (0..n as u32).map(|i| i * t as u32).sum::<u32>());
    }
    assert_eq!(stats.instructions, 64 * (8 + 4 * n + 4));
    // n = 0 skips the loop.
    let stats = run1d(&mut dev, &m, "sum_loop", 1, 64, &[out, 0]).unwrap();
    assert_eq!(stats.instructions, 64 * (8 + 4));
    assert_eq!(download_u32(&dev, out, 64), vec![0; 64]);
}

#[test]
fn module_with_several_entries_lists_them_in_file_order() {
    let two = format!(
        "{HEADER}{}{}",
        &VADD[VADD.find(".visible").unwrap()..],
        &LOOP[LOOP.find(".visible").unwrap()..]
    );
    let m: Module = module(&two);
    assert_eq!(m.entries(), ["vadd", "sum_loop"]);
}
