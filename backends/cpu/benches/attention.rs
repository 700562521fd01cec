//! Fused attention on MiniLM-L12 shapes (12 heads, 128 tokens, head size 32):
//! dense `[heads, seq, d]` (BHSD) operands and strided views of `[seq, heads, d]`
//! (BSHD) buffers (a Q/K/V projection's output, untransposed), without and
//! with a `[T]` padding mask broadcast over heads and queries. Every available
//! ISA on 1 thread, the detected ISA on 2 threads.
//!
//! Throughput: `Throughput::Elements` = floating-point operations of the two
//! products (`2·S·T·D + 2·S·T·E` per head); softmax work is not counted.
//!
//! Filter with e.g. `cargo bench -p eqopt-cpu --bench attention -- 'bshd/mask'`.

mod common;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eqopt_cpu::attention::{AttentionShape, MatView, ScoreScale, attention_with};
use eqopt_cpu::simd::Isa;

use common::{config, data, pool};

const H: usize = 12;
const S: usize = 128;
const D: usize = 32;

/// Q, Kᵀ and V views of three `[H, S, D]` (BHSD) or `[S, H, D]` (BSHD) buffers.
fn views<'a>(q: &'a [f32], k: &'a [f32], v: &'a [f32], bshd: bool) -> (MatView<'a>, MatView<'a>, MatView<'a>) {
    if !bshd {
        return (
            MatView::dense(q, &[H], S, D),
            MatView::dense(k, &[H], S, D).transposed(),
            MatView::dense(v, &[H], S, D),
        );
    }
    // Head h, token i, feature c at i·H·D + h·D + c.
    let strided = |data| MatView {
        data,
        offset: 0,
        batch_strides: vec![D as isize],
        row_stride: (H * D) as isize,
        col_stride: 1,
    };
    (strided(q), strided(k).transposed(), strided(v))
}

fn bench_attention(cr: &mut Criterion) {
    let (q, k, v) = (data(H * S * D, 1), data(H * S * D, 2), data(H * S * D, 3));
    // BERT-style additive padding mask over keys: the last 28 tokens are padding.
    let mask_buf: Vec<f32> = (0..S).map(|j| if j < 100 { 0.0 } else { -10_000.0 }).collect();
    let mask = MatView {
        data: &mask_buf,
        offset: 0,
        batch_strides: vec![0],
        row_stride: 0,
        col_stride: 1,
    };
    let shape = AttentionShape {
        batch: vec![H],
        queries: S,
        keys: S,
        head_dim: D,
        value_dim: D,
    };
    let scale = ScoreScale::Div((D as f32).sqrt());
    let (p1, p2) = (pool(1), pool(2));
    let mut out = vec![0.0f32; H * S * D];
    for (layout, bshd) in [("bhsd", false), ("bshd", true)] {
        let (qv, kt, vv) = views(&q, &k, &v, bshd);
        for (mname, m) in [("nomask", None), ("mask", Some(&mask))] {
            let mut g = cr.benchmark_group(format!("attention/minilm_12x128x32/{layout}/{mname}"));
            // FLOPs of Q·Kᵀ and P·V.
            g.throughput(Throughput::Elements((4 * H * S * S * D) as u64));
            let mut run = |isa: Isa| attention_with(isa, &shape, black_box(&qv), &kt, &vv, m, scale, &mut out).expect("attention");
            for isa in Isa::available() {
                g.bench_function(format!("{isa:?}/t1"), |b| p1.install(|| b.iter(|| run(isa))));
            }
            let isa = Isa::detect();
            g.bench_function(format!("{isa:?}/t2"), |b| p2.install(|| b.iter(|| run(isa))));
            g.finish();
        }
    }
}

criterion_group! { name = benches; config = config(); targets = bench_attention }
criterion_main!(benches);
