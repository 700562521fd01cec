//! The plots of a results file: the data behind each (kept in `plots.json`,
//! so it can be re-plotted elsewhere and compared) and its SVG (crate `plotters`).
//!
//! Every plot is built from records in key order, so the same results give
//! byte-identical data and SVGs.

use super::results::RunRecord;
use super::spec::budget_label;
use serde::Serialize;
use std::collections::BTreeMap;

/// Errors below this are drawn at it on log axes (an exact run has error 0).
pub const ERROR_FLOOR: f64 = 1e-8;

/// How a plot's series are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    /// Points joined in order.
    Lines,
    /// Points only.
    Points,
}

/// One named series.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// `(x, y)` points, in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// A plot's data.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlotData {
    /// File stem of the SVG.
    pub file: String,
    /// Caption.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Log-scaled x axis.
    pub log_x: bool,
    /// Log-scaled y axis.
    pub log_y: bool,
    /// How series are drawn.
    pub style: Style,
    /// For a categorical x axis: the label of x = 0, 1, ….
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// The series, in legend order.
    pub series: Vec<Series>,
}

/// Every plot of `records` (ok runs only), in a fixed order; plots with no
/// data are left out.
pub fn plots(records: &[RunRecord]) -> Vec<PlotData> {
    let labels = model_labels(records.iter().map(|r| r.model.as_str()));
    let mut named: Vec<RunRecord> = records
        .iter()
        .filter(|r| r.is_ok())
        .map(|r| RunRecord {
            model: labels[&r.model].clone(),
            ..r.clone()
        })
        .collect();
    named.sort_by(|a, b| a.key.cmp(&b.key));
    let ok: Vec<&RunRecord> = named.iter().collect();
    [
        growth(&ok),
        cost_trace(&ok),
        estimated_vs_measured(&ok),
        pareto(&ok),
        extractors(&ok),
    ]
    .into_iter()
    .filter(|p| p.series.iter().any(|s| !s.points.is_empty()))
    .collect()
}

/// A short name for each model path: the fewest trailing path components
/// (extension dropped) that tell the models apart, so `corpus/resnet50/model.onnx`
/// is `resnet50/model` beside other `model.onnx` files and `examples/mlp.json` is `mlp`.
pub fn model_labels<'a>(models: impl Iterator<Item = &'a str>) -> BTreeMap<String, String> {
    let models: std::collections::BTreeSet<&str> = models.collect();
    let parts = |m: &str| -> Vec<String> {
        let mut p: Vec<String> = m.split('/').filter(|c| !c.is_empty()).map(String::from).collect();
        if let Some(last) = p.last_mut()
            && let Some((stem, _)) = last.rsplit_once('.')
            && !stem.is_empty()
        {
            *last = stem.to_string();
        }
        p
    };
    let longest = models.iter().map(|m| parts(m).len()).max().unwrap_or(1);
    for k in 1..=longest {
        let label = |m: &str| {
            let p = parts(m);
            p[p.len().saturating_sub(k)..].join("/")
        };
        let labels: std::collections::BTreeSet<String> = models.iter().map(|m| label(m)).collect();
        if labels.len() == models.len() {
            return models.iter().map(|m| (m.to_string(), label(m))).collect();
        }
    }
    models.iter().map(|m| (m.to_string(), m.to_string())).collect()
}

/// E-nodes per iteration, one series per model, rule set and limits (the
/// saturation does not depend on target or extractor: the first run of each is drawn).
fn growth(ok: &[&RunRecord]) -> PlotData {
    let mut series: BTreeMap<String, Series> = BTreeMap::new();
    for r in ok.iter().filter(|r| r.budget == 0.0 && !r.growth.is_empty()) {
        let name = format!("{} / {} / {}", r.model, r.ruleset, r.limits);
        series.entry(name.clone()).or_insert_with(|| Series {
            name,
            points: r.growth.iter().enumerate().map(|(i, g)| (i as f64, g.nodes as f64)).collect(),
        });
    }
    PlotData {
        file: "egraph-growth".into(),
        title: "E-graph growth".into(),
        x_label: "iteration (last point: after saturation)".into(),
        y_label: "e-nodes".into(),
        log_x: false,
        log_y: true,
        style: Style::Lines,
        categories: Vec::new(),
        series: series.into_values().collect(),
    }
}

/// Estimated cost (greedy extraction) per iteration relative to the input's.
fn cost_trace(ok: &[&RunRecord]) -> PlotData {
    let mut series: BTreeMap<String, Series> = BTreeMap::new();
    for r in ok.iter().filter(|r| r.cost_trace.first().is_some_and(|c| *c > 0.0)) {
        let first = r.cost_trace[0];
        let name = format!("{} / {} / {} / {}", r.model, r.ruleset, r.target, r.limits);
        series.entry(name.clone()).or_insert_with(|| Series {
            name,
            points: r
                .cost_trace
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_finite())
                .map(|(i, c)| (i as f64, c / first))
                .collect(),
        });
    }
    PlotData {
        file: "cost-vs-iterations".into(),
        title: "Estimated cost against saturation iterations".into(),
        x_label: "iteration (last point: after saturation)".into(),
        y_label: "estimated cost / input's (greedy extraction)".into(),
        log_x: false,
        log_y: false,
        style: Style::Lines,
        categories: Vec::new(),
        series: series.into_values().collect(),
    }
}

/// Estimated against measured latency, input graphs and optimized, one series per target.
fn estimated_vs_measured(ok: &[&RunRecord]) -> PlotData {
    let mut series: BTreeMap<String, Series> = BTreeMap::new();
    let mut add = |name: String, est: Option<f64>, meas: Option<f64>| {
        if let (Some(e), Some(m)) = (est, meas) {
            series
                .entry(name.clone())
                .or_insert_with(|| Series { name, points: Vec::new() })
                .points
                .push((e * 1e3, m * 1e3));
        }
    };
    for r in ok {
        add(format!("{}: input graphs", r.target), r.cost_before_s, r.measured_before_s);
        add(format!("{}: optimized", r.target), r.cost_after_s, r.measured_after_s);
    }
    PlotData {
        file: "estimated-vs-measured".into(),
        title: "Estimated against measured latency (CPU backend)".into(),
        x_label: "estimated latency on the target (ms)".into(),
        y_label: "measured latency (ms)".into(),
        log_x: true,
        log_y: true,
        style: Style::Points,
        categories: Vec::new(),
        series: series.into_values().collect(),
    }
}

/// Latency against error over the budgets, one series per model, rule set,
/// target, limits and extractor, in error order. Latency is relative to the
/// same group's exact run (budget 0) where there is one, so models of any size
/// share the axis; measured values are used where the run measured them.
fn pareto(ok: &[&RunRecord]) -> PlotData {
    let mut groups: BTreeMap<String, Vec<&RunRecord>> = BTreeMap::new();
    for r in ok {
        let name = format!("{} / {} / {} / {}", r.model, r.ruleset, r.target, r.extractor);
        groups.entry(format!("{name} / {}", r.limits)).or_default().push(r);
    }
    let latency = |r: &RunRecord| r.measured_after_s.or(r.cost_after_s);
    let mut series = Vec::new();
    for (name, runs) in groups {
        if runs.iter().all(|r| r.budget == 0.0) {
            continue;
        }
        let exact = runs.iter().find(|r| r.budget == 0.0).and_then(|r| latency(r)).filter(|l| *l > 0.0);
        let mut points: Vec<(f64, f64)> = runs
            .iter()
            .filter_map(|r| {
                let err = r.measured_error.or(r.estimated_error).or((r.budget == 0.0).then_some(0.0))?;
                let lat = latency(r)?;
                Some((err.max(ERROR_FLOOR), exact.map_or(lat * 1e3, |e| lat / e)))
            })
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        series.push(Series { name, points });
    }
    PlotData {
        file: "pareto".into(),
        title: "Latency against error over the budgets".into(),
        x_label: format!("relative output error: measured where measured, else estimated (exact at {ERROR_FLOOR:e})"),
        y_label: "latency / the exact run's (ms where no exact run); measured where measured".into(),
        log_x: true,
        log_y: false,
        style: Style::Lines,
        categories: Vec::new(),
        series,
    }
}

/// Each extractor's DAG cost over the best known for the same e-graph (the
/// ILP's optimum where it ran, else the cheapest extractor), per model.
fn extractors(ok: &[&RunRecord]) -> PlotData {
    let mut best: BTreeMap<String, f64> = BTreeMap::new();
    let group = |r: &RunRecord| format!("{}|{}|{}|{}|{}", r.model, r.ruleset, r.target, r.limits, budget_label(r.budget));
    for r in ok {
        for c in [r.dag_cost_s, r.optimum_s].into_iter().flatten() {
            let b = best.entry(group(r)).or_insert(f64::INFINITY);
            *b = b.min(c);
        }
    }
    let mut categories: Vec<String> = Vec::new();
    let mut series: BTreeMap<String, Series> = BTreeMap::new();
    for r in ok {
        let (Some(cost), Some(b)) = (r.dag_cost_s, best.get(&group(r))) else {
            continue;
        };
        if !(*b > 0.0 && b.is_finite()) {
            continue;
        }
        let mut label = format!("{} / {} / {}", r.model, r.ruleset, r.target);
        if r.budget > 0.0 {
            label += &format!(" / budget {}", budget_label(r.budget));
        }
        let x = match categories.iter().position(|c| *c == label) {
            Some(i) => i,
            None => {
                categories.push(label);
                categories.len() - 1
            }
        };
        series
            .entry(r.extractor.clone())
            .or_insert_with(|| Series {
                name: r.extractor.clone(),
                points: Vec::new(),
            })
            .points
            .push((x as f64, cost / b));
    }
    if series.len() < 2 && ok.iter().all(|r| r.optimum_s.is_none()) {
        series.clear();
    }
    PlotData {
        file: "extractors".into(),
        title: "Extractors: DAG cost over the best known".into(),
        x_label: "model / rule set / target".into(),
        y_label: "cost / best (1 = optimal)".into(),
        log_x: false,
        log_y: false,
        style: Style::Points,
        categories,
        series: series.into_values().collect(),
    }
}

/// The plot as an SVG document. Log axes are drawn as log10 of the values
/// with ticks labelled by value; non-positive values are left off log axes.
pub fn svg(p: &PlotData) -> String {
    let mut svg = String::new();
    {
        use plotters::prelude::*;
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height(p))).into_drawing_area();
        let _ = draw(&root, p);
        let _ = root.present();
    }
    svg
}

fn transform(p: &PlotData, (x, y): (f64, f64)) -> Option<(f64, f64)> {
    let axis = |v: f64, log: bool| {
        if log {
            (v > 0.0 && v.is_finite()).then(|| v.log10())
        } else {
            v.is_finite().then_some(v)
        }
    };
    Some((axis(x, p.log_x)?, axis(y, p.log_y)?))
}

fn tick(v: f64, log: bool) -> String {
    sig3(if log { 10f64.powf(v) } else { v })
}

/// `v` to three significant digits (scientific notation outside 1e-3..1e5).
pub(crate) fn sig3(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v == 0.0 {
        return "0".into();
    }
    if v.abs() >= 1e5 || v.abs() < 1e-3 {
        return format!("{v:.1e}");
    }
    // Three significant digits, trailing zeros dropped.
    let decimals = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Width of the SVG, and of the legend panel at its right.
const WIDTH: u32 = 1100;
const LEGEND_WIDTH: u32 = 300;
const HEIGHT: u32 = 560;
/// The tallest SVG drawn (a longer legend is cut).
const MAX_HEIGHT: u32 = 1600;

/// Height of the SVG: [`HEIGHT`], or taller when the legend panel needs it.
fn height(p: &PlotData) -> u32 {
    let legend = 80 + 18 * p.series.len() + 16 * p.categories.len();
    u32::try_from(legend).unwrap_or(u32::MAX).clamp(HEIGHT, MAX_HEIGHT)
}

/// Legend entries longer than this are cut (with an ellipsis).
const LEGEND_CHARS: usize = 44;

fn draw<DB: plotters::prelude::DrawingBackend>(
    root: &plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
    p: &PlotData,
) -> std::result::Result<(), plotters::drawing::DrawingAreaErrorKind<DB::ErrorType>> {
    use plotters::prelude::*;
    root.fill(&WHITE)?;
    let (area, legend) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
    let n = p.series.len();
    // Points of a categorical axis are spread around their category so series do not hide each other.
    let jitter = |i: usize| {
        if p.categories.is_empty() || n < 2 {
            0.0
        } else {
            (i as f64 - (n - 1) as f64 / 2.0) * (0.5 / n as f64)
        }
    };
    let series: Vec<Vec<(f64, f64)>> = p
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.points
                .iter()
                .filter_map(|&pt| transform(p, pt))
                .map(|(x, y)| (x + jitter(i), y))
                .collect()
        })
        .collect();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in series.iter().flatten() {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    let pad = |lo: f64, hi: f64| {
        let d = if hi > lo { (hi - lo) * 0.08 } else { 0.5 };
        (lo - d, hi + d)
    };
    let ((x0, x1), (y0, y1)) = (pad(x0, x1), pad(y0, y1));
    let categories = &p.categories;
    let x_fmt = |v: &f64| {
        if categories.is_empty() {
            tick(*v, p.log_x)
        } else {
            let i = v.round();
            // Categories are numbered on the axis and named in the legend panel.
            // Beyond 20 categories, every fifth is numbered (the legend names them all).
            let shown = categories.len() <= 20 || (i as usize + 1) % 5 == 0 || i == 0.0;
            if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < categories.len() && shown {
                format!("{}", i as usize + 1)
            } else {
                String::new()
            }
        }
    };
    let y_fmt = |v: &f64| tick(*v, p.log_y);
    let mut chart = ChartBuilder::on(&area)
        .caption(&p.title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(p.x_label.as_str())
        .y_desc(p.y_label.as_str())
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt);
    if !categories.is_empty() {
        mesh.x_labels(((x1 - x0).ceil() as usize + 1) * 4).disable_x_mesh();
    }
    mesh.draw()?;
    let colors: Vec<RGBAColor> = (0..n).map(|i| Palette99::pick(i).to_rgba()).collect();
    for (i, pts) in series.iter().enumerate() {
        let color = colors[i];
        if p.style == Style::Lines {
            chart.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?;
        }
        chart.draw_series(pts.iter().map(|&pt| Circle::new(pt, 3, color.filled())))?;
    }
    // The legend, in its own panel so it never hides data.
    let font = ("sans-serif", 12).into_font();
    let cut = |text: &str| -> String {
        if text.chars().count() > LEGEND_CHARS {
            text.chars().take(LEGEND_CHARS - 1).chain(['…']).collect()
        } else {
            text.to_string()
        }
    };
    let mut y = 50;
    let bottom = height(p) as i32 - 20;
    for (i, s) in p.series.iter().enumerate() {
        if y > bottom {
            legend.draw(&Text::new(format!("… and {} more", n - i), (10, y), font.clone()))?;
            break;
        }
        legend.draw(&Circle::new((12, y + 6), 4, colors[i].filled()))?;
        legend.draw(&Text::new(cut(&s.name), (24, y), font.clone()))?;
        y += 18;
    }
    y += 12;
    for (i, c) in categories.iter().enumerate() {
        if y > bottom {
            legend.draw(&Text::new(format!("… and {} more", categories.len() - i), (10, y), font.clone()))?;
            break;
        }
        legend.draw(&Text::new(cut(&format!("{}: {c}", i + 1)), (10, y), font.clone()))?;
        y += 16;
    }
    Ok(())
}
