//! Running a program's kernels on several streams at once: each stream a
//! thread with its own rayon pool (a worker group of cores) running its
//! kernels in the order given, each kernel waiting for the kernels it depends
//! on. The toolchain's schedules say which kernel goes on which stream; this
//! is how their predictions are measured on the CPU.
//!
//! Dependencies: a kernel waits for every earlier writer of each buffer it
//! reads, and for the previous writer of the buffer it writes (the parts of a
//! concatenation are written one after another, so no two kernels ever hold
//! the same buffer mutably at once). Intermediates must not share memory
//! (a plan without reuse): two kernels running at once could otherwise write
//! each other's buffers. [`Executable::run_streams`] checks both.

use super::{ExecError, Executable, InputData, ops};
use std::sync::{Condvar, Mutex};

/// Per kernel, the earlier kernels it must wait for.
fn dependencies(program: &eqopt_kir::Program) -> Vec<Vec<usize>> {
    let mut writers: Vec<Vec<usize>> = vec![Vec::new(); program.buffers.len()];
    let mut deps = Vec::with_capacity(program.kernels.len());
    for (k, kernel) in program.kernels.iter().enumerate() {
        let mut d: Vec<usize> = Vec::new();
        for v in kernel.inputs() {
            d.extend(&writers[v.buffer]);
        }
        let out = kernel.output().buffer;
        d.extend(writers[out].last());
        d.sort_unstable();
        d.dedup();
        writers[out].push(k);
        deps.push(d);
    }
    deps
}

impl Executable {
    /// Runs the program with `streams[s]` (kernel indices, every kernel exactly
    /// once over all streams) on a thread of its own inside `pools[s]`, kernels
    /// of a stream in the order given, each after the kernels it depends on.
    /// Returns the outputs, as [`Executable::run`] does. The executable must
    /// have been planned without memory reuse (every intermediate disjoint),
    /// and the streams' orders must not contradict the dependencies (no cycle
    /// through waits); otherwise an error, never a wrong result or a deadlock.
    pub fn run_streams(
        &self,
        inputs: &[InputData<'_>],
        streams: &[Vec<usize>],
        pools: &[&rayon::ThreadPool],
    ) -> Result<Vec<Vec<f32>>, ExecError> {
        let p = &self.program;
        let bad = |problem: &'static str| ExecError::Streams { problem };
        if streams.len() != pools.len() {
            return Err(bad("streams and pools differ in number"));
        }
        let mut seen = vec![false; p.kernels.len()];
        for &k in streams.iter().flatten() {
            if k >= p.kernels.len() || std::mem::replace(&mut seen[k], true) {
                return Err(bad("streams must hold every kernel exactly once"));
            }
        }
        if seen.iter().any(|s| !s) {
            return Err(bad("streams must hold every kernel exactly once"));
        }
        let mut spans: Vec<(usize, usize)> = (0..p.buffers.len())
            .filter(|&b| p.buffers[b].kind.is_none() && p.buffers[b].len > 0)
            .map(|b| (self.offsets[b].unwrap_or(0), self.offsets[b].unwrap_or(0) + p.buffers[b].len))
            .collect();
        spans.sort_unstable();
        if spans.windows(2).any(|w| w[1].0 < w[0].1) {
            return Err(bad("two intermediates share memory: concurrent runs need a plan without reuse"));
        }
        let deps = dependencies(p);
        // The dependencies and the streams' orders together must be acyclic, or
        // some stream would wait forever (Kahn's algorithm over both kinds of edge).
        let n = p.kernels.len();
        let mut after: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut indegree = vec![0usize; n];
        for k in 0..n {
            for &d in &deps[k] {
                after[d].push(k);
                indegree[k] += 1;
            }
        }
        for s in streams {
            for w in s.windows(2) {
                after[w[0]].push(w[1]);
                indegree[w[1]] += 1;
            }
        }
        let mut ready: Vec<usize> = (0..n).filter(|&k| indegree[k] == 0).collect();
        let mut ordered = 0;
        while let Some(k) = ready.pop() {
            ordered += 1;
            for &j in &after[k] {
                indegree[j] -= 1;
                if indegree[j] == 0 {
                    ready.push(j);
                }
            }
        }
        if ordered < n {
            return Err(bad("the streams' orders contradict the kernels' dependencies"));
        }
        let (arena, outputs, mem) = self.prepare(inputs)?;
        // done[k]: kernel k finished; failed: some kernel failed (everyone stops).
        let state = Mutex::new((vec![false; p.kernels.len()], None::<ExecError>));
        let wake = Condvar::new();
        std::thread::scope(|scope| {
            for (s, order) in streams.iter().enumerate() {
                let (state, wake, mem, deps, pool) = (&state, &wake, &mem, &deps, pools[s]);
                scope.spawn(move || {
                    pool.install(|| {
                        for &k in order {
                            {
                                let mut g = state.lock().unwrap_or_else(|e| e.into_inner());
                                while g.1.is_none() && !deps[k].iter().all(|&d| g.0[d]) {
                                    g = wake.wait(g).unwrap_or_else(|e| e.into_inner());
                                }
                                if g.1.is_some() {
                                    return;
                                }
                            }
                            let kernel = &p.kernels[k];
                            let r = ops::run_kernel(kernel, self.exprs[k].as_ref(), mem);
                            let mut g = state.lock().unwrap_or_else(|e| e.into_inner());
                            match r {
                                Ok(()) => g.0[k] = true,
                                Err(source) => {
                                    g.1.get_or_insert(ExecError::Kernel {
                                        kernel: k,
                                        name: kernel.name(),
                                        source,
                                    });
                                }
                            }
                            wake.notify_all();
                        }
                    })
                });
            }
        });
        drop(mem);
        self.return_arena(arena);
        match state.into_inner().unwrap_or_else(|e| e.into_inner()).1 {
            Some(e) => Err(e),
            None => Ok(outputs),
        }
    }
}
