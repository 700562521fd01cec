//! The estimate against measurement on this machine's CPU: a schedule on a
//! one-CPU platform is run by the CPU backend with its streams as worker groups
//! of cores ([`CpuModel::run_streams`]), and the measured speedup over one
//! stream is set against the predicted one, with the per-kernel agreement of
//! predicted and measured kernel times.

use super::estimate::estimate;
use super::platform::Platform;
use super::tasks::TaskGraph;
use crate::backend::CpuModel;
use crate::error::{Error, Result};
use crate::graph::Graph;
use std::time::Instant;

/// Predicted and measured figures of one model on a CPU platform.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Measured {
    /// Streams of the schedule.
    pub streams: usize,
    /// Cores per stream.
    pub threads_per_stream: usize,
    /// Predicted `T_single` (one stream), seconds.
    pub t_single_predicted: f64,
    /// Predicted `T_est` (the schedule), seconds.
    pub t_multi_predicted: f64,
    /// Predicted `S`.
    pub s_predicted: f64,
    /// Measured one-stream latency (median), seconds.
    pub t_single_measured: f64,
    /// Measured latency of the schedule's streams (median), seconds.
    pub t_multi_measured: f64,
    /// Measured `S`.
    pub s_measured: f64,
    /// Spearman's rank correlation of predicted and measured kernel times.
    pub kernel_spearman: f64,
    /// Median over kernels of measured / predicted time.
    pub kernel_median_ratio: f64,
    /// Timed runs of each configuration (alternating).
    pub runs: usize,
}

fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Usage {
            option: "--measure".into(),
            expected: "a thread pool that can start".into(),
            found: e.to_string(),
        })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Schedules `graph` on `platform` (one CPU device) and measures the schedule
/// against one stream, `runs` times each after a warm-up, alternating.
pub fn measure_cpu(graph: &Graph, platform: &Platform, runs: usize) -> Result<Measured> {
    if platform.devices.len() != 1 {
        return Err(Error::Usage {
            option: "--measure".into(),
            expected: "a platform of one CPU device (this machine)".into(),
            found: format!("{} with {} devices", platform.name, platform.devices.len()),
        });
    }
    let runs = runs.max(1);
    let model = CpuModel::compile_without_reuse(graph)?;
    let tasks = TaskGraph::from_program(model.program());
    let (schedule, e) = estimate(&tasks, platform, &[])?;
    let device = &platform.devices[0];
    let mut streams: Vec<Vec<usize>> = vec![Vec::new(); device.streams];
    let mut order: Vec<usize> = (0..tasks.tasks.len()).collect();
    order.sort_by(|&a, &b| schedule.slots[a].start.total_cmp(&schedule.slots[b].start).then(a.cmp(&b)));
    for t in order {
        streams[schedule.slots[t].stream].push(tasks.tasks[t].kernel);
    }
    streams.retain(|s| !s.is_empty());
    let pools: Vec<rayon::ThreadPool> = (0..streams.len()).map(|_| pool(device.threads_per_stream)).collect::<Result<_>>()?;
    let pool_refs: Vec<&rayon::ThreadPool> = pools.iter().collect();
    let single = pool(device.threads_per_stream)?;
    let inputs = crate::eval::random_inputs(graph, 0);
    // Warm-up, and a check that the concurrent run computes what the plain one does.
    let plain = single.install(|| model.run(&inputs))?;
    let concurrent = model.run_streams(&inputs, &streams, &pool_refs)?;
    for (name, t) in &plain {
        if concurrent.get(name).map(|c| c.to_f64()) != Some(t.to_f64()) {
            return Err(Error::Device {
                backend: "cpu",
                problem: format!("the concurrent run's output {name} differs from the sequential run's"),
            });
        }
    }
    let (mut ts, mut tm) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        let t = Instant::now();
        single.install(|| model.run(&inputs))?;
        ts.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        model.run_streams(&inputs, &streams, &pool_refs)?;
        tm.push(t.elapsed().as_secs_f64());
    }
    // Per-kernel agreement on one stream.
    let mut per_kernel: Vec<Vec<f64>> = vec![Vec::with_capacity(runs); tasks.tasks.len()];
    for _ in 0..runs {
        let (_, times) = single.install(|| model.run_timed(&inputs))?;
        for (k, d) in times.into_iter().enumerate() {
            per_kernel[k].push(d.as_secs_f64());
        }
    }
    let measured: Vec<f64> = per_kernel.iter_mut().map(|v| median(v)).collect();
    let predicted: Vec<f64> = tasks.tasks.iter().map(|t| t.seconds(&device.profile)).collect();
    let mut ratios: Vec<f64> = measured.iter().zip(&predicted).map(|(m, p)| m / p).collect();
    let (t_single_measured, t_multi_measured) = (median(&mut ts), median(&mut tm));
    Ok(Measured {
        streams: streams.len(),
        threads_per_stream: device.threads_per_stream,
        t_single_predicted: e.t_single,
        t_multi_predicted: e.t_est,
        s_predicted: e.speedup,
        t_single_measured,
        t_multi_measured,
        s_measured: t_single_measured / t_multi_measured,
        kernel_spearman: crate::calibrate::agreement::spearman(&predicted, &measured),
        kernel_median_ratio: median(&mut ratios),
        runs,
    })
}
