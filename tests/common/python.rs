//! The project's Python tools (the `onnx` checker, ONNX Runtime), installed by
//! `scripts/pyenv.sh` into `./.venv` on first use.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The venv's python, or `None` (with the reason printed) when the machine has no
/// python3 at all. Any other failure to set up the environment panics: a test that
/// needs ONNX Runtime must not pass silently because the install broke.
pub fn python() -> Option<PathBuf> {
    static PY: OnceLock<Option<PathBuf>> = OnceLock::new();
    PY.get_or_init(|| {
        let out = std::process::Command::new("bash")
            .arg(super::root().join("scripts/pyenv.sh"))
            .current_dir(super::root())
            .output()
            .expect("bash runs");
        match out.status.code() {
            Some(0) => Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())),
            Some(3) => {
                eprintln!("SKIPPED: no python3 on this machine; ONNX Runtime checks need it");
                None
            }
            _ => panic!(
                "scripts/pyenv.sh failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    })
    .clone()
}

/// One case's result from `scripts/ort_check.py`.
#[derive(Debug)]
pub struct OrtResult {
    /// The case directory.
    pub case: String,
    /// Checker and ONNX Runtime accepted the model and the outputs matched.
    pub ok: bool,
    /// Worst normwise relative error over the outputs.
    pub worst: f64,
    /// What failed, if anything.
    pub error: Option<String>,
}

/// Runs `scripts/ort_check.py` on case directories (each with model.onnx,
/// inputs.npz, expected.npz); `None` when Python is absent.
pub fn ort_check(cases: &[PathBuf], rtol: f64) -> Option<Vec<OrtResult>> {
    ort_check_with(cases, rtol, &[])
}

/// [`ort_check`] with extra arguments for `scripts/ort_check.py`
/// (`--no-graph-optimizations`).
#[allow(dead_code)]
pub fn ort_check_with(cases: &[PathBuf], rtol: f64, extra: &[&str]) -> Option<Vec<OrtResult>> {
    let py = python()?;
    let out = std::process::Command::new(py)
        .arg(super::root().join("scripts/ort_check.py"))
        .arg("--rtol")
        .arg(rtol.to_string())
        .args(extra)
        .args(cases)
        .output()
        .expect("python runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let results: Vec<OrtResult> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("ort_check.py printed {l:?}: {e}"));
            let worst = v["outputs"]
                .as_object()
                .map_or(0.0, |o| o.values().filter_map(|x| x.as_f64()).fold(0.0, f64::max));
            OrtResult {
                case: v["case"].as_str().unwrap_or_default().to_string(),
                ok: v["ok"].as_bool().unwrap_or(false),
                worst,
                error: v["error"].as_str().map(str::to_string),
            }
        })
        .collect();
    assert_eq!(
        results.len(),
        cases.len(),
        "ort_check.py reported {} of {} cases; stderr:\n{}",
        results.len(),
        cases.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(results)
}
