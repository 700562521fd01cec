//! `eqopt calibrate`: measure this machine's roofline and write the `cpu` profile.

use crate::calibrate::{CalibrateOptions, calibrate, calibrated_profile_path, profile_json};
use crate::dtype::DType;
use crate::error::{Error, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub(super) struct CalibrateArgs {
    /// Where to write the profile. Default: the calibrated cpu profile's place,
    /// `$EQOPT_CONFIG_DIR/targets/cpu.json` (else under `$XDG_CONFIG_HOME/eqopt` or
    /// `~/.config/eqopt`), which `--target cpu` then uses instead of the built-in one.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Thread counts to measure, comma-separated (default: 1 to all cores). The
    /// profile's top-level figures are those of the largest.
    #[arg(long, value_delimiter = ',', value_name = "N,..")]
    threads: Option<Vec<usize>>,
    /// A rough calibration in about a second (small GEMMs and copy, short rounds).
    #[arg(long)]
    quick: bool,
}

pub(super) fn run_calibrate(a: &CalibrateArgs, out: &mut dyn Write) -> Result<()> {
    let path = match &a.output {
        Some(p) => p.clone(),
        None => calibrated_profile_path().ok_or_else(|| Error::Usage {
            option: "--output".into(),
            expected: "a file, since no configuration directory is known".into(),
            found: "neither EQOPT_CONFIG_DIR, XDG_CONFIG_HOME nor HOME set".into(),
        })?,
    };
    let mut opts = CalibrateOptions::default();
    if let Some(t) = &a.threads {
        opts = opts.with_threads(t.clone());
    }
    if a.quick {
        opts = opts.quick();
    }
    let profile = calibrate(&opts)?;
    let cal = profile.calibration.as_ref().expect("calibrate records its measurements");
    let mut text = format!(
        "{} ({}), {}\n\n| threads | FMA peak GFLOP/s | GEMM f32 | GEMM f16 weights | GEMM bf16 operands | best f32 GEMM / FMA peak | copy GB/s | per-kernel overhead µs |\n|---|---|---|---|---|---|---|---|\n",
        cal.cpu, cal.isa, cal.date
    );
    for t in &cal.per_threads {
        let g = |d: DType| t.peak_flops.get(&d).copied().unwrap_or(f64::NAN) / 1e9;
        text += &format!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0}% | {:.1} | {:.2} |\n",
            t.threads,
            t.fma_peak_f32 / 1e9,
            g(DType::F32),
            g(DType::F16),
            g(DType::BF16),
            100.0 * g(DType::F32) * 1e9 / t.fma_peak_f32,
            t.memory_bandwidth / 1e9,
            t.launch_overhead * 1e6
        );
    }
    text += "\nGEMM f32 GFLOP/s by size (n×n·n×n):";
    for t in &cal.per_threads {
        text += &format!("\n  {} threads:", t.threads);
        for p in t.gemm.iter().filter(|p| p.dtype == DType::F32) {
            text += &format!(" {}: {:.1}", p.n, p.flops / 1e9);
        }
    }
    text += "\n";
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    crate::graph::json::write_atomic(&path, profile_json(&profile).as_bytes())?;
    let used = calibrated_profile_path().is_some_and(|p| p == path);
    text += &format!(
        "wrote {}{}\n",
        path.display(),
        if used {
            " (`--target cpu` now uses it)"
        } else {
            " (use it with `--target FILE`)"
        }
    );
    out.write_all(text.as_bytes()).map_err(|e| Error::io("<stdout>", e))
}
