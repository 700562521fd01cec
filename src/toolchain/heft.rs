//! The list scheduler: HEFT (Topcuoglu, Hariri & Wu 2002) over devices and
//! their streams. Each task's upward rank is its mean time over the devices it
//! may run on plus the largest, over its successors, of the mean transfer time
//! and the successor's rank; tasks are taken in decreasing rank (a topological
//! order, every time being positive), each placed on the device and stream
//! where it finishes first, counting the transfers of its inputs over the
//! links. Streams do not share their device's throughput in this model, and
//! links carry any number of transfers at once: it is an analytical estimate,
//! optimistic where those assumptions do not hold.
//!
//! Everything is deterministic: ties break by task index, device, stream.

use super::platform::Platform;
use super::tasks::TaskGraph;
use crate::error::{Error, Result};

/// Which devices and streams a schedule may use.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScheduleOptions {
    /// Run every device with one stream.
    pub one_stream: bool,
    /// Devices kernels may run on (`None`: all). Shards go to these in order.
    pub allowed: Option<Vec<usize>>,
    /// `(task, device)`: tasks that must run on a device.
    pub pins: Vec<(usize, usize)>,
}

/// Where and when one task runs.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Slot {
    /// Device index.
    pub device: usize,
    /// Stream index on the device.
    pub stream: usize,
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
}

/// A transfer over a link.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Transfer {
    /// The producing task (`None`: the graph's inputs, from home).
    pub from_task: Option<usize>,
    /// The consuming task (`None`: the graph's outputs, to home).
    pub to_task: Option<usize>,
    /// Source device.
    pub src: usize,
    /// Destination device.
    pub dst: usize,
    /// Bytes moved.
    pub bytes: u64,
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
}

/// A schedule of a task graph on a platform.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Schedule {
    /// Per task, its slot.
    pub slots: Vec<Slot>,
    /// Every transfer, in the order they were decided.
    pub transfers: Vec<Transfer>,
    /// `T_est`: when the last kernel ends or the last output reaches home.
    pub makespan: f64,
    /// Per device and stream, the seconds of kernels run on it.
    pub stream_busy: Vec<Vec<f64>>,
    /// Per device and stream, when its last kernel ends.
    pub stream_end: Vec<Vec<f64>>,
}

/// Places `graph` on `platform`.
pub fn schedule(graph: &TaskGraph, platform: &Platform, opts: &ScheduleOptions) -> Result<Schedule> {
    let n = graph.tasks.len();
    let nd = platform.devices.len();
    let allowed: Vec<usize> = opts.allowed.clone().unwrap_or_else(|| (0..nd).collect());
    let streams: Vec<usize> = platform
        .devices
        .iter()
        .map(|d| if opts.one_stream { 1 } else { d.streams })
        .collect();
    // The devices each task may run on.
    let choices: Vec<Vec<usize>> = graph
        .tasks
        .iter()
        .enumerate()
        .map(|(t, task)| {
            if let Some(&(_, d)) = opts.pins.iter().find(|(p, _)| *p == t) {
                return vec![d];
            }
            match task.shard {
                Some((i, _)) => vec![allowed[i % allowed.len()]],
                None => allowed.clone(),
            }
        })
        .collect();
    let time = |t: usize, d: usize| graph.tasks[t].seconds(&platform.devices[d].profile);
    // Mean transfer time of `bytes` over the platform's links (0 without links).
    let mean_comm = |bytes: u64| {
        if platform.links.is_empty() {
            0.0
        } else {
            platform.links.iter().map(|l| l.latency + bytes as f64 / l.bandwidth).sum::<f64>() / platform.links.len() as f64
        }
    };
    let mut succs: Vec<Vec<(usize, u64)>> = vec![Vec::new(); n];
    for (t, task) in graph.tasks.iter().enumerate() {
        for &(p, bytes) in &task.preds {
            succs[p].push((t, bytes));
        }
    }
    let mut rank = vec![0.0f64; n];
    for t in (0..n).rev() {
        let w = choices[t].iter().map(|&d| time(t, d)).sum::<f64>() / choices[t].len() as f64;
        let tail = succs[t].iter().map(|&(s, b)| mean_comm(b) + rank[s]).fold(0.0, f64::max);
        rank[t] = w + tail;
    }
    // Ready list by rank: a task is ready when all its predecessors are placed.
    let mut missing: Vec<usize> = graph.tasks.iter().map(|t| t.preds.len()).collect();
    let mut ready: Vec<usize> = (0..n).filter(|&t| missing[t] == 0).collect();
    let mut free = streams.iter().map(|&s| vec![0.0f64; s]).collect::<Vec<_>>();
    let mut busy = streams.iter().map(|&s| vec![0.0f64; s]).collect::<Vec<_>>();
    let mut slots: Vec<Option<Slot>> = vec![None; n];
    let mut transfers = Vec::new();
    while !ready.is_empty() {
        let pick = (0..ready.len())
            .max_by(|&a, &b| rank[ready[a]].total_cmp(&rank[ready[b]]).then(ready[b].cmp(&ready[a])))
            .expect("not empty");
        let t = ready.swap_remove(pick);
        let task = &graph.tasks[t];
        let mut best: Option<(f64, f64, usize, usize)> = None;
        for &d in &choices[t] {
            let mut data_ready = 0.0f64;
            let mut feasible = true;
            for &(p, bytes) in &task.preds {
                let s = slots[p].as_ref().expect("predecessors are placed first");
                match platform.transfer_time(s.device, d, bytes) {
                    Some(x) => data_ready = data_ready.max(s.end + x),
                    None => feasible = false,
                }
            }
            if task.input_bytes > 0 {
                match platform.transfer_time(platform.home, d, task.input_bytes) {
                    Some(x) => data_ready = data_ready.max(x),
                    None => feasible = false,
                }
            }
            if task.output_bytes > 0 && platform.transfer_time(d, platform.home, task.output_bytes).is_none() {
                feasible = false;
            }
            if !feasible {
                continue;
            }
            for (s, &f) in free[d].iter().enumerate() {
                let start = data_ready.max(f);
                let end = start + time(t, d);
                if best.is_none_or(|(e, ..)| end < e) {
                    best = Some((end, start, d, s));
                }
            }
        }
        let Some((end, start, d, s)) = best else {
            return Err(Error::Schedule {
                graph: graph.name.clone(),
                problem: format!(
                    "task {} ({}) has no device it may run on that is linked to its inputs' devices and to home",
                    t, task.label
                ),
            });
        };
        for &(p, bytes) in &task.preds {
            let ps = slots[p].as_ref().expect("placed");
            if ps.device != d {
                let x = platform.transfer_time(ps.device, d, bytes).expect("checked");
                transfers.push(Transfer {
                    from_task: Some(p),
                    to_task: Some(t),
                    src: ps.device,
                    dst: d,
                    bytes,
                    start: ps.end,
                    end: ps.end + x,
                });
            }
        }
        if task.input_bytes > 0 && d != platform.home {
            let x = platform.transfer_time(platform.home, d, task.input_bytes).expect("checked");
            transfers.push(Transfer {
                from_task: None,
                to_task: Some(t),
                src: platform.home,
                dst: d,
                bytes: task.input_bytes,
                start: 0.0,
                end: x,
            });
        }
        free[d][s] = end;
        busy[d][s] += end - start;
        slots[t] = Some(Slot {
            device: d,
            stream: s,
            start,
            end,
        });
        for &(succ, _) in &succs[t] {
            missing[succ] -= 1;
            if missing[succ] == 0 {
                ready.push(succ);
            }
        }
    }
    let slots: Vec<Slot> = slots.into_iter().map(|s| s.expect("every task is placed")).collect();
    let mut makespan = slots.iter().map(|s| s.end).fold(0.0, f64::max);
    for (t, task) in graph.tasks.iter().enumerate() {
        let s = &slots[t];
        if task.output_bytes > 0 && s.device != platform.home {
            let x = platform.transfer_time(s.device, platform.home, task.output_bytes).expect("checked");
            transfers.push(Transfer {
                from_task: Some(t),
                to_task: None,
                src: s.device,
                dst: platform.home,
                bytes: task.output_bytes,
                start: s.end,
                end: s.end + x,
            });
            makespan = makespan.max(s.end + x);
        }
    }
    Ok(Schedule {
        slots,
        transfers,
        makespan,
        stream_busy: busy,
        stream_end: free,
    })
}

/// Peak bytes live on each device over `schedule`: the constants its tasks
/// read (resident throughout, each once), every task's output from its start
/// until the last local consumer ends or the last transfer out of it ends, and
/// every received copy from its transfer's start until the last consumer on
/// that device ends. A perfect allocator is assumed (the memory planner's
/// lower bound), so a real arena can need somewhat more.
pub fn memory_peaks(graph: &TaskGraph, platform: &Platform, schedule: &Schedule) -> Vec<u64> {
    let nd = platform.devices.len();
    let mut weights: Vec<Vec<(usize, u64)>> = vec![Vec::new(); nd];
    // (time, +bytes/-bytes) events per device.
    let mut events: Vec<Vec<(f64, i128)>> = vec![Vec::new(); nd];
    let mut copies: Vec<(usize, usize, f64, f64, u64)> = Vec::new(); // (producer, device, from, until, bytes)
    for (t, task) in graph.tasks.iter().enumerate() {
        let s = &schedule.slots[t];
        for &(b, bytes) in &task.weights {
            if !weights[s.device].iter().any(|(w, _)| *w == b) {
                weights[s.device].push((b, bytes));
            }
        }
        let mut until = s.end;
        for x in schedule.transfers.iter().filter(|x| x.from_task == Some(t)) {
            until = until.max(x.end);
        }
        for (c, consumer) in graph.tasks.iter().enumerate() {
            if consumer.preds.iter().any(|(p, _)| *p == t) {
                let cs = &schedule.slots[c];
                if cs.device == s.device {
                    until = until.max(cs.end);
                } else {
                    let arrive = schedule
                        .transfers
                        .iter()
                        .find(|x| x.from_task == Some(t) && x.to_task == Some(c))
                        .map_or(cs.start, |x| x.start);
                    match copies.iter_mut().find(|k| k.0 == t && k.1 == cs.device) {
                        Some(k) => {
                            k.2 = k.2.min(arrive);
                            k.3 = k.3.max(cs.end);
                        }
                        None => copies.push((t, cs.device, arrive, cs.end, task.out_bytes)),
                    }
                }
            }
        }
        events[s.device].push((s.start, task.out_bytes as i128));
        events[s.device].push((until, -(task.out_bytes as i128)));
    }
    for (_, d, from, until, bytes) in copies {
        events[d].push((from, bytes as i128));
        events[d].push((until, -(bytes as i128)));
    }
    (0..nd)
        .map(|d| {
            // Frees before allocations at the same instant.
            events[d].sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let (mut live, mut peak) = (0i128, 0i128);
            for &(_, delta) in &events[d] {
                live += delta;
                peak = peak.max(live);
            }
            peak as u64 + weights[d].iter().map(|w| w.1).sum::<u64>()
        })
        .collect()
}
