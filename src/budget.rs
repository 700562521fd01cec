//! Extraction under an accuracy budget.
//!
//! Approximate rules (`rules/quant.rules`) add `(approx ERR x)` e-nodes: `x`
//! computes the class' value up to a relative error `ERR`. The chosen term's
//! error is estimated as the declared errors of its approximate nodes added in
//! quadrature ([`ExtractStats::estimated_error`]). [`extract_within_budget`]
//! finds the cheapest term whose estimate is within the budget by a Lagrangian
//! search: each approximate node costs `λ·ERR²` on top of its roofline time
//! (squared errors add, so the penalty is additive over the term), and a
//! bisection over `log λ` finds the smallest `λ` whose extraction fits. The
//! term is then *measured*: an [`ErrorMeter`] runs it and the original on the
//! same inputs. If the measured error exceeds the budget, the estimate's budget
//! is tightened and the search repeats; if it is well within the budget
//! ([`LOOSEN_BELOW`]) and the bound held cheaper terms back, the bound is
//! loosened by the slack and the cheaper term measured in turn, the last term
//! measured within the budget being kept. At most [`MAX_ROUNDS`] terms are
//! measured; when none is within the budget, the exact term (no approximate
//! node) is returned.

use crate::cost::HardwareProfile;
use crate::error::Result;
use crate::extraction::{ExtractStats, enode_time, extract_graph_with};
use crate::graph::Graph;
use crate::graph::tensor::Tensor;
use crate::lang::approx_error;
use crate::saturate::Saturation;
use std::collections::BTreeMap;
use std::time::Duration;

/// Measured extractions per search (tightening and loosening together).
pub const MAX_ROUNDS: usize = 4;
/// A term measured below this fraction of the budget, chosen under an
/// estimate bound that held back cheaper approximations, is followed by a
/// search under a looser bound (the estimate adds errors in quadrature, which
/// normalizations and averaging downstream often shrink).
pub const LOOSEN_BELOW: f64 = 0.5;
/// The most one loosening multiplies the estimate bound by.
pub const MAX_LOOSEN: f64 = 10.0;
/// Bisection steps over `log10 λ` per round (resolution ≈ 21 / 2^12 decades).
pub const LAMBDA_STEPS: usize = 12;
/// The `λ` search interval, `[10^LO, 10^HI]`, in seconds per unit of squared
/// relative error (roofline times are 1e-7 to 1e-1 s, squared errors 1e-9 to
/// 1e-1). At the low end a pruned layer's penalty (ERR ≈ 0.3: 1e-10 s) is
/// below any latency it saves; ties between equally fast alternatives are
/// broken by [`TIE_BREAK_S_PER_ERROR`], not by `λ`.
pub const LOG10_LAMBDA_RANGE: (f64, f64) = (-9.0, 12.0);

/// Seconds charged per unit of an approximate node's declared error on top of
/// `λ·ERR²`, at every `λ`: between equally fast alternatives the extractors
/// then prefer the more accurate one (f16 weights against bf16 ones: 1.5e-9 s
/// apart, above the extractors' 1e-10 s resolution), while a pruned layer
/// (ERR ≈ 0.3) pays 0.3 µs, less than what it saves on any layer worth
/// pruning.
pub const TIE_BREAK_S_PER_ERROR: f64 = 1e-6;

/// Measures the relative output error of a candidate graph against the original.
pub trait ErrorMeter {
    /// `max` over outputs of `‖y − ŷ‖₂ / ‖y‖₂`, `y` the original's output.
    ///
    /// # Errors
    /// Whatever running the candidate reports.
    fn measure(&mut self, candidate: &Graph) -> Result<f64>;
}

/// The relative error `‖got − want‖₂ / ‖want‖₂` of one output (`‖got‖₂`
/// when `want` is all zeros, infinite on a shape mismatch).
pub fn relative_error(got: &Tensor, want: &Tensor) -> f64 {
    if got.ty.shape != want.ty.shape {
        return f64::INFINITY;
    }
    let (g, w) = (got.to_f64(), want.to_f64());
    let (diff, norm) = g
        .iter()
        .zip(&w)
        .fold((0.0f64, 0.0f64), |(d, n), (a, b)| (d + (a - b) * (a - b), n + b * b));
    if norm > 0.0 { (diff / norm).sqrt() } else { diff.sqrt() }
}

/// The largest [`relative_error`] over the outputs of `want` (infinite if
/// `got` lacks one).
pub fn max_relative_error(got: &BTreeMap<String, Tensor>, want: &BTreeMap<String, Tensor>) -> f64 {
    want.iter()
        .map(|(name, w)| got.get(name).map_or(f64::INFINITY, |g| relative_error(g, w)))
        .fold(0.0, f64::max)
}

/// One measured extraction of the search.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BudgetRound {
    /// The bound the estimate had to meet.
    pub estimate_budget: f64,
    /// The `λ` chosen (`None`: the exact term).
    pub lambda: Option<f64>,
    /// Approximate nodes in the term.
    pub approx_nodes: usize,
    /// Its estimated error.
    pub estimated_error: f64,
    /// Its measured error.
    pub measured_error: f64,
}

/// How the budgeted extraction went (part of the optimize report).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BudgetReport {
    /// The budget (relative output error).
    pub max_error: f64,
    /// Estimated error of the returned term.
    pub estimated_error: f64,
    /// Measured error of the returned term (`None` for the exact term, which
    /// was not measured: it computes the same function up to rounding).
    pub measured_error: Option<f64>,
    /// Approximate nodes in the returned term, with their declared errors.
    pub approx: Vec<(String, f64)>,
    /// Every measured round, in order.
    pub rounds: Vec<BudgetRound>,
    /// True when approximate terms were measured over the budget and the exact
    /// one was returned (false when no approximation fitted the estimate at all).
    pub fell_back_to_exact: bool,
}

/// Seconds charged per byte of weights a GEMM or convolution reads, in
/// budgeted extraction only: 1 µs per MB (0.2% of ResNet-50's estimated time
/// for its 100 MB of weights), so it decides between equally fast terms — in
/// favour of the one storing fewer weight bytes (a compute-bound layer runs as
/// fast with f16 weights, and its weights take half the memory) — and hardly
/// moves anything else.
pub const TIE_BREAK_S_PER_BYTE: f64 = 1e-12;

/// Extraction with approximate nodes priced at `λ·ERR²` (`None`: never
/// chosen); a node whose `ERR` alone exceeds `bound` is never chosen either
/// (no term holding it fits the bound, and pricing it out keeps such nodes —
/// a low-rank weight with a large truncation error — from drawing the cheap
/// end of the `λ` search).
fn extract_at(
    original: &Graph,
    sat: &Saturation,
    target: &HardwareProfile,
    extractor: &str,
    time_limit: Duration,
    lambda: Option<f64>,
    bound: f64,
) -> Result<(Graph, ExtractStats)> {
    let cost = |eg: &crate::analysis::TEGraph, n: &crate::lang::TNode| match approx_error(n, |c| eg[c].data.attr().cloned()) {
        Some(e) if e > bound => None,
        Some(e) => lambda.map(|l| l * e * e + TIE_BREAK_S_PER_ERROR * e),
        None => Some(enode_time(eg, n, target)? + TIE_BREAK_S_PER_BYTE * weight_read_bytes(eg, n) as f64),
    };
    extract_graph_with(original, sat, &cost, extractor, time_limit)
}

/// Bytes of the weight (second input) of a GEMM or convolution e-node as
/// stored (2 per element for a widened f16/bf16 constant); 0 for other nodes.
fn weight_read_bytes(eg: &crate::analysis::TEGraph, n: &crate::lang::TNode) -> u64 {
    use crate::lang::TOp;
    if !matches!(n.op, TOp::MatMul | TOp::FusedMatMul | TOp::Conv | TOp::FusedConv) {
        return 0;
    }
    let Some(ty) = n.inputs().get(1).and_then(|&w| eg[w].data.ty()) else {
        return 0;
    };
    match crate::extraction::widened_const(eg, n.inputs()[1]) {
        Some(stored) => crate::cost::as_stored(ty, stored).size_bytes(),
        None => ty.size_bytes(),
    }
}

/// The cheapest extraction whose estimated error is at most `bound`, with its
/// `λ` (`None` when only the exact term fits).
fn search(
    original: &Graph,
    sat: &Saturation,
    target: &HardwareProfile,
    extractor: &str,
    time_limit: Duration,
    bound: f64,
) -> Result<(Graph, ExtractStats, Option<f64>)> {
    let at = |l: f64| extract_at(original, sat, target, extractor, time_limit, Some(10f64.powf(l)), bound);
    let (mut lo, mut hi) = LOG10_LAMBDA_RANGE;
    let cheapest = at(lo)?;
    if cheapest.1.estimated_error() <= bound {
        return Ok((cheapest.0, cheapest.1, Some(10f64.powf(lo))));
    }
    let mut best = at(hi)?;
    if best.1.estimated_error() > bound {
        let (g, s) = extract_at(original, sat, target, extractor, time_limit, None, 0.0)?;
        return Ok((g, s, None));
    }
    // Invariant: the extraction at 10^hi fits, the one at 10^lo does not.
    for _ in 0..LAMBDA_STEPS {
        let mid = 0.5 * (lo + hi);
        let r = at(mid)?;
        if r.1.estimated_error() <= bound {
            hi = mid;
            best = r;
        } else {
            lo = mid;
        }
    }
    Ok((best.0, best.1, Some(10f64.powf(hi))))
}

/// The cheapest term of `sat` whose measured relative output error is within
/// `max_error` (see the module docs).
///
/// # Errors
/// Extraction errors, and whatever `meter` reports.
pub fn extract_within_budget(
    original: &Graph,
    sat: &Saturation,
    target: &HardwareProfile,
    extractor: &str,
    time_limit: Duration,
    max_error: f64,
    meter: &mut dyn ErrorMeter,
) -> Result<(Graph, ExtractStats, BudgetReport)> {
    let mut rounds = Vec::new();
    let mut bound = max_error;
    // The cheapest term measured within the budget so far, and its error.
    let mut best: Option<(Graph, ExtractStats, f64)> = None;
    for _ in 0..MAX_ROUNDS {
        let (graph, stats, lambda) = search(original, sat, target, extractor, time_limit, bound)?;
        if stats.approx.is_empty() {
            // Only the exact term fits the (possibly tightened) estimate bound.
            break;
        }
        if best.as_ref().is_some_and(|(_, s, _)| s.approx == stats.approx) {
            break; // loosening the bound changed nothing
        }
        let measured = meter.measure(&graph)?;
        let estimated = stats.estimated_error();
        tracing::debug!(
            round = rounds.len() + 1,
            estimate_bound = bound,
            approx_nodes = stats.approx.len(),
            estimated,
            measured,
            "budget round"
        );
        rounds.push(BudgetRound {
            estimate_budget: bound,
            lambda,
            approx_nodes: stats.approx.len(),
            estimated_error: estimated,
            measured_error: measured,
        });
        if measured > max_error {
            if best.is_some() {
                break; // the looser term went over: keep the last one within
            }
            // The estimate was optimistic by measured / estimated: aim lower.
            bound = (bound * (max_error / measured)).min(0.5 * bound);
            continue;
        }
        let cheaper = best
            .as_ref()
            .is_none_or(|(g, _, _)| crate::cost::graph_totals(&graph, target).latency_s <= crate::cost::graph_totals(g, target).latency_s);
        if !cheaper {
            break;
        }
        // The bound held back cheaper approximations (the search did not stop
        // at the cheapest λ) and the measurement left room: aim at the budget.
        let binding = lambda.is_some_and(|l| l > 10f64.powf(LOG10_LAMBDA_RANGE.0));
        best = Some((graph, stats, measured));
        if !binding || measured >= LOOSEN_BELOW * max_error {
            break;
        }
        bound *= (max_error / measured).min(MAX_LOOSEN);
    }
    tracing::info!(
        max_error,
        rounds = rounds.len(),
        approx_nodes = best.as_ref().map_or(0, |(_, s, _)| s.approx.len()),
        measured = best.as_ref().map(|(_, _, m)| *m),
        "budgeted extraction"
    );
    match best {
        Some((graph, stats, measured)) => {
            let report = BudgetReport {
                max_error,
                estimated_error: stats.estimated_error(),
                measured_error: Some(measured),
                approx: stats.approx.clone(),
                rounds,
                fell_back_to_exact: false,
            };
            Ok((graph, stats, report))
        }
        None => {
            let fell_back = !rounds.is_empty();
            let (graph, stats) = extract_at(original, sat, target, extractor, time_limit, None, 0.0)?;
            Ok((graph, stats, BudgetReport::exact(max_error, rounds, fell_back)))
        }
    }
}

impl BudgetReport {
    /// The report of a search that returned the exact term after `rounds`.
    fn exact(max_error: f64, rounds: Vec<BudgetRound>, fell_back_to_exact: bool) -> BudgetReport {
        BudgetReport {
            max_error,
            estimated_error: 0.0,
            measured_error: None,
            approx: Vec::new(),
            rounds,
            fell_back_to_exact,
        }
    }
}

/// Seeded random input sets [`CpuMeter::seeded`] uses by default.
pub const DEFAULT_CALIBRATION_SETS: u64 = 2;

/// An [`ErrorMeter`] that runs graphs on the CPU backend over fixed input
/// sets, against the original graph's outputs on the same sets.
pub struct CpuMeter {
    inputs: Vec<BTreeMap<String, Tensor>>,
    want: Vec<BTreeMap<String, Tensor>>,
}

impl CpuMeter {
    /// A meter over `inputs` (each a full set of graph inputs), with the
    /// reference outputs computed by running `original` on the CPU backend.
    ///
    /// # Errors
    /// [`crate::Error::Usage`] when `inputs` is empty; lowering or run errors
    /// of `original` (an input set missing an input, or of the wrong type).
    pub fn new(original: &Graph, inputs: Vec<BTreeMap<String, Tensor>>) -> Result<CpuMeter> {
        if inputs.is_empty() {
            return Err(crate::Error::Usage {
                option: "--calibration".into(),
                expected: "at least one input set".into(),
                found: "none".into(),
            });
        }
        let model = crate::backend::CpuModel::compile(original)?;
        let want = inputs.iter().map(|i| model.run(i)).collect::<Result<Vec<_>>>()?;
        Ok(CpuMeter { inputs, want })
    }

    /// A meter over `sets` input sets drawn by [`crate::eval::random_inputs`]
    /// with seeds `seed, seed + 1, …`.
    ///
    /// # Errors
    /// As [`CpuMeter::new`].
    pub fn seeded(original: &Graph, seed: u64, sets: u64) -> Result<CpuMeter> {
        let inputs = (0..sets)
            .map(|k| crate::eval::random_inputs(original, seed.wrapping_add(k * 1000)))
            .collect();
        CpuMeter::new(original, inputs)
    }
}

impl ErrorMeter for CpuMeter {
    fn measure(&mut self, candidate: &Graph) -> Result<f64> {
        let model = crate::backend::CpuModel::compile(candidate)?;
        let mut worst = 0.0f64;
        for (inputs, want) in self.inputs.iter().zip(&self.want) {
            worst = worst.max(max_relative_error(&model.run(inputs)?, want));
        }
        Ok(worst)
    }
}
