//! GEMM against an f64 reference: strides/transposes, batches with broadcast,
//! f16/bf16 weights, epilogues, threading, argument errors; the packed
//! micro-kernels of every instruction set the CPU has (`gemm_with_isa`) on
//! tile-edge sizes, `k = 0`, large `k` and blocks beyond one cache block.

use eqopt_cpu::KernelError;
use eqopt_cpu::gemm::{BiasAct, Epilogue, GemmDims, MatLayout, Tile, WeightRef, gemm, gemm_with_isa, matmul};
use eqopt_cpu::simd::Isa;
use half::{bf16, f16};
use proptest::prelude::*;

fn rand_vec(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Reference product: returns (value, Σ|a·b|) per output element, row-major batch×m×n.
fn reference(d: GemmDims, a: &[f32], al: MatLayout, b: &dyn Fn(usize) -> f64, bl: MatLayout) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for bi in 0..d.batch {
        for i in 0..d.m {
            for j in 0..d.n {
                let (mut s, mut mag) = (0.0f64, 0.0f64);
                for p in 0..d.k {
                    let x = a[al.offset + bi * al.batch_stride + i * al.row_stride + p * al.col_stride] as f64;
                    let y = b(bl.offset + bi * bl.batch_stride + p * bl.row_stride + j * bl.col_stride);
                    s += x * y;
                    mag += (x * y).abs();
                }
                out.push((s, mag));
            }
        }
    }
    out
}

fn assert_close(got: &[f32], cl: MatLayout, d: GemmDims, want: &[(f64, f64)]) {
    for bi in 0..d.batch {
        for i in 0..d.m {
            for j in 0..d.n {
                let g = got[cl.offset + bi * cl.batch_stride + i * cl.row_stride + j] as f64;
                let (w, mag) = want[(bi * d.m + i) * d.n + j];
                assert!((g - w).abs() <= 1e-5 * mag + 1e-6, "({bi},{i},{j}): got {g}, want {w} (dims {d:?})");
            }
        }
    }
}

fn layout(rows: usize, cols: usize, transposed: bool, pad: usize, offset: usize, batch_stride_extra: usize) -> MatLayout {
    let base = if transposed {
        MatLayout {
            offset,
            row_stride: 1,
            col_stride: rows + pad,
            batch_stride: 0,
        }
    } else {
        MatLayout {
            offset,
            row_stride: cols + pad,
            col_stride: 1,
            batch_stride: 0,
        }
    };
    base.with_batch_stride(rows * cols + pad * rows.max(cols) + batch_stride_extra)
}

const SIZES: &[usize] = &[1, 2, 3, 7, 16, 17, 33, 65, 100];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn strided_batched_matches_reference(
        mi in 0..SIZES.len(), ki in 0..SIZES.len(), ni in 0..SIZES.len(),
        batch in 1usize..4, ta: bool, tb: bool, broadcast_b: bool, pad in 0usize..3, off in 0usize..5, precision in 0u8..3,
    ) {
        let (m, k, n) = (SIZES[mi], SIZES[ki], SIZES[ni]);
        let d = GemmDims { batch, m, k, n };
        let al = layout(m, k, ta, pad, off, 1);
        let mut bl = layout(k, n, tb, pad, off + 1, 0);
        if broadcast_b { bl = bl.broadcast(); }
        let a = rand_vec(al.span(batch, m, k).unwrap(), 1);
        let bf = rand_vec(bl.span(batch, k, n).unwrap(), 2);
        let cl = MatLayout { offset: 3, row_stride: n + pad, col_stride: 1, batch_stride: m * (n + pad) + 2 };
        let mut c = vec![f32::NAN; cl.span(batch, m, n).unwrap()];
        let b16: Vec<f16> = bf.iter().map(|&x| f16::from_f32(x)).collect();
        let bb16: Vec<bf16> = bf.iter().map(|&x| bf16::from_f32(x)).collect();
        let (w, get): (WeightRef<'_>, Box<dyn Fn(usize) -> f64>) = match precision {
            0 => (WeightRef::F32(&bf), Box::new(|i| bf[i] as f64)),
            1 => (WeightRef::F16(&b16), Box::new(|i| b16[i].to_f64())),
            _ => (WeightRef::BF16(&bb16), Box::new(|i| bb16[i].to_f64())),
        };
        gemm(d, &a, al, w, bl, &mut c, cl, None).unwrap();
        let want = reference(d, &a, al, &*get, bl);
        assert_close(&c, cl, d, &want);
    }
}

#[test]
fn large_k_sum_is_accurate() {
    for (m, k, n) in [(1, 4096, 33), (17, 2048, 65), (64, 3000, 16)] {
        let (a, b) = (rand_vec(m * k, 3), rand_vec(k * n, 4));
        let mut c = vec![0.0; m * n];
        matmul(m, k, n, &a, WeightRef::F32(&b), &mut c, None).unwrap();
        let d = GemmDims::new(m, k, n);
        let want = reference(d, &a, MatLayout::row_major(m, k), &|i| b[i] as f64, MatLayout::row_major(k, n));
        for (g, (w, mag)) in c.iter().zip(&want) {
            assert!((*g as f64 - w).abs() <= 1e-4 * mag.max(1.0), "{g} vs {w}");
        }
    }
}

#[test]
fn bias_relu_epilogue() {
    for (m, k, n) in [(1, 7, 33), (33, 17, 65), (130, 9, 300)] {
        let (a, b) = (rand_vec(m * k, 5), rand_vec(k * n, 6));
        let (cb, rb) = (rand_vec(n, 7), rand_vec(m, 8));
        let mut c = vec![0.0; m * n];
        let epi = BiasAct {
            col_bias: Some(&cb),
            row_bias: Some(&rb),
            relu: true,
        };
        matmul(m, k, n, &a, WeightRef::F32(&b), &mut c, Some(&epi)).unwrap();
        let want = reference(
            GemmDims::new(m, k, n),
            &a,
            MatLayout::row_major(m, k),
            &|i| b[i] as f64,
            MatLayout::row_major(k, n),
        );
        for i in 0..m {
            for j in 0..n {
                let w = (want[i * n + j].0 + cb[j] as f64 + rb[i] as f64).max(0.0);
                assert!((c[i * n + j] as f64 - w).abs() <= 1e-5 * (want[i * n + j].1 + 2.0), "({i},{j})");
            }
        }
    }
}

#[test]
fn custom_epilogue_sees_every_element_once_with_its_coordinates() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    for (batch, m, k, n) in [(1, 1, 5, 1000), (2, 3, 4, 70), (3, 700, 3, 20), (1, 40, 8, 4000)] {
        let d = GemmDims { batch, m, k, n };
        let a = vec![0.0; batch * m * k];
        let b = vec![0.0; k * n];
        let mut c = vec![1.0; batch * m * n];
        // Every element becomes 1 + code(batch, row, col); a second visit would add again.
        let epi = |t: &mut Tile<'_>| {
            let (bi, c0) = (t.batch(), t.first_col());
            t.for_each_row(|i, row| {
                for (j, x) in row.iter_mut().enumerate() {
                    *x += 1.0 + (bi * 1_000_000 + i * 5000 + c0 + j) as f32;
                }
            })
        };
        pool.install(|| {
            gemm(
                d,
                &a,
                MatLayout::row_major(m, k),
                WeightRef::F32(&b),
                MatLayout::row_major(k, n).broadcast(),
                &mut c,
                MatLayout::row_major(m, n),
                Some(&epi),
            )
        })
        .unwrap();
        for bi in 0..batch {
            for i in 0..m {
                for j in 0..n {
                    assert_eq!(
                        c[(bi * m + i) * n + j],
                        1.0 + (bi * 1_000_000 + i * 5000 + j) as f32,
                        "({bi},{i},{j})"
                    );
                }
            }
        }
    }
}

#[test]
fn one_and_two_threads_agree() {
    let p1 = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let p2 = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    for (batch, m, k, n) in [
        (1, 1, 300, 1000),
        (1, 128, 384, 384),
        (3, 33, 65, 17),
        (1, 1100, 64, 96),
        (2, 5, 40, 700),
    ] {
        let d = GemmDims { batch, m, k, n };
        let a = rand_vec(batch * m * k, 9);
        let b: Vec<bf16> = rand_vec(k * n, 10).iter().map(|&x| bf16::from_f32(x)).collect();
        let bf: Vec<f32> = b.iter().map(|x| x.to_f32()).collect();
        let run = |pool: &rayon::ThreadPool, w: WeightRef<'_>| {
            let mut c = vec![0.0; batch * m * n];
            pool.install(|| {
                gemm(
                    d,
                    &a,
                    MatLayout::row_major(m, k),
                    w,
                    MatLayout::row_major(k, n).broadcast(),
                    &mut c,
                    MatLayout::row_major(m, n),
                    None,
                )
            })
            .unwrap();
            c
        };
        let r1 = run(&p1, WeightRef::F32(&bf));
        for (x, y) in r1.iter().zip(&run(&p2, WeightRef::F32(&bf))) {
            assert!((x - y).abs() <= 1e-5 * x.abs().max(1.0), "{x} vs {y}");
        }
        for (x, y) in r1.iter().zip(&run(&p2, WeightRef::BF16(&b))) {
            assert!((x - y).abs() <= 1e-5 * x.abs().max(1.0), "{x} vs {y}");
        }
    }
}

/// Large `f32` matrix–vector products (over 2^20 weights), which on more than
/// one thread sum a contiguous range of `B`'s rows per thread: row counts not
/// a multiple of 4 per thread, a bias-and-ReLU epilogue, an `A` read with a
/// column stride, on 1, 2 and 3 threads against the reference.
#[test]
fn large_matrix_vector_products_split_rows_over_threads() {
    for (k, n) in [(1103usize, 1000usize), (4097, 260), (2051, 513)] {
        let d = GemmDims::new(1, k, n);
        let a = rand_vec(2 * k, 21);
        let al = MatLayout {
            offset: 1,
            row_stride: 2 * k,
            col_stride: 2,
            batch_stride: 0,
        };
        let b = rand_vec(k * n, 22);
        let bias = rand_vec(n, 23);
        let want = reference(d, &a, al, &|i| b[i] as f64, MatLayout::row_major(k, n));
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let epi = BiasAct {
                col_bias: Some(&bias),
                row_bias: None,
                relu: true,
            };
            let mut c = vec![f32::NAN; n];
            pool.install(|| {
                gemm(
                    d,
                    &a,
                    al,
                    WeightRef::F32(&b),
                    MatLayout::row_major(k, n),
                    &mut c,
                    MatLayout::row_major(1, n),
                    Some(&epi),
                )
            })
            .unwrap();
            for (j, (&g, &(w, mag))) in c.iter().zip(&want).enumerate() {
                let w = (w + bias[j] as f64).max(0.0);
                assert!(
                    (g as f64 - w).abs() <= 1e-5 * mag + 1e-5,
                    "k {k} n {n} threads {threads} [{j}]: {g} vs {w}"
                );
            }
        }
    }
}

#[test]
fn degenerate_sizes() {
    let mut c = vec![5.0; 6];
    matmul(2, 0, 3, &[], WeightRef::F32(&[]), &mut c, None).unwrap();
    assert_eq!(c, vec![0.0; 6]);
    let mut c: Vec<f32> = vec![];
    matmul(0, 4, 3, &[], WeightRef::F32(&[0.0; 12]), &mut c, None).unwrap();
    matmul(2, 4, 0, &[0.0; 8], WeightRef::F32(&[]), &mut c, None).unwrap();
    let mut c = vec![5.0; 3];
    matmul(1, 0, 3, &[], WeightRef::F16(&[]), &mut c, None).unwrap();
    assert_eq!(c, vec![0.0; 3]);
}

#[test]
fn bad_arguments_are_errors() {
    let (a, b) = (vec![1.0; 12], vec![1.0; 12]);
    let mut c = vec![0.0; 9];
    let d = GemmDims::new(3, 4, 3);
    let rm = MatLayout::row_major;
    let short = |e: Result<(), KernelError>, op: &str| match e {
        Err(KernelError::BufferLength { operand, .. }) => assert_eq!(operand, op),
        other => panic!("expected BufferLength for {op}, got {other:?}"),
    };
    short(
        gemm(d, &a[..11], rm(3, 4), WeightRef::F32(&b), rm(4, 3), &mut c, rm(3, 3), None),
        "A",
    );
    short(
        gemm(d, &a, rm(3, 4), WeightRef::F32(&b[..11]), rm(4, 3), &mut c, rm(3, 3), None),
        "B",
    );
    short(
        gemm(d, &a, rm(3, 4), WeightRef::F32(&b), rm(4, 3), &mut c[..8], rm(3, 3), None),
        "C",
    );
    short(
        gemm(d, &a, rm(3, 4).with_offset(1), WeightRef::F32(&b), rm(4, 3), &mut c, rm(3, 3), None),
        "A",
    );
    short(
        gemm(
            d.batched(2),
            &a,
            rm(3, 4).broadcast(),
            WeightRef::F32(&b),
            rm(4, 3).broadcast(),
            &mut c,
            rm(3, 3),
            None,
        ),
        "C",
    );
    let huge = MatLayout {
        offset: 0,
        row_stride: usize::MAX / 2,
        col_stride: 1,
        batch_stride: 0,
    };
    assert!(matches!(
        gemm(d, &a, huge, WeightRef::F32(&b), rm(4, 3), &mut c, rm(3, 3), None),
        Err(KernelError::Shape { .. })
    ));
    let mut big = vec![0.0; 100];
    let col_c = MatLayout::col_major(3, 3);
    assert!(matches!(
        gemm(d, &a, rm(3, 4), WeightRef::F32(&b), rm(4, 3), &mut big, col_c, None),
        Err(KernelError::Shape { .. })
    ));
    let overlap_rows = MatLayout {
        offset: 0,
        row_stride: 2,
        col_stride: 1,
        batch_stride: 9,
    };
    assert!(matches!(
        gemm(d, &a, rm(3, 4), WeightRef::F32(&b), rm(4, 3), &mut big, overlap_rows, None),
        Err(KernelError::Shape { .. })
    ));
    let overlap_batches = MatLayout {
        offset: 0,
        row_stride: 3,
        col_stride: 1,
        batch_stride: 8,
    };
    let r = gemm(
        d.batched(2),
        &a,
        rm(3, 4).broadcast(),
        WeightRef::F32(&b),
        rm(4, 3).broadcast(),
        &mut big,
        overlap_batches,
        None,
    );
    assert!(matches!(r, Err(KernelError::Shape { .. })));
    let bias = [0.0; 2];
    let epi = BiasAct {
        col_bias: Some(&bias),
        ..Default::default()
    };
    short(
        gemm(
            d,
            &a,
            rm(3, 4),
            WeightRef::F32(&b),
            rm(4, 3),
            &mut c,
            rm(3, 3),
            Some(&epi as &dyn Epilogue),
        ),
        "col_bias",
    );
    assert!(c.iter().all(|&x| x == 0.0), "nothing written on error");
}

/// Sizes around the micro-kernels' tiles (AVX-512 14 × 32, AVX2 6 × 16) and vector widths.
const EDGE_SIZES: &[usize] = &[1, 2, 5, 6, 7, 8, 13, 14, 15, 16, 17, 28, 31, 32, 33, 47, 64, 70, 97];

/// Runs one product with `isa` and checks it against the f64 reference.
#[allow(clippy::too_many_arguments)]
fn check_isa(isa: Isa, d: GemmDims, ta: bool, tb: bool, pad: usize, precision: u8, seed: u64, tol: f64) {
    let (m, k, n) = (d.m, d.k, d.n);
    let al = layout(m, k, ta, pad, 1, 0);
    let bl = layout(k, n, tb, pad, 2, 0);
    let a = rand_vec(al.span(d.batch, m, k).unwrap().max(1), seed);
    let bf = rand_vec(bl.span(d.batch, k, n).unwrap().max(1), seed + 1);
    let cl = MatLayout {
        offset: 1,
        row_stride: n + pad,
        col_stride: 1,
        batch_stride: m * (n + pad),
    };
    let mut c = vec![f32::NAN; cl.span(d.batch, m, n).unwrap()];
    let b16: Vec<f16> = bf.iter().map(|&x| f16::from_f32(x)).collect();
    let bb16: Vec<bf16> = bf.iter().map(|&x| bf16::from_f32(x)).collect();
    let (w, get): (WeightRef<'_>, Box<dyn Fn(usize) -> f64>) = match precision {
        0 => (WeightRef::F32(&bf), Box::new(|i| bf[i] as f64)),
        1 => (WeightRef::F16(&b16), Box::new(|i| b16[i].to_f64())),
        _ => (WeightRef::BF16(&bb16), Box::new(|i| bb16[i].to_f64())),
    };
    gemm_with_isa(isa, d, &a, al, w, bl, &mut c, cl, None).unwrap();
    let want = reference(d, &a, al, &*get, bl);
    for bi in 0..d.batch {
        for i in 0..m {
            for j in 0..n {
                let g = c[cl.offset + bi * cl.batch_stride + i * cl.row_stride + j] as f64;
                let (w, mag) = want[(bi * m + i) * n + j];
                assert!(
                    (g - w).abs() <= tol * mag + 1e-6,
                    "{isa:?} ({bi},{i},{j}): got {g}, want {w} (dims {d:?}, ta {ta}, tb {tb}, pad {pad}, precision {precision})"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn every_isa_matches_reference_on_tile_edges(
        mi in 0..EDGE_SIZES.len(), ki in 0..EDGE_SIZES.len(), ni in 0..EDGE_SIZES.len(),
        batch in 1usize..3, ta: bool, tb: bool, pad in 0usize..3, precision in 0u8..3, seed in 0u64..1000,
    ) {
        let d = GemmDims { batch, m: EDGE_SIZES[mi], k: EDGE_SIZES[ki], n: EDGE_SIZES[ni] };
        for isa in Isa::available() {
            check_isa(isa, d, ta, tb, pad, precision, seed, 1e-5);
        }
    }
}

#[test]
fn every_isa_handles_k_zero_large_k_and_multiple_cache_blocks() {
    // (m, k, n): k = 0; k split into several depth blocks (at most 256 each);
    // m beyond one row block (336) and n beyond one column block (4096).
    let shapes = [
        (3, 0, 5),
        (15, 0, 33),
        (1, 3000, 1),
        (7, 3000, 33),
        (29, 3000, 17),
        (15, 257, 31),
        (700, 37, 45),
        (20, 300, 4100),
        // n > 256 (or A's rows 512 floats apart): A is packed, not read in place;
        // k around the 8-wide transpose blocks of the row-major packing.
        (45, 23, 300),
        (33, 7, 257),
        (17, 512, 100),
        (29, 16, 290),
    ];
    for isa in Isa::available() {
        for (i, &(m, k, n)) in shapes.iter().enumerate() {
            for (ta, tb) in [(false, false), (true, true), (false, true), (true, false)] {
                let tol = if k > 1000 { 1e-4 } else { 1e-5 };
                check_isa(isa, GemmDims::new(m, k, n), ta, tb, 1, (i % 3) as u8, i as u64, tol);
            }
        }
    }
}

#[test]
fn every_isa_runs_under_two_threads() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    pool.install(|| {
        for isa in Isa::available() {
            for (m, k, n) in [(97, 65, 129), (1030, 20, 33), (2, 300, 700)] {
                check_isa(isa, GemmDims::new(m, k, n).batched(2), false, true, 0, 0, 7, 1e-5);
            }
        }
    });
}
