//! The task graph the scheduler places: one task per kernel of a lowered
//! program, with the bytes each reads from each earlier task, the constants it
//! keeps resident, and what it exchanges with the home device (graph inputs
//! and outputs). Tasks are in the program's order, which is topological.

use crate::cost::HardwareProfile;
use crate::dtype::DType;
use eqopt_kir::{BufferKind, GemmCompute, Kernel, Program};

/// One schedulable unit: a kernel, or one shard of a split GEMM.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    /// The kernel of the program it runs (all shards of a split GEMM share it).
    pub kernel: usize,
    /// For display: `k<kernel> <kind> <output name>`, with ` [i/n]` for a shard.
    pub label: String,
    /// The kernel's kind (`gemm`, `conv`, ...).
    pub kind: &'static str,
    /// Floating-point operations.
    pub flops: u64,
    /// Bytes read and written.
    pub bytes: u64,
    /// The arithmetic whose peak applies.
    pub dtype: DType,
    /// Bytes of its output: what a consumer on another device receives.
    pub out_bytes: u64,
    /// Constants it reads, `(buffer, bytes)`: resident on its device.
    pub weights: Vec<(usize, u64)>,
    /// Bytes of graph inputs it reads (they start on the home device).
    pub input_bytes: u64,
    /// Bytes of graph outputs it writes (they must end on the home device).
    pub output_bytes: u64,
    /// `(task, bytes)`: the earlier tasks whose output it reads.
    pub preds: Vec<(usize, u64)>,
    /// `(i, n)` for shard `i` of a GEMM split `n` ways.
    pub shard: Option<(usize, usize)>,
    /// The kernel has an epilogue fused into it (a GEMM or convolution).
    pub fused_epilogue: bool,
    /// Kernel launches it takes (1; 2 for the unfused alternative of a fused
    /// epilogue in the sensitivity analysis).
    pub launches: u32,
}

impl Task {
    /// Seconds on one stream of `profile`, as the design's estimate counts a
    /// kernel: compute time plus memory time (not their maximum) plus the
    /// launch overhead.
    pub fn seconds(&self, profile: &HardwareProfile) -> f64 {
        self.flops as f64 / profile.peak(self.dtype)
            + self.bytes as f64 / profile.memory_bandwidth
            + self.launches as f64 * profile.launch_overhead
    }
}

/// Tasks in a topological order.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskGraph {
    /// The program's name.
    pub name: String,
    /// Tasks; every `preds` entry names an earlier task.
    pub tasks: Vec<Task>,
}

impl TaskGraph {
    /// The task graph of `program`: one task per kernel.
    pub fn from_program(program: &Program) -> TaskGraph {
        let mut writers: Vec<Vec<usize>> = vec![Vec::new(); program.buffers.len()];
        let mut tasks = Vec::with_capacity(program.kernels.len());
        for (k, kernel) in program.kernels.iter().enumerate() {
            let w = program.kernel_work(k).unwrap_or_default();
            let out = kernel.output();
            let elem = |b: usize| program.buffers[b].elem.size() as u64;
            let mut preds: Vec<(usize, u64)> = Vec::new();
            let mut weights: Vec<(usize, u64)> = Vec::new();
            let mut input_bytes = 0u64;
            for v in kernel.inputs() {
                let buf = &program.buffers[v.buffer];
                let bytes = (v.numel() as u64).min(buf.len as u64) * elem(v.buffer);
                match &buf.kind {
                    Some(BufferKind::Constant(_)) => {
                        if !weights.iter().any(|(b, _)| *b == v.buffer) {
                            weights.push((v.buffer, buf.bytes() as u64));
                        }
                    }
                    Some(BufferKind::Input) => input_bytes += bytes,
                    _ => {
                        let ws = &writers[v.buffer];
                        for &p in ws {
                            let share = bytes / ws.len() as u64;
                            match preds.iter_mut().find(|(q, _)| *q == p) {
                                Some(e) => e.1 = e.1.max(share),
                                None => preds.push((p, share)),
                            }
                        }
                    }
                }
            }
            // Kernels writing parts of one buffer (a concatenation) run in
            // program order: each waits for the previous writer (no data moves).
            if let Some(&last) = writers[out.buffer].last() {
                if !preds.iter().any(|(q, _)| *q == last) {
                    preds.push((last, 0));
                }
            }
            let out_bytes = out.numel() as u64 * elem(out.buffer);
            let output_bytes = if matches!(program.buffers[out.buffer].kind, Some(BufferKind::Output)) {
                out_bytes
            } else {
                0
            };
            let (dtype, fused_epilogue) = match kernel {
                Kernel::Gemm { compute, epilogue, .. } => (
                    if *compute == GemmCompute::Bf16 { DType::BF16 } else { DType::F32 },
                    epilogue.is_some(),
                ),
                Kernel::Conv { epilogue, .. } => (DType::F32, epilogue.is_some()),
                _ => (DType::F32, false),
            };
            writers[out.buffer].push(k);
            tasks.push(Task {
                kernel: k,
                label: format!("k{k} {} {}", kernel.name(), program.buffers[out.buffer].name),
                kind: kernel.name(),
                flops: w.flops,
                bytes: w.bytes_read.saturating_add(w.bytes_written),
                dtype,
                out_bytes,
                weights,
                input_bytes,
                output_bytes,
                preds,
                shard: None,
                fused_epilogue,
                launches: 1,
            });
        }
        TaskGraph {
            name: program.name.clone(),
            tasks,
        }
    }

    /// Total floating-point operations (the `N_ops` of throughput).
    pub fn flops(&self) -> u64 {
        self.tasks.iter().map(|t| t.flops).sum()
    }

    /// The graph with every GEMM split `n` ways along its output columns
    /// (tensor parallelism) where that pays on `profile` with `link` (bandwidth
    /// in bytes/s, latency in s) between the devices: shard `i` does `1/n` of
    /// the arithmetic, reads the whole `a` and `1/n` of the weights, and writes
    /// `1/n` of the output, and each consumer then receives every shard's part
    /// (an all-gather on the links). A GEMM is split when a shard's time plus
    /// the all-gather of the other `n - 1` parts is below its time whole.
    /// Shards carry [`Task::shard`]; the scheduler puts shard `i` on the `i`-th
    /// device of the group it is given.
    pub fn split_gemms(&self, n: usize, profile: &HardwareProfile, link: (f64, f64)) -> TaskGraph {
        if n <= 1 {
            return self.clone();
        }
        let mut tasks: Vec<Task> = Vec::new();
        // New indices of each old task (several for a split one).
        let mut new_of: Vec<Vec<usize>> = Vec::with_capacity(self.tasks.len());
        for t in &self.tasks {
            let preds: Vec<(usize, u64)> = t
                .preds
                .iter()
                .flat_map(|&(p, bytes)| {
                    let parts = &new_of[p];
                    let m = parts.len() as u64;
                    parts.iter().map(move |&q| (q, bytes / m))
                })
                .collect();
            let shard = |t: &Task| -> Task {
                let nn = n as u64;
                let weight_total: u64 = t.weights.iter().map(|w| w.1).sum();
                let a_bytes = t.bytes.saturating_sub(weight_total).saturating_sub(t.out_bytes);
                Task {
                    flops: t.flops / nn,
                    bytes: a_bytes + weight_total / nn + t.out_bytes / nn,
                    out_bytes: t.out_bytes / nn,
                    weights: t.weights.iter().map(|&(b, w)| (b, w / nn)).collect(),
                    output_bytes: t.output_bytes / nn,
                    ..t.clone()
                }
            };
            let gather = |t: &Task| link.1 + (t.out_bytes - t.out_bytes / n as u64) as f64 / link.0;
            let split = t.kind == "gemm" && shard(t).seconds(profile) + gather(t) < t.seconds(profile);
            if !split {
                new_of.push(vec![tasks.len()]);
                tasks.push(Task { preds, ..t.clone() });
                continue;
            }
            let part = shard(t);
            let mut ids = Vec::with_capacity(n);
            for i in 0..n {
                ids.push(tasks.len());
                tasks.push(Task {
                    label: format!("{} [{}/{n}]", t.label, i + 1),
                    preds: preds.clone(),
                    shard: Some((i, n)),
                    ..part.clone()
                });
            }
            new_of.push(ids);
        }
        TaskGraph {
            name: self.name.clone(),
            tasks,
        }
    }
}
