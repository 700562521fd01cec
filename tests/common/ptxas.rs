//! NVIDIA's `ptxas`, installed by `scripts/pyenv.sh --ptxas` into `./.venv`.

use std::path::{Path, PathBuf};

/// `ptxas` from `$EQOPT_PTXAS` or the project's venv; `None` (with `SKIPPED`
/// printed) when it is not installed, unless `EQOPT_REQUIRE_PTXAS=1` (set by
/// `.ci/run`), which makes that a failure.
pub fn ptxas() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("EQOPT_PTXAS") {
        return Some(PathBuf::from(p));
    }
    let lib = super::root().join(".venv/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|d| {
        let mut dirs: Vec<PathBuf> = d.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        dirs.sort();
        dirs.into_iter()
            .map(|p| p.join("site-packages/nvidia/cuda_nvcc/bin/ptxas"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("EQOPT_REQUIRE_PTXAS").as_deref() != Ok("1"),
            "EQOPT_REQUIRE_PTXAS=1 but no ptxas under {}: run scripts/pyenv.sh --ptxas",
            lib.display()
        );
        eprintln!("SKIPPED: no ptxas (install it with scripts/pyenv.sh --ptxas)");
    }
    found
}

/// What `ptxas -v` reported for one module.
#[derive(Debug)]
pub struct Assembled {
    /// Entries compiled.
    pub entries: usize,
    /// The most registers any entry uses.
    pub max_registers: usize,
    /// Bytes of spill stores over all entries.
    pub spill_bytes: usize,
}

/// Assembles `ptx` for `arch` (`sm_80`, `sm_90`) with `ptxas -v -O3`; panics
/// with ptxas's output (and the file kept) if it is rejected.
pub fn assemble(ptxas: &Path, ptx: &str, arch: &str, label: &str) -> Assembled {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("model.ptx");
    std::fs::write(&src, ptx).unwrap();
    let out = std::process::Command::new(ptxas)
        .args(["-v", "-O3", &format!("-arch={arch}")])
        .arg(&src)
        .arg("-o")
        .arg(dir.path().join("model.cubin"))
        .output()
        .expect("ptxas runs");
    let report = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let kept = std::env::temp_dir().join(format!("eqopt-rejected-{label}-{arch}.ptx").replace(['/', ' '], "_"));
        std::fs::write(&kept, ptx).unwrap();
        panic!(
            "{label}: ptxas -arch={arch} rejected the module (kept at {}):\n{report}",
            kept.display()
        );
    }
    let mut a = Assembled {
        entries: 0,
        max_registers: 0,
        spill_bytes: 0,
    };
    for line in report.lines() {
        if line.contains("Compiling entry function") {
            a.entries += 1;
        }
        if let Some(i) = line.find("Used ") {
            let n: String = line[i + 5..].chars().take_while(char::is_ascii_digit).collect();
            a.max_registers = a.max_registers.max(n.parse().unwrap_or(0));
        }
        if let Some(i) = line.find(" bytes spill stores") {
            let head = &line[..i];
            let n: String = head
                .chars()
                .rev()
                .take_while(char::is_ascii_digit)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            a.spill_bytes += n.parse::<usize>().unwrap_or(0);
        }
    }
    a
}
