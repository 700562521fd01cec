//! The project's packed single-precision GEMM for x86-64 (BLIS-style).
//!
//! `C = A · B` is computed in three levels of cache blocking around a
//! register-blocked micro-kernel:
//!
//! ```text
//! for jc in 0..n step NC            // B block: KC × NC (packed, L3)
//!   for pc in 0..k step KC          //   pack B[pc.., jc..] into NR-column micro-panels
//!     for ic in 0..m step MC        // A block: MC × KC (packed, L2)
//!       pack A[ic.., pc..] into MR-row micro-panels
//!       for jr in 0..NC step NR     // one B micro-panel (KC × NR) stays in L1
//!         for ir in 0..MC step MR   //   while the A micro-panels stream from L2
//!           micro-kernel: C[ir.., jr..] (+)= A-panel · B-panel   (MR × NR in registers)
//! ```
//!
//! The first `KC` block stores into `C`, later ones add, so `C` is only written
//! when `k ≤ KC` (`C` is never read before it is written: `C = A·B`, not `+=`).
//!
//! Block sizes (see [`KC`], [`MC`], [`NC`]) are chosen for a core with a 48 KiB
//! L1D and 1 MiB L2 (AMD Zen 5; also fine for Intel's 48 KiB / 1–2 MiB cores).
//! The 2-core EPYC VM they were measured on reports a 32 KiB L1D (Zen 4), where
//! KC from 128 to 512, MC from 168 to 672 and NC from 256 to 4096 all measured
//! the same within noise (±3%) on 1000³ and 1024³. The micro-kernels are [`super::kernel_avx512`] (14 × 32) and
//! [`super::kernel_avx2`] (6 × 16); which one runs is chosen from
//! [`crate::simd::Isa`], so `EQOPT_ISA` applies. Packing reads arbitrary
//! strides and converts `f16`/`bf16` `B` elements on the fly ([`super::pack`]).

use std::cell::Cell;

use super::pack::{BSrc, pack_a, pack_b};
use crate::simd::Isa;

/// A micro-kernel: `(kc, a, a_rs, b_panel, c, ldc, cols, accumulate)` computes
/// the tile `C[..rows, ..cols]` (`rows` fixed by the function, `cols ≤ NR`) and
/// stores it, or adds it to `C` when `accumulate`. `A` is a packed micro-panel
/// (`a_rs` unused) or, for the `direct` kernels, `rows` rows of a row-major
/// matrix `a_rs` apart.
///
/// Safety contract: the CPU supports the kernel's instruction set, `A` holds
/// `kc` steps of `rows` readable values, the `B` panel `kc·NR` floats, and the
/// `C` tile is valid for reads and writes.
pub(crate) type KernelFn = unsafe fn(usize, *const f32, usize, *const f32, *mut f32, usize, usize, bool);

/// A family of micro-kernels sharing one packed layout.
pub(crate) struct MicroKernel {
    /// Rows per `A` micro-panel (the tile height).
    pub mr: usize,
    /// Columns per `B` micro-panel (the tile width).
    pub nr: usize,
    /// `by_rows[r - 1]` computes a tile of `r ≤ mr` rows from a packed `A` panel.
    pub by_rows: &'static [KernelFn],
    /// The same, reading a row-major `A` in place (no packing).
    pub by_rows_direct: &'static [KernelFn],
    /// Widest edge tile the `half` kernels compute (half of `nr`).
    pub half_cols: usize,
    /// As `by_rows`, for tiles of at most `half_cols` columns: one vector per
    /// row instead of two (the `B` panel is still `nr` wide).
    pub half: &'static [KernelFn],
    /// As `by_rows_direct`, for tiles of at most `half_cols` columns.
    pub half_direct: &'static [KernelFn],
}

/// Depth of a packed block (the `k` extent per pass). A `B` micro-panel is
/// `KC · NR` floats: 32 KiB for the 14 × 32 AVX-512 tile, so it stays in the
/// 48 KiB L1D with room for the `A` stream. `k` is split into equal parts of at
/// most `KC` (so `k = 300` runs as 2 × 150, not 256 + 44).
pub(crate) const KC: usize = 256;
/// Rows of a packed `A` block: `MC · KC` floats = 336 KiB, a third of a 1 MiB
/// L2, leaving room for the `B` micro-panels and `C` streaming through it.
/// A multiple of both tile heights (14 and 6).
pub(crate) const MC: usize = 336;
/// Columns of a packed `B` block: `KC · NC` floats = 4 MiB (lives in L3).
pub(crate) const NC: usize = 4096;
/// A row-major `A` (unit column stride) is read in place instead of packed when
/// `n` is at most this: each `A` element then takes part in too few FMAs (`n / 16`
/// cycles' worth per element with either kernel) to repay packing it (about
/// one cycle per element; measured 3136×576×64: +5% AVX-512, +25% AVX2).
pub(crate) const DIRECT_A_MAX_N: usize = 64;
/// The same up to this `n` when `A`'s row stride is not a multiple of 512
/// floats (2 KiB): the `MR` rows a micro-kernel reads then fall into different
/// L1 sets. (Rows 4 KiB apart all share one set and thrash it: 1024³ runs ~20%
/// slower unpacked.) Measured 3136×64×256: +5%, 3136×576×128: +8%.
pub(crate) const DIRECT_A_MAX_N_SPREAD: usize = 256;

/// The micro-kernel family for `isa`, or `None` when it has none (scalar, or a
/// non-x86 target): the caller then uses its portable fallback.
pub(crate) fn kernel_for(isa: Isa) -> Option<&'static MicroKernel> {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if isa.is_supported() => Some(&super::kernel_avx512::KERNEL),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 | Isa::Avx2 if Isa::Avx2.is_supported() => Some(&super::kernel_avx2::KERNEL),
        _ => None,
    }
}

/// A `B` operand of [`sgemm_packed`]: anything that can write a block of
/// itself in the micro-panel layout of [`super::pack`] (a strided matrix, or a
/// convolution's input read as its implicit im2col matrix).
pub(crate) trait PackB {
    /// Writes the `kc × nc` block whose first element is `(pc, jc)` as
    /// `⌈nc / nr⌉` micro-panels of `nr` columns into `dst` (panel `q`, step `p`
    /// at `dst[(q·kc + p)·nr..][..nr]`), columns past `nc` zero.
    ///
    /// # Safety
    /// The block lies inside the operand's `k × n` extents and
    /// `dst.len() ≥ ⌈nc / nr⌉ · nr · kc`.
    unsafe fn pack(&self, pc: usize, jc: usize, kc: usize, nc: usize, nr: usize, dst: &mut [f32]);
}

impl PackB for BSrc<'_> {
    unsafe fn pack(&self, pc: usize, jc: usize, kc: usize, nc: usize, nr: usize, dst: &mut [f32]) {
        // SAFETY: (pc, jc) and the block are inside the operand (contract).
        unsafe { pack_b(&self.offset(pc, jc), kc, nc, nr, dst) }
    }
}

thread_local! {
    static PACK: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` with two 64-byte-aligned per-thread buffers of `a_len` and `b_len` floats.
fn with_pack<R>(a_len: usize, b_len: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    with_aligned_pair(&PACK, a_len, b_len, f)
}

/// Runs `f` with two buffers of `a_len` and `b_len` elements carved from the
/// per-thread vector in `key`, the first 64-byte aligned and the second
/// starting on a cache line (contents unspecified). Re-entrant: a nested call
/// takes a fresh vector, and the larger one is kept afterwards.
pub(crate) fn with_aligned_pair<T: Copy + Default + 'static, R>(
    key: &'static std::thread::LocalKey<Cell<Vec<T>>>,
    a_len: usize,
    b_len: usize,
    f: impl FnOnce(&mut [T], &mut [T]) -> R,
) -> R {
    // Elements per 64-byte cache line.
    let line = (64 / std::mem::size_of::<T>()).max(1);
    let a_len = a_len.div_ceil(line) * line;
    let need = a_len + b_len + line;
    let mut v = key.with(|s| s.take());
    if v.len() < need {
        v = vec![T::default(); need];
    }
    let skip = v.as_ptr().align_offset(64).min(line);
    let (a, b) = v[skip..skip + a_len + b_len].split_at_mut(a_len);
    let r = f(a, b);
    key.with(|s| {
        let other = s.take();
        s.set(if other.len() > v.len() { other } else { v });
    });
    r
}

/// `C = A · B` with the packed algorithm and the micro-kernels of `kern`.
/// `A` element `(i, p)` is at `a + i·rsa + p·csa`; `B` is `k × n`, packed by
/// its [`PackB`]; `C` is `m × n` with row stride `ldc`.
///
/// # Safety
/// `m, k, n > 0`; `kern` runs on this CPU; for every `i < m, p < k, j < n`:
/// `a + i·rsa + p·csa` and `B`'s element `(p, j)` are readable (for a
/// [`PackB`] other than [`BSrc`]: its contract holds for every block inside `k × n`), `c + i·ldc + j`
/// is valid for writes (and reads) and not aliased by anything else during the
/// call, and all those offsets fit in `isize`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm_packed(
    kern: &MicroKernel,
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    b: &impl PackB,
    c: *mut f32,
    ldc: usize,
) {
    let (mr, nr) = (kern.mr, kern.nr);
    let kc_max = k.div_ceil(k.div_ceil(KC));
    let mc_max = (MC / mr * mr).min(m.div_ceil(mr) * mr);
    let nc_max = (NC / nr * nr).min(n.div_ceil(nr) * nr);
    let direct_a = csa == 1 && (n <= DIRECT_A_MAX_N || (n <= DIRECT_A_MAX_N_SPREAD && !rsa.is_multiple_of(512)));
    let a_len = if direct_a { 0 } else { mc_max * kc_max };
    with_pack(a_len, kc_max * nc_max, |abuf, bbuf| {
        for jc in (0..n).step_by(nc_max) {
            let nc = nc_max.min(n - jc);
            for pc in (0..k).step_by(kc_max) {
                let kc = kc_max.min(k - pc);
                // SAFETY: the block (pc.., jc..) of B is inside its extents
                // (contract); `bbuf` holds kc_max · nc_max ≥ ⌈nc/nr⌉·nr·kc floats.
                unsafe { b.pack(pc, jc, kc, nc, nr, bbuf) };
                for ic in (0..m).step_by(mc_max) {
                    let mc = mc_max.min(m - ic);
                    // SAFETY: A's block (ic.., pc..) is inside its extents (contract).
                    let a_blk = unsafe { a.add(ic * rsa + pc * csa) };
                    if !direct_a {
                        // SAFETY: as above; `abuf` holds mc_max · kc_max floats.
                        unsafe { pack_a(a_blk, rsa, csa, mc, kc, mr, abuf) };
                    }
                    for jr in (0..nc).step_by(nr) {
                        let cols = nr.min(nc - jr);
                        let bp = bbuf[jr * kc..].as_ptr();
                        for ir in (0..mc).step_by(mr) {
                            let rows = mr.min(mc - ir);
                            // SAFETY: the packed panels hold kc·mr and kc·nr floats
                            // (a direct A's rows ir.. of the block are readable for
                            // kc steps); the tile (ic+ir.., jc+jr..) of rows × cols is
                            // inside C (contract); `kern` runs on this CPU (contract).
                            unsafe {
                                let cp = c.add((ic + ir) * ldc + jc + jr);
                                let half = cols <= kern.half_cols;
                                if direct_a {
                                    let ap = a_blk.add(ir * rsa);
                                    let f = if half { kern.half_direct } else { kern.by_rows_direct };
                                    (f[rows - 1])(kc, ap, rsa, bp, cp, ldc, cols, pc > 0);
                                } else {
                                    let ap = abuf[ir * kc..].as_ptr();
                                    let f = if half { kern.half } else { kern.by_rows };
                                    (f[rows - 1])(kc, ap, 0, bp, cp, ldc, cols, pc > 0);
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}
