//! The AVX-512 BF16 GEMM: `C = bf16(A) · B` with `vdpbf16ps`
//! (`_mm512_dpbf16_ps`), BLIS-style like the `f32` one ([`super::packed`]).
//!
//! # Packed layouts (units of `u32` = one pair of `bf16` along `k`)
//!
//! `vdpbf16ps acc, a, b` adds, to each `f32` lane `j` of `acc`,
//! `a.bf16[2j]·b.bf16[2j] + a.bf16[2j+1]·b.bf16[2j+1]`. So both operands are
//! packed as *k-pairs*: the low half of a `u32` holds step `2p`, the high half
//! step `2p + 1`.
//!
//! * `A` (`mc × kc` block, `f32`, rounded to `bf16` ties-to-even while packing
//!   with `vcvtne2ps2bf16`) becomes `⌈mc / MR⌉` micro-panels; panel `q` holds,
//!   for each pair `p < ⌈kc / 2⌉`, the `MR` pairs of rows `q·MR..` (rows past
//!   `mc` zero). The micro-kernel broadcasts one pair (`vpbroadcastd`) per row.
//! * `B` (`kc × nc` block, `bf16`) becomes `⌈nc / NR⌉` micro-panels; panel `q`
//!   holds, for each pair `p`, the `NR` pairs `(B[2p, j], B[2p+1, j])` of
//!   columns `q·NR..` (columns past `nc` zero): one `zmm` is 16 columns × 2 steps.
//!
//! An odd `kc` pads its last pair with a zero step (in both operands), which
//! adds `0·0`.
//!
//! # Arithmetic
//!
//! A product of two `bf16` is exact in `f32`; `vdpbf16ps` adds the two products
//! of a pair to the accumulator with round-to-nearest-even. It ignores MXCSR:
//! **denormal `bf16` inputs are treated as zero and denormal results flushed to
//! zero** (and the A conversion, `vcvtne2ps2bf16`, also flushes denormal `f32`
//! inputs to zero). For values of ML magnitudes this changes nothing; an `A` or
//! `B` element below `2^-126` in magnitude contributes 0 here, while the
//! widening fallback ([`super::bf16`]) would keep it.
//!
//! # Blocking
//!
//! `MR × NR` = 14 × 32: 28 `zmm` accumulators, two `B` vectors and one
//! broadcast. `KC` = 512 steps (a `B` micro-panel is then 256 pairs × 32 × 4 B
//! = 32 KiB, the same L1 footprint as the `f32` kernel's 256 steps), `MC` and
//! `NC` as for `f32`.

use std::arch::x86_64::*;
use std::cell::Cell;

use half::bf16;

/// Rows of the tile.
const MR: usize = 14;
/// Columns of the tile (two vectors of 16 lanes).
const NR: usize = 32;
/// Most `k` steps per packed block (even, so blocks start on a pair boundary).
const KC: usize = 512;
/// Rows of a packed `A` block (a multiple of `MR`).
const MC: usize = 336;
/// Columns of a packed `B` block (a multiple of `NR`).
const NC: usize = 4096;

/// Whether this CPU runs the kernels of this module: AVX-512 F/BW/DQ/VL (the
/// [`crate::simd::Isa::Avx512`] set) plus AVX512_BF16. `is_x86_feature_detected!`
/// caches its answer, so this is a few loads.
pub(crate) fn available() -> bool {
    crate::simd::Isa::Avx512.is_supported() && is_x86_feature_detected!("avx512bf16")
}

thread_local! {
    static PACK: Cell<Vec<u32>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` with two 64-byte-aligned per-thread buffers of `a_len` and `b_len` pairs.
fn with_pack<R>(a_len: usize, b_len: usize, f: impl FnOnce(&mut [u32], &mut [u32]) -> R) -> R {
    super::packed::with_aligned_pair(&PACK, a_len, b_len, f)
}

/// `C = bf16(A) · B`: `A` element `(i, p)` at `a + i·rsa + p·csa` (`f32`),
/// `B` element `(p, j)` at `b + p·rsb + j·csb` (`bf16`), `C` `m × n` with row
/// stride `ldc`, overwritten (never read before written).
///
/// # Safety
/// [`available`] returned true; `m, k, n > 0`; every `A` element `(i < m, p < k)`
/// and `B` element `(p < k, j < n)` is readable, `c + i·ldc + j` is valid for
/// reads and writes and not aliased during the call, and all offsets fit in `isize`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_bf16_packed(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    b: *const bf16,
    rsb: usize,
    csb: usize,
    c: *mut f32,
    ldc: usize,
) {
    let parts = k.div_ceil(KC);
    let kc_max = k.div_ceil(parts).next_multiple_of(2);
    let kp_max = kc_max / 2;
    let mc_max = MC.min(m.div_ceil(MR) * MR);
    let nc_max = NC.min(n.div_ceil(NR) * NR);
    with_pack(mc_max * kp_max, kp_max * nc_max, |abuf, bbuf| {
        for jc in (0..n).step_by(nc_max) {
            let nc = nc_max.min(n - jc);
            for pc in (0..k).step_by(kc_max) {
                let kc = kc_max.min(k - pc);
                let kp = kc.div_ceil(2);
                // SAFETY: the block (pc.., jc..) is inside B (contract); `bbuf`
                // holds kp_max · nc_max ≥ ⌈nc/NR⌉·NR·kp pairs; features (contract).
                unsafe { pack_b(b.add(pc * rsb + jc * csb), rsb, csb, kc, nc, bbuf) };
                for ic in (0..m).step_by(mc_max) {
                    let mc = mc_max.min(m - ic);
                    // SAFETY: A's block (ic.., pc..) is inside A (contract); `abuf`
                    // holds mc_max · kp_max pairs.
                    unsafe { pack_a(a.add(ic * rsa + pc * csa), rsa, csa, mc, kc, abuf) };
                    for jr in (0..nc).step_by(NR) {
                        let cols = NR.min(nc - jr);
                        let bp = bbuf[jr * kp..].as_ptr();
                        for ir in (0..mc).step_by(MR) {
                            let rows = MR.min(mc - ir);
                            let ap = abuf[ir * kp..].as_ptr();
                            // SAFETY: the panels hold kp·MR and kp·NR pairs; the
                            // tile (ic+ir.., jc+jr..) of rows × cols is inside C
                            // (contract); features (contract).
                            unsafe {
                                let cp = c.add((ic + ir) * ldc + jc + jr);
                                (BY_ROWS[rows - 1])(kp, ap, bp, cp, ldc, cols, pc > 0);
                            }
                        }
                    }
                }
            }
        }
    })
}

/// `x` rounded to the nearest `bf16` (ties to even), as its bits; NaN stays a
/// (quiet) NaN. Equal to `vcvtneps2bf16` except on denormals, which that
/// instruction flushes to zero (and `vdpbf16ps` reads as zero anyway).
#[inline(always)]
pub(crate) fn bf16_bits(x: f32) -> u16 {
    let u = x.to_bits();
    if x.is_nan() {
        return ((u >> 16) | 0x40) as u16;
    }
    ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) as u16
}

/// Packs the `mc × kc` block of `A` into `MR`-row pair panels (module docs).
///
/// # Safety
/// [`available`]; `a + i·rs + p·cs` readable for `i < mc`, `p < kc`;
/// `dst.len() ≥ ⌈mc / MR⌉ · MR · ⌈kc / 2⌉`.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack_a(a: *const f32, rs: usize, cs: usize, mc: usize, kc: usize, dst: &mut [u32]) {
    let kp = kc.div_ceil(2);
    for (q, panel) in dst[..mc.div_ceil(MR) * MR * kp].chunks_exact_mut(MR * kp).enumerate() {
        let (i0, rows) = (q * MR, MR.min(mc - q * MR));
        for i in 0..MR {
            if i >= rows {
                for p in 0..kp {
                    panel[p * MR + i] = 0;
                }
                continue;
            }
            // SAFETY: row i0 + i < mc (contract).
            let row = unsafe { a.add((i0 + i) * rs) };
            if cs == 1 {
                // 32 steps (16 pairs) per conversion; masked loads zero the
                // steps past kc, which pads an odd kc.
                let mut tmp = [0u32; 16];
                for p0 in (0..kc).step_by(32) {
                    let len = 32.min(kc - p0);
                    let m_lo = mask16(len);
                    let m_hi = mask16(len.saturating_sub(16));
                    // SAFETY: the masked loads read steps p0..p0 + len < kc only
                    // (masked-off lanes never fault; `wrapping_add` keeps the
                    // unused address defined); `tmp` holds 16 u32.
                    unsafe {
                        let lo = _mm512_maskz_loadu_ps(m_lo, row.add(p0));
                        let hi = _mm512_maskz_loadu_ps(m_hi, row.wrapping_add(p0 + 16));
                        let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                        _mm512_storeu_si512(tmp.as_mut_ptr() as *mut __m512i, v);
                    }
                    for (t, &x) in tmp.iter().enumerate().take(len.div_ceil(2)) {
                        panel[(p0 / 2 + t) * MR + i] = x;
                    }
                }
            } else {
                for p in 0..kp {
                    // SAFETY: steps 2p and 2p + 1 < kc are readable (contract).
                    let lo = bf16_bits(unsafe { *row.add(2 * p * cs) }) as u32;
                    let hi = if 2 * p + 1 < kc {
                        // SAFETY: as above.
                        bf16_bits(unsafe { *row.add((2 * p + 1) * cs) }) as u32
                    } else {
                        0
                    };
                    panel[p * MR + i] = lo | hi << 16;
                }
            }
        }
    }
}

/// Mask of the first `min(n, 16)` lanes.
#[inline(always)]
fn mask16(n: usize) -> u16 {
    if n >= 16 { 0xffff } else { ((1u32 << n) - 1) as u16 }
}

/// Mask of the first `min(n, 32)` lanes.
#[inline(always)]
fn mask32(n: usize) -> u32 {
    if n >= 32 { u32::MAX } else { (1u32 << n) - 1 }
}

/// Packs the `kc × nc` block of `B` (element `(p, j)` at `b + p·rs + j·cs`)
/// into `NR`-column pair panels (module docs).
///
/// # Safety
/// [`available`]; element `(p, j)` readable for `p < kc`, `j < nc`;
/// `dst.len() ≥ ⌈nc / NR⌉ · NR · ⌈kc / 2⌉`.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack_b(b: *const bf16, rs: usize, cs: usize, kc: usize, nc: usize, dst: &mut [u32]) {
    let kp = kc.div_ceil(2);
    let b16 = b as *const u16;
    for (q, panel) in dst[..nc.div_ceil(NR) * NR * kp].chunks_exact_mut(NR * kp).enumerate() {
        let (j0, cols) = (q * NR, NR.min(nc - q * NR));
        if cs == 1 {
            // Interleave row 2p (even halves) with row 2p + 1 (odd halves):
            // output half 2j ← row0[j], 2j + 1 ← row1[j] (index 32 + j).
            let lo_idx: [u16; 32] = std::array::from_fn(|t| (t / 2 + if t % 2 == 1 { 32 } else { 0 }) as u16);
            let hi_idx: [u16; 32] = std::array::from_fn(|t| (16 + t / 2 + if t % 2 == 1 { 32 } else { 0 }) as u16);
            let mask = mask32(cols);
            // SAFETY: the index arrays hold 32 u16 each.
            let (li, hi) = unsafe {
                (
                    _mm512_loadu_si512(lo_idx.as_ptr() as *const __m512i),
                    _mm512_loadu_si512(hi_idx.as_ptr() as *const __m512i),
                )
            };
            for p in 0..kp {
                // SAFETY: the masked loads read columns j0..j0 + cols < nc of
                // rows 2p (and 2p + 1 when < kc), readable by contract; the
                // stores write pairs p·NR..p·NR + 32 of the panel (kp·NR long).
                unsafe {
                    let r0 = _mm512_maskz_loadu_epi16(mask, b16.add(2 * p * rs + j0) as *const i16);
                    let r1 = if 2 * p + 1 < kc {
                        _mm512_maskz_loadu_epi16(mask, b16.add((2 * p + 1) * rs + j0) as *const i16)
                    } else {
                        _mm512_setzero_si512()
                    };
                    let d = panel.as_mut_ptr().add(p * NR);
                    _mm512_storeu_si512(d as *mut __m512i, _mm512_permutex2var_epi16(r0, li, r1));
                    _mm512_storeu_si512(d.add(16) as *mut __m512i, _mm512_permutex2var_epi16(r0, hi, r1));
                }
            }
        } else {
            for p in 0..kp {
                for j in 0..NR {
                    let v = if j < cols {
                        // SAFETY: column j0 + j < nc, rows 2p (and 2p + 1 when < kc) < kc.
                        unsafe {
                            let lo = *b16.add(2 * p * rs + (j0 + j) * cs) as u32;
                            let hi = if 2 * p + 1 < kc {
                                *b16.add((2 * p + 1) * rs + (j0 + j) * cs) as u32
                            } else {
                                0
                            };
                            lo | hi << 16
                        }
                    } else {
                        0
                    };
                    panel[p * NR + j] = v;
                }
            }
        }
    }
}

/// A micro-kernel: `(kp, a_panel, b_panel, c, ldc, cols, accumulate)`.
type KernelFn = unsafe fn(usize, *const u32, *const u32, *mut f32, usize, usize, bool);

/// `C[..ROWS, ..cols] (+)= A · B` for one pair-panel pair: `kp` pairs, `A` pair
/// `(p, i)` at `a + p·MR + i`, `B` pair `(p, j)` at `b + p·NR + j`.
///
/// # Safety
/// [`available`]; `a` holds `kp · MR` pairs, `b` `kp · NR`; `c + i·ldc + j` is
/// valid for reads and writes for `i < ROWS`, `j < cols`, `1 ≤ cols ≤ NR`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const ROWS: usize>(kp: usize, a: *const u32, b: *const u32, c: *mut f32, ldc: usize, cols: usize, acc: bool) {
    // SAFETY: every access stays within the extents of the contract (A at
    // p·MR + i, B at p·NR + 16v, C masked to `cols`).
    unsafe {
        for i in 0..ROWS {
            let cr = c.add(i * ldc) as *const i8;
            _mm_prefetch::<_MM_HINT_T0>(cr);
            _mm_prefetch::<_MM_HINT_T0>(cr.wrapping_add(4 * NR - 4));
        }
        let mut r = [[_mm512_setzero_ps(); 2]; ROWS];
        let (mut ap, mut bp) = (a, b);
        for _ in 0..kp {
            _mm_prefetch::<_MM_HINT_T0>(ap.wrapping_add(8 * MR) as *const i8);
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp as *const __m512i));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(16) as *const __m512i));
            for (i, row) in r.iter_mut().enumerate() {
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*ap.add(i) as i32));
                row[0] = _mm512_dpbf16_ps(row[0], av, b0);
                row[1] = _mm512_dpbf16_ps(row[1], av, b1);
            }
            ap = ap.add(MR);
            bp = bp.add(NR);
        }
        let masks = [mask16(cols), mask16(cols.saturating_sub(16))];
        for (i, row) in r.iter().enumerate() {
            let cr = c.add(i * ldc);
            for (v, &x) in row.iter().enumerate() {
                let p = cr.add(16 * v);
                if cols == NR {
                    let x = if acc { _mm512_add_ps(_mm512_loadu_ps(p), x) } else { x };
                    _mm512_storeu_ps(p, x);
                } else {
                    let x = if acc {
                        _mm512_add_ps(_mm512_maskz_loadu_ps(masks[v], p), x)
                    } else {
                        x
                    };
                    _mm512_mask_storeu_ps(p, masks[v], x);
                }
            }
        }
    }
}

macro_rules! kernels {
    ($($rows:literal => $name:ident),* $(,)?) => {
        $(
            /// The micro-kernel for a tile of this many rows (see [`tile`]).
            ///
            /// # Safety
            /// As [`tile`].
            #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
            unsafe fn $name(kp: usize, a: *const u32, b: *const u32, c: *mut f32, ldc: usize, cols: usize, acc: bool) {
                // SAFETY: forwarded contract.
                unsafe { tile::<$rows>(kp, a, b, c, ldc, cols, acc) }
            }
        )*
        /// Micro-kernels indexed by `rows - 1`.
        const BY_ROWS: [KernelFn; MR] = [$($name as KernelFn),*];
    };
}

kernels!(
    1 => k1, 2 => k2, 3 => k3, 4 => k4, 5 => k5, 6 => k6, 7 => k7,
    8 => k8, 9 => k9, 10 => k10, 11 => k11, 12 => k12, 13 => k13, 14 => k14,
);
