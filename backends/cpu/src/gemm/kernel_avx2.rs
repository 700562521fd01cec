//! AVX2 + FMA micro-kernels of the packed SGEMM ([`super::packed`]).
//!
//! A micro-kernel computes one `rows × cols` tile of `C` (`rows ≤ MR`,
//! `cols ≤ NR`) from a packed `A` micro-panel (`kc` steps of `MR` values, see
//! [`super::pack::pack_a`]) and a packed `B` micro-panel (`kc` steps of `NR`
//! values, [`super::pack::pack_b`]), keeping the whole tile in `ymm` registers:
//! per step it loads `NR / 8` vectors of `B`, broadcasts each of the `rows`
//! values of `A` and issues `rows · NR / 8` FMAs. The tile is then stored (or
//! added) to `C`, with masked loads/stores (`vmaskmovps`) on the column edge. One kernel is
//! instantiated per row count `1..=MR`, so the row edge costs no extra work.

use std::arch::x86_64::*;

use super::packed::{KernelFn, MicroKernel};

/// Rows of the AVX2 tile (broadcast values of `A` per step).
pub(crate) const MR: usize = 6;
/// Vectors of 8 lanes per tile row.
const NV: usize = 2;
/// Columns of the AVX2 tile.
pub(crate) const NR: usize = 8 * NV;

/// `C[..ROWS, ..cols] (+)= A · B` for one micro-panel pair. `A` is packed
/// (`PACKED`: step `p`, row `i` at `a + p·MR + i`) or read in place from a
/// row-major matrix (row `i`, step `p` at `a + i·a_rs + p`); `B` is packed.
///
/// # Safety
/// The CPU supports AVX2 and FMA; those `A` elements for `i < ROWS`, `p < kc`
/// are readable, `b` holds
/// `kc · NR` floats; `c + i·ldc + j` is valid for reads and writes for `i < ROWS`,
/// `j < cols`, with `1 ≤ cols ≤ 8·VECS ≤ NR` (`VECS` vectors per tile row).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const ROWS: usize, const PACKED: bool, const VECS: usize>(
    kc: usize,
    a: *const f32,
    a_rs: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    acc: bool,
) {
    // SAFETY: the caller guarantees the CPU features and the extents above;
    // every access below stays within them (`A` loads at `p · MR + i` or
    // `i · a_rs + p`, `B` loads at
    // `p · NR + 8v`; C accesses masked to `cols`).
    unsafe {
        let (rs, step) = if PACKED { (1, MR) } else { (a_rs, 1) };
        let mut r = [[_mm256_setzero_ps(); VECS]; ROWS];
        let (mut ap, mut bp) = (a, b);
        for _ in 0..kc {
            let mut bv = [_mm256_setzero_ps(); VECS];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm256_loadu_ps(bp.add(8 * v));
            }
            for (i, row) in r.iter_mut().enumerate() {
                let av = _mm256_set1_ps(*ap.add(i * rs));
                for v in 0..VECS {
                    row[v] = _mm256_fmadd_ps(av, bv[v], row[v]);
                }
            }
            ap = ap.add(step);
            bp = bp.add(NR);
        }
        if cols == 8 * VECS {
            for (i, row) in r.iter().enumerate() {
                let cr = c.add(i * ldc);
                for (v, &x) in row.iter().enumerate() {
                    let p = cr.add(8 * v);
                    let x = if acc { _mm256_add_ps(_mm256_loadu_ps(p), x) } else { x };
                    _mm256_storeu_ps(p, x);
                }
            }
        } else {
            let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let mut masks = [_mm256_setzero_si256(); VECS];
            for (v, m) in masks.iter_mut().enumerate() {
                let lanes = cols.saturating_sub(8 * v).min(8) as i32;
                *m = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), lane);
            }
            for (i, row) in r.iter().enumerate() {
                let cr = c.add(i * ldc);
                for (v, &x) in row.iter().enumerate() {
                    let p = cr.add(8 * v);
                    let x = if acc {
                        _mm256_add_ps(_mm256_maskload_ps(p, masks[v]), x)
                    } else {
                        x
                    };
                    _mm256_maskstore_ps(p, masks[v], x);
                }
            }
        }
    }
}

macro_rules! kernels {
    ($table:ident, $packed:literal, $vecs:expr, $($rows:literal => $name:ident),* $(,)?) => {
        $(
            /// The micro-kernel for a tile of this many rows (see [`tile`]).
            ///
            /// # Safety
            /// As [`tile`].
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn $name(kc: usize, a: *const f32, a_rs: usize, b: *const f32, c: *mut f32, ldc: usize, cols: usize, acc: bool) {
                // SAFETY: forwarded contract.
                unsafe { tile::<$rows, $packed, { $vecs }>(kc, a, a_rs, b, c, ldc, cols, acc) }
            }
        )*
        /// Micro-kernels indexed by `rows - 1`.
        const $table: [KernelFn; MR] = [$($name as KernelFn),*];
    };
}

kernels!(BY_ROWS, true, NV, 1 => k1, 2 => k2, 3 => k3, 4 => k4, 5 => k5, 6 => k6);
kernels!(BY_ROWS_DIRECT, false, NV, 1 => d1, 2 => d2, 3 => d3, 4 => d4, 5 => d5, 6 => d6);
kernels!(HALF, true, 1, 1 => h1, 2 => h2, 3 => h3, 4 => h4, 5 => h5, 6 => h6);
kernels!(HALF_DIRECT, false, 1, 1 => hd1, 2 => hd2, 3 => hd3, 4 => hd4, 5 => hd5, 6 => hd6);

/// The AVX2 kernel family (`MR × NR` = 6 × 16). Only valid to run on a CPU
/// with AVX2 and FMA (the caller checks [`crate::simd::Isa`]).
pub(crate) static KERNEL: MicroKernel = MicroKernel {
    mr: MR,
    nr: NR,
    by_rows: &BY_ROWS,
    by_rows_direct: &BY_ROWS_DIRECT,
    half_cols: 8,
    half: &HALF,
    half_direct: &HALF_DIRECT,
};
