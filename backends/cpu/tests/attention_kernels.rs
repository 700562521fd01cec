//! Fused attention against a naive `f64` reference (whole score matrix, plain
//! softmax), on every ISA, with strided / transposed operands and broadcast masks.

use eqopt_cpu::KernelError;
use eqopt_cpu::attention::{AttentionShape, MatView, ScoreScale, attention, attention_with};
use eqopt_cpu::simd::Isa;
use proptest::prelude::*;

fn data(seed: u64, n: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Element `(b, i, j)` of a view, `b` a flat batch index.
fn at(m: &MatView<'_>, batch: &[usize], b: usize, i: usize, j: usize) -> f64 {
    let mut off = m.offset as isize;
    let mut rem = b;
    for (&n, &st) in batch.iter().zip(&m.batch_strides).rev() {
        off += (rem % n) as isize * st;
        rem /= n;
    }
    off += i as isize * m.row_stride + j as isize * m.col_stride;
    m.data[off as usize] as f64
}

fn reference(
    sh: &AttentionShape,
    q: &MatView<'_>,
    kt: &MatView<'_>,
    v: &MatView<'_>,
    mask: Option<&MatView<'_>>,
    scale: ScoreScale,
) -> Vec<f64> {
    let nb: usize = sh.batch.iter().product();
    let (s, t, d, e) = (sh.queries, sh.keys, sh.head_dim, sh.value_dim);
    let mut out = Vec::with_capacity(nb * s * e);
    for b in 0..nb {
        for i in 0..s {
            let scores: Vec<f64> = (0..t)
                .map(|j| {
                    let dot: f64 = (0..d).map(|k| at(q, &sh.batch, b, i, k) * at(kt, &sh.batch, b, k, j)).sum();
                    let x = match scale {
                        ScoreScale::Mul(c) => dot * c as f64,
                        ScoreScale::Div(c) => dot / c as f64,
                    };
                    x + mask.map_or(0.0, |m| at(m, &sh.batch, b, i, j))
                })
                .collect();
            let mx = scores.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            let p: Vec<f64> = scores.iter().map(|&x| (x - mx).exp()).collect();
            let sum: f64 = p.iter().sum();
            for c in 0..e {
                out.push((0..t).map(|j| p[j] * at(v, &sh.batch, b, j, c)).sum::<f64>() / sum);
            }
        }
    }
    out
}

fn check(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else {
            (g as f64 - w).abs() <= 2e-5 + 1e-5 * w.abs()
        };
        assert!(ok, "{what}: element {i}: got {g}, want {w}");
    }
}

/// A `[batch..., rows, cols]` view of fresh data: dense, or a column window of a
/// wider buffer (row stride `cols + 3`, offset 1).
fn view<'a>(buf: &'a [f32], batch: &[usize], rows: usize, cols: usize, padded: bool) -> MatView<'a> {
    if !padded {
        return MatView::dense(buf, batch, rows, cols);
    }
    let mut m = MatView::dense(buf, batch, rows, cols + 3);
    m.offset = 1;
    m
}

fn dim(options: &'static [usize]) -> impl Strategy<Value = usize> {
    prop::sample::select(options)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn matches_naive(
        batch in prop::collection::vec(dim(&[1, 2, 3]), 0..=2),
        s in dim(&[1, 3, 17, 64, 65, 100, 130]),
        t in dim(&[1, 7, 128, 129, 200, 300]),
        d in dim(&[1, 8, 17, 64]),
        e in dim(&[1, 5, 16, 33]),
        layout in 0usize..8,
        mask_kind in 0usize..4,
        div in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let nb: usize = batch.iter().product();
        let (qp, kp, vp) = (layout & 1 != 0, layout & 2 != 0, layout & 4 != 0);
        let qbuf = data(seed, nb * s * (d + 3));
        let kbuf = data(seed ^ 1, nb * t * (d + 3));
        let vbuf = data(seed ^ 2, nb * t * (e + 3));
        let q = view(&qbuf, &batch, s, d, qp);
        // Kt is K [.., T, D] transposed: a strided view.
        let kt = if kp { view(&kbuf, &batch, t, d, true).transposed() } else { MatView::dense(&kbuf, &batch, d, t) };
        let v = view(&vbuf, &batch, t, e, vp);
        let mut mbuf: Vec<f32> = data(seed ^ 3, nb * s * t).into_iter().map(|x| x * 4.0).collect();
        // Some -inf entries (never a whole row: column 0 stays finite).
        for (i, x) in mbuf.iter_mut().enumerate() {
            if i % 7 == 3 && i % t != 0 {
                *x = f32::NEG_INFINITY;
            }
        }
        let r = batch.len();
        let mask = match mask_kind {
            0 => None,
            // [T]
            1 => Some(MatView { data: &mbuf, offset: 0, batch_strides: vec![0; r], row_stride: 0, col_stride: 1 }),
            // [S, T]
            2 => Some(MatView { data: &mbuf, offset: 0, batch_strides: vec![0; r], row_stride: t as isize, col_stride: 1 }),
            // [B, 1, 1, T]: first batch dim varies, the rest broadcast.
            _ => {
                let mut bs = vec![0isize; r];
                if r > 0 {
                    bs[0] = t as isize;
                }
                Some(MatView { data: &mbuf, offset: 0, batch_strides: bs, row_stride: 0, col_stride: 1 })
            }
        };
        let scale = if div { ScoreScale::Div((d as f32).sqrt()) } else { ScoreScale::Mul(2.0 / (d as f32).sqrt()) };
        let sh = AttentionShape { batch: batch.clone(), queries: s, keys: t, head_dim: d, value_dim: e };
        let want = reference(&sh, &q, &kt, &v, mask.as_ref(), scale);
        for isa in Isa::available() {
            let mut out = vec![f32::NAN; nb * s * e];
            attention_with(isa, &sh, &q, &kt, &v, mask.as_ref(), scale, &mut out).expect("attention");
            check(&format!("{isa:?} {sh:?} layout {layout} mask {mask_kind}"), &out, &want);
        }
    }
}

/// A transposed mask (column stride ≠ 1: gathered) and a fully masked row.
#[test]
fn gathered_mask_and_fully_masked_rows() {
    let (s, t, d, e) = (5, 150, 4, 3);
    let qb = data(1, s * d);
    let kb = data(2, d * t);
    let vb = data(3, t * e);
    let mut mb = data(4, t * s);
    // Mask stored transposed ([T, S] in memory), query row 2 fully masked.
    for j in 0..t {
        mb[j * s + 2] = f32::NEG_INFINITY;
    }
    let mask = MatView {
        data: &mb,
        offset: 0,
        batch_strides: vec![],
        row_stride: 1,
        col_stride: s as isize,
    };
    let sh = AttentionShape {
        batch: vec![],
        queries: s,
        keys: t,
        head_dim: d,
        value_dim: e,
    };
    let (q, kt, v) = (
        MatView::dense(&qb, &[], s, d),
        MatView::dense(&kb, &[], d, t),
        MatView::dense(&vb, &[], t, e),
    );
    let want = reference(&sh, &q, &kt, &v, Some(&mask), ScoreScale::Mul(0.5));
    assert!(want[2 * e..3 * e].iter().all(|x| x.is_nan()));
    for isa in Isa::available() {
        let mut out = vec![0.0; s * e];
        attention_with(isa, &sh, &q, &kt, &v, Some(&mask), ScoreScale::Mul(0.5), &mut out).expect("attention");
        check(&format!("{isa:?}"), &out, &want);
    }
}

#[test]
fn degenerate_sizes() {
    let vb = data(3, 4 * 2);
    let v = MatView::dense(&vb, &[], 4, 2);
    // D = 0: all scores zero, the output is the mean of V's rows.
    let sh = AttentionShape {
        batch: vec![],
        queries: 3,
        keys: 4,
        head_dim: 0,
        value_dim: 2,
    };
    let mut out = vec![0.0; 6];
    attention(
        &sh,
        &MatView::dense(&[], &[], 3, 0),
        &MatView::dense(&[], &[], 0, 4),
        &v,
        None,
        ScoreScale::Mul(1.0),
        &mut out,
    )
    .expect("d = 0");
    for r in 0..3 {
        for c in 0..2 {
            let mean = (0..4).map(|j| vb[j * 2 + c] as f64).sum::<f64>() / 4.0;
            assert!((out[r * 2 + c] as f64 - mean).abs() < 1e-6);
        }
    }
    // T = 0: an empty softmax, NaN.
    let sh = AttentionShape {
        batch: vec![2],
        queries: 3,
        keys: 0,
        head_dim: 2,
        value_dim: 2,
    };
    let qb = data(1, 12);
    let mut out = vec![0.0; 12];
    let empty = MatView::dense(&[], &[2], 0, 2);
    attention(
        &sh,
        &MatView::dense(&qb, &[2], 3, 2),
        &MatView::dense(&[], &[2], 2, 0),
        &empty,
        None,
        ScoreScale::Mul(1.0),
        &mut out,
    )
    .expect("t = 0");
    assert!(out.iter().all(|x| x.is_nan()));
    // No queries: nothing to do.
    let sh = AttentionShape {
        batch: vec![2],
        queries: 0,
        keys: 4,
        head_dim: 2,
        value_dim: 2,
    };
    let kb = data(5, 16);
    attention(
        &sh,
        &MatView::dense(&[], &[2], 0, 2),
        &MatView::dense(&kb, &[2], 2, 4),
        &MatView::dense(&kb, &[2], 4, 2),
        None,
        ScoreScale::Mul(1.0),
        &mut [],
    )
    .expect("s = 0");
}

#[test]
fn errors() {
    let b = data(1, 64);
    let sh = AttentionShape {
        batch: vec![2],
        queries: 2,
        keys: 4,
        head_dim: 4,
        value_dim: 2,
    };
    let q = MatView::dense(&b[..16], &[2], 2, 4);
    let kt = MatView::dense(&b[..32], &[2], 4, 4);
    let v = MatView::dense(&b[..16], &[2], 4, 2);
    let mut out = vec![0.0; 8];
    attention(&sh, &q, &kt, &v, None, ScoreScale::Mul(1.0), &mut out).expect("valid");
    let r = attention(&sh, &q, &kt, &v, None, ScoreScale::Mul(1.0), &mut out[..7]);
    assert!(matches!(r, Err(KernelError::BufferLength { expected: 8, found: 7, .. })), "{r:?}");
    let short = MatView::dense(&b[..31], &[2], 4, 4);
    let r = attention(&sh, &q, &short, &v, None, ScoreScale::Mul(1.0), &mut out);
    assert!(
        matches!(
            r,
            Err(KernelError::ViewOutOfBounds {
                operand: "kt",
                max: 31,
                len: 31,
                ..
            })
        ),
        "{r:?}"
    );
    let unbatched = MatView::dense(&b[..16], &[], 4, 4);
    let r = attention(&sh, &q, &kt, &unbatched, None, ScoreScale::Mul(1.0), &mut out);
    assert!(matches!(r, Err(KernelError::Shape { .. })), "{r:?}");
    let mask = MatView {
        data: &b[..3],
        offset: 0,
        batch_strides: vec![0],
        row_stride: 0,
        col_stride: 1,
    };
    let r = attention(&sh, &q, &kt, &v, Some(&mask), ScoreScale::Mul(1.0), &mut out);
    assert!(matches!(r, Err(KernelError::ViewOutOfBounds { operand: "mask", .. })), "{r:?}");
    let neg = MatView {
        data: &b[..16],
        offset: 0,
        batch_strides: vec![8],
        row_stride: -2,
        col_stride: 1,
    };
    let r = attention(&sh, &q, &kt, &neg, None, ScoreScale::Mul(1.0), &mut out);
    assert!(matches!(r, Err(KernelError::ViewOutOfBounds { operand: "v", .. })), "{r:?}");
}

/// `[seq, heads, dim]` (BSHD) view of head `h`'s `[seq, dim]` matrices:
/// heads interleaved within each row (batch stride `dim` < row stride `heads·dim`).
fn bshd(buf: &[f32], heads: usize, dim: usize) -> MatView<'_> {
    MatView {
        data: buf,
        offset: 0,
        batch_strides: vec![dim as isize],
        row_stride: (heads * dim) as isize,
        col_stride: 1,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Q, K, V read in place from heads-interleaved `[S, H, D]` buffers (an
    /// untransposed projection output), with and without a `[T]` mask.
    #[test]
    fn heads_interleaved_views(
        h in dim(&[1, 2, 3, 12]), s in dim(&[1, 5, 64, 65, 128]), t in dim(&[1, 9, 128, 131]),
        d in dim(&[1, 7, 16, 32, 33]), masked: bool, seed in any::<u64>(),
    ) {
        let (qb, kb, vb) = (data(seed, s * h * d), data(seed ^ 1, t * h * d), data(seed ^ 2, t * h * d));
        let mb: Vec<f32> = (0..t).map(|j| if j % 5 == 4 { -1e4 } else { 0.0 }).collect();
        let mask = MatView { data: &mb, offset: 0, batch_strides: vec![0], row_stride: 0, col_stride: 1 };
        let mask = masked.then_some(&mask);
        let sh = AttentionShape { batch: vec![h], queries: s, keys: t, head_dim: d, value_dim: d };
        let (q, kt, v) = (bshd(&qb, h, d), bshd(&kb, h, d).transposed(), bshd(&vb, h, d));
        let scale = ScoreScale::Div((d as f32).sqrt());
        let want = reference(&sh, &q, &kt, &v, mask, scale);
        for isa in Isa::available() {
            let mut out = vec![f32::NAN; h * s * d];
            attention_with(isa, &sh, &q, &kt, &v, mask, scale, &mut out).expect("attention");
            check(&format!("{isa:?} BSHD {sh:?} mask {masked}"), &out, &want);
        }
    }
}
