//! Softmax, layer norm and axis reductions on MiniLM-L12 / ResNet-50 shapes:
//! every available ISA on 1 thread, and the detected ISA on 2 threads.
//!
//! Throughput: `Throughput::Bytes` = bytes moved (input read once + output
//! written; `gamma`/`beta` for layer norm are not counted), as these kernels
//! are memory- or exp-bound rather than FLOP-bound.
//!
//! Filter with e.g. `cargo bench -p eqopt-cpu --bench norm -- 'softmax/'`.

mod common;

use std::hint::black_box;

use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime};
use eqopt_cpu::reduce::{ReduceOp, layer_norm_with, reduce_with, softmax_with};
use eqopt_cpu::simd::Isa;

use common::{config, data, pool};

/// Runs `f(isa)` once per available ISA on 1 thread and once with the detected
/// ISA on 2 threads, as `{isa}/t{threads}`.
fn per_isa(g: &mut BenchmarkGroup<'_, WallTime>, mut f: impl FnMut(Isa) + Send) {
    let (p1, p2) = (pool(1), pool(2));
    for isa in Isa::available() {
        g.bench_function(format!("{isa:?}/t1"), |b| p1.install(|| b.iter(|| f(isa))));
    }
    let isa = Isa::detect();
    g.bench_function(format!("{isa:?}/t2"), |b| p2.install(|| b.iter(|| f(isa))));
}

fn bench_softmax(cr: &mut Criterion) {
    // MiniLM attention probabilities [12 heads, 128, 128], softmax over the last axis.
    let (rows, n) = (12 * 128, 128);
    let x = data(rows * n, 1);
    let mut out = vec![0.0f32; rows * n];
    let mut g = cr.benchmark_group("softmax/minilm_12x128x128");
    // Bytes: input read + output written.
    g.throughput(Throughput::Bytes((2 * rows * n * 4) as u64));
    per_isa(&mut g, |isa| softmax_with(isa, black_box(&x), &mut out, rows, n).expect("softmax"));
    g.finish();
}

fn bench_layer_norm(cr: &mut Criterion) {
    // MiniLM hidden states [128 tokens, 384], normalised over the last axis, with gamma/beta.
    let (rows, n) = (128, 384);
    let x = data(rows * n, 2);
    let (gamma, beta) = (data(n, 3), data(n, 4));
    let mut out = vec![0.0f32; rows * n];
    let mut g = cr.benchmark_group("layer_norm/minilm_128x384");
    // Bytes: input read + output written.
    g.throughput(Throughput::Bytes((2 * rows * n * 4) as u64));
    per_isa(&mut g, |isa| {
        layer_norm_with(isa, black_box(&x), Some(&gamma), Some(&beta), &mut out, rows, n, 1e-12).expect("layer_norm")
    });
    g.finish();
}

fn bench_reduce(cr: &mut Criterion) {
    // ReduceMean over H, W: (name, outer, n, inner) for reduce_with's [outer, n, inner] view.
    let cases = [
        // NCHW [1, 2048, 7, 7]: contiguous 49-element rows.
        ("mean_hw_nchw_1x2048x7x7", 2048, 49, 1),
        // NHWC [1, 7, 7, 2048]: reduce across rows, 2048 contiguous outputs.
        ("mean_hw_nhwc_1x7x7x2048", 1, 49, 2048),
        // NCHW [1, 256, 56, 56]: long rows.
        ("mean_hw_nchw_1x256x56x56", 256, 56 * 56, 1),
    ];
    for (name, outer, n, inner) in cases {
        let x = data(outer * n * inner, 5);
        let mut out = vec![0.0f32; outer * inner];
        let mut g = cr.benchmark_group(format!("reduce/{name}"));
        // Bytes: input read + output written.
        g.throughput(Throughput::Bytes(((outer * n * inner + outer * inner) * 4) as u64));
        per_isa(&mut g, |isa| {
            reduce_with(isa, ReduceOp::Mean, black_box(&x), &mut out, outer, n, inner).expect("reduce")
        });
        g.finish();
    }
}

criterion_group! { name = benches; config = config(); targets = bench_softmax, bench_layer_norm, bench_reduce }
criterion_main!(benches);
