//! The latency/error front: one saturation, extraction under a sweep of
//! accuracy budgets, each result measured on the CPU backend.
//!
//! `eqopt optimize MODEL -o OUT --pareto front.csv` writes the points to
//! `front.csv` and a plot of them to `front.svg` (crate `plotters`).

use crate::budget::{ErrorMeter, extract_within_budget};
use crate::cost::graph_totals;
use crate::error::{Error, Result};
use crate::extraction::extract_graph;
use crate::graph::Graph;
use crate::optimize::{OptimizeOptions, weight_bytes};
use crate::rules::RuleSet;
use crate::saturate::{Observer, saturate_observed};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// The budgets swept by default (relative output error), besides the exact point.
pub const DEFAULT_BUDGETS: [f64; 7] = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1];
/// Timed runs per point (after one warm-up); the median is reported.
pub const TIMED_RUNS: usize = 5;

/// One point of the sweep.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ParetoPoint {
    /// The budget (0 for the exact graph).
    pub budget: f64,
    /// Approximate nodes in the graph.
    pub approx_nodes: usize,
    /// Estimated relative output error.
    pub estimated_error: f64,
    /// Measured relative output error (the exact graph's is rounding only).
    pub measured_error: f64,
    /// Roofline latency on the optimization target, seconds.
    pub estimated_latency_s: f64,
    /// Median CPU-backend latency, seconds.
    pub measured_latency_s: f64,
    /// Bytes of the graph's constants as stored.
    pub weight_bytes: u64,
    /// Not dominated by another point (no other is at least as fast and as
    /// accurate, measured, and better in one of the two).
    pub on_front: bool,
}

/// Median latency of `graph` on the CPU backend over [`TIMED_RUNS`] runs.
fn cpu_latency(graph: &Graph, inputs: &BTreeMap<String, crate::graph::tensor::Tensor>) -> Result<f64> {
    let model = crate::backend::CpuModel::compile(graph)?;
    model.run(inputs)?;
    let mut times: Vec<f64> = Vec::with_capacity(TIMED_RUNS);
    for _ in 0..TIMED_RUNS {
        let start = Instant::now();
        model.run(inputs)?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Sweeps `budgets` (plus the exact point) over one saturation of `graph`
/// with `rules` and the approximate families; points are in budget order,
/// duplicates (the same graph for two budgets) kept, `on_front` marked.
///
/// # Errors
/// As [`crate::optimize::optimize_measured`]; [`Error::Usage`] for a budget
/// that is not positive and finite.
pub fn sweep(
    graph: &Graph,
    rules: &RuleSet,
    opts: &OptimizeOptions,
    budgets: &[f64],
    meter: &mut dyn ErrorMeter,
) -> Result<Vec<ParetoPoint>> {
    sweep_observed(graph, rules, opts, budgets, meter, None, &mut |_| {})
}

/// [`sweep`], with `observer` called at the start of every saturation
/// iteration and `on_point` after each point is measured (the exact point
/// first, then one per budget: `budgets.len() + 1` calls in all; a progress
/// bar, say). `on_point` sees the point before `on_front` is marked.
///
/// # Errors
/// As [`sweep`].
pub fn sweep_observed(
    graph: &Graph,
    rules: &RuleSet,
    opts: &OptimizeOptions,
    budgets: &[f64],
    meter: &mut dyn ErrorMeter,
    observer: Option<Observer>,
    on_point: &mut dyn FnMut(&ParetoPoint),
) -> Result<Vec<ParetoPoint>> {
    if let Some(b) = budgets.iter().find(|b| !(b.is_finite() && **b > 0.0)) {
        return Err(Error::Usage {
            option: "--budgets".into(),
            expected: "positive relative errors".into(),
            found: b.to_string(),
        });
    }
    let rules = rules.with_approx_families()?.for_activations(opts.activations)?;
    let sat = saturate_observed(graph, &rules, &opts.limits, observer)?;
    let time_limit = Duration::from_secs_f64(opts.extract_time_limit_s);
    let inputs = crate::eval::random_inputs(graph, 0);
    let mut points = Vec::new();
    let (exact, _) = extract_graph(graph, &sat, &opts.target, &opts.extractor, time_limit)?;
    points.push(ParetoPoint {
        budget: 0.0,
        approx_nodes: 0,
        estimated_error: 0.0,
        measured_error: meter.measure(&exact)?,
        estimated_latency_s: graph_totals(&exact, &opts.target).latency_s,
        measured_latency_s: cpu_latency(&exact, &inputs)?,
        weight_bytes: weight_bytes(&exact),
        on_front: false,
    });
    point_done(&points, on_point);
    for &budget in budgets {
        let (g, _, report) = extract_within_budget(graph, &sat, &opts.target, &opts.extractor, time_limit, budget, meter)?;
        let measured_error = match report.measured_error {
            Some(m) => m,
            None => meter.measure(&g)?,
        };
        points.push(ParetoPoint {
            budget,
            approx_nodes: report.approx.len(),
            estimated_error: report.estimated_error,
            measured_error,
            estimated_latency_s: graph_totals(&g, &opts.target).latency_s,
            measured_latency_s: cpu_latency(&g, &inputs)?,
            weight_bytes: weight_bytes(&g),
            on_front: false,
        });
        point_done(&points, on_point);
    }
    mark_front(&mut points);
    Ok(points)
}

/// Logs the last point of `points` and passes it to `on_point`.
fn point_done(points: &[ParetoPoint], on_point: &mut dyn FnMut(&ParetoPoint)) {
    let p = points.last().expect("called after a point is pushed");
    tracing::info!(
        budget = p.budget,
        approx_nodes = p.approx_nodes,
        measured_error = p.measured_error,
        measured_latency_s = p.measured_latency_s,
        "pareto point"
    );
    on_point(p);
}

/// Sets `on_front` on the points no other point dominates (measured latency
/// and measured error, both lower is better).
pub fn mark_front(points: &mut [ParetoPoint]) {
    let dominated: Vec<bool> = points
        .iter()
        .map(|p| {
            points.iter().any(|q| {
                q.measured_latency_s <= p.measured_latency_s
                    && q.measured_error <= p.measured_error
                    && (q.measured_latency_s < p.measured_latency_s || q.measured_error < p.measured_error)
            })
        })
        .collect();
    for (p, d) in points.iter_mut().zip(dominated) {
        p.on_front = !d;
    }
}

/// The points as CSV (header line first).
pub fn to_csv(points: &[ParetoPoint]) -> String {
    let mut s =
        String::from("budget,approx_nodes,estimated_error,measured_error,estimated_latency_ms,measured_latency_ms,weight_bytes,on_front\n");
    for p in points {
        s += &format!(
            "{:e},{},{:.6e},{:.6e},{:.6},{:.6},{},{}\n",
            p.budget,
            p.approx_nodes,
            p.estimated_error,
            p.measured_error,
            p.estimated_latency_s * 1e3,
            p.measured_latency_s * 1e3,
            p.weight_bytes,
            p.on_front
        );
    }
    s
}

/// Writes `csv` and, beside it with the extension `.svg`, the plot; both atomically.
///
/// # Errors
/// I/O errors, naming the file.
pub fn write(points: &[ParetoPoint], csv: &Path, title: &str) -> Result<()> {
    crate::graph::json::write_atomic(csv, to_csv(points).as_bytes())?;
    let svg = csv.with_extension("svg");
    crate::graph::json::write_atomic(&svg, plot_svg(points, title).as_bytes())
}

/// Errors below this are drawn at it (the exact graph's error is rounding only,
/// and the error axis is logarithmic).
const ERROR_FLOOR: f64 = 1e-8;

/// The front as an SVG document: measured latency (circles, the front joined
/// by a line) and estimated latency (crosses) against measured error.
pub fn plot_svg(points: &[ParetoPoint], title: &str) -> String {
    use plotters::prelude::*;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 500)).into_drawing_area();
        let _ = draw(&root, points, title);
        let _ = root.present();
    }
    svg
}

fn draw<DB: plotters::prelude::DrawingBackend>(
    root: &plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
    points: &[ParetoPoint],
    title: &str,
) -> std::result::Result<(), plotters::drawing::DrawingAreaErrorKind<DB::ErrorType>> {
    use plotters::prelude::*;
    root.fill(&WHITE)?;
    let err = |p: &ParetoPoint| p.measured_error.max(ERROR_FLOOR);
    let ms = |s: f64| s * 1e3;
    let (mut x0, mut x1) = (f64::INFINITY, 0.0f64);
    let mut y1 = 0.0f64;
    for p in points {
        x0 = x0.min(err(p));
        x1 = x1.max(err(p));
        y1 = y1.max(ms(p.measured_latency_s)).max(ms(p.estimated_latency_s));
    }
    if points.is_empty() {
        (x0, x1, y1) = (ERROR_FLOOR, 1.0, 1.0);
    }
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((x0 / 2.0..x1 * 2.0).log_scale(), 0.0..y1 * 1.15)?;
    chart
        .configure_mesh()
        .x_desc(format!("measured relative output error (exact drawn at {ERROR_FLOOR:e})"))
        .y_desc("latency (ms)")
        .draw()?;
    let mut front: Vec<&ParetoPoint> = points.iter().filter(|p| p.on_front).collect();
    front.sort_by(|a, b| err(a).total_cmp(&err(b)));
    chart
        .draw_series(LineSeries::new(front.iter().map(|p| (err(p), ms(p.measured_latency_s))), &BLUE))?
        .label("front (measured)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(
            points
                .iter()
                .map(|p| Circle::new((err(p), ms(p.measured_latency_s)), 4, BLUE.filled())),
        )?
        .label("measured latency (CPU backend)")
        .legend(|(x, y)| Circle::new((x + 10, y), 4, BLUE.filled()));
    chart
        .draw_series(points.iter().map(|p| Cross::new((err(p), ms(p.estimated_latency_s)), 5, RED)))?
        .label("estimated latency (target)")
        .legend(|(x, y)| Cross::new((x + 10, y), 5, RED));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(latency: f64, error: f64) -> ParetoPoint {
        ParetoPoint {
            budget: 0.0,
            approx_nodes: 0,
            estimated_error: 0.0,
            measured_error: error,
            estimated_latency_s: latency,
            measured_latency_s: latency,
            weight_bytes: 0,
            on_front: false,
        }
    }

    #[test]
    fn the_front_is_the_undominated_points() {
        let mut pts = vec![
            point(3.0, 0.0),
            point(2.0, 1e-3),
            point(2.5, 1e-2),
            point(1.0, 1e-1),
            point(1.0, 1e-1),
        ];
        mark_front(&mut pts);
        let front: Vec<bool> = pts.iter().map(|p| p.on_front).collect();
        // (2.5, 1e-2) is dominated by (2.0, 1e-3); equal points do not dominate each other.
        assert_eq!(front, [true, true, false, true, true]);
        let csv = to_csv(&pts);
        assert_eq!(csv.lines().count(), 6);
        assert!(csv.lines().nth(1).unwrap().ends_with(",true"), "{csv}");
    }

    #[test]
    fn an_empty_sweep_still_plots() {
        let svg = plot_svg(&[], "nothing");
        assert!(svg.starts_with("<svg") && svg.contains("nothing"), "{svg}");
    }
}
