//! The analytical estimate of a task graph on a platform: the schedule (HEFT,
//! never worse than running everything on the best single device, repaired
//! when a device's memory overflows), `T_est`, throughput, the speedup over
//! one stream on the best single device, the scale-out `S(n)` over a group of
//! identical devices, and the sensitivity of `T_est` to each kernel's decisions.

use super::heft::{Schedule, ScheduleOptions, memory_peaks, schedule};
use super::platform::Platform;
use super::tasks::TaskGraph;
use crate::dtype::DType;
use crate::error::{Error, Result};

/// Memory repairs tried before a schedule is refused.
pub const MAX_REPAIRS: usize = 8;

/// One point of the scale-out curve.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ScalePoint {
    /// Devices used.
    pub n: usize,
    /// `T_n`, seconds.
    pub t_est: f64,
    /// `S(n) = T_1 / T_n`.
    pub speedup: f64,
    /// How `T_n` was reached (`tensor-parallel`, `placement only`, or
    /// `as n-1`: more devices did not help).
    pub plan: String,
}

/// A device's memory against its capacity.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DeviceMemory {
    /// Device name.
    pub device: String,
    /// Peak live bytes (the lower bound of any allocator).
    pub peak_bytes: u64,
    /// The device's memory.
    pub capacity_bytes: u64,
}

/// The estimate.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Estimate {
    /// Platform name.
    pub platform: String,
    /// Kernels (tasks) scheduled.
    pub tasks: usize,
    /// `T_est`, seconds: the schedule's makespan.
    pub t_est: f64,
    /// `P = N_ops / T_est`, operations per second.
    pub throughput: f64,
    /// `T_single`: one stream on the best single device, seconds.
    pub t_single: f64,
    /// That device.
    pub single_device: String,
    /// `S = T_single / T_est`.
    pub speedup: f64,
    /// Which schedule won (`heft` over every device, or `heft on <devices>`).
    pub plan: String,
    /// `S(n)` over the platform's largest group of identical devices (empty
    /// when it has no two).
    pub scale_out: Vec<ScalePoint>,
    /// The group's device names.
    pub scale_out_devices: Vec<String>,
    /// Peak memory per device.
    pub memory: Vec<DeviceMemory>,
    /// Memory repairs made (each: what moved where, and why).
    pub repairs: Vec<String>,
}

fn all_on(d: usize, one_stream: bool) -> ScheduleOptions {
    ScheduleOptions {
        one_stream,
        allowed: Some(vec![d]),
        pins: Vec::new(),
    }
}

/// Devices up to which [`guarded`] tries every subset of the platform.
pub const MAX_SUBSET_DEVICES: usize = 6;

/// The best HEFT schedule over the subsets of the platform's devices: every
/// subset when there are at most [`MAX_SUBSET_DEVICES`], else each device
/// alone and all of them. So the estimate is never worse than the best
/// single-device schedule, and (up to that size) a device more never makes it
/// worse. With pins, HEFT on all devices only.
fn guarded(graph: &TaskGraph, platform: &Platform, pins: &[(usize, usize)]) -> Result<(Schedule, String)> {
    let nd = platform.devices.len();
    let opts = ScheduleOptions {
        pins: pins.to_vec(),
        ..Default::default()
    };
    let mut best = (schedule(graph, platform, &opts)?, "heft".to_string());
    if !pins.is_empty() {
        return Ok(best);
    }
    let subsets: Vec<Vec<usize>> = if nd <= MAX_SUBSET_DEVICES {
        (1..(1usize << nd) - 1)
            .map(|m| (0..nd).filter(|d| m & (1 << d) != 0).collect())
            .collect()
    } else {
        (0..nd).map(|d| vec![d]).collect()
    };
    for devices in subsets {
        let opts = ScheduleOptions {
            allowed: Some(devices.clone()),
            ..Default::default()
        };
        if let Ok(s) = schedule(graph, platform, &opts) {
            if s.makespan < best.0.makespan {
                let names: Vec<&str> = devices.iter().map(|&d| platform.devices[d].name.as_str()).collect();
                best = (s, format!("heft on {}", names.join(", ")));
            }
        }
    }
    Ok(best)
}

/// Schedules `graph` on `platform` and checks memory: a device over its
/// capacity has its tasks with the most resident weights moved to the device
/// with the most room, a quarter of its tasks at a time, up to [`MAX_REPAIRS`]
/// times; then the schedule is refused with the reason.
pub fn schedule_checked(graph: &TaskGraph, platform: &Platform, pins: &[(usize, usize)]) -> Result<(Schedule, String, Vec<String>)> {
    let mut pins: Vec<(usize, usize)> = pins.to_vec();
    let mut repairs = Vec::new();
    for _ in 0..=MAX_REPAIRS {
        let (s, plan) = guarded(graph, platform, &pins)?;
        let peaks = memory_peaks(graph, platform, &s);
        let over = (0..platform.devices.len()).find(|&d| peaks[d] > platform.devices[d].memory_bytes);
        let Some(d) = over else {
            return Ok((s, plan, repairs));
        };
        if repairs.len() == MAX_REPAIRS {
            let dev = &platform.devices[d];
            return Err(Error::Schedule {
                graph: graph.name.clone(),
                problem: format!(
                    "device {} needs {} bytes at its peak and has {}, still after {MAX_REPAIRS} repairs",
                    dev.name, peaks[d], dev.memory_bytes
                ),
            });
        }
        let Some(to) = (0..platform.devices.len())
            .filter(|&e| e != d)
            .max_by_key(|&e| (platform.devices[e].memory_bytes.saturating_sub(peaks[e]), std::cmp::Reverse(e)))
        else {
            return Err(Error::Schedule {
                graph: graph.name.clone(),
                problem: format!(
                    "device {} needs {} bytes at its peak and has {}; no other device to move work to",
                    platform.devices[d].name, peaks[d], platform.devices[d].memory_bytes
                ),
            });
        };
        let mut on_d: Vec<usize> = (0..graph.tasks.len()).filter(|&t| s.slots[t].device == d).collect();
        on_d.sort_by_key(|&t| (std::cmp::Reverse(graph.tasks[t].weights.iter().map(|w| w.1).sum::<u64>()), t));
        let moved = on_d.len().div_ceil(4).max(1);
        for &t in on_d.iter().take(moved) {
            pins.retain(|(p, _)| *p != t);
            pins.push((t, to));
        }
        repairs.push(format!(
            "{} over its memory ({} of {} bytes at the peak): {moved} tasks with the most weights moved to {}",
            platform.devices[d].name, peaks[d], platform.devices[d].memory_bytes, platform.devices[to].name
        ));
    }
    unreachable!("the loop returns")
}

/// The largest group (at least two) of non-home devices with the same profile.
pub fn identical_group(platform: &Platform) -> Vec<usize> {
    let mut best: Vec<usize> = Vec::new();
    for d in 0..platform.devices.len() {
        if d == platform.home {
            continue;
        }
        let group: Vec<usize> = (0..platform.devices.len())
            .filter(|&e| e != platform.home && platform.devices[e].profile == platform.devices[d].profile)
            .collect();
        if group.len() > best.len() {
            best = group;
        }
    }
    if best.len() >= 2 { best } else { Vec::new() }
}

/// `S(n)` for `n = 1..=group.len()`: the graph on the first `n` devices of
/// `group` (inputs from home), as the better of HEFT with the GEMMs that gain
/// from it split `n` ways ([`TaskGraph::split_gemms`], over the slowest link
/// among the `n` devices) and HEFT alone, and never worse than with `n - 1`
/// devices (a scheduler would leave the extra device idle).
pub fn scale_out(graph: &TaskGraph, platform: &Platform, group: &[usize]) -> Result<Vec<ScalePoint>> {
    let mut points: Vec<ScalePoint> = Vec::new();
    for n in 1..=group.len() {
        let devices = group[..n].to_vec();
        let opts = ScheduleOptions {
            allowed: Some(devices),
            ..Default::default()
        };
        let plain = schedule(graph, platform, &opts)?.makespan;
        let tp = match slowest_link(platform, &group[..n]) {
            Some(link) if n > 1 => {
                let split = graph.split_gemms(n, &platform.devices[group[0]].profile, link);
                schedule(&split, platform, &opts)?.makespan
            }
            _ => f64::INFINITY,
        };
        let (mut t, mut plan) = if tp < plain {
            (tp, "tensor-parallel".to_string())
        } else {
            (plain, "placement only".to_string())
        };
        if let Some(prev) = points.last() {
            if prev.t_est <= t {
                t = prev.t_est;
                plan = format!("as {}", n - 1);
            }
        }
        let t1 = points.first().map_or(t, |p| p.t_est);
        points.push(ScalePoint {
            n,
            t_est: t,
            speedup: t1 / t,
            plan,
        });
    }
    Ok(points)
}

/// `(bandwidth, latency)` of the slowest link among `devices` (`None` when a
/// pair has no link).
fn slowest_link(platform: &Platform, devices: &[usize]) -> Option<(f64, f64)> {
    let mut worst: Option<(f64, f64)> = None;
    for (i, &a) in devices.iter().enumerate() {
        for &b in &devices[i + 1..] {
            let l = platform.link(a, b)?;
            if worst.is_none_or(|(bw, _)| l.bandwidth < bw) {
                worst = Some((l.bandwidth, l.latency));
            }
        }
    }
    worst
}

/// The estimate of `graph` on `platform`, with its schedule; `pins` are
/// `(task, device)` pairs the schedule must keep.
pub fn estimate(graph: &TaskGraph, platform: &Platform, pins: &[(usize, usize)]) -> Result<(Schedule, Estimate)> {
    let (s, plan, repairs) = schedule_checked(graph, platform, pins)?;
    let mut t_single = f64::INFINITY;
    let mut single_device = String::new();
    for d in 0..platform.devices.len() {
        if let Ok(one) = schedule(graph, platform, &all_on(d, true)) {
            if one.makespan < t_single {
                t_single = one.makespan;
                single_device = platform.devices[d].name.clone();
            }
        }
    }
    let group = identical_group(platform);
    let scale = if group.is_empty() {
        Vec::new()
    } else {
        scale_out(graph, platform, &group)?
    };
    let peaks = memory_peaks(graph, platform, &s);
    let e = Estimate {
        platform: platform.name.clone(),
        tasks: graph.tasks.len(),
        t_est: s.makespan,
        throughput: graph.flops() as f64 / s.makespan,
        t_single,
        single_device,
        speedup: t_single / s.makespan,
        plan,
        scale_out: scale,
        scale_out_devices: group.iter().map(|&d| platform.devices[d].name.clone()).collect(),
        memory: platform
            .devices
            .iter()
            .zip(&peaks)
            .map(|(d, &p)| DeviceMemory {
                device: d.name.clone(),
                peak_bytes: p,
                capacity_bytes: d.memory_bytes,
            })
            .collect(),
        repairs,
    };
    Ok((s, e))
}

/// One alternative decision for one kernel and what it does to `T_est`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Sensitivity {
    /// Task index.
    pub task: usize,
    /// Task label.
    pub label: String,
    /// The alternative (`on gpu0`, `bf16 arithmetic`, `epilogue unfused`).
    pub alternative: String,
    /// `T_est` with it, seconds.
    pub t_est: f64,
    /// `T_est` with it minus the HEFT schedule's, seconds.
    pub delta: f64,
}

/// For every task, `T_est` under each alternative the project knows — on each
/// other device, bf16 arithmetic for a GEMM or convolution computing in f32
/// (half the weight bytes), its fused epilogue as a separate kernel — each
/// rescheduled with HEFT; ranked by the size of the change, largest first.
pub fn sensitivity(graph: &TaskGraph, platform: &Platform) -> Result<Vec<Sensitivity>> {
    let base_schedule = schedule(graph, platform, &ScheduleOptions::default())?;
    let base = base_schedule.makespan;
    let mut rows = Vec::new();
    for t in 0..graph.tasks.len() {
        let task = &graph.tasks[t];
        let here = base_schedule.slots[t].device;
        for e in 0..platform.devices.len() {
            if e == here {
                continue;
            }
            let opts = ScheduleOptions {
                pins: vec![(t, e)],
                ..Default::default()
            };
            if let Ok(s) = schedule(graph, platform, &opts) {
                rows.push((t, format!("on {}", platform.devices[e].name), s.makespan));
            }
        }
        let mut alt = |name: &str, change: &dyn Fn(&mut super::tasks::Task)| -> Result<()> {
            let mut g = graph.clone();
            change(&mut g.tasks[t]);
            let s = schedule(&g, platform, &ScheduleOptions::default())?;
            rows.push((t, name.to_string(), s.makespan));
            Ok(())
        };
        if matches!(task.kind, "gemm" | "conv") && task.dtype == DType::F32 {
            alt("bf16 arithmetic", &|x| {
                let w: u64 = x.weights.iter().map(|w| w.1).sum();
                x.dtype = DType::BF16;
                x.bytes -= w / 2;
            })?;
        }
        if task.fused_epilogue {
            alt("epilogue unfused", &|x| {
                x.launches += 1;
                x.bytes += 2 * x.out_bytes;
            })?;
        }
    }
    let mut out: Vec<Sensitivity> = rows
        .into_iter()
        .map(|(t, alternative, t_est)| Sensitivity {
            task: t,
            label: graph.tasks[t].label.clone(),
            alternative,
            t_est,
            delta: t_est - base,
        })
        .collect();
    out.sort_by(|a, b| {
        b.delta
            .abs()
            .total_cmp(&a.delta.abs())
            .then(a.task.cmp(&b.task))
            .then(a.alternative.cmp(&b.alternative))
    });
    Ok(out)
}
