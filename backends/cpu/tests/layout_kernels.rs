//! Data movement against naive index arithmetic: permute, strided copy,
//! concat, gather, NCHW↔NHWC, threading, argument errors.

use eqopt_cpu::KernelError;
use eqopt_cpu::layout::{concat, contiguous_strides, copy_into_axis, gather, nchw_to_nhwc, nhwc_to_nchw, permute, strided_copy};
use proptest::prelude::*;

fn iota(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32).collect()
}

/// Naive strided read: output in row-major order.
fn naive(input: &[f32], offset: isize, shape: &[usize], strides: &[isize]) -> Vec<f32> {
    let total: usize = shape.iter().product();
    (0..total)
        .map(|mut flat| {
            let mut at = offset;
            for d in (0..shape.len()).rev() {
                at += (flat % shape[d]) as isize * strides[d];
                flat /= shape[d];
            }
            input[at as usize]
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn permute_matches_naive(shape in prop::collection::vec(1usize..8, 1..6), seed: u64) {
        let mut perm: Vec<usize> = (0..shape.len()).collect();
        let mut s = seed;
        for i in (1..perm.len()).rev() {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            perm.swap(i, (s >> 33) as usize % (i + 1));
        }
        let x = iota(shape.iter().product());
        let st = contiguous_strides(&shape);
        let want = naive(&x, 0, &perm.iter().map(|&p| shape[p]).collect::<Vec<_>>(), &perm.iter().map(|&p| st[p]).collect::<Vec<_>>());
        let mut y = vec![-1.0; x.len()];
        permute(&x, &shape, &perm, &mut y).unwrap();
        prop_assert_eq!(y, want);
    }

    #[test]
    fn strided_copy_matches_naive(shape in prop::collection::vec(1usize..6, 1..5), strides in prop::collection::vec(-7isize..8, 4)) {
        let strides = &strides[..shape.len()];
        let (mut lo, mut hi) = (0isize, 0isize);
        for (&d, &s) in shape.iter().zip(strides) {
            let r = (d as isize - 1) * s;
            if r < 0 { lo += r } else { hi += r }
        }
        let offset = -lo;
        let x = iota((hi - lo + 1) as usize);
        let mut y = vec![-1.0; shape.iter().product()];
        strided_copy(&x, offset as usize, &shape, strides, &mut y).unwrap();
        prop_assert_eq!(y, naive(&x, offset, &shape, strides));
    }
}

#[test]
fn big_transposes_under_two_threads() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    for (shape, perm) in [
        (vec![513, 257], vec![1, 0]),
        (vec![3, 65, 33, 17], vec![0, 2, 3, 1]),
        (vec![2, 17, 33, 65], vec![3, 1, 0, 2]),
        (vec![1, 70000], vec![1, 0]),
        (vec![40000, 3], vec![1, 0]),
    ] {
        let x = iota(shape.iter().product());
        let st = contiguous_strides(&shape);
        let want = naive(
            &x,
            0,
            &perm.iter().map(|&p| shape[p]).collect::<Vec<_>>(),
            &perm.iter().map(|&p| st[p]).collect::<Vec<_>>(),
        );
        let mut y = vec![-1.0; x.len()];
        pool.install(|| permute(&x, &shape, &perm, &mut y)).unwrap();
        assert_eq!(y, want, "{shape:?} {perm:?}");
    }
    // Broadcast (stride 0) of a row into a large output.
    let row = iota(300);
    let mut y = vec![0.0; 300 * 400];
    pool.install(|| strided_copy(&row, 0, &[400, 300], &[0, 1], &mut y)).unwrap();
    assert!(y.chunks(300).all(|r| r == &row[..]));
}

#[test]
fn nchw_nhwc_roundtrip() {
    let dims = [2, 5, 7, 3];
    let x = iota(2 * 5 * 7 * 3);
    let mut h = vec![0.0; x.len()];
    nchw_to_nhwc(&x, dims, &mut h).unwrap();
    assert_eq!(h[1], x[7 * 3]); // [0,0,0,1] in NHWC is channel 1
    let mut back = vec![0.0; x.len()];
    nhwc_to_nchw(&h, [2, 7, 3, 5], &mut back).unwrap();
    assert_eq!(back, x);
}

#[test]
fn concat_along_each_axis() {
    let a = iota(2 * 3 * 4);
    let b: Vec<f32> = (0..2 * 5 * 4).map(|i| 1000.0 + i as f32).collect();
    let mut y = vec![0.0; 2 * 8 * 4];
    concat(&[(&a[..], &[2, 3, 4][..]), (&b[..], &[2, 5, 4][..])], 1, &mut y).unwrap();
    for i in 0..2 {
        for j in 0..8 {
            for k in 0..4 {
                let want = if j < 3 {
                    a[(i * 3 + j) * 4 + k]
                } else {
                    b[(i * 5 + j - 3) * 4 + k]
                };
                assert_eq!(y[(i * 8 + j) * 4 + k], want);
            }
        }
    }
    let mut y0 = vec![0.0; 48];
    concat(&[(&a[..], &[2, 3, 4][..]), (&a[..], &[2, 3, 4][..])], 0, &mut y0).unwrap();
    assert_eq!(&y0[..24], &a[..]);
    assert_eq!(&y0[24..], &a[..]);
    // Large, parallel path.
    let big = iota(100 * 1000);
    let mut out = vec![0.0; 100 * 1500];
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    pool.install(|| copy_into_axis(&big, &[100, 1000], 1, 500, &mut out, &[100, 1500]))
        .unwrap();
    for r in 0..100 {
        assert_eq!(&out[r * 1500 + 500..r * 1500 + 1500], &big[r * 1000..(r + 1) * 1000]);
    }
    // Errors: mismatched off-axis dim, overrun, nothing written.
    let mut z = vec![0.0; 2 * 8 * 4];
    let r = concat(&[(&a[..], &[2, 3, 4][..]), (&b[..], &[2, 5, 3][..])], 1, &mut z);
    assert!(matches!(r, Err(KernelError::Shape { .. })));
    assert!(z.iter().all(|&v| v == 0.0));
    assert!(matches!(
        copy_into_axis(&a, &[2, 3, 4], 1, 6, &mut z, &[2, 8, 4]),
        Err(KernelError::Shape { .. })
    ));
    assert!(matches!(concat::<f32>(&[], 0, &mut z), Err(KernelError::Shape { .. })));
}

#[test]
fn gather_with_negative_indices_and_errors() {
    let x = iota(2 * 4 * 3);
    let mut y = vec![0.0; 2 * 5 * 3];
    gather(&x, &[2, 4, 3], 1, &[0, 3, -1, 1, -4], &mut y).unwrap();
    for i in 0..2 {
        for (l, j) in [0usize, 3, 3, 1, 0].iter().enumerate() {
            for k in 0..3 {
                assert_eq!(y[(i * 5 + l) * 3 + k], x[(i * 4 + j) * 3 + k]);
            }
        }
    }
    // i64 data along axis 0 (embedding lookup).
    let table: Vec<i64> = (0..12).collect();
    let mut rows = vec![0i64; 6];
    gather(&table, &[4, 3], 0, &[2, 0], &mut rows).unwrap();
    assert_eq!(rows, vec![6, 7, 8, 0, 1, 2]);
    let err = gather(&x, &[2, 4, 3], 1, &[0, 4], &mut [0.0; 12]).unwrap_err();
    assert_eq!(
        err,
        KernelError::IndexOutOfRange {
            kernel: "gather",
            index: 4,
            position: 1,
            bound: 4
        }
    );
    assert!(err.to_string().contains("index 4"));
    assert!(matches!(
        gather(&x, &[2, 4, 3], 1, &[-5], &mut [0.0; 6]),
        Err(KernelError::IndexOutOfRange { index: -5, .. })
    ));
    assert!(matches!(
        gather(&x, &[2, 4, 3], 3, &[0], &mut [0.0; 6]),
        Err(KernelError::Shape { .. })
    ));
    assert!(matches!(
        gather(&x, &[2, 4, 3], 1, &[0], &mut [0.0; 5]),
        Err(KernelError::BufferLength { .. })
    ));
}

#[test]
fn bad_arguments_are_errors() {
    let x = iota(6);
    let mut y = vec![0.0; 6];
    assert!(matches!(permute(&x, &[2, 3], &[0, 0], &mut y), Err(KernelError::Shape { .. })));
    assert!(matches!(permute(&x, &[2, 3], &[1], &mut y), Err(KernelError::Shape { .. })));
    assert!(matches!(
        permute(&x, &[2, 4], &[1, 0], &mut y),
        Err(KernelError::BufferLength { .. })
    ));
    assert!(matches!(
        strided_copy(&x, 0, &[2, 3], &[3, 2], &mut y),
        Err(KernelError::ViewOutOfBounds { .. })
    ));
    assert!(matches!(
        strided_copy(&x, 0, &[2, 3], &[-1, 1], &mut y),
        Err(KernelError::ViewOutOfBounds { .. })
    ));
    assert!(matches!(strided_copy(&x, 0, &[2, 3], &[1], &mut y), Err(KernelError::Shape { .. })));
    assert!(matches!(
        strided_copy(&x, 0, &[usize::MAX, 3], &[0, 0], &mut y),
        Err(KernelError::Shape { .. })
    ));
}

/// Row-major coordinates of `flat` in `shape`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut c = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        c[d] = flat % shape[d];
        flat /= shape[d];
    }
    c
}

fn ravel(c: &[usize], shape: &[usize]) -> usize {
    c.iter().zip(shape).fold(0, |acc, (&i, &n)| acc * n + i)
}

/// Naive gather: `out[a, l, b] = x[a, idx[l] (mod d), b]`.
fn gather_ref(x: &[f32], shape: &[usize], axis: usize, idx: &[i64]) -> Vec<f32> {
    let mut out_shape = shape.to_vec();
    out_shape[axis] = idx.len();
    (0..out_shape.iter().product())
        .map(|flat| {
            let mut c = unravel(flat, &out_shape);
            let i = idx[c[axis]];
            c[axis] = if i < 0 { (i + shape[axis] as i64) as usize } else { i as usize };
            x[ravel(&c, shape)]
        })
        .collect()
}

/// Naive concat along `axis`.
fn concat_ref(parts: &[(Vec<f32>, Vec<usize>)], axis: usize) -> Vec<f32> {
    let mut out_shape = parts[0].1.clone();
    out_shape[axis] = parts.iter().map(|(_, s)| s[axis]).sum();
    (0..out_shape.iter().product())
        .map(|flat| {
            let mut c = unravel(flat, &out_shape);
            for (x, s) in parts {
                if c[axis] < s[axis] {
                    return x[ravel(&c, s)];
                }
                c[axis] -= s[axis];
            }
            unreachable!("coordinate past the last part")
        })
        .collect()
}

fn odd_dim() -> impl Strategy<Value = usize> {
    prop_oneof![Just(1usize), Just(2), Just(3), Just(7), Just(16), Just(17), 1usize..40]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any axis, negative and repeated indices, 1-sized and odd dims, on 1 and 2 threads.
    #[test]
    fn gather_matches_naive(
        shape in prop::collection::vec(odd_dim(), 1..5).prop_filter("size", |s| s.iter().product::<usize>() <= 20_000),
        axis_pick in 0usize..4, picks in prop::collection::vec((any::<u32>(), any::<bool>()), 0..12),
    ) {
        let axis = axis_pick % shape.len();
        let d = shape[axis] as i64;
        let idx: Vec<i64> = picks.iter().map(|&(r, neg)| { let i = r as i64 % d; if neg { i - d } else { i } }).collect();
        let x = iota(shape.iter().product());
        let want = gather_ref(&x, &shape, axis, &idx);
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut y = vec![-1.0; want.len()];
            pool.install(|| gather(&x, &shape, axis, &idx, &mut y)).unwrap();
            prop_assert_eq!(&y, &want, "{:?} axis {} idx {:?} threads {}", shape, axis, idx, threads);
        }
    }

    /// 1 to 4 operands (some empty along the axis), any axis, on 1 and 2 threads.
    #[test]
    fn concat_matches_naive(
        base in prop::collection::vec(odd_dim(), 1..5).prop_filter("size", |s| s.iter().product::<usize>() <= 5_000),
        axis_pick in 0usize..4, sizes in prop::collection::vec(0usize..6, 1..5),
    ) {
        let axis = axis_pick % base.len();
        let mut next = 0.0f32;
        let parts: Vec<(Vec<f32>, Vec<usize>)> = sizes.iter().map(|&a| {
            let mut s = base.clone();
            s[axis] = a;
            let n: usize = s.iter().product();
            let x: Vec<f32> = (0..n).map(|i| next + i as f32).collect();
            next += n as f32;
            (x, s)
        }).collect();
        let want = concat_ref(&parts, axis);
        let inputs: Vec<(&[f32], &[usize])> = parts.iter().map(|(x, s)| (&x[..], &s[..])).collect();
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut y = vec![-1.0; want.len()];
            pool.install(|| concat(&inputs, axis, &mut y)).unwrap();
            prop_assert_eq!(&y, &want, "{:?} axis {} sizes {:?}", base, axis, sizes);
        }
    }

    #[test]
    fn nchw_nhwc_match_naive(n in odd_dim(), c in odd_dim(), h in odd_dim(), w in odd_dim()) {
        prop_assume!(n * c * h * w <= 40_000);
        let x = iota(n * c * h * w);
        let mut y = vec![-1.0; x.len()];
        nchw_to_nhwc(&x, [n, c, h, w], &mut y).unwrap();
        // NHWC element (n, h, w, c) is NCHW element (n, c, h, w).
        let want: Vec<f32> = (0..x.len()).map(|f| { let k = unravel(f, &[n, h, w, c]); x[ravel(&[k[0], k[3], k[1], k[2]], &[n, c, h, w])] }).collect();
        prop_assert_eq!(&y, &want);
        let mut back = vec![-1.0; x.len()];
        nhwc_to_nchw(&y, [n, h, w, c], &mut back).unwrap();
        prop_assert_eq!(back, x);
    }
}

/// Outputs past the parallel threshold (2¹⁵ elements): embedding lookup along
/// axis 0 and a gather along a middle axis, on 1 and 2 threads.
#[test]
fn large_gathers_on_one_and_two_threads() {
    for (shape, axis, count) in [(vec![1000usize, 67], 0usize, 601usize), (vec![5, 301, 33], 1, 257)] {
        let d = shape[axis] as i64;
        let idx: Vec<i64> = (0..count as i64).map(|i| (i * 7919 + 13) % (2 * d) - d).collect();
        let x = iota(shape.iter().product());
        let want = gather_ref(&x, &shape, axis, &idx);
        assert!(want.len() >= 1 << 15);
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut y = vec![-1.0; want.len()];
            pool.install(|| gather(&x, &shape, axis, &idx, &mut y)).unwrap();
            assert_eq!(y, want, "{shape:?} axis {axis} threads {threads}");
        }
    }
}
