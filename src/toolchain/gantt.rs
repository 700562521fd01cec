//! A Gantt chart of a schedule as SVG.
//!
//! Layout, top to bottom: the title (graph, platform, `T_est`); one row per
//! stream of every device that runs a kernel or sends or receives a transfer,
//! labelled `device/stream` (all streams the schedule had on such a device,
//! idle ones too, in the platform's order); then one row per direction of a
//! device pair that carries transfers, labelled `src->dst`; the time axis in
//! microseconds; a legend of the kernel kinds present (and of transfers, where
//! there are any).
//!
//! Each kernel is a bar filled with its kind's colour ([`PALETTE`], unknown
//! kinds [`OTHER_COLOUR`]) from its start to its end, at least one pixel wide,
//! with a one-pixel gap at its end where it is wide enough so that back-to-back
//! kernels stay apart; it carries its label (`k<kernel> <kind> <output>`, else
//! `k<kernel>`) only where that fits inside it. Each transfer is an outlined
//! (unfilled) bar in [`TRANSFER_COLOUR`] on its link row, from its start to its
//! end; overlapping transfers are stacked in up to [`MAX_LANES`] lanes (first
//! fit, in start order), beyond which they overlap in the lane that frees
//! first. The output is a pure function of the inputs: the same schedule gives
//! byte-identical SVG. (plotters' SVG backend has no `<title>` element, so
//! narrow bars carry no tooltip either.)

use super::heft::Schedule;
use super::platform::Platform;
use super::tasks::TaskGraph;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Fill colour of each kernel kind (Tableau 10), in legend order.
pub const PALETTE: [(&str, (u8, u8, u8)); 10] = [
    ("gemm", (0x4E, 0x79, 0xA7)),
    ("conv", (0xF2, 0x8E, 0x2B)),
    ("elementwise", (0x59, 0xA1, 0x4F)),
    ("pool", (0x76, 0xB7, 0xB2)),
    ("softmax", (0xE1, 0x57, 0x59)),
    ("layernorm", (0xED, 0xC9, 0x48)),
    ("reduce", (0xB0, 0x7A, 0xA1)),
    ("attention", (0xFF, 0x9D, 0xA7)),
    ("gather", (0x9C, 0x75, 0x5F)),
    ("copy", (0xBA, 0xB0, 0xAC)),
];

/// Fill colour of a kernel whose kind is not in [`PALETTE`].
pub const OTHER_COLOUR: (u8, u8, u8) = (0x6B, 0x6B, 0x6B);

/// Outline colour of a transfer.
pub const TRANSFER_COLOUR: (u8, u8, u8) = (0xC0, 0x1C, 0x28);

/// Most lanes a link row stacks overlapping transfers in.
pub const MAX_LANES: usize = 6;

/// Width of the SVG, pixels.
const WIDTH: u32 = 1400;
/// Height of a stream row and of one lane of a link row, pixels.
const STREAM_ROW: f64 = 22.0;
const LANE: f64 = 8.0;
/// Approximate advance of one character of the label fonts, pixels.
const CHAR_PX: i32 = 6;

/// The fill colour of kernels of `kind`.
pub fn kind_colour(kind: &str) -> (u8, u8, u8) {
    PALETTE.iter().find(|(k, _)| *k == kind).map_or(OTHER_COLOUR, |(_, c)| *c)
}

fn rgb(c: (u8, u8, u8)) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

/// One row of the chart.
enum Row {
    /// `(device, stream)`.
    Stream(usize, usize),
    /// `(src, dst, lanes)`.
    Link(usize, usize, usize),
}

impl Row {
    fn height(&self) -> f64 {
        match self {
            Row::Stream(..) => STREAM_ROW,
            Row::Link(.., lanes) => LANE * *lanes as f64 + 6.0,
        }
    }

    fn label(&self, platform: &Platform) -> String {
        match self {
            Row::Stream(d, s) => format!("{}/{s}", platform.devices[*d].name),
            Row::Link(a, b, _) => format!("{}->{}", platform.devices[*a].name, platform.devices[*b].name),
        }
    }
}

/// A Gantt chart of `schedule` as SVG text: one row per device stream
/// (labelled `device/stream`), each kernel a bar from its start to its end
/// coloured by kernel kind ([`PALETTE`], with a legend of the kinds present),
/// transfers as outlined bars on a row per link direction, the time axis in
/// microseconds, the title naming the graph, the platform and `T_est`. See the
/// module documentation for the details.
pub fn gantt_svg(graph: &TaskGraph, platform: &Platform, schedule: &Schedule) -> String {
    let nd = platform.devices.len();
    let mut used = vec![false; nd];
    for s in &schedule.slots {
        used[s.device] = true;
    }
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for x in &schedule.transfers {
        used[x.src] = true;
        used[x.dst] = true;
        if !pairs.contains(&(x.src, x.dst)) {
            pairs.push((x.src, x.dst));
        }
    }
    pairs.sort();
    let mut rows: Vec<Row> = Vec::new();
    for d in (0..nd).filter(|&d| used[d]) {
        // The streams the schedule had (one with `one_stream`), else the platform's.
        let had = match schedule.stream_end.get(d) {
            Some(v) if !v.is_empty() => v.len(),
            _ => platform.devices[d].streams,
        };
        let streams = schedule
            .slots
            .iter()
            .filter(|x| x.device == d)
            .map(|x| x.stream + 1)
            .fold(had, usize::max);
        rows.extend((0..streams).map(|s| Row::Stream(d, s)));
    }
    let mut lane_of = vec![0usize; schedule.transfers.len()];
    rows.extend(pairs.iter().map(|&(a, b)| Row::Link(a, b, 1)));
    let label_px = rows.iter().map(|r| r.label(platform).len() as u32).max().unwrap_or(4) * CHAR_PX as u32 + 14;
    // The plotting area's width as plotters lays it out (margins of 12 pixels).
    let px_per_s = f64::from(WIDTH - label_px - 24) / schedule.makespan.max(1e-9);
    for row in rows.iter_mut() {
        if let Row::Link(a, b, lanes) = row {
            *lanes = assign_lanes(schedule, (*a, *b), px_per_s, &mut lane_of);
        }
    }
    let rows_px: f64 = rows.iter().map(Row::height).sum();
    let height = (rows_px as u32).max(STREAM_ROW as u32) + 150;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        let _ = draw(&root, graph, platform, schedule, &rows, &lane_of, label_px);
        let _ = root.present();
    }
    svg
}

type DrawResult<DB> = std::result::Result<(), plotters::drawing::DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    graph: &TaskGraph,
    platform: &Platform,
    schedule: &Schedule,
    rows: &[Row],
    lane_of: &[usize],
    label_px: u32,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let (_, full_h) = root.dim_in_pixel();
    let (top, legend) = root.split_vertically(full_h as i32 - 34);
    let span_us = (schedule.makespan * 1e6).max(1e-3);
    let title = format!(
        "{} on {}: T_est = {:.1} us ({} kernels, {} transfers)",
        graph.name,
        platform.name,
        schedule.makespan * 1e6,
        schedule.slots.len(),
        schedule.transfers.len()
    );
    let mut chart = ChartBuilder::on(&top)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(label_px)
        .build_cartesian_2d(0.0..span_us, 0.0..1.0)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_desc("time (us)")
        .light_line_style(BLACK.mix(0.04))
        .draw()?;
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let x_px = |t: f64| xr.start + ((t * 1e6 / span_us) * (xr.end - xr.start) as f64).round() as i32;
    let bar_px = |start: f64, end: f64| {
        let x0 = x_px(start);
        (x0, x_px(end).max(x0 + 1))
    };

    // Row tops in pixels, the rows scaled to fill the plotting area.
    let total: f64 = rows.iter().map(Row::height).sum::<f64>().max(1.0);
    let scale = (yr.end - yr.start) as f64 / total;
    let mut tops = Vec::with_capacity(rows.len() + 1);
    let mut acc = 0.0;
    for r in rows {
        tops.push(yr.start + (acc * scale).round() as i32);
        acc += r.height();
    }
    tops.push(yr.end);
    let row_label = ("sans-serif", 12)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Right, VPos::Center));
    let bar_label = ("sans-serif", 10).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, r) in rows.iter().enumerate() {
        let mid = (tops[i] + tops[i + 1]) / 2;
        root.draw(&Text::new(r.label(platform), (xr.start - 6, mid), row_label.clone()))?;
        let sep = if i + 1 < rows.len() && matches!((r, &rows[i + 1]), (Row::Stream(a, _), Row::Stream(b, _)) if a == b) {
            BLACK.mix(0.08)
        } else {
            BLACK.mix(0.35)
        };
        root.draw(&PathElement::new(vec![(xr.start, tops[i + 1]), (xr.end, tops[i + 1])], sep))?;
    }

    // Kernels.
    let row_index = |d: usize, s: usize| rows.iter().position(|r| matches!(r, Row::Stream(a, b) if (*a, *b) == (d, s)));
    for (t, slot) in schedule.slots.iter().enumerate() {
        let Some(i) = row_index(slot.device, slot.stream) else { continue };
        let (x0, mut x1) = bar_px(slot.start, slot.end);
        if x1 - x0 >= 4 {
            x1 -= 1;
        }
        let (y0, y1) = (tops[i] + 3, tops[i + 1] - 3);
        let task = &graph.tasks[t];
        root.draw(&Rectangle::new([(x0, y0), (x1, y1)], rgb(kind_colour(task.kind)).filled()))?;
        let short = task.label.split_whitespace().next().unwrap_or("");
        let fits = |s: &str| !s.is_empty() && (s.chars().count() as i32) * CHAR_PX + 4 <= x1 - x0;
        let text = [task.label.as_str(), short].into_iter().find(|s| fits(s));
        if let Some(text) = text {
            root.draw(&Text::new(text.to_string(), (x0 + 2, (y0 + y1) / 2), bar_label.clone()))?;
        }
    }

    // Transfers.
    let outline = ShapeStyle::from(rgb(TRANSFER_COLOUR)).stroke_width(1);
    for (k, x) in schedule.transfers.iter().enumerate() {
        let Some(i) = rows
            .iter()
            .position(|r| matches!(r, Row::Link(a, b, _) if (*a, *b) == (x.src, x.dst)))
        else {
            continue;
        };
        let (x0, x1) = bar_px(x.start, x.end);
        let lane_h = (tops[i + 1] - tops[i] - 6) as f64 / rows_lanes(&rows[i]) as f64;
        let y0 = tops[i] + 3 + (lane_h * lane_of[k] as f64).round() as i32;
        let y1 = (y0 + (lane_h.round() as i32 - 2).max(1)).min(tops[i + 1] - 3);
        root.draw(&Rectangle::new([(x0, y0), (x1, y1)], outline))?;
    }

    // Legend: the kinds present in palette order, then unknown kinds, then transfers.
    let mut entries: Vec<(String, (u8, u8, u8), bool)> = PALETTE
        .iter()
        .filter(|(k, _)| graph.tasks.iter().any(|t| t.kind == *k))
        .map(|(k, c)| (k.to_string(), *c, true))
        .collect();
    let mut others: Vec<&str> = graph
        .tasks
        .iter()
        .map(|t| t.kind)
        .filter(|k| !PALETTE.iter().any(|(p, _)| p == k))
        .collect();
    others.sort();
    others.dedup();
    entries.extend(others.iter().map(|k| (k.to_string(), OTHER_COLOUR, true)));
    if !schedule.transfers.is_empty() {
        entries.push(("transfer".to_string(), TRANSFER_COLOUR, false));
    }
    let legend_font = ("sans-serif", 12).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    let mut x = xr.start;
    for (name, colour, filled) in entries {
        let style = if filled { rgb(colour).filled() } else { outline };
        legend.draw(&Rectangle::new([(x, 10), (x + 12, 22)], style))?;
        legend.draw(&Text::new(name.clone(), (x + 17, 16), legend_font.clone()))?;
        x += 17 + name.len() as i32 * CHAR_PX + 22;
    }
    Ok(())
}

/// Stacks the transfers from `pair.0` to `pair.1` in lanes, first fit in
/// order of start (then end, then index), where a lane is free once the
/// previous bar in it ends, in pixels at `px_per_s`, before the next starts;
/// past [`MAX_LANES`] the lane that frees first. Writes each transfer's lane
/// into `lane_of` and returns the lanes used (at least 1).
fn assign_lanes(schedule: &Schedule, pair: (usize, usize), px_per_s: f64, lane_of: &mut [usize]) -> usize {
    let xs = &schedule.transfers;
    let mut order: Vec<usize> = (0..xs.len()).filter(|&i| (xs[i].src, xs[i].dst) == pair).collect();
    order.sort_by(|&i, &j| {
        xs[i]
            .start
            .total_cmp(&xs[j].start)
            .then(xs[i].end.total_cmp(&xs[j].end))
            .then(i.cmp(&j))
    });
    let px = |t: f64| (t * px_per_s).round() as i64;
    let mut ends: Vec<i64> = Vec::new();
    for i in order {
        let (x0, x1) = (px(xs[i].start), px(xs[i].end).max(px(xs[i].start) + 1));
        let lane = match ends.iter().position(|&e| e < x0) {
            Some(l) => l,
            None if ends.len() < MAX_LANES => {
                ends.push(i64::MIN);
                ends.len() - 1
            }
            None => (0..ends.len()).min_by_key(|&l| ends[l]).expect("MAX_LANES > 0"),
        };
        ends[lane] = ends[lane].max(x1);
        lane_of[i] = lane;
    }
    ends.len().max(1)
}

fn rows_lanes(row: &Row) -> usize {
    match row {
        Row::Link(.., lanes) => *lanes,
        Row::Stream(..) => 1,
    }
}
