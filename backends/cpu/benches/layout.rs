//! Data movement: 4-D transposes (MiniLM's head split/merge), NCHW → NHWC,
//! ShuffleNet v2's channel shuffle, and an embedding lookup (gather), on 1 and
//! 2 threads.
//!
//! Throughput: `Throughput::Bytes` = bytes moved (elements read + elements
//! written, 4 bytes each; for gather only the gathered rows count as read).
//!
//! Filter with e.g. `cargo bench -p eqopt-cpu --bench layout -- 'gather/'`.

mod common;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eqopt_cpu::layout::{gather, permute};

use common::{THREADS, config, data, pool};

fn bench_permute(cr: &mut Criterion) {
    // (name, input shape, permutation)
    let cases: [(&str, &[usize], &[usize]); 4] = [
        // [B, S, H, Dh] → [B, H, S, Dh]: split heads.
        ("minilm_split_heads_1x128x12x32", &[1, 128, 12, 32], &[0, 2, 1, 3]),
        // [B, H, S, Dh] → [B, S, H, Dh]: merge heads.
        ("minilm_merge_heads_1x12x128x32", &[1, 12, 128, 32], &[0, 2, 1, 3]),
        // ResNet-50 stage-1 activation to NHWC.
        ("nchw_to_nhwc_1x64x56x56", &[1, 64, 56, 56], &[0, 2, 3, 1]),
        // ShuffleNet v2 channel shuffle (groups 2, 116 channels, 28×28):
        // reshape [1, 2, 58, 28, 28] → transpose → [1, 58, 2, 28, 28].
        ("shfv2_channel_shuffle_1x2x58x28x28", &[1, 2, 58, 28, 28], &[0, 2, 1, 3, 4]),
    ];
    let pools: Vec<_> = THREADS.iter().map(|&t| (t, pool(t))).collect();
    for (name, shape, perm) in cases {
        let n: usize = shape.iter().product();
        let x = data(n, 1);
        let mut y = vec![0.0f32; n];
        let mut g = cr.benchmark_group(format!("permute/{name}"));
        // Bytes: every element read once and written once.
        g.throughput(Throughput::Bytes((2 * n * 4) as u64));
        for (threads, pool) in &pools {
            g.bench_function(format!("t{threads}"), |b| {
                pool.install(|| b.iter(|| permute(black_box(&x), shape, perm, &mut y).expect("permute")))
            });
        }
        g.finish();
    }
}

fn bench_gather(cr: &mut Criterion) {
    // BERT/MiniLM word embeddings: 30522 × 384 table, 128 token ids.
    let (vocab, dim, tokens) = (30_522usize, 384usize, 128usize);
    let table = data(vocab * dim, 2);
    let ids: Vec<i64> = (0..tokens as i64).map(|i| (i * 7919 + 101) % vocab as i64).collect();
    let mut out = vec![0.0f32; tokens * dim];
    let mut g = cr.benchmark_group("gather/embedding_30522x384_128ids");
    // Bytes: the gathered rows read + the output written.
    g.throughput(Throughput::Bytes((2 * tokens * dim * 4) as u64));
    for threads in THREADS {
        let pool = pool(threads);
        g.bench_function(format!("t{threads}"), |b| {
            pool.install(|| b.iter(|| gather(black_box(&table), &[vocab, dim], 0, &ids, &mut out).expect("gather")))
        });
    }
    g.finish();
}

criterion_group! { name = benches; config = config(); targets = bench_permute, bench_gather }
criterion_main!(benches);
