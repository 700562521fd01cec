//! The toolchain stage: schedules respect dependencies and streams on random
//! task graphs and platforms; one stream on one device takes the sum of its
//! kernel times; a platform's estimate is never worse than the best
//! single-device schedule; a schedule over a device's memory is repaired or
//! refused with the reason; platform files are checked; the commands work.

mod common;

use common::bin::{eqopt, fails, ok, s};
use eqopt::dtype::DType;
use eqopt::toolchain::estimate::{estimate, schedule_checked, sensitivity};
use eqopt::toolchain::heft::{Schedule, ScheduleOptions, schedule};
use eqopt::toolchain::platform::Platform;
use eqopt::toolchain::tasks::{Task, TaskGraph};
use proptest::prelude::*;

/// A platform of built-in profiles (fixed figures, whatever this machine's
/// calibration): `gpus` H100s with `streams` streams each, linked to each other
/// and to a slower home device (the A100 profile) named `cpu0`.
fn platform(gpus: usize, streams: usize, cpu_streams: usize, gpu_memory: f64) -> Platform {
    let mut devices = vec![format!(
        r#"{{"name": "cpu0", "profile": "a100", "streams": {cpu_streams}, "memory_bytes": 1e12}}"#
    )];
    let mut links = Vec::new();
    for g in 0..gpus {
        devices.push(format!(
            r#"{{"name": "gpu{g}", "profile": "h100", "streams": {streams}, "memory_bytes": {gpu_memory}}}"#
        ));
        links.push(format!(
            r#"{{"name": "pcie", "between": ["cpu0", "gpu{g}"], "bandwidth": 50e9, "latency": 1e-5}}"#
        ));
        for h in 0..g {
            links.push(format!(
                r#"{{"name": "nvlink", "between": ["gpu{h}", "gpu{g}"], "bandwidth": 450e9, "latency": 2e-6}}"#
            ));
        }
    }
    let json = format!(
        r#"{{"name": "test", "home": "cpu0", "devices": [{}], "links": [{}]}}"#,
        devices.join(","),
        links.join(",")
    );
    Platform::parse(&json, "test").unwrap()
}

fn task(k: usize, flops: u64, bytes: u64, preds: Vec<(usize, u64)>, weight: u64) -> Task {
    Task {
        kernel: k,
        label: format!("k{k}"),
        kind: if k % 3 == 0 { "gemm" } else { "elementwise" },
        flops,
        bytes,
        dtype: DType::F32,
        out_bytes: bytes / 2,
        weights: if weight > 0 { vec![(k, weight)] } else { Vec::new() },
        input_bytes: if preds.is_empty() { 1024 } else { 0 },
        output_bytes: if k % 5 == 4 { 4096 } else { 0 },
        preds,
        shard: None,
        fused_epilogue: k % 4 == 0,
        launches: 1,
    }
}

/// A random DAG: each task reads up to three earlier ones.
fn random_graph() -> impl Strategy<Value = TaskGraph> {
    prop::collection::vec(
        (
            1u64..1u64 << 34,
            1u64..1u64 << 26,
            prop::collection::vec((0usize..1000, 1u64..1 << 22), 0..4),
        ),
        1..40,
    )
    .prop_map(|specs| {
        let tasks = specs
            .into_iter()
            .enumerate()
            .map(|(k, (flops, bytes, preds))| {
                let mut ps: Vec<(usize, u64)> = Vec::new();
                if k > 0 {
                    for (p, b) in preds {
                        let p = p % k;
                        if !ps.iter().any(|q| q.0 == p) {
                            ps.push((p, b));
                        }
                    }
                }
                task(k, flops, bytes, ps, bytes / 4)
            })
            .collect();
        TaskGraph {
            name: "random".into(),
            tasks,
        }
    })
}

/// Every task placed once, after its inputs (and their transfers), streams
/// never running two tasks at once.
fn assert_valid(graph: &TaskGraph, p: &Platform, s: &Schedule) {
    assert_eq!(s.slots.len(), graph.tasks.len());
    for (t, task) in graph.tasks.iter().enumerate() {
        let slot = &s.slots[t];
        assert!(slot.start >= 0.0 && slot.end > slot.start, "task {t}: {slot:?}");
        let want = task.seconds(&p.devices[slot.device].profile);
        assert!((slot.end - slot.start - want).abs() <= 1e-12 + 1e-9 * want, "task {t}: duration");
        for &(q, bytes) in &task.preds {
            let ps = &s.slots[q];
            let arrive = ps.end + p.transfer_time(ps.device, slot.device, bytes).expect("linked");
            assert!(
                slot.start + 1e-12 >= arrive,
                "task {t} starts at {} before input {q} arrives at {arrive}",
                slot.start
            );
        }
        if task.input_bytes > 0 {
            assert!(slot.start + 1e-12 >= p.transfer_time(p.home, slot.device, task.input_bytes).unwrap());
        }
    }
    for d in 0..p.devices.len() {
        for st in 0..p.devices[d].streams {
            let mut on: Vec<(f64, f64)> = s
                .slots
                .iter()
                .filter(|x| x.device == d && x.stream == st)
                .map(|x| (x.start, x.end))
                .collect();
            on.sort_by(|a, b| a.0.total_cmp(&b.0));
            for w in on.windows(2) {
                assert!(w[1].0 + 1e-12 >= w[0].1, "device {d} stream {st}: overlapping {w:?}");
            }
        }
    }
    let last = s.slots.iter().map(|x| x.end).fold(0.0, f64::max);
    assert!(s.makespan + 1e-12 >= last);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn schedules_respect_dependencies_and_streams(graph in random_graph(), gpus in 0usize..4, streams in 1usize..4, cpu_streams in 1usize..3) {
        let p = platform(gpus, streams, cpu_streams, 1e12);
        let s = schedule(&graph, &p, &ScheduleOptions::default()).unwrap();
        assert_valid(&graph, &p, &s);
        let one = schedule(&graph, &p, &ScheduleOptions { one_stream: true, ..Default::default() }).unwrap();
        assert_valid(&graph, &p, &one);
    }

    #[test]
    fn the_estimate_is_never_worse_than_the_best_single_device(graph in random_graph(), gpus in 1usize..4, streams in 1usize..4) {
        let p = platform(gpus, streams, 1, 1e12);
        let (s, e) = estimate(&graph, &p, &[]).unwrap();
        assert_valid(&graph, &p, &s);
        for d in 0..p.devices.len() {
            let alone = schedule(&graph, &p, &ScheduleOptions { allowed: Some(vec![d]), ..Default::default() }).unwrap();
            prop_assert!(e.t_est <= alone.makespan * (1.0 + 1e-12), "T_est {} above all-on-{d} {}", e.t_est, alone.makespan);
        }
        // And adding a device to a platform never makes the estimate worse.
        let fewer = estimate(&graph, &p.subset(&(0..p.devices.len() - 1).collect::<Vec<_>>()), &[]).unwrap().1;
        prop_assert!(e.t_est <= fewer.t_est * (1.0 + 1e-12), "with a device more {} > {}", e.t_est, fewer.t_est);
        prop_assert!(e.speedup >= 1.0 - 1e-12);
        for w in e.scale_out.windows(2) {
            prop_assert!(w[1].t_est <= w[0].t_est);
        }
    }
}

#[test]
fn one_stream_on_one_device_takes_the_sum_of_the_kernel_times() {
    let g = eqopt::graph::json::load(&common::root().join("examples/inception_block.json")).unwrap();
    let graph = TaskGraph::from_program(&eqopt::lower::lower(&g).unwrap());
    let p = Platform::parse(
        r#"{"name": "one", "home": "d", "devices": [{"name": "d", "profile": "h100", "streams": 1, "memory_bytes": 1e11}]}"#,
        "one",
    )
    .unwrap();
    let s = schedule(&graph, &p, &ScheduleOptions::default()).unwrap();
    let sum: f64 = graph.tasks.iter().map(|t| t.seconds(&p.devices[0].profile)).sum();
    assert!((s.makespan - sum).abs() <= 1e-12 * sum.max(1.0), "{} vs {sum}", s.makespan);
    assert!(s.transfers.is_empty());
    // Inception's four branches: two streams overlap them.
    let p2 = Platform::parse(
        r#"{"name": "two", "home": "d", "devices": [{"name": "d", "profile": "h100", "streams": 2, "memory_bytes": 1e11}]}"#,
        "two",
    )
    .unwrap();
    let (_, e) = estimate(&graph, &p2, &[]).unwrap();
    assert!(e.t_est < sum * 0.9, "two streams: {} of {sum}", e.t_est);
    assert!((e.t_single - sum).abs() <= 1e-12 * sum.max(1.0));
}

#[test]
fn a_schedule_over_a_device_memory_is_repaired_or_refused() {
    let tasks: Vec<Task> = (0..8)
        .map(|k| task(k, 1 << 40, 1 << 20, if k > 0 { vec![(k - 1, 1 << 19)] } else { vec![] }, 300 << 20))
        .collect();
    let graph = TaskGraph {
        name: "heavy".into(),
        tasks,
    };
    // The GPU is much faster, so HEFT puts everything there; its 1 GiB holds three of the 300 MiB weights.
    let p = platform(1, 1, 1, 1073741824.0);
    let (s, _, repairs) = schedule_checked(&graph, &p, &[]).unwrap();
    assert!(!repairs.is_empty(), "the GPU cannot hold 2.4 GB of weights: a repair was needed");
    let peaks = eqopt::toolchain::heft::memory_peaks(&graph, &p, &s);
    for (d, &peak) in peaks.iter().enumerate() {
        assert!(
            peak <= p.devices[d].memory_bytes,
            "{}: {peak} over {}",
            p.devices[d].name,
            p.devices[d].memory_bytes
        );
    }
    assert!(s.slots.iter().any(|x| x.device == 0) && s.slots.iter().any(|x| x.device == 1));
    // With no room anywhere, the schedule is refused, naming the device.
    let tiny = Platform::parse(
        r#"{"name": "tiny", "home": "a", "devices": [{"name": "a", "profile": "h100", "streams": 1, "memory_bytes": 1e8},
           {"name": "b", "profile": "h100", "streams": 1, "memory_bytes": 1e8}],
           "links": [{"name": "l", "between": ["a", "b"], "bandwidth": 1e10, "latency": 1e-6}]}"#,
        "tiny",
    )
    .unwrap();
    let err = schedule_checked(&graph, &tiny, &[]).unwrap_err().to_string();
    assert!(
        err.contains("needs") && err.contains("bytes at its peak") && err.contains("has 100000000"),
        "{err}"
    );
}

#[test]
fn sensitivity_ranks_alternatives_by_their_effect() {
    let g = eqopt::graph::json::load(&common::root().join("examples/mlp.json")).unwrap();
    let graph = TaskGraph::from_program(&eqopt::lower::lower(&g).unwrap());
    let p = Platform::load("cpu-h100").unwrap();
    let rows = sensitivity(&graph, &p).unwrap();
    assert!(rows.iter().any(|r| r.alternative == "on cpu0" || r.alternative == "on gpu0"));
    assert!(rows.iter().any(|r| r.alternative == "bf16 arithmetic"));
    for w in rows.windows(2) {
        assert!(w[0].delta.abs() >= w[1].delta.abs());
    }
}

#[test]
fn bad_platform_files_are_clear_errors() {
    let cases = [
        (r#"{"name": "x", "home": "a", "devices": []}"#, "no devices"),
        (
            r#"{"name": "x", "home": "z", "devices": [{"name": "a", "profile": "h100", "streams": 1, "memory_bytes": 1}]}"#,
            "home \"z\" is not a device",
        ),
        (
            r#"{"name": "x", "home": "a", "devices": [{"name": "a", "profile": "h100", "streams": 0, "memory_bytes": 1}]}"#,
            "at least 1",
        ),
        (
            r#"{"name": "x", "home": "a", "devices": [{"name": "a", "profile": "nope", "streams": 1, "memory_bytes": 1}]}"#,
            "profile \"nope\"",
        ),
        (
            r#"{"name": "x", "home": "a", "devices": [{"name": "a", "profile": "h100", "streams": 1, "memory_bytes": 1}], "links": [{"name": "l", "between": ["a", "q"], "bandwidth": 1, "latency": 0}]}"#,
            "not both devices",
        ),
        (
            r#"{"name": "x", "home": "a", "devices": [{"name": "a", "profile": "h100", "streams": 1, "memory_bytes": 1, "extra": 2}]}"#,
            "unknown field",
        ),
    ];
    for (json, want) in cases {
        let err = Platform::parse(json, "bad.json").unwrap_err().to_string();
        assert!(err.contains("bad.json") && err.contains(want), "{err}");
    }
    // Devices without a link between them: a task that needs the home's inputs cannot run on the other.
    let p = Platform::parse(
        r#"{"name": "x", "home": "a", "devices": [{"name": "a", "profile": "h100", "streams": 1, "memory_bytes": 1e9},
           {"name": "b", "profile": "h100", "streams": 1, "memory_bytes": 1e9}]}"#,
        "x",
    )
    .unwrap();
    let graph = TaskGraph {
        name: "g".into(),
        tasks: vec![task(0, 10, 10, vec![], 0)],
    };
    let err = schedule(
        &graph,
        &p,
        &ScheduleOptions {
            allowed: Some(vec![1]),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no device it may run on"), "{err}");
}

#[test]
fn schedule_and_estimate_commands() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::root().join("examples/inception_block.json");
    let out = dir.path().join("schedule.json");
    let svg = dir.path().join("gantt.svg");
    let text = ok(&eqopt(&[
        "schedule",
        s(&model),
        "--platform",
        "4xh100-nvlink",
        "-o",
        s(&out),
        "--svg",
        s(&svg),
    ]));
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(
        chart.starts_with("<svg") && chart.contains("gpu0/0"),
        "{}",
        &chart[..chart.len().min(300)]
    );
    assert!(text.contains("T_est") && text.contains("S(4)"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(
        v["kernels"].as_array().unwrap().len(),
        v["estimate"]["tasks"].as_u64().unwrap() as usize
    );
    // Deterministic: the same command writes the same bytes.
    let again = dir.path().join("again.json");
    ok(&eqopt(&["schedule", s(&model), "--platform", "4xh100-nvlink", "-o", s(&again)]));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
    let pinned = ok(&eqopt(&[
        "estimate",
        s(&model),
        "--platform",
        "cpu-h100",
        "--pin",
        "conv=cpu0",
        "--sensitivity",
        "--top",
        "3",
    ]));
    assert!(pinned.contains("sensitivity") && pinned.contains("rank"), "{pinned}");
    let err = fails(&eqopt(&["estimate", s(&model), "--pin", "conv=gpu9"]));
    assert!(err.contains("--pin") && err.contains("gpu9") && err.contains("cpu0, gpu0"), "{err}");
    let err = fails(&eqopt(&["estimate", s(&model), "--platform", "mars"]));
    assert!(err.contains("mars") && err.contains("cpu-h100"), "{err}");
}

/// The CPU backend runs a schedule's streams concurrently and computes exactly
/// what the sequential run does; streams that contradict the dependencies, a
/// kernel left out, or a plan with memory reuse are refused, never run.
#[test]
fn concurrent_streams_compute_the_sequential_result_and_bad_streams_are_refused() {
    use eqopt::backend::CpuModel;
    let g = eqopt::graph::json::load(&common::root().join("examples/inception_block.json")).unwrap();
    let inputs = eqopt::eval::random_inputs(&g, 3);
    let model = CpuModel::compile_without_reuse(&g).unwrap();
    let n = model.program().kernels.len();
    let pools: Vec<rayon::ThreadPool> = (0..2)
        .map(|_| rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap())
        .collect();
    let refs: Vec<&rayon::ThreadPool> = pools.iter().collect();
    let want = model.run(&inputs).unwrap();
    // The HEFT schedule's streams on a two-stream CPU.
    let tasks = TaskGraph::from_program(model.program());
    let p = Platform::parse(
        r#"{"name": "two", "home": "c", "devices": [{"name": "c", "profile": "h100", "streams": 2, "memory_bytes": 1e11}]}"#,
        "two",
    )
    .unwrap();
    let s = schedule(&tasks, &p, &ScheduleOptions::default()).unwrap();
    let mut streams: Vec<Vec<usize>> = vec![Vec::new(); 2];
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| s.slots[a].start.total_cmp(&s.slots[b].start));
    for t in order {
        streams[s.slots[t].stream].push(t);
    }
    assert!(streams.iter().all(|x| !x.is_empty()), "both streams used: {streams:?}");
    for _ in 0..3 {
        let got = model.run_streams(&inputs, &streams, &refs).unwrap();
        for (name, t) in &want {
            assert_eq!(got[name].to_f64(), t.to_f64(), "{name}");
        }
    }
    // Reversed streams wait for what comes later: a cycle, refused.
    let reversed: Vec<Vec<usize>> = streams.iter().map(|x| x.iter().rev().copied().collect()).collect();
    let err = model.run_streams(&inputs, &reversed, &refs).unwrap_err().to_string();
    assert!(err.contains("contradict"), "{err}");
    let missing = vec![streams[0].clone(), streams[1][1..].to_vec()];
    let err = model.run_streams(&inputs, &missing, &refs).unwrap_err().to_string();
    assert!(err.contains("exactly once"), "{err}");
    // The default plan reuses memory: refused for concurrent runs.
    let shared = CpuModel::compile(&g).unwrap();
    assert!(shared.memory().arena_bytes < model.memory().arena_bytes);
    let err = shared.run_streams(&inputs, &streams, &refs).unwrap_err().to_string();
    assert!(err.contains("without reuse"), "{err}");
}

/// `--measure` on the `cpu` platform reports both speedups (no timing asserted:
/// the machine may be loaded), and refuses platforms with other devices.
#[test]
fn measuring_a_cpu_schedule() {
    let g = eqopt::graph::json::load(&common::root().join("tests/ptx/small_cnn.json")).unwrap();
    let p = Platform::parse(
        r#"{"name": "two", "home": "c", "devices": [{"name": "c", "profile": "h100", "streams": 2, "memory_bytes": 1e11}]}"#,
        "two",
    )
    .unwrap();
    let m = eqopt::toolchain::measure::measure_cpu(&g, &p, 2).unwrap();
    assert!(m.s_measured.is_finite() && m.s_measured > 0.0 && m.s_predicted >= 1.0, "{m:?}");
    assert!(m.kernel_median_ratio > 0.0 && (1..=2).contains(&m.streams) && m.runs == 2, "{m:?}");
    let err = eqopt::toolchain::measure::measure_cpu(&g, &Platform::load("cpu-h100").unwrap(), 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("one CPU device"), "{err}");
}
