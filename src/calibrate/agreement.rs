//! Does the roofline model predict the CPU backend? Each kernel of a compiled
//! program gets a predicted time from its work ([`eqopt_kir::KernelWork`], the
//! same FLOP and byte conventions as the graph cost model) on a hardware
//! profile, and a measured time (the median over runs of its wall time inside
//! the executor). Their rank correlation says whether extraction, which only
//! compares predictions, ranks alternatives the way the machine does; the
//! median ratio says how far off the absolute scale is.

use crate::backend::CpuModel;
use crate::cost::{ExecKind, HardwareProfile, Work};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::tensor::Tensor;
use std::collections::BTreeMap;

/// One kernel's prediction and measurement.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct KernelTiming {
    /// Index in the program.
    pub index: usize,
    /// Kernel kind (`gemm`, `conv`, ...).
    pub kind: &'static str,
    /// The buffer it writes (the graph value, for reading the report).
    pub output: String,
    /// Its floating-point operations.
    pub flops: u64,
    /// Bytes it reads and writes.
    pub bytes: u64,
    /// Roofline time on the profile, seconds.
    pub predicted_s: f64,
    /// Median measured wall time, seconds.
    pub measured_s: f64,
}

/// Predicted against measured, over a program's kernels.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Agreement {
    /// Every kernel, in program order.
    pub kernels: Vec<KernelTiming>,
    /// Spearman rank correlation of predicted and measured times.
    pub spearman: f64,
    /// Median of measured / predicted.
    pub median_ratio: f64,
    /// Sum of the predicted times, seconds.
    pub predicted_total_s: f64,
    /// Sum of the measured medians, seconds.
    pub measured_total_s: f64,
}

/// Runs `model` `warmup + runs` times on the current pool and compares each
/// kernel's median time with its roofline time on `profile`.
///
/// # Errors
/// What [`CpuModel::run_timed`] reports.
pub fn measure(
    model: &CpuModel,
    inputs: &BTreeMap<String, Tensor>,
    profile: &HardwareProfile,
    warmup: usize,
    runs: usize,
) -> Result<Agreement> {
    for _ in 0..warmup {
        model.run(inputs)?;
    }
    let program = model.program();
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(runs); program.kernels.len()];
    for _ in 0..runs.max(1) {
        let (_, times) = model.run_timed(inputs)?;
        for (s, t) in samples.iter_mut().zip(times) {
            s.push(t.as_secs_f64());
        }
    }
    let kernels: Vec<KernelTiming> = program
        .kernels
        .iter()
        .enumerate()
        .map(|(k, kernel)| {
            let w = program.kernel_work(k).unwrap_or_default();
            let work = Work {
                flops: w.flops,
                bytes_read: w.bytes_read,
                bytes_written: w.bytes_written,
                dtype: DType::F32,
                kind: ExecKind::Kernel,
                conv_layout: None,
                relayout_bytes: 0,
            };
            KernelTiming {
                index: k,
                kind: kernel.name(),
                output: program.buffers[kernel.output().buffer].name.clone(),
                flops: w.flops,
                bytes: w.bytes_read.saturating_add(w.bytes_written),
                predicted_s: profile.kernel_time(&work),
                measured_s: median(&mut samples[k]),
            }
        })
        .collect();
    let predicted: Vec<f64> = kernels.iter().map(|k| k.predicted_s).collect();
    let measured: Vec<f64> = kernels.iter().map(|k| k.measured_s).collect();
    let mut ratios: Vec<f64> = kernels.iter().map(|k| k.measured_s / k.predicted_s).collect();
    Ok(Agreement {
        spearman: spearman(&predicted, &measured),
        median_ratio: median(&mut ratios),
        predicted_total_s: predicted.iter().sum(),
        measured_total_s: measured.iter().sum(),
        kernels,
    })
}

/// Median (the upper one of an even count); NaN for no values.
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Ranks from 1, ties sharing their mean rank.
fn ranks(xs: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut r = vec![0.0; xs.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && xs[order[j + 1]] == xs[order[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for &o in &order[i..=j] {
            r[o] = mean;
        }
        i = j + 1;
    }
    r
}

/// Spearman's rank correlation (Pearson's on tie-averaged ranks); NaN when
/// either side has fewer than two values or no spread.
pub fn spearman(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len().min(ys.len());
    if n < 2 {
        return f64::NAN;
    }
    let (rx, ry) = (ranks(&xs[..n]), ranks(&ys[..n]));
    let mean = (n as f64 + 1.0) / 2.0;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        let (dx, dy) = (a - mean, b - mean);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    sxy / (sxx * syy).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_monotone_and_reversed_orders() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert!((spearman(&x, &[10.0, 20.0, 25.0, 100.0, 1e3]) - 1.0).abs() < 1e-12);
        assert!((spearman(&x, &[5.0, 4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        // Ties share ranks: [1, 2.5, 2.5, 4] against [1, 2, 3, 4].
        let rho = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]);
        assert!((rho - 0.948_683_298).abs() < 1e-6, "{rho}");
        assert!(spearman(&[1.0], &[2.0]).is_nan());
    }

    #[test]
    fn a_model_gets_one_timing_per_kernel_and_bigger_gemms_are_predicted_slower() {
        let g = crate::graph::json::parse(
            r#"{"format": "eqopt-graph", "version": 1, "name": "g",
            "inputs": [{"name": "x", "shape": [64, 256], "dtype": "f32"}], "outputs": ["z"],
            "constants": [
              {"name": "w1", "shape": [256, 256], "dtype": "f32", "random": {"dist": "normal", "std": 0.1, "seed": 1}},
              {"name": "w2", "shape": [256, 8], "dtype": "f32", "random": {"dist": "normal", "std": 0.1, "seed": 2}}],
            "nodes": [
              {"name": "y", "op": "MatMul", "inputs": ["x", "w1"]},
              {"name": "r", "op": "Relu", "inputs": ["y"]},
              {"name": "z", "op": "MatMul", "inputs": ["r", "w2"]}]}"#,
            "g.json".as_ref(),
        )
        .unwrap();
        let model = CpuModel::compile(&g).unwrap();
        let inputs = crate::eval::random_inputs(&g, 0);
        let cpu = HardwareProfile::load("cpu").unwrap();
        let a = measure(&model, &inputs, &cpu, 1, 3).unwrap();
        assert_eq!(a.kernels.len(), model.program().kernels.len());
        assert_eq!(
            a.kernels.iter().map(|k| k.kind).collect::<Vec<_>>(),
            ["gemm", "elementwise", "gemm"]
        );
        assert_eq!(a.kernels[0].flops, 2 * 64 * 256 * 256);
        assert!(a.kernels[0].predicted_s > a.kernels[2].predicted_s);
        assert!(a.kernels.iter().all(|k| k.measured_s > 0.0 && k.predicted_s > 0.0));
        assert!(a.median_ratio > 0.0 && a.spearman.abs() <= 1.0 + 1e-12);
    }
}
