//! Helpers shared by the interpreter's tests.
//!
//! Every kernel the tests run goes through [`module`]. When the environment
//! variable `EQOPT_PTXAS` names a `ptxas` binary, [`module`] also assembles
//! the kernel with it for `sm_80` and `sm_90` and fails if ptxas rejects it,
//! so the tests can be checked against what real hardware accepts.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use eqopt_ptx_sim::{Device, Launch, LaunchStats, Module, SimError};

/// Module header used by the hand-written kernels.
pub const HEADER: &str = ".version 8.0\n.target sm_80\n.address_size 64\n";

/// Assembles `src` with `$EQOPT_PTXAS` (if set) for sm_80 and sm_90.
pub fn check_with_ptxas(src: &str) {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let Ok(ptxas) = std::env::var("EQOPT_PTXAS") else {
        return;
    };
    for arch in ["sm_80", "sm_90"] {
        let text = src
            .replace(".target sm_80", &format!(".target {arch}"))
            .replace(".target sm_90", &format!(".target {arch}"));
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("eqopt-ptx-sim-{}-{n}.ptx", std::process::id()));
        std::fs::write(&path, &text).unwrap();
        let out = std::process::Command::new(&ptxas)
            .arg(format!("-arch={arch}"))
            .arg(&path)
            .args(["-o", "/dev/null"])
            .output()
            .unwrap();
        std::fs::remove_file(&path).ok();
        assert!(
            out.status.success(),
            "ptxas -arch={arch} rejects the kernel:\n{}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Parses a kernel the test expects to be valid (checked with ptxas when available).
pub fn module(src: &str) -> Module {
    check_with_ptxas(src);
    Module::parse(src).unwrap_or_else(|e| panic!("{e}"))
}

/// The 1-based line of the first line of `src` containing `needle`.
pub fn line_of(src: &str, needle: &str) -> usize {
    src.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` not in the source"))
        + 1
}

pub fn upload(dev: &mut Device, bytes: &[u8]) -> u64 {
    let addr = dev.alloc(bytes.len());
    dev.write(addr, bytes).unwrap();
    addr
}

pub fn upload_u32(dev: &mut Device, v: &[u32]) -> u64 {
    upload(dev, &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
}

pub fn upload_f32(dev: &mut Device, v: &[f32]) -> u64 {
    upload_u32(dev, &v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>())
}

pub fn upload_u16(dev: &mut Device, v: &[u16]) -> u64 {
    upload(dev, &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
}

pub fn download_u32(dev: &Device, addr: u64, n: usize) -> Vec<u32> {
    dev.read(addr, 4 * n)
        .unwrap()
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

pub fn download_f32(dev: &Device, addr: u64, n: usize) -> Vec<f32> {
    download_u32(dev, addr, n).into_iter().map(f32::from_bits).collect()
}

/// Launches `entry` with a 1-D grid and block.
pub fn run1d(dev: &mut Device, m: &Module, entry: &str, grid: u32, block: u32, params: &[u64]) -> Result<LaunchStats, SimError> {
    dev.launch(m, entry, &Launch::new([grid, 1, 1], [block, 1, 1]), params)
}

/// A small deterministic generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}
