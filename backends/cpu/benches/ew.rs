//! Elementwise, softmax and attention throughput, per ISA, against plain scalar
//! loops. Elementwise throughput is in bytes moved (inputs read + output written).
//!
//! Filter with e.g. `cargo bench -p eqopt-cpu --bench ew -- 'ew/relu_add'`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eqopt_cpu::attention::{AttentionShape, MatView, ScoreScale, attention_with};
use eqopt_cpu::elementwise::{BinaryOp, EwInput, EwProgram, Instr, UnaryOp, eval_with};
use eqopt_cpu::reduce::softmax_with;
use eqopt_cpu::simd::{Isa, Simd, SimdKernel};

mod common;
use common::data;

/// `out = relu(a + b)` as one hand-fused SIMD loop: the ceiling for the
/// tile-by-tile interpreter.
struct FusedReluAdd<'a> {
    a: &'a [f32],
    b: &'a [f32],
    out: &'a mut [f32],
}

impl SimdKernel for FusedReluAdd<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let l = S::LANES;
        for ((x, y), o) in self.a.chunks_exact(l).zip(self.b.chunks_exact(l)).zip(self.out.chunks_exact_mut(l)) {
            s.store(s.relu(s.add(s.load(x), s.load(y))), o);
        }
    }
}

fn single_thread() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool")
}

fn elementwise(c: &mut Criterion) {
    const N: usize = 16 << 20;
    let a = data(N, 1);
    let b = data(N, 2);
    let mut out = vec![0.0f32; N];
    let shape = [N];
    let relu_add = EwProgram::new(
        2,
        vec![
            Instr::Input(0),
            Instr::Input(1),
            Instr::Binary(BinaryOp::Add, 0, 1),
            Instr::Unary(UnaryOp::Relu, 2),
        ],
    )
    .expect("valid");
    let gelu = EwProgram::new(1, vec![Instr::Input(0), Instr::Unary(UnaryOp::Gelu, 0)]).expect("valid");
    let pool = single_thread();
    let mut g = c.benchmark_group("ew");
    g.measurement_time(Duration::from_secs(3)).sample_size(10);
    g.throughput(Throughput::Bytes((3 * N * 4) as u64));
    g.bench_function("relu_add_16M/scalar_loop", |bench| {
        bench.iter(|| {
            for ((o, &x), &y) in out.iter_mut().zip(&a).zip(&b) {
                *o = (x + y).max(0.0);
            }
            black_box(&out);
        })
    });
    let inputs = [EwInput::contiguous(&a, &shape), EwInput::contiguous(&b, &shape)];
    for isa in Isa::available() {
        g.bench_function(format!("relu_add_16M/{isa:?}/hand_fused"), |bench| {
            bench.iter(|| {
                isa.dispatch(FusedReluAdd {
                    a: &a,
                    b: &b,
                    out: &mut out,
                })
            })
        });
        g.bench_function(format!("relu_add_16M/{isa:?}/1_thread"), |bench| {
            bench.iter(|| pool.install(|| eval_with(isa, &relu_add, &inputs, &mut out, &shape).expect("eval")))
        });
        g.bench_function(format!("relu_add_16M/{isa:?}/all_threads"), |bench| {
            bench.iter(|| eval_with(isa, &relu_add, &inputs, &mut out, &shape).expect("eval"))
        });
    }
    g.throughput(Throughput::Bytes((2 * N * 4) as u64));
    for isa in Isa::available() {
        g.bench_function(format!("gelu_16M/{isa:?}/1_thread"), |bench| {
            bench.iter(|| pool.install(|| eval_with(isa, &gelu, &inputs[..1], &mut out, &shape).expect("eval")))
        });
    }
    g.finish();
}

fn softmax_and_attention(c: &mut Criterion) {
    let pool = single_thread();
    let (rows, n) = (4096, 1024);
    let x = data(rows * n, 3);
    let mut out = vec![0.0f32; rows * n];
    let mut g = c.benchmark_group("softmax");
    g.measurement_time(Duration::from_secs(3)).sample_size(10);
    g.throughput(Throughput::Bytes((2 * rows * n * 4) as u64));
    for isa in Isa::available() {
        g.bench_function(format!("4096x1024/{isa:?}/1_thread"), |bench| {
            bench.iter(|| pool.install(|| softmax_with(isa, &x, &mut out, rows, n).expect("softmax")))
        });
    }
    g.finish();

    // BERT-base-like: 12 heads, 384 tokens, head size 64.
    let (h, s, d) = (12, 384, 64);
    let q = data(h * s * d, 4);
    let k = data(h * s * d, 5);
    let v = data(h * s * d, 6);
    let mut out = vec![0.0f32; h * s * d];
    let sh = AttentionShape {
        batch: vec![h],
        queries: s,
        keys: s,
        head_dim: d,
        value_dim: d,
    };
    let (qv, kt, vv) = (
        MatView::dense(&q, &[h], s, d),
        MatView::dense(&k, &[h], s, d).transposed(),
        MatView::dense(&v, &[h], s, d),
    );
    let mut g = c.benchmark_group("attention");
    g.measurement_time(Duration::from_secs(3)).sample_size(10);
    // Flops of the two products.
    g.throughput(Throughput::Elements((4 * h * s * s * d) as u64));
    for isa in Isa::available() {
        g.bench_function(format!("12x384x64/{isa:?}/1_thread"), |bench| {
            bench
                .iter(|| pool.install(|| attention_with(isa, &sh, &qv, &kt, &vv, None, ScoreScale::Div(8.0), &mut out).expect("attention")))
        });
    }
    g.finish();
}

criterion_group!(benches, elementwise, softmax_and_attention);
criterion_main!(benches);
