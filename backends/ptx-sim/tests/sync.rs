//! Shared memory and barriers, warp shuffles, and `mma.sync`.

mod common;

use common::*;
use eqopt_ptx_sim::{Device, Launch};

const BLOCK_SUM: &str = r#".version 8.0
.target sm_80
.address_size 64

// out[block] = sum of in[block * ntid .. (block + 1) * ntid], a tree in shared memory
.visible .entry block_sum(
    .param .u64 block_sum_param_0,
    .param .u64 block_sum_param_1
)
.maxntid 256, 1, 1
{
    .reg .pred %p<3>;
    .reg .b32 %r<12>;
    .reg .b64 %rd<8>;
    .reg .f32 %f<4>;
    .shared .align 4 .b8 pad_smem[12];
    .shared .align 16 .b8 block_sum_smem[1024];

    ld.param.u64 %rd1, [block_sum_param_0];
    ld.param.u64 %rd2, [block_sum_param_1];
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mad.lo.s32 %r4, %r2, %r3, %r1;
    mul.wide.u32 %rd3, %r4, 4;
    add.s64 %rd4, %rd1, %rd3;
    ld.global.f32 %f1, [%rd4];
    mov.u32 %r5, block_sum_smem;
    shl.b32 %r6, %r1, 2;
    add.s32 %r7, %r5, %r6;
    st.shared.f32 [%r7], %f1;
    bar.sync 0;
    shr.u32 %r8, %r3, 1;
$L__loop:
    setp.eq.s32 %p1, %r8, 0;
    @%p1 bra $L__end;
    setp.ge.u32 %p2, %r1, %r8;
    @%p2 bra $L__skip;
    shl.b32 %r9, %r8, 2;
    add.s32 %r10, %r7, %r9;
    ld.shared.f32 %f2, [%r10];
    ld.shared.f32 %f3, [%r7];
    add.f32 %f3, %f3, %f2;
    st.shared.f32 [%r7], %f3;
$L__skip:
    bar.sync 0;
    shr.u32 %r8, %r8, 1;
    bra.uni $L__loop;
$L__end:
    setp.ne.s32 %p1, %r1, 0;
    @%p1 bra $L__out;
    ld.shared.f32 %f1, [%r5];
    mul.wide.u32 %rd5, %r2, 4;
    add.s64 %rd6, %rd2, %rd5;
    st.global.f32 [%rd6], %f1;
$L__out:
    ret;
}

// out[2 * block] = shared word 0 at block start; out[2 * block + 1] = offset of the second array
.visible .entry shared_state(
    .param .u64 shared_state_param_0
)
{
    .reg .b32 %r<6>;
    .reg .b64 %rd<4>;
    .shared .align 4 .b8 first_smem[6];
    .shared .align 8 .b8 second_smem[8];

    ld.param.u64 %rd1, [shared_state_param_0];
    mov.u32 %r1, first_smem;
    ld.shared.u32 %r2, [%r1];
    mov.u32 %r3, %ctaid.x;
    mul.wide.u32 %rd2, %r3, 8;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r2;
    mov.u32 %r4, second_smem;
    st.global.u32 [%rd3+4], %r4;
    mov.u32 %r5, 7;
    st.shared.u32 [%r1], %r5;
    st.shared.b32 [%r4+4], %r5;
    ret;
}
"#;

#[test]
fn shared_memory_block_reduction_with_barriers() {
    let m = module(BLOCK_SUM);
    assert_eq!(m.entries(), ["block_sum", "shared_state"]);
    let (blocks, threads) = (5usize, 256usize);
    // Integer values: every summation order gives the exact sum.
    let input: Vec<f32> = (0..blocks * threads).map(|i| ((i * 37) % 101) as f32 - 50.0).collect();
    let mut dev = Device::new();
    let pin = upload_f32(&mut dev, &input);
    let out = dev.alloc(4 * blocks);
    let stats = run1d(&mut dev, &m, "block_sum", blocks as u32, threads as u32, &[pin, out]).unwrap();
    assert_eq!(stats.blocks, blocks as u64);
    let got = download_f32(&dev, out, blocks);
    for b in 0..blocks {
        assert_eq!(got[b], input[b * threads..(b + 1) * threads].iter().sum::<f32>(), "block {b}");
    }
    // A smaller block (the loop adapts to ntid).
    let stats = run1d(&mut dev, &m, "block_sum", 2, 64, &[pin, out]).unwrap();
    assert_eq!(stats.blocks, 2);
    assert_eq!(
        download_f32(&dev, out, 2),
        [input[..64].iter().sum::<f32>(), input[64..128].iter().sum::<f32>()]
    );
}

#[test]
fn shared_arrays_are_aligned_and_zeroed_per_block() {
    let m = module(BLOCK_SUM);
    let mut dev = Device::new();
    let out = dev.alloc(4 * 2 * 3);
    run1d(&mut dev, &m, "shared_state", 3, 1, &[out]).unwrap();
    // Block 0 wrote 7 to word 0 but each block starts from zeros; the second
    // array follows the 6-byte first one at the next multiple of 8.
    assert_eq!(download_u32(&dev, out, 6), [0, 8, 0, 8, 0, 8]);
}

const SHUFFLES: &str = r#".version 8.0
.target sm_90
.address_size 64

// out[tid] = sum over the warp of in[tid] (butterfly)
.visible .entry warp_sum(
    .param .u64 warp_sum_param_0,
    .param .u64 warp_sum_param_1
)
{
    .reg .b32 %r<3>;
    .reg .b64 %rd<6>;
    .reg .f32 %f<3>;

    ld.param.u64 %rd1, [warp_sum_param_0];
    ld.param.u64 %rd2, [warp_sum_param_1];
    mov.u32 %r1, %tid.x;
    mul.wide.u32 %rd3, %r1, 4;
    add.s64 %rd4, %rd1, %rd3;
    ld.global.f32 %f1, [%rd4];
    shfl.sync.bfly.b32 %f2, %f1, 16, 31, 0xffffffff;
    add.f32 %f1, %f1, %f2;
    shfl.sync.bfly.b32 %f2, %f1, 8, 31, 0xffffffff;
    add.f32 %f1, %f1, %f2;
    shfl.sync.bfly.b32 %f2, %f1, 4, 31, 0xffffffff;
    add.f32 %f1, %f1, %f2;
    shfl.sync.bfly.b32 %f2, %f1, 2, 31, 0xffffffff;
    add.f32 %f1, %f1, %f2;
    shfl.sync.bfly.b32 %f2, %f1, 1, 31, 0xffffffff;
    add.f32 %f1, %f1, %f2;
    add.s64 %rd5, %rd2, %rd3;
    st.global.f32 [%rd5], %f1;
    ret;
}

// out[3 tid] = value of lane src (idx), out[3 tid + 1] = value of lane + delta or own (down),
// out[3 tid + 2] = value of lane ^ delta (bfly by register); value = 100 * warp + lane
.visible .entry shuffles(
    .param .u64 shuffles_param_0,
    .param .u64 shuffles_param_1,
    .param .u64 shuffles_param_2
)
{
    .reg .b32 %r<12>;
    .reg .b64 %rd<8>;

    ld.param.u64 %rd1, [shuffles_param_0];
    ld.param.u64 %rd2, [shuffles_param_1];
    ld.param.u64 %rd3, [shuffles_param_2];
    cvt.u32.u64 %r1, %rd2;
    cvt.u32.u64 %r2, %rd3;
    mov.u32 %r3, %tid.x;
    mov.u32 %r4, %laneid;
    shr.u32 %r5, %r3, 5;
    mad.lo.u32 %r6, %r5, 100, %r4;
    shfl.sync.idx.b32 %r7, %r6, %r1, 31, 0xffffffff;
    shfl.sync.down.b32 %r8, %r6, %r2, 31, 0xffffffff;
    shfl.sync.bfly.b32 %r9, %r6, %r2, 31, 0xffffffff;
    mul.wide.u32 %rd4, %r3, 12;
    add.s64 %rd5, %rd1, %rd4;
    st.global.u32 [%rd5], %r7;
    st.global.u32 [%rd5+4], %r8;
    st.global.u32 [%rd5+8], %r9;
    ret;
}
"#;

#[test]
fn warp_butterfly_reduction() {
    let m = module(SHUFFLES);
    let n = 96;
    let input: Vec<f32> = (0..n).map(|i| (i as f32) * 0.25 - 3.0).collect();
    let mut dev = Device::new();
    let pin = upload_f32(&mut dev, &input);
    let out = dev.alloc(4 * n);
    run1d(&mut dev, &m, "warp_sum", 1, n as u32, &[pin, out]).unwrap();
    let got = download_f32(&dev, out, n);
    for w in 0..3 {
        let sum: f32 = input[32 * w..32 * w + 32].iter().sum();
        for lane in 0..32 {
            // Quarter multiples: exact in any order.
            assert_eq!(got[32 * w + lane], sum, "warp {w} lane {lane}");
        }
    }
}

#[test]
fn shuffle_idx_broadcast_down_and_register_butterfly() {
    let m = module(SHUFFLES);
    let mut dev = Device::new();
    let n = 64;
    let out = dev.alloc(12 * n);
    for (src, delta) in [(5u64, 3u64), (31, 16), (0, 1), (37, 33)] {
        run1d(&mut dev, &m, "shuffles", 1, n as u32, &[out, src, delta]).unwrap();
        let got = download_u32(&dev, out, 3 * n);
        let (src, delta) = (src as u32 & 31, delta as u32 & 31);
        for t in 0..n as u32 {
            let (w, lane) = (t / 32, t % 32);
            let down = if lane + delta <= 31 { lane + delta } else { lane };
            assert_eq!(got[3 * t as usize], 100 * w + src, "idx, thread {t}");
            assert_eq!(got[3 * t as usize + 1], 100 * w + down, "down, thread {t}");
            assert_eq!(got[3 * t as usize + 2], 100 * w + (lane ^ delta), "bfly, thread {t}");
        }
    }
}

const MMA: &str = r#".version 8.0
.target sm_80
.address_size 64

// D = A B + C for one 16x16 (bf16, row-major) by 16x8 (bf16, row-major in memory) tile, C and D f32 16x8
.visible .entry mma_tile(
    .param .u64 mma_tile_param_0,
    .param .u64 mma_tile_param_1,
    .param .u64 mma_tile_param_2,
    .param .u64 mma_tile_param_3
)
{
    .reg .b16 %h<4>;
    .reg .b32 %r<24>;
    .reg .b64 %rd<24>;
    .reg .f32 %f<8>;

    ld.param.u64 %rd1, [mma_tile_param_0];
    ld.param.u64 %rd2, [mma_tile_param_1];
    ld.param.u64 %rd3, [mma_tile_param_2];
    ld.param.u64 %rd4, [mma_tile_param_3];
    mov.u32 %r1, %laneid;
    shr.u32 %r2, %r1, 2;              // g
    and.b32 %r3, %r1, 3;              // t
    shl.b32 %r4, %r3, 1;              // 2t
    // A: element (row, col) at 2 * (16 row + col)
    mad.lo.u32 %r5, %r2, 16, %r4;     // 16g + 2t
    mul.wide.u32 %rd5, %r5, 2;
    add.s64 %rd6, %rd1, %rd5;
    ld.global.b32 %r10, [%rd6];       // a0 = A[g][2t..2t+2]
    ld.global.b32 %r11, [%rd6+256];   // a1 = A[g+8][2t..]
    ld.global.b32 %r12, [%rd6+16];    // a2 = A[g][2t+8..]
    ld.global.b32 %r13, [%rd6+272];   // a3 = A[g+8][2t+8..]
    // B: element (k, n) at 2 * (8 k + n); b0 = {B[2t][g], B[2t+1][g]}, b1 = rows + 8
    mad.lo.u32 %r6, %r4, 8, %r2;
    mul.wide.u32 %rd7, %r6, 2;
    add.s64 %rd8, %rd2, %rd7;
    ld.global.b16 %h0, [%rd8];
    ld.global.b16 %h1, [%rd8+16];
    mov.b32 %r14, {%h0, %h1};
    ld.global.b16 %h2, [%rd8+128];
    ld.global.b16 %h3, [%rd8+144];
    mov.b32 %r15, {%h2, %h3};
    // C, D: element (row, col) at 4 * (8 row + col); c0 = C[g][2t], c1 = C[g][2t+1], c2, c3 = rows + 8
    mad.lo.u32 %r7, %r2, 8, %r4;
    mul.wide.u32 %rd9, %r7, 4;
    add.s64 %rd10, %rd3, %rd9;
    ld.global.f32 %f0, [%rd10];
    ld.global.f32 %f1, [%rd10+4];
    ld.global.f32 %f2, [%rd10+256];
    ld.global.f32 %f3, [%rd10+260];
    mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%f4, %f5, %f6, %f7}, {%r10, %r11, %r12, %r13}, {%r14, %r15}, {%f0, %f1, %f2, %f3};
    add.s64 %rd11, %rd4, %rd9;
    st.global.f32 [%rd11], %f4;
    st.global.f32 [%rd11+4], %f5;
    st.global.f32 [%rd11+256], %f6;
    st.global.f32 [%rd11+260], %f7;
    // In place (D aliases C): C + 2 A B.
    mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%f0, %f1, %f2, %f3}, {%r10, %r11, %r12, %r13}, {%r14, %r15}, {%f0, %f1, %f2, %f3};
    mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%f0, %f1, %f2, %f3}, {%r10, %r11, %r12, %r13}, {%r14, %r15}, {%f0, %f1, %f2, %f3};
    add.s64 %rd12, %rd11, 512;
    st.global.f32 [%rd12], %f0;
    st.global.f32 [%rd12+4], %f1;
    st.global.f32 [%rd12+256], %f2;
    st.global.f32 [%rd12+260], %f3;
    ret;
}
"#;

fn bf16(x: f32) -> u16 {
    half::bf16::from_f32(x).to_bits()
}

fn unbf16(h: u16) -> f32 {
    half::bf16::from_bits(h).to_f32()
}

/// The interpreter's documented order: acc = C, then acc += A[i][k] * B[k][j] for k ascending, in f32.
fn reference(a: &[u16], b: &[u16], c: &[f32]) -> Vec<f32> {
    let mut d = vec![0f32; 128];
    for i in 0..16 {
        for j in 0..8 {
            let mut acc = c[8 * i + j];
            for k in 0..16 {
                acc += unbf16(a[16 * i + k]) * unbf16(b[8 * k + j]);
            }
            d[8 * i + j] = acc;
        }
    }
    d
}

#[test]
fn mma_matches_a_scalar_reference_on_random_bf16() {
    let m = module(MMA);
    for seed in 1..=20u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let a: Vec<u16> = (0..256).map(|_| bf16(rng.unit() * 4.0)).collect();
        let b: Vec<u16> = (0..128).map(|_| bf16(rng.unit() * 4.0)).collect();
        let c: Vec<f32> = (0..128).map(|_| rng.unit()).collect();
        let mut dev = Device::new();
        let (pa, pb, pc) = (upload_u16(&mut dev, &a), upload_u16(&mut dev, &b), upload_f32(&mut dev, &c));
        let pd = dev.alloc(4 * 256);
        let stats = run1d(&mut dev, &m, "mma_tile", 1, 32, &[pa, pb, pc, pd]).unwrap();
        assert_eq!(stats.blocks, 1);
        let d = download_f32(&dev, pd, 256);
        let want = reference(&a, &b, &c);
        assert_eq!(&d[..128], &want[..], "seed {seed}");
        let twice = reference(&a, &b, &want);
        assert_eq!(&d[128..], &twice[..], "in-place accumulation, seed {seed}");
        // Independent of the summation order: close to the f64 product.
        for i in 0..16 {
            for j in 0..8 {
                let exact: f64 = f64::from(c[8 * i + j])
                    + (0..16)
                        .map(|k| f64::from(unbf16(a[16 * i + k])) * f64::from(unbf16(b[8 * k + j])))
                        .sum::<f64>();
                assert!(
                    (f64::from(d[8 * i + j]) - exact).abs() < 1e-4,
                    "seed {seed} D[{i}][{j}] = {} vs {exact}",
                    d[8 * i + j]
                );
            }
        }
    }
}

#[test]
fn mma_fragment_layout_places_each_element() {
    // A = the identity's first 16 columns, B[k][n] = 16 n + k: D = B exactly, so any
    // misplaced fragment element shows as a wrong value.
    let m = module(MMA);
    let a: Vec<u16> = (0..256).map(|i| bf16(if i / 16 == i % 16 { 1.0 } else { 0.0 })).collect();
    let b: Vec<u16> = (0..128).map(|i| bf16(((i % 8) * 16 + i / 8) as f32)).collect();
    let c = vec![0.5f32; 128];
    let mut dev = Device::new();
    let (pa, pb, pc) = (upload_u16(&mut dev, &a), upload_u16(&mut dev, &b), upload_f32(&mut dev, &c));
    let pd = dev.alloc(4 * 256);
    dev.launch(&m, "mma_tile", &Launch::new([1, 1, 1], [32, 1, 1]), &[pa, pb, pc, pd])
        .unwrap();
    let d = download_f32(&dev, pd, 128);
    for i in 0..16 {
        for j in 0..8 {
            assert_eq!(d[8 * i + j], (16 * j + i) as f32 + 0.5, "D[{i}][{j}]");
        }
    }
}
