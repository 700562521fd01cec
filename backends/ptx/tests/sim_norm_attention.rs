//! The softmax, layer normalization, reduce, pool and attention kernels, run on
//! the PTX interpreter, agree with the CPU backend: property tests over random
//! shapes (odd sizes, size-1 dims, rows shorter and longer than a warp, `T` not
//! a multiple of 32, `E` below, at and past 32 and past one column tile),
//! strided and offset inputs, broadcast scale/bias/mask views, and fixed tests
//! of the NaN and infinity cases (rows holding `±inf` or NaN, fully masked
//! attention rows, keys masked out for a whole first chunk).

mod common;

use common::sim::{assert_matches_cpu, random_inputs, run_cpu, run_sim};
use common::{P, Rng};
use eqopt_kir::{Kernel, PoolKind, Program, ReduceKind, View, dense_strides};
use proptest::prelude::*;
use proptest::test_runner::Config;

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// A new input holding `shape` in a storage order picked by `layout` (dense,
/// or its dims permuted), at a small offset for odd `layout`.
fn input_view(p: &mut P, name: &str, shape: &[usize], layout: u64) -> View {
    let r = shape.len();
    let mut rng = Rng(layout.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    let mut order: Vec<usize> = (0..r).collect();
    if layout % 3 != 0 {
        for i in (1..r).rev() {
            order.swap(i, rng.below(i + 1));
        }
    }
    let offset = if layout % 2 == 1 { 1 + rng.below(4) } else { 0 };
    let storage: Vec<usize> = order.iter().map(|&d| shape[d]).collect();
    let ds = dense_strides(&storage);
    let mut strides = vec![0isize; r];
    for (i, &d) in order.iter().enumerate() {
        strides[d] = ds[i];
    }
    let b = p.input(name, &[offset + shape.iter().product::<usize>()]);
    View {
        buffer: b,
        offset,
        shape: shape.to_vec(),
        strides,
    }
}

/// A new input broadcast to `shape`: dims where `keep` is false have stride 0.
fn broadcast_input(p: &mut P, name: &str, shape: &[usize], keep: &[bool]) -> View {
    let held: Vec<usize> = shape.iter().zip(keep).map(|(&d, &k)| if k { d } else { 1 }).collect();
    let ds = dense_strides(&held);
    let strides = ds.iter().zip(keep).map(|(&s, &k)| if k { s } else { 0 }).collect();
    let b = p.input(name, &held);
    View {
        buffer: b,
        offset: 0,
        shape: shape.to_vec(),
        strides,
    }
}

/// Which dims of a rank-`r` view a mask bit set keeps.
fn bits(mask: u32, r: usize) -> Vec<bool> {
    (0..r).map(|d| mask >> d & 1 == 1).collect()
}

/// A row length: short, around a warp, several warps.
fn row_len() -> impl Strategy<Value = usize> {
    prop_oneof![1..=5usize, 30..=34usize, Just(64), 65..=100usize]
}

fn small_dims(max_rank: usize, max: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1..=max, 0..=max_rank)
}

fn softmax_program(outer: &[usize], n: usize, layout: u64) -> Program {
    let mut shape = outer.to_vec();
    shape.push(n);
    let mut p = P::new("softmax");
    let x = input_view(&mut p, "x", &shape, layout);
    let y = p.output("y", &shape);
    p.0.kernels.push(Kernel::Softmax {
        x,
        out: View::dense(y, &shape),
    });
    p.0
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn softmax_matches_cpu(outer in small_dims(3, 4), n in row_len(), layout in any::<u64>(), seed in any::<u64>()) {
        let program = softmax_program(&outer, n, layout);
        program.validate().unwrap();
        assert_matches_cpu(&program, seed, 1e-6, 1e-5);
    }

    #[test]
    fn layer_norm_matches_cpu(
        shape in prop::collection::vec(prop_oneof![1..=4usize, 30..=40usize], 1..=4),
        axis_pick in any::<usize>(),
        keep in (any::<u32>(), any::<u32>()),
        eps in prop_oneof![Just(1e-5f32), Just(1e-3), Just(0.1)],
        layout in any::<u64>(),
        seed in any::<u64>(),
    ) {
        let axis = axis_pick % shape.len();
        let norm = &shape[axis..];
        let mut p = P::new("layernorm");
        let x = input_view(&mut p, "x", &shape, layout);
        let scale = broadcast_input(&mut p, "scale", norm, &bits(keep.0, norm.len()));
        let bias = broadcast_input(&mut p, "bias", norm, &bits(keep.1, norm.len()));
        let y = p.output("y", &shape);
        p.0.kernels.push(Kernel::LayerNorm { x, scale, bias, axis, epsilon: eps, out: View::dense(y, &shape) });
        p.0.validate().unwrap();
        assert_matches_cpu(&p.0, seed, 1e-5, 1e-4);
    }

    #[test]
    fn reduce_matches_cpu(
        shape in prop::collection::vec(prop_oneof![1..=6usize, Just(40)], 1..=4),
        axes_bits in 1u32..16,
        kind in prop_oneof![Just(ReduceKind::Sum), Just(ReduceKind::Mean), Just(ReduceKind::Max)],
        layout in any::<u64>(),
        seed in any::<u64>(),
    ) {
        let r = shape.len();
        let mut axes: Vec<usize> = (0..r).filter(|&a| axes_bits >> a & 1 == 1).collect();
        if axes.is_empty() {
            axes.push(r - 1);
        }
        let kept: Vec<usize> = (0..r).map(|d| if axes.contains(&d) { 1 } else { shape[d] }).collect();
        let count: usize = axes.iter().map(|&a| shape[a]).product();
        let mut p = P::new("reduce");
        let x = input_view(&mut p, "x", &shape, layout);
        let y = p.output("y", &kept);
        p.0.kernels.push(Kernel::Reduce { kind, axes, x, out: View::dense(y, &kept) });
        p.0.validate().unwrap();
        // Sums of up to 64000 terms of [-1, 1) added in another order.
        assert_matches_cpu(&p.0, seed, 1e-6 + 1e-7 * count as f32, 1e-5);
    }

    #[test]
    fn pool_matches_cpu(
        (n, c, h, w) in (1..=2usize, 1..=4usize, 1..=9usize, 1..=9usize),
        (kh, kw) in (1..=3usize, 1..=3usize),
        strides in (1..=3usize, 1..=3usize),
        pads in any::<[u8; 4]>(),
        kind in prop_oneof![Just(PoolKind::Max), Just(PoolKind::AvgExcludePad), Just(PoolKind::AvgIncludePad)],
        nhwc in any::<bool>(),
        layout in any::<u64>(),
        seed in any::<u64>(),
    ) {
        // Pads smaller than the window (no window lies wholly in the padding).
        let pads = [pads[0] as usize % kh, pads[1] as usize % kw, pads[2] as usize % kh, pads[3] as usize % kw];
        let (ph, pw) = (h + pads[0] + pads[2], w + pads[1] + pads[3]);
        prop_assume!(ph >= kh && pw >= kw);
        let (oh, ow) = ((ph - kh) / strides.0 + 1, (pw - kw) / strides.1 + 1);
        let (xs, ys) = if nhwc { ([n, h, w, c], [n, oh, ow, c]) } else { ([n, c, h, w], [n, c, oh, ow]) };
        let mut p = P::new("pool");
        let x = input_view(&mut p, "x", &xs, layout);
        let y = p.output("y", &ys);
        p.0.kernels.push(Kernel::Pool {
            kind,
            kernel: [kh, kw],
            strides: [strides.0, strides.1],
            pads,
            nhwc,
            x,
            out: View::dense(y, &ys),
        });
        p.0.validate().unwrap();
        assert_matches_cpu(&p.0, seed, 1e-6, 1e-5);
    }
}

/// One attention case.
#[derive(Clone, Debug)]
struct Att {
    batch: Vec<usize>,
    s: usize,
    t: usize,
    d: usize,
    e: usize,
    /// Storage orders of q, k, v and the output (see [`input_view`]).
    layouts: [u64; 4],
    /// `None`: no mask; else the dims of `[.., S, T]` the mask holds (bits).
    mask: Option<u32>,
    divide: bool,
}

fn attention_program(a: &Att) -> Program {
    let r = a.batch.len() + 2;
    let with = |rows: usize, cols: usize| {
        let mut s = a.batch.clone();
        s.extend([rows, cols]);
        s
    };
    let mut p = P::new("attention");
    let q = input_view(&mut p, "q", &with(a.s, a.d), a.layouts[0]);
    // kt [.., D, T] as the transpose of a K stored [.., T, D] (or permuted further).
    let k = input_view(&mut p, "k", &with(a.t, a.d), a.layouts[1]);
    let mut kt = k.clone();
    kt.shape.swap(r - 2, r - 1);
    kt.strides.swap(r - 2, r - 1);
    let v = input_view(&mut p, "v", &with(a.t, a.e), a.layouts[2]);
    let mask = a.mask.map(|m| broadcast_input(&mut p, "mask", &with(a.s, a.t), &bits(m, r)));
    let scale = p.input("scale", &[1]);
    // The output: dense, or stored in a permuted order (a strided output view).
    let oshape = with(a.s, a.e);
    let mut order: Vec<usize> = (0..r).collect();
    if a.layouts[3] % 2 == 1 {
        // BSHD-like: the row dim outside the last batch dim (or [E, S] without batch dims).
        if r >= 3 {
            order.swap(r - 3, r - 2);
        } else {
            order.swap(0, 1);
        }
    }
    let storage: Vec<usize> = order.iter().map(|&d| oshape[d]).collect();
    let y = p.output("y", &storage);
    let ds = dense_strides(&storage);
    let mut ostrides = vec![0isize; r];
    for (i, &d) in order.iter().enumerate() {
        ostrides[d] = ds[i];
    }
    p.0.kernels.push(Kernel::Attention {
        q,
        kt,
        v,
        out: View {
            buffer: y,
            offset: 0,
            shape: oshape,
            strides: ostrides,
        },
        mask,
        scale: View::dense(scale, &[1]),
        divide: a.divide,
    });
    p.0
}

fn att_strategy() -> impl Strategy<Value = Att> {
    (
        prop::collection::vec(1..=3usize, 0..=2),
        1..=6usize,
        prop_oneof![1..=3usize, Just(7), 31..=33usize, Just(45), Just(64), Just(70)],
        prop_oneof![Just(1usize), Just(3), Just(4), Just(8), Just(17)],
        prop_oneof![1..=5usize, Just(20), 31..=33usize, Just(64), Just(100), Just(257), Just(300)],
        any::<[u64; 4]>(),
        prop::option::of(any::<u32>()),
        any::<bool>(),
    )
        .prop_map(|(batch, s, t, d, e, layouts, mask, divide)| Att {
            batch,
            s,
            t,
            d,
            e,
            layouts,
            mask,
            divide,
        })
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn attention_matches_cpu(a in att_strategy(), seed in any::<u64>()) {
        let program = attention_program(&a);
        program.validate().unwrap();
        assert_matches_cpu(&program, seed, 1e-5, 1e-4);
    }
}

/// Softmax rows holding `-inf`, `+inf` and NaN, large values, and rows of one
/// element, as constants: NaN exactly where the CPU gives NaN.
#[test]
fn softmax_special_values() {
    let (inf, nan) = (f32::INFINITY, f32::NAN);
    let n = 40;
    let rows: Vec<Vec<f32>> = vec![
        vec![-inf; n],
        (0..n).map(|i| if i == 7 { inf } else { i as f32 }).collect(),
        (0..n).map(|i| if i == 33 { nan } else { -(i as f32) }).collect(),
        (0..n).map(|i| if i % 3 == 0 { -inf } else { i as f32 * 0.1 }).collect(),
        (0..n).map(|i| if i == 39 { 80.0 } else { -80.0 }).collect(),
        (0..n).map(|i| 1e30 * if i % 2 == 0 { 1.0 } else { -1.0 }).collect(),
    ];
    let data: Vec<f32> = rows.concat();
    let mut p = P::new("softmax_special");
    let c = p.const_f32("x", data.clone());
    let y = p.output("y", &[rows.len(), n]);
    let y1 = p.output("y1", &[data.len(), 1]);
    p.0.kernels.push(Kernel::Softmax {
        x: View::dense(c, &[rows.len(), n]),
        out: View::dense(y, &[rows.len(), n]),
    });
    p.0.kernels.push(Kernel::Softmax {
        x: View::dense(c, &[data.len(), 1]),
        out: View::dense(y1, &[data.len(), 1]),
    });
    p.0.validate().unwrap();
    assert_matches_cpu(&p.0, 1, 1e-6, 1e-5);
}

/// Attention with `-inf` in the mask: a fully masked query row (NaN), keys
/// masked for the whole first chunk and more (the running maximum stays `-inf`
/// through a chunk), a single unmasked key, and masked keys in the last,
/// partial chunk.
#[test]
fn attention_with_masked_keys() {
    let (s, t, d, e) = (5, 70, 6, 40);
    let ninf = f32::NEG_INFINITY;
    let mut mask = vec![0.0f32; s * t];
    for j in 0..t {
        mask[j] = ninf; // row 0: everything masked
        if j < 40 {
            mask[t + j] = ninf; // row 1: the first 40 keys
        }
        if j != 50 {
            mask[2 * t + j] = ninf; // row 2: only key 50
        }
        if j >= 64 {
            mask[3 * t + j] = ninf; // row 3: the partial chunk
        }
        mask[4 * t + j] = (j as f32 * 0.37).sin(); // row 4: finite
    }
    for divide in [false, true] {
        let mut p = P::new("attention_masked");
        let q = p.input("q", &[2, s, d]);
        let k = p.input("k", &[2, t, d]);
        let v = p.input("v", &[2, t, e]);
        let m = p.const_f32("mask", mask.clone());
        let scale = p.input("scale", &[1]);
        let y = p.output("y", &[2, s, e]);
        p.0.kernels.push(Kernel::Attention {
            q: View::dense(q, &[2, s, d]),
            kt: View {
                buffer: k,
                offset: 0,
                shape: vec![2, d, t],
                strides: vec![(t * d) as isize, 1, d as isize],
            },
            v: View::dense(v, &[2, t, e]),
            out: View::dense(y, &[2, s, e]),
            mask: Some(View {
                buffer: m,
                offset: 0,
                shape: vec![2, s, t],
                strides: vec![0, t as isize, 1],
            }),
            scale: View::dense(scale, &[1]),
            divide,
        });
        p.0.validate().unwrap();
        assert_matches_cpu(&p.0, 7, 1e-5, 1e-4);
    }
}

/// Reductions over an axis of size 0 (sum 0, mean NaN, max `-inf`), and a max
/// over values holding NaN (ignored).
#[test]
fn reduce_empty_and_nan() {
    let mut p = P::new("reduce_edge");
    let x = p.input("x", &[3, 0, 2]);
    for (i, kind) in [ReduceKind::Sum, ReduceKind::Mean, ReduceKind::Max].into_iter().enumerate() {
        let y = p.output(&format!("y{i}"), &[3, 1, 2]);
        p.0.kernels.push(Kernel::Reduce {
            kind,
            axes: vec![1],
            x: View::dense(x, &[3, 0, 2]),
            out: View::dense(y, &[3, 1, 2]),
        });
    }
    let nan = f32::NAN;
    let c = p.const_f32("c", vec![1.0, nan, -3.0, nan, nan, 2.0, 0.5, -1.0]);
    let y = p.output("ymax", &[2, 1]);
    p.0.kernels.push(Kernel::Reduce {
        kind: ReduceKind::Max,
        axes: vec![1],
        x: View::dense(c, &[2, 4]),
        out: View::dense(y, &[2, 1]),
    });
    p.0.validate().unwrap();
    assert_same_as_cpu(&p.0, 3);
}

/// Runs `program` on the interpreter and the CPU backend with seeded random
/// inputs and asserts the outputs are the same values (infinities included;
/// NaN where the other is NaN).
fn assert_same_as_cpu(program: &Program, seed: u64) {
    let inputs = random_inputs(program, seed, 4);
    let (sim, cpu) = (run_sim(program, &inputs), run_cpu(program, &inputs));
    for (o, (s, c)) in sim.iter().zip(&cpu).enumerate() {
        assert_eq!(s.len(), c.len());
        for (i, (&a, &b)) in s.iter().zip(c).enumerate() {
            assert!(
                a == b || (a.is_nan() && b.is_nan()),
                "{}: output {o}[{i}]: PTX {a}, CPU {b}",
                program.name
            );
        }
    }
}

/// Layer normalization of rows far from zero (about 1000 ± 1) and of constant
/// rows (variance 0: the output is the bias).
#[test]
fn layer_norm_offset_and_constant_rows() {
    let (rows, n) = (6, 45);
    let mut rng = Rng(99);
    let mut data: Vec<f32> = (0..rows * n).map(|_| 1000.0 + rng.next_f32()).collect();
    data[4 * n..5 * n].fill(3.5);
    data[5 * n..].fill(-1e3);
    let mut p = P::new("layernorm_offset");
    let x = p.const_f32("x", data);
    let scale = p.input("scale", &[n]);
    let bias = p.input("bias", &[n]);
    let y = p.output("y", &[rows, n]);
    p.0.kernels.push(Kernel::LayerNorm {
        x: View::dense(x, &[rows, n]),
        scale: View::dense(scale, &[n]),
        bias: View::dense(bias, &[n]),
        axis: 1,
        epsilon: 1e-5,
        out: View::dense(y, &[rows, n]),
    });
    p.0.validate().unwrap();
    assert_matches_cpu(&p.0, 5, 1e-4, 1e-4);
}

/// Attention over no keys (`T = 0`): every output NaN, as on the CPU.
#[test]
fn attention_without_keys() {
    let (s, d, e) = (3, 4, 5);
    let mut p = P::new("attention_no_keys");
    let q = p.input("q", &[s, d]);
    let k = p.input("k", &[0, d]);
    let v = p.input("v", &[0, e]);
    let scale = p.input("scale", &[1]);
    let y = p.output("y", &[s, e]);
    p.0.kernels.push(Kernel::Attention {
        q: View::dense(q, &[s, d]),
        kt: View {
            buffer: k,
            offset: 0,
            shape: vec![d, 0],
            strides: vec![1, d as isize],
        },
        v: View::dense(v, &[0, e]),
        out: View::dense(y, &[s, e]),
        mask: None,
        scale: View::dense(scale, &[1]),
        divide: false,
    });
    p.0.validate().unwrap();
    assert_same_as_cpu(&p.0, 2);
    let inputs = random_inputs(&p.0, 2, 4);
    assert!(run_sim(&p.0, &inputs)[0].iter().all(|v| v.is_nan()));
}
