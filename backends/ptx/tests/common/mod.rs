//! Shared test helpers: small programs, `ptxas`, and running emitted PTX on
//! the interpreter against the CPU backend.
#![allow(dead_code)]

pub mod sim;

use eqopt_kir::{Buffer, BufferKind, ConstData, ElemType, Program};
use std::path::PathBuf;
use std::sync::Arc;

/// `ptxas` from the project's venv (`scripts/pyenv.sh --ptxas`) or `$EQOPT_PTXAS`;
/// `None` (with the reason printed) when it is not installed, unless
/// `EQOPT_REQUIRE_PTXAS=1`, which makes that a failure.
pub fn ptxas() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("EQOPT_PTXAS") {
        return Some(PathBuf::from(p));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let lib = root.join(".venv/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|d| {
        d.filter_map(|e| e.ok())
            .map(|e| e.path().join("site-packages/nvidia/cuda_nvcc/bin/ptxas"))
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

/// Assembles `ptx` for `arch` (`sm_80`) with `ptxas -v`; returns its report, or
/// panics with ptxas's error output.
pub fn assemble(ptxas: &std::path::Path, ptx: &str, arch: &str) -> String {
    let dir = tempdir();
    let src = dir.join("m.ptx");
    std::fs::write(&src, ptx).unwrap();
    let out = std::process::Command::new(ptxas)
        .args(["-v", &format!("-arch={arch}"), "-O3"])
        .arg(&src)
        .arg("-o")
        .arg(dir.join("m.cubin"))
        .output()
        .expect("ptxas runs");
    let report = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "ptxas -arch={arch} rejected the module:\n{report}\n--- module ---\n{ptx}"
    );
    report
}

fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "eqopt-ptx-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A deterministic pseudo-random generator (xorshift), values in [-1, 1).
pub struct Rng(pub u64);
impl Rng {
    pub fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next_f32()).collect()
    }
    pub fn below(&mut self, n: usize) -> usize {
        self.next_f32();
        (self.0 % n as u64) as usize
    }
}

/// A program builder for tests: buffers by hand, kernels pushed directly.
pub struct P(pub Program);
impl P {
    pub fn new(name: &str) -> P {
        P(Program {
            name: name.into(),
            buffers: Vec::new(),
            kernels: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        })
    }
    pub fn input(&mut self, name: &str, shape: &[usize]) -> usize {
        let b = self.buf(name, ElemType::F32, shape.iter().product(), Some(BufferKind::Input));
        self.0.inputs.push((b, shape.to_vec()));
        b
    }
    pub fn input_i64(&mut self, name: &str, shape: &[usize]) -> usize {
        let b = self.buf(name, ElemType::I64, shape.iter().product(), Some(BufferKind::Input));
        self.0.inputs.push((b, shape.to_vec()));
        b
    }
    pub fn output(&mut self, name: &str, shape: &[usize]) -> usize {
        let b = self.buf(name, ElemType::F32, shape.iter().product(), Some(BufferKind::Output));
        self.0.outputs.push((b, shape.to_vec()));
        b
    }
    pub fn temp(&mut self, name: &str, len: usize) -> usize {
        self.buf(name, ElemType::F32, len, None)
    }
    pub fn constant(&mut self, name: &str, data: ConstData) -> usize {
        let (elem, len) = (data.elem(), data.len());
        self.buf(name, elem, len, Some(BufferKind::Constant(data)))
    }
    pub fn const_f32(&mut self, name: &str, v: Vec<f32>) -> usize {
        self.constant(name, ConstData::F32(Arc::new(v)))
    }
    fn buf(&mut self, name: &str, elem: ElemType, len: usize, kind: Option<BufferKind>) -> usize {
        self.0.buffers.push(Buffer {
            name: name.into(),
            elem,
            len,
            kind,
        });
        self.0.buffers.len() - 1
    }
}

/// Arena offsets for a program's intermediates: each its own 256-aligned slot
/// (no reuse: the tests check kernels, not the planner).
pub fn offsets(p: &Program) -> (Vec<Option<usize>>, usize) {
    let mut at = 0usize;
    let offs = p
        .buffers
        .iter()
        .map(|b| {
            b.kind.is_none().then(|| {
                let o = at;
                at = (at + b.bytes()).next_multiple_of(256);
                o
            })
        })
        .collect();
    (offs, at)
}
