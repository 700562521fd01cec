//! AVX-512 micro-kernels of the packed SGEMM ([`super::packed`]).
//!
//! A micro-kernel computes one `rows × cols` tile of `C` (`rows ≤ MR`,
//! `cols ≤ NR`) from a packed `A` micro-panel (`kc` steps of `MR` values, see
//! [`super::pack::pack_a`]) and a packed `B` micro-panel (`kc` steps of `NR`
//! values, [`super::pack::pack_b`]), keeping the whole tile in `zmm` registers:
//! per step it loads `NR / 16` vectors of `B`, broadcasts each of the `rows`
//! values of `A` and issues `rows · NR / 16` FMAs. The tile is then stored (or
//! added) to `C`, with masked loads/stores on the column edge. One kernel is
//! instantiated per row count `1..=MR`, so the row edge costs no extra work,
//! and a half-width one (one vector per row) for edge tiles of at most 16
//! columns, which would otherwise compute a second vector of nothing (a
//! 196-pixel image is 6 tiles of 32 columns and one of 4).

use std::arch::x86_64::*;

use super::packed::{KernelFn, MicroKernel};

/// Rows of the AVX-512 tile (broadcast values of `A` per step).
pub(crate) const MR: usize = 14;
/// Vectors of 16 lanes per tile row.
const NV: usize = 2;
/// Columns of the AVX-512 tile.
pub(crate) const NR: usize = 16 * NV;
/// How many `k` steps ahead the `A` micro-panel is prefetched.
const PF_A: usize = 8;

/// `C[..ROWS, ..cols] (+)= A · B` for one micro-panel pair. `A` is packed
/// (`PACKED`: step `p`, row `i` at `a + p·MR + i`) or read in place from a
/// row-major matrix (row `i`, step `p` at `a + i·a_rs + p`); `B` is packed.
///
/// # Safety
/// The CPU supports AVX-512F; those `A` elements for `i < ROWS`, `p < kc`
/// are readable, `b` holds
/// `kc · NR` floats; `c + i·ldc + j` is valid for reads and writes for `i < ROWS`,
/// `j < cols`, with `1 ≤ cols ≤ 16·VECS ≤ NR` (`VECS` vectors per tile row).
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
    // `p · NR + 16v`; C accesses masked to `cols`).
    unsafe {
        // Fetch the C tile now so its (often conflicting: rows 4 KiB apart) lines
        // arrive while the tile is being computed.
        for i in 0..ROWS {
            let cr = c.add(i * ldc) as *const i8;
            _mm_prefetch::<_MM_HINT_T0>(cr);
            _mm_prefetch::<_MM_HINT_T0>(cr.wrapping_add(4 * NR - 4));
        }
        let (rs, step) = if PACKED { (1, MR) } else { (a_rs, 1) };
        let mut r = [[_mm512_setzero_ps(); VECS]; ROWS];
        let (mut ap, mut bp) = (a, b);
        for _ in 0..kc {
            if PACKED {
                _mm_prefetch::<_MM_HINT_T0>(ap.wrapping_add(PF_A * MR) as *const i8);
            }
            let mut bv = [_mm512_setzero_ps(); VECS];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm512_loadu_ps(bp.add(16 * v));
            }
            for (i, row) in r.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ap.add(i * rs));
                for v in 0..VECS {
                    row[v] = _mm512_fmadd_ps(av, bv[v], row[v]);
                }
            }
            ap = ap.add(step);
            bp = bp.add(NR);
        }
        if cols == 16 * VECS {
            for (i, row) in r.iter().enumerate() {
                let cr = c.add(i * ldc);
                for (v, &x) in row.iter().enumerate() {
                    let p = cr.add(16 * v);
                    let x = if acc { _mm512_add_ps(_mm512_loadu_ps(p), x) } else { x };
                    _mm512_storeu_ps(p, x);
                }
            }
        } else {
            let mut masks = [0u16; VECS];
            for (v, m) in masks.iter_mut().enumerate() {
                let lanes = cols.saturating_sub(16 * v).min(16);
                *m = ((1u32 << lanes) - 1) as u16;
            }
            for (i, row) in r.iter().enumerate() {
                let cr = c.add(i * ldc);
                for (v, &x) in row.iter().enumerate() {
                    let p = cr.add(16 * v);
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
    ($table:ident, $packed:literal, $vecs:expr, $($rows:literal => $name:ident),* $(,)?) => {
        $(
            /// The micro-kernel for a tile of this many rows (see [`tile`]).
            ///
            /// # Safety
            /// As [`tile`].
            #[target_feature(enable = "avx512f,avx2,fma")]
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

kernels!(
    BY_ROWS, true, NV,
    1 => k1, 2 => k2, 3 => k3, 4 => k4, 5 => k5, 6 => k6, 7 => k7,
    8 => k8, 9 => k9, 10 => k10, 11 => k11, 12 => k12, 13 => k13, 14 => k14,
);
kernels!(
    BY_ROWS_DIRECT, false, NV,
    1 => d1, 2 => d2, 3 => d3, 4 => d4, 5 => d5, 6 => d6, 7 => d7,
    8 => d8, 9 => d9, 10 => d10, 11 => d11, 12 => d12, 13 => d13, 14 => d14,
);
kernels!(
    HALF, true, 1,
    1 => h1, 2 => h2, 3 => h3, 4 => h4, 5 => h5, 6 => h6, 7 => h7,
    8 => h8, 9 => h9, 10 => h10, 11 => h11, 12 => h12, 13 => h13, 14 => h14,
);
kernels!(
    HALF_DIRECT, false, 1,
    1 => hd1, 2 => hd2, 3 => hd3, 4 => hd4, 5 => hd5, 6 => hd6, 7 => hd7,
    8 => hd8, 9 => hd9, 10 => hd10, 11 => hd11, 12 => hd12, 13 => hd13, 14 => hd14,
);

/// The AVX-512 kernel family (`MR × NR` = 14 × 32). Only valid to run on a CPU
/// with AVX-512F (the caller checks [`crate::simd::Isa`]).
pub(crate) static KERNEL: MicroKernel = MicroKernel {
    mr: MR,
    nr: NR,
    by_rows: &BY_ROWS,
    by_rows_direct: &BY_ROWS_DIRECT,
    half_cols: 16,
    half: &HALF,
    half_direct: &HALF_DIRECT,
};
