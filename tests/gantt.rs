//! The Gantt chart of a schedule (`eqopt::toolchain::gantt`): its structure,
//! counted in the SVG text.

mod common;

use eqopt::toolchain::gantt::{OTHER_COLOUR, PALETTE, TRANSFER_COLOUR, gantt_svg, kind_colour};
use eqopt::toolchain::heft::{Schedule, ScheduleOptions, schedule};
use eqopt::toolchain::platform::Platform;
use eqopt::toolchain::tasks::TaskGraph;

fn hex(c: (u8, u8, u8)) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

fn task_graph(example: &str) -> TaskGraph {
    let g = eqopt::graph::json::load(&common::root().join(example)).unwrap();
    TaskGraph::from_program(&eqopt::lower::lower(&g).unwrap())
}

/// The text of every `<text>` element, trimmed, with `&gt;` unescaped.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .map(|t| {
            let body = &t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()];
            body.trim().replace("&gt;", ">")
        })
        .collect()
}

/// The `<rect>` elements filled with `fill`.
fn filled(svg: &str, fill: &str) -> usize {
    svg.lines()
        .filter(|l| l.starts_with("<rect") && l.contains(&format!("fill=\"{fill}\"")))
        .count()
}

/// The `<rect>` elements outlined (not filled) in `stroke`.
fn outlined(svg: &str, stroke: &str) -> usize {
    svg.lines()
        .filter(|l| l.starts_with("<rect") && l.contains("fill=\"none\"") && l.contains(&format!("stroke=\"{stroke}\"")))
        .count()
}

/// Everything the chart promises, checked against `graph`, `platform` and `s`.
fn check(graph: &TaskGraph, platform: &Platform, s: &Schedule) -> String {
    let svg = gantt_svg(graph, platform, s);
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<svg").count(), 1);
    let texts = texts(&svg);

    // The title names the graph, the platform and T_est in microseconds.
    let title = format!("{} on {}: T_est = {:.1} us", graph.name, platform.name, s.makespan * 1e6);
    assert!(texts.iter().any(|t| t.starts_with(&title)), "no title {title:?} in {texts:?}");

    // One row label per stream of each used device; none for idle devices.
    for (d, dev) in platform.devices.iter().enumerate() {
        let used = s.slots.iter().any(|x| x.device == d) || s.transfers.iter().any(|x| x.src == d || x.dst == d);
        for st in 0..dev.streams {
            let label = format!("{}/{st}", dev.name);
            let n = texts.iter().filter(|t| **t == label).count();
            assert_eq!(n, usize::from(used), "row label {label}");
        }
    }

    // One bar per kernel in its kind's colour, plus the legend's swatch.
    let mut kinds: Vec<&str> = graph.tasks.iter().map(|t| t.kind).collect();
    kinds.sort();
    kinds.dedup();
    for (kind, colour) in PALETTE {
        let kernels = graph.tasks.iter().filter(|t| t.kind == kind).count();
        let swatch = usize::from(kernels > 0);
        assert_eq!(filled(&svg, &hex(colour)), kernels + swatch, "bars of {kind}");
        let in_legend = texts.iter().filter(|t| **t == kind).count();
        assert_eq!(in_legend, swatch, "legend entry {kind}");
    }
    assert_eq!(filled(&svg, &hex(OTHER_COLOUR)), 0);

    // One outlined mark per transfer, plus the legend's swatch.
    let swatch = usize::from(!s.transfers.is_empty());
    assert_eq!(outlined(&svg, &hex(TRANSFER_COLOUR)), s.transfers.len() + swatch);
    assert_eq!(texts.iter().filter(|t| *t == "transfer").count(), swatch);
    // One link row per direction that carries transfers.
    let mut pairs: Vec<(usize, usize)> = s.transfers.iter().map(|x| (x.src, x.dst)).collect();
    pairs.sort();
    pairs.dedup();
    let links = texts.iter().filter(|t| t.contains("->")).count();
    assert_eq!(links, pairs.len());
    for (a, b) in pairs {
        let label = format!("{}->{}", platform.devices[a].name, platform.devices[b].name);
        assert!(texts.contains(&label), "no link row {label}");
    }

    // Deterministic.
    assert_eq!(gantt_svg(graph, platform, s), svg);
    svg
}

#[test]
fn inception_block_on_cpu_h100() {
    let graph = task_graph("examples/inception_block.json");
    let platform = Platform::load("cpu-h100").unwrap();
    let s = schedule(&graph, &platform, &ScheduleOptions::default()).unwrap();
    assert!(graph.tasks.len() > 3);
    check(&graph, &platform, &s);
}

/// Kernels confined to the middle device of three: the home device appears
/// only through its transfers, the third device not at all.
#[test]
fn an_idle_device_has_no_rows() {
    let platform = Platform::parse(
        r#"{ "name": "three", "home": "g0",
             "devices": [ { "name": "g0", "profile": "h100", "streams": 2, "memory_bytes": 80e9 },
                          { "name": "g1", "profile": "h100", "streams": 3, "memory_bytes": 80e9 },
                          { "name": "g2", "profile": "h100", "streams": 2, "memory_bytes": 80e9 } ],
             "links": [ { "name": "a", "between": ["g0", "g1"], "bandwidth": 50e9, "latency": 1e-5 },
                        { "name": "b", "between": ["g1", "g2"], "bandwidth": 50e9, "latency": 1e-5 } ] }"#,
        "three",
    )
    .unwrap();
    let graph = task_graph("examples/mlp.json");
    let opts = ScheduleOptions {
        allowed: Some(vec![1]),
        ..ScheduleOptions::default()
    };
    let s = schedule(&graph, &platform, &opts).unwrap();
    assert!(s.slots.iter().all(|x| x.device == 1));
    assert!(!s.transfers.is_empty());
    let svg = check(&graph, &platform, &s);
    let texts = texts(&svg);
    assert!(texts.contains(&"g0->g1".to_string()) && texts.contains(&"g1->g0".to_string()));
    assert!(!texts.iter().any(|t| t.starts_with("g2")), "{texts:?}");
    assert!(texts.contains(&"g0/1".to_string()) && texts.contains(&"g1/2".to_string()));
}

/// An unknown kind is drawn in the fallback colour and named in the legend;
/// a schedule without transfers has no transfer marks nor legend entry.
#[test]
fn unknown_kinds_and_no_transfers() {
    let mut graph = task_graph("examples/mlp.json");
    graph.tasks[0].kind = "mystery";
    assert_eq!(kind_colour("mystery"), OTHER_COLOUR);
    assert_eq!(kind_colour("gemm"), PALETTE[0].1);
    let platform = Platform::load("cpu").unwrap();
    let s = schedule(&graph, &platform, &ScheduleOptions::default()).unwrap();
    assert!(s.transfers.is_empty());
    let svg = gantt_svg(&graph, &platform, &s);
    assert_eq!(filled(&svg, &hex(OTHER_COLOUR)), 2);
    let texts = texts(&svg);
    assert_eq!(texts.iter().filter(|t| *t == "mystery").count(), 1);
    assert_eq!(outlined(&svg, &hex(TRANSFER_COLOUR)), 0);
    assert!(!texts.iter().any(|t| t == "transfer" || t.contains("->")));
}
