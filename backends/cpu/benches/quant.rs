//! Quantized weights: the same product with `B` stored as `f32`, `f16`, int8
//! (per-column scales) and int4 (groups of 128 rows), on MiniLM-sized linear
//! layers: the batch-1 GEMVs (int8 reads a quarter of the bytes of `f32`) and
//! the 128-token FFN GEMM (compute-bound; the weights are dequantized while
//! packing). One thread, the detected ISA. Throughput is in "elements/s"
//! where one element is one floating-point operation (2·m·k·n).
//!
//! Each GEMV runs twice: `warm`, the same weights every iteration (they stay in
//! the L2/L3 caches: at most 8 MiB here), and `cold`, cycling through copies of
//! the weights totalling at least 64 MiB per format (twice a 32 MiB L3), so
//! every iteration streams its weights from memory, as a batch-1 model whose
//! weights exceed the caches does.
//!
//! Filter with e.g. `cargo bench -p eqopt-cpu --bench quant -- 'quant/gemv'`.

use std::hint::black_box;

use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime};
use eqopt_cpu::gemm::{GemmDims, MatLayout, WeightRef, gemm};
use eqopt_cpu::quant::{quantize_int4, quantize_int8};

mod common;
use common::{config, data, pool};

/// Rows per int4 scale group.
const GROUP: usize = 128;
/// Bytes of weights each `cold` benchmark cycles through.
const COLD_BYTES: usize = 64 << 20;

/// (name, m, k, n)
const SHAPES: &[(&str, usize, usize, usize)] = &[
    ("gemv_1x384x1536", 1, 384, 1536),
    ("gemv_1x1536x384", 1, 1536, 384),
    ("gemv_1x2048x1000", 1, 2048, 1000),
    ("gemm_128x384x1536", 128, 384, 1536),
];

fn run(m: usize, k: usize, n: usize, a: &[f32], b: WeightRef<'_>, c: &mut [f32]) {
    let d = GemmDims::new(m, k, n);
    let (al, bl, cl) = (MatLayout::row_major(m, k), MatLayout::row_major(k, n), MatLayout::row_major(m, n));
    gemm(d, a, al, b, bl, c, cl, None).expect("valid product");
}

/// Benchmarks `label`, iteration `i` using `ws[i % ws.len()]`.
fn bench(g: &mut BenchmarkGroup<'_, WallTime>, label: &str, dims: (usize, usize, usize), a: &[f32], ws: &[WeightRef<'_>]) {
    let (m, k, n) = dims;
    let pool = pool(1);
    let mut c = vec![0.0f32; m * n];
    let mut i = 0;
    g.bench_function(label, |bch| {
        pool.install(|| {
            bch.iter(|| {
                i = (i + 1) % ws.len();
                run(m, k, n, black_box(a), ws[i], &mut c)
            })
        })
    });
}

/// Copies of `w` (of `bytes` bytes) totalling at least [`COLD_BYTES`].
fn cold_copies<T: Clone>(w: &T, bytes: usize) -> Vec<T> {
    vec![w.clone(); COLD_BYTES.div_ceil(bytes.max(1))]
}

fn bench_quant(cr: &mut Criterion) {
    for &(name, m, k, n) in SHAPES {
        let (a, b) = (data(m * k, 1), data(k * n, 2));
        let b16: Vec<half::f16> = b.iter().map(|&x| half::f16::from_f32(x)).collect();
        let q8 = quantize_int8(&b, k, n).expect("int8");
        let q4 = quantize_int4(&b, k, n, GROUP).expect("int4");
        let dims = (m, k, n);
        let mut g = cr.benchmark_group(format!("quant/{name}/t1"));
        g.throughput(Throughput::Elements((2 * m * k * n) as u64));
        let warm = [
            ("f32", WeightRef::F32(&b)),
            ("f16", WeightRef::F16(&b16)),
            ("int8", WeightRef::from(&q8)),
            ("int4_g128", WeightRef::from(&q4)),
        ];
        let gemv = m == 1;
        for (label, w) in warm {
            let label = if gemv { format!("{label}/warm") } else { label.to_string() };
            bench(&mut g, &label, dims, &a, &[w]);
        }
        if gemv {
            let copies = cold_copies(&b, 4 * b.len());
            bench(
                &mut g,
                "f32/cold",
                dims,
                &a,
                &copies.iter().map(|w| WeightRef::F32(w)).collect::<Vec<_>>(),
            );
            drop(copies);
            let copies = cold_copies(&b16, 2 * b16.len());
            bench(
                &mut g,
                "f16/cold",
                dims,
                &a,
                &copies.iter().map(|w| WeightRef::F16(w)).collect::<Vec<_>>(),
            );
            drop(copies);
            let copies = cold_copies(&q8, q8.weight_bytes());
            bench(
                &mut g,
                "int8/cold",
                dims,
                &a,
                &copies.iter().map(WeightRef::from).collect::<Vec<_>>(),
            );
            drop(copies);
            let copies = cold_copies(&q4, q4.weight_bytes());
            bench(
                &mut g,
                "int4_g128/cold",
                dims,
                &a,
                &copies.iter().map(WeightRef::from).collect::<Vec<_>>(),
            );
        }
        g.finish();
    }
}

criterion_group! { name = benches; config = config(); targets = bench_quant }
criterion_main!(benches);
