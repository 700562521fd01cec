//! Helpers shared by the benches (`conv`, `pool`, `norm`, `attention`,
//! `layout`, and `data` for `gemm` and `ew`): deterministic data, per-thread-count pools and a
//! short criterion configuration so the whole suite stays within minutes.

#![allow(dead_code)]

use std::time::Duration;

use criterion::Criterion;

/// Thread counts every kernel is measured with (each in its own rayon pool).
pub const THREADS: [usize; 2] = [1, 2];

/// `len` values in `[-1, 1)` from a xorshift generator.
pub fn data(len: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

/// A rayon pool with `threads` workers; kernels run inside `pool.install`.
pub fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("rayon pool")
}

/// 10 samples, 0.3 s warm-up, 1 s measurement per benchmark.
pub fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}
