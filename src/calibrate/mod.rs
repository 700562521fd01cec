//! Calibration of the `cpu` hardware profile on the machine at hand, and the
//! check of the roofline model against measured kernel times
//! ([`agreement`]).
//!
//! [`calibrate`] measures, for each thread count asked: the vector unit's FMA
//! ceiling, the backend's GEMM throughput per weight dtype (best over a few
//! square sizes), the copy bandwidth, and the executor's fixed cost per kernel.
//! The result is a [`HardwareProfile`] named `cpu` whose top-level figures are
//! those of the largest thread count; [`HardwareProfile::for_threads`] picks
//! another. `eqopt calibrate` writes it to [`calibrated_profile_path`], and
//! [`resolve_target`] then uses it wherever the target `cpu` is named.

pub mod agreement;

use crate::cost::{Calibration, GemmPoint, HardwareProfile, ThreadCalibration};
use crate::dtype::DType;
use crate::error::{Error, Result};
use eqopt_cpu::probe::{self, WeightType};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable naming eqopt's configuration directory (default:
/// `$XDG_CONFIG_HOME/eqopt`, else `$HOME/.config/eqopt`).
pub const CONFIG_DIR_ENV: &str = "EQOPT_CONFIG_DIR";

/// What to measure.
#[derive(Clone, Debug, PartialEq)]
pub struct CalibrateOptions {
    threads: Vec<usize>,
    gemm_sizes: Vec<usize>,
    copy_bytes: usize,
    rounds: usize,
    min_round: Duration,
}

impl Default for CalibrateOptions {
    /// Every thread count from 1 to the machine's cores; GEMMs of 256 to 1536;
    /// a 256 MiB copy; 5 rounds of at least 50 ms each (about 20 s on 2 cores).
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        CalibrateOptions {
            threads: (1..=cores).collect(),
            gemm_sizes: vec![256, 512, 1024, 1536],
            copy_bytes: 256 << 20,
            rounds: 5,
            min_round: Duration::from_millis(50),
        }
    }
}

impl CalibrateOptions {
    /// Measures these thread counts (sorted, deduplicated; zero is refused by
    /// [`calibrate`]).
    pub fn with_threads(mut self, mut threads: Vec<usize>) -> Self {
        threads.sort_unstable();
        threads.dedup();
        self.threads = threads;
        self
    }

    /// A fast, rougher calibration (small GEMMs and copy, short rounds), for
    /// tests and a first look: about a second.
    pub fn quick(mut self) -> Self {
        self.gemm_sizes = vec![128, 256];
        self.copy_bytes = 16 << 20;
        self.rounds = 2;
        self.min_round = Duration::from_millis(10);
        self
    }
}

/// Measures this machine and returns the calibrated `cpu` profile.
///
/// # Errors
/// [`Error::Usage`] for an empty thread list or a zero thread count; a kernel
/// error if a probe fails (a backend bug).
pub fn calibrate(opts: &CalibrateOptions) -> Result<HardwareProfile> {
    let bad_threads = |found: String| Error::Usage {
        option: "--threads".into(),
        expected: "thread counts of at least 1".into(),
        found,
    };
    if opts.threads.is_empty() || opts.threads.contains(&0) {
        return Err(bad_threads(format!("{:?}", opts.threads)));
    }
    let mut per_threads = Vec::new();
    for &threads in &opts.threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| bad_threads(e.to_string()))?;
        per_threads.push(pool.install(|| measure(threads, opts))?);
    }
    let top = per_threads.last().expect("non-empty: checked above").clone();
    let isa = match eqopt_cpu::simd::Isa::detect() {
        eqopt_cpu::simd::Isa::Avx512 => "avx512",
        eqopt_cpu::simd::Isa::Avx2 => "avx2",
        eqopt_cpu::simd::Isa::Scalar => "scalar",
    };
    let date = utc_now();
    let cpu = cpu_name();
    Ok(HardwareProfile {
        name: "cpu".into(),
        description: format!(
            "Calibrated by `eqopt calibrate` on {date} ({cpu}, {isa}, {} threads): GEMM peak and copy bandwidth as measured.",
            top.threads
        ),
        peak_flops: top.peak_flops.clone(),
        memory_bandwidth: top.memory_bandwidth,
        launch_overhead: top.launch_overhead,
        conv_layout: None,
        calibration: Some(Calibration {
            date,
            cpu,
            isa: isa.into(),
            threads: top.threads,
            per_threads,
        }),
    })
}

fn measure(threads: usize, opts: &CalibrateOptions) -> Result<ThreadCalibration> {
    let (rounds, min_round) = (opts.rounds, opts.min_round);
    let mut gemm = Vec::new();
    let mut peak_flops = BTreeMap::new();
    // `f32` and `f16`: the f32 GEMM with weights of that type (widened while
    // packing). `bf16`: products on bf16 operands (the activation rounded, the
    // weight stored in bf16; `vdpbf16ps` where the CPU has AVX-512 BF16), the
    // rate the cost model charges a bf16-operand GEMM at (`cost::Bf16Products`).
    for (dtype, weights) in [
        (DType::F32, Some(WeightType::F32)),
        (DType::F16, Some(WeightType::F16)),
        (DType::BF16, None),
    ] {
        for &n in &opts.gemm_sizes {
            let flops = match weights {
                Some(w) => probe::gemm_rate(n, w, rounds, min_round)?,
                None => probe::gemm_bf16_rate(n, rounds, min_round)?,
            };
            gemm.push(GemmPoint { dtype, n, flops });
            let best = peak_flops.entry(dtype).or_insert(0.0f64);
            *best = best.max(flops);
        }
    }
    Ok(ThreadCalibration {
        threads,
        fma_peak_f32: probe::fma_peak(rounds, min_round),
        peak_flops,
        memory_bandwidth: probe::copy_bandwidth(opts.copy_bytes, rounds, min_round),
        launch_overhead: probe::kernel_overhead(200, rounds, min_round)?,
        gemm,
    })
}

/// The profile as JSON, in the format [`HardwareProfile::load`] reads.
pub fn profile_json(p: &HardwareProfile) -> String {
    let mut v = serde_json::json!({
        "name": p.name,
        "description": p.description,
        "peak_flops": p.peak_flops,
        "memory_bandwidth": p.memory_bandwidth,
        "launch_overhead": p.launch_overhead,
    });
    if let Some(layout) = p.conv_layout {
        v["conv_layout"] = serde_json::json!(match layout {
            crate::graph::op::Layout::Nchw => "NCHW",
            crate::graph::op::Layout::Nhwc => "NHWC",
        });
    }
    if let Some(c) = &p.calibration {
        v["calibration"] = serde_json::to_value(c).expect("plain data");
    }
    serde_json::to_string_pretty(&v).expect("plain data") + "\n"
}

/// eqopt's configuration directory (see [`CONFIG_DIR_ENV`]), if one can be named.
pub fn config_dir() -> Option<PathBuf> {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    nonempty(CONFIG_DIR_ENV)
        .or_else(|| nonempty("XDG_CONFIG_HOME").map(|d| d.join("eqopt")))
        .or_else(|| nonempty("HOME").map(|d| d.join(".config").join("eqopt")))
}

/// Where `eqopt calibrate` writes the calibrated `cpu` profile by default.
pub fn calibrated_profile_path() -> Option<PathBuf> {
    config_dir().map(|d| d.join("targets").join("cpu.json"))
}

/// Loads a target as the CLI names it: the calibrated profile for `cpu` when
/// [`calibrated_profile_path`] holds one, else [`HardwareProfile::load`].
/// Returns the file a calibrated profile came from.
///
/// # Errors
/// As [`HardwareProfile::load`], also for a calibrated file that is invalid or
/// not named `cpu` (so a broken calibration is reported, not silently ignored).
pub fn resolve_target(name_or_path: &str) -> Result<(HardwareProfile, Option<PathBuf>)> {
    if name_or_path == "cpu" {
        if let Some(path) = calibrated_profile_path().filter(|p| p.is_file()) {
            let p = load_calibrated(&path)?;
            return Ok((p, Some(path)));
        }
    }
    Ok((HardwareProfile::load(name_or_path)?, None))
}

fn load_calibrated(path: &Path) -> Result<HardwareProfile> {
    let shown = path.to_string_lossy().into_owned();
    let p = HardwareProfile::load(&shown)?;
    if p.name != "cpu" {
        return Err(Error::Target {
            target: shown,
            problem: format!("a calibrated cpu profile must be named \"cpu\", found \"{}\"", p.name),
        });
    }
    Ok(p)
}

/// The processor's model name from `/proc/cpuinfo`, or the architecture.
pub(crate) fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The current time as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_416), (2025, 11, 24));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn a_quick_calibration_round_trips_through_the_profile_loader() {
        let p = calibrate(&CalibrateOptions::default().with_threads(vec![1]).quick()).unwrap();
        let c = p.calibration.as_ref().unwrap();
        assert_eq!((c.threads, c.per_threads.len()), (1, 1));
        let t = &c.per_threads[0];
        assert_eq!(t.gemm.len(), 3 * 2);
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            assert!(t.peak_flops[&dtype] > 0.0);
        }
        assert!(p.memory_bandwidth > 0.0 && t.fma_peak_f32 > 0.0);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cpu.json");
        std::fs::write(&path, profile_json(&p)).unwrap();
        let back = load_calibrated(&path).unwrap();
        // serde_json may round the last bit of a float on parsing.
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(b.abs());
        assert!(close(back.memory_bandwidth, p.memory_bandwidth));
        assert!(close(back.peak(DType::F16), p.peak(DType::F16)));
        assert_eq!(back.calibration.as_ref().unwrap().per_threads[0].gemm.len(), t.gemm.len());
        let one = back.for_threads(1);
        assert!(close(one.peak(DType::F32), t.peak_flops[&DType::F32]));
        assert_eq!(back.for_threads(7), back);
    }

    #[test]
    fn zero_threads_are_refused() {
        let err = calibrate(&CalibrateOptions::default().with_threads(vec![0, 1]).quick()).unwrap_err();
        assert!(err.to_string().contains("--threads"), "{err}");
    }
}
