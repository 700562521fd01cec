//! `eqopt schedule` and `eqopt estimate`: the toolchain stage from the command line.

use super::ShapeArgs;
use super::backend::w;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::toolchain::estimate::{Estimate, estimate, sensitivity};
use crate::toolchain::heft::Schedule;
use crate::toolchain::platform::Platform;
use crate::toolchain::tasks::TaskGraph;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

/// What `schedule` and `estimate` share.
#[derive(Args, Debug)]
pub(super) struct PlatformArgs {
    /// The model: graph.json, or ONNX (by the .onnx extension).
    graph: PathBuf,
    #[command(flatten)]
    shapes: ShapeArgs,
    /// The platform: a built-in (`cpu`, `cpu-h100`, `4xh100-nvlink`) or a platform JSON file.
    #[arg(long, default_value = "cpu-h100")]
    platform: String,
    /// Optimize the model for this hardware profile first (else it is scheduled as given).
    #[arg(long, value_name = "TARGET")]
    optimize_for: Option<String>,
    /// Run every kernel of a kind on a device, e.g. `--pin conv=gpu0`. Repeatable.
    #[arg(long = "pin", value_name = "KIND=DEVICE", value_parser = parse_pin)]
    pins: Vec<(String, String)>,
}

fn parse_pin(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, d)) if !k.is_empty() && !d.is_empty() => Ok((k.to_string(), d.to_string())),
        _ => Err(format!("expected KIND=DEVICE, found \"{s}\"")),
    }
}

#[derive(Args, Debug)]
pub(super) struct ScheduleArgs {
    #[command(flatten)]
    common: PlatformArgs,
    /// Write the schedule as JSON (devices, every kernel's slot, every transfer, the estimate).
    #[arg(short, long, value_name = "FILE.json")]
    output: Option<PathBuf>,
    /// Write a Gantt chart of the schedule as SVG (one row per device stream, transfers on link rows).
    #[arg(long, value_name = "FILE.svg")]
    svg: Option<PathBuf>,
    /// On a one-CPU platform (`cpu`): run the schedule on this machine's CPU
    /// backend, streams as worker groups of cores, and set the measured speedup
    /// over one stream against the predicted one.
    #[arg(long)]
    measure: bool,
    /// Timed runs of each configuration for --measure.
    #[arg(long, default_value_t = 10)]
    runs: usize,
}

#[derive(Args, Debug)]
pub(super) struct EstimateArgs {
    #[command(flatten)]
    common: PlatformArgs,
    /// Also rank each kernel's alternatives (other device, bf16 arithmetic,
    /// unfused epilogue) by how much they move T_est.
    #[arg(long)]
    sensitivity: bool,
    /// Rows of the sensitivity table.
    #[arg(long, default_value_t = 15)]
    top: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

struct Prepared {
    model: Graph,
    graph: TaskGraph,
    platform: Platform,
    pins: Vec<(usize, usize)>,
}

fn prepare(a: &PlatformArgs) -> Result<Prepared> {
    let g: Graph = a.shapes.load(&a.graph)?;
    let g = match &a.optimize_for {
        None => g,
        Some(t) => {
            let rules = crate::rules::RuleSet::defaults()?;
            let opts = crate::optimize::OptimizeOptions::new(crate::calibrate::resolve_target(t)?.0);
            let bar = super::optimize::saturation_observer(&opts.limits);
            crate::optimize::optimize_observed(&g, &rules, &opts, None, bar)?.0
        }
    };
    let program = crate::lower::lower(&g)?;
    let graph = TaskGraph::from_program(&program);
    let platform = Platform::load(&a.platform)?;
    let mut pins = Vec::new();
    for (kind, device) in &a.pins {
        let d = platform
            .devices
            .iter()
            .position(|x| &x.name == device)
            .ok_or_else(|| Error::Usage {
                option: "--pin".into(),
                expected: format!(
                    "a device of {} ({})",
                    platform.name,
                    platform.devices.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
                found: device.clone(),
            })?;
        let matched: Vec<usize> = (0..graph.tasks.len()).filter(|&t| graph.tasks[t].kind == kind).collect();
        if matched.is_empty() {
            return Err(Error::Usage {
                option: "--pin".into(),
                expected:
                    "a kernel kind the program has (gemm, conv, elementwise, pool, softmax, layernorm, reduce, attention, gather, copy)"
                        .into(),
                found: kind.clone(),
            });
        }
        pins.extend(matched.into_iter().map(|t| (t, d)));
    }
    Ok(Prepared {
        model: g,
        graph,
        platform,
        pins,
    })
}

fn us(s: f64) -> String {
    format!("{:.1} us", s * 1e6)
}

fn estimate_text(p: &Prepared, e: &Estimate) -> String {
    let mut t = format!(
        "{} on {}: {} kernels, plan {}\nT_est {}  P {:.3} TFLOP/s  T_single {} (one stream on {})  S {:.2}\n",
        p.graph.name,
        e.platform,
        e.tasks,
        e.plan,
        us(e.t_est),
        e.throughput / 1e12,
        us(e.t_single),
        e.single_device,
        e.speedup
    );
    if !e.scale_out.is_empty() {
        t += &format!("scale-out over {}:", e.scale_out_devices.join(", "));
        for s in &e.scale_out {
            t += &format!("  S({}) {:.2} ({}, {})", s.n, s.speedup, us(s.t_est), s.plan);
        }
        t += "\n";
    }
    for m in &e.memory {
        t += &format!(
            "memory {}: peak {:.2} MiB of {:.0} MiB\n",
            m.device,
            m.peak_bytes as f64 / 1048576.0,
            m.capacity_bytes as f64 / 1048576.0
        );
    }
    for r in &e.repairs {
        t += &format!("repaired: {r}\n");
    }
    t
}

fn schedule_json(p: &Prepared, s: &Schedule, e: &Estimate) -> serde_json::Value {
    let names: Vec<&str> = p.platform.devices.iter().map(|d| d.name.as_str()).collect();
    serde_json::json!({
        "graph": p.graph.name,
        "platform": p.platform.name,
        "devices": p.platform.devices.iter().map(|d| serde_json::json!({"name": d.name, "profile": d.profile.name, "streams": d.streams})).collect::<Vec<_>>(),
        "estimate": e,
        "kernels": p.graph.tasks.iter().zip(&s.slots).map(|(t, sl)| serde_json::json!({
            "kernel": t.kernel, "label": t.label, "kind": t.kind, "device": names[sl.device], "stream": sl.stream,
            "start_s": sl.start, "end_s": sl.end,
            "after": t.preds.iter().map(|p| p.0).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "transfers": s.transfers.iter().map(|x| serde_json::json!({
            "from_kernel": x.from_task, "to_kernel": x.to_task, "src": names[x.src], "dst": names[x.dst],
            "bytes": x.bytes, "start_s": x.start, "end_s": x.end,
        })).collect::<Vec<_>>(),
    })
}

pub(super) fn run_schedule(a: &ScheduleArgs, out: &mut dyn Write) -> Result<()> {
    let p = prepare(&a.common)?;
    let (s, e) = estimate(&p.graph, &p.platform, &p.pins)?;
    w(out, &estimate_text(&p, &e))?;
    let measured = if a.measure {
        let m = crate::toolchain::measure::measure_cpu(&p.model, &p.platform, a.runs)?;
        w(
            out,
            &format!(
                "measured on this machine ({} streams of {} cores, median of {} runs): T_single {} (predicted {}), T_multi {} (predicted {}), S {:.2} (predicted {:.2}); per kernel: rank correlation {:.2}, median measured/predicted {:.2}\n",
                m.streams,
                m.threads_per_stream,
                m.runs,
                us(m.t_single_measured),
                us(m.t_single_predicted),
                us(m.t_multi_measured),
                us(m.t_multi_predicted),
                m.s_measured,
                m.s_predicted,
                m.kernel_spearman,
                m.kernel_median_ratio
            ),
        )?;
        Some(m)
    } else {
        None
    };
    if let Some(path) = &a.output {
        let mut v = schedule_json(&p, &s, &e);
        if let Some(m) = &measured {
            v["measured"] = serde_json::to_value(m).expect("plain struct");
        }
        let json = serde_json::to_string_pretty(&v).expect("plain values") + "\n";
        crate::graph::json::write_atomic(path, json.as_bytes())?;
        w(out, &format!("wrote {}\n", path.display()))?;
    }
    if let Some(path) = &a.svg {
        let svg = crate::toolchain::gantt::gantt_svg(&p.graph, &p.platform, &s);
        crate::graph::json::write_atomic(path, svg.as_bytes())?;
        w(out, &format!("wrote {}\n", path.display()))?;
    }
    Ok(())
}

pub(super) fn run_estimate(a: &EstimateArgs, out: &mut dyn Write) -> Result<()> {
    let p = prepare(&a.common)?;
    let (_, e) = estimate(&p.graph, &p.platform, &p.pins)?;
    let rows = if a.sensitivity {
        sensitivity(&p.graph, &p.platform)?
    } else {
        Vec::new()
    };
    if a.json {
        let v = serde_json::json!({"estimate": e, "sensitivity": rows.iter().take(a.top).collect::<Vec<_>>()});
        return w(out, &(serde_json::to_string_pretty(&v).expect("plain values") + "\n"));
    }
    let mut t = estimate_text(&p, &e);
    if a.sensitivity {
        t += &format!(
            "\nsensitivity (HEFT T_est under each alternative, {} largest changes):\n",
            a.top.min(rows.len())
        );
        t += &format!(
            "{:>4}  {:<40} {:<20} {:>12} {:>12}\n",
            "rank", "kernel", "alternative", "T_est (us)", "change (us)"
        );
        for (i, r) in rows.iter().take(a.top).enumerate() {
            t += &format!(
                "{:>4}  {:<40} {:<20} {:>12.1} {:>+12.1}\n",
                i + 1,
                r.label.chars().take(40).collect::<String>(),
                r.alternative,
                r.t_est * 1e6,
                r.delta * 1e6
            );
        }
    }
    w(out, &t)
}
