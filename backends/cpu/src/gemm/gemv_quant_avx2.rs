//! AVX2 + FMA kernels of the dequant-GEMV (`gemv.rs`): `out[j] += scale[j] ·
//! Σ_p x[p] · q[p, j]` over a run of rows `p` of stored integers, `ld` bytes
//! apart.
//!
//! Rows are taken in blocks of [`BLOCK_ROWS`]; within a block, columns in
//! tiles of 64 (then 16) whose accumulators stay in registers while the
//! block's rows stream past (one load, one conversion and one FMA per 8
//! values), then are scaled into `out`. While a block runs, every row step
//! prefetches (into L2) the same tile's row of the next block, so a block's
//! rows arrive long before they are read. Measured on the 2-core EPYC (Zen 4)
//! for 1×384×1536 int8, weights in cache / streamed from memory: four rows at
//! a time over an accumulator array in L1, 25 / 100 µs; tiles over all rows
//! with a prefetch 32 rows ahead, 22 / 100 µs; tiles over blocks of 32 rows
//! with the next block prefetched, 21 / 40 µs (`f32`: 32 / 115 µs; best of 7).

use std::arch::x86_64::*;

/// Rows per block: every tile runs over one block of rows before the next
/// block, which is prefetched (into L2) meanwhile.
const BLOCK_ROWS: usize = 32;

/// `out[j] += scales[j] · Σ_p x[p] · q[p, j]` for int8 rows: `q[p, j]` at
/// `ptr + p·ld + j`.
///
/// # Safety
/// AVX2 and FMA are available; for every `p < x.len()`, `ptr + p·ld` starts
/// `out.len()` readable values.
///
/// # Panics
/// If `out.len()` is not a multiple of 16 or `scales` is shorter than `out`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn gemv_i8(x: &[f32], ptr: *const i8, ld: usize, scales: &[f32], out: &mut [f32]) {
    let n = out.len();
    assert!(n.is_multiple_of(16) && scales.len() >= n);
    let blocks = x.len().div_ceil(BLOCK_ROWS);
    for (b, xb) in x.chunks(BLOCK_ROWS).enumerate() {
        // SAFETY: row b·BLOCK_ROWS < x.len() is readable (contract).
        let rows = unsafe { ptr.add(b * BLOCK_ROWS * ld) };
        let next = (b + 1 < blocks).then(|| rows.wrapping_add(BLOCK_ROWS * ld));
        let mut j = 0;
        // SAFETY (each call): columns j..j + 8·V ≤ n of every row are readable
        // (contract); `scales` and `out` hold them.
        while j + 64 <= n {
            unsafe {
                tile_i8::<8>(
                    xb,
                    rows.add(j),
                    next.map(|p| p.wrapping_add(j)),
                    ld,
                    scales.as_ptr().add(j),
                    out.as_mut_ptr().add(j),
                )
            };
            j += 64;
        }
        while j + 16 <= n {
            unsafe {
                tile_i8::<2>(
                    xb,
                    rows.add(j),
                    next.map(|p| p.wrapping_add(j)),
                    ld,
                    scales.as_ptr().add(j),
                    out.as_mut_ptr().add(j),
                )
            };
            j += 16;
        }
    }
}

/// One tile of [`gemv_i8`]: `8·V` columns from `ptr`, `scales`, `out`.
///
/// # Safety
/// AVX2 and FMA are available; `ptr + p·ld` starts `8·V` readable values for
/// `p < x.len()`; `scales` and `out` hold `8·V` values.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_i8<const V: usize>(x: &[f32], ptr: *const i8, next: Option<*const i8>, ld: usize, scales: *const f32, out: *mut f32) {
    let mut acc = [_mm256_setzero_ps(); V];
    let mut row = ptr;
    for (t, &xp) in x.iter().enumerate() {
        if let Some(p) = next {
            // SAFETY: a prefetch does not fault.
            _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(t * ld));
        }
        // SAFETY: rows p < x.len() are readable (contract).
        unsafe {
            let xv = _mm256_set1_ps(xp);
            for (v, a) in acc.iter_mut().enumerate() {
                let q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(row.add(8 * v) as *const __m128i));
                *a = _mm256_fmadd_ps(xv, _mm256_cvtepi32_ps(q), *a);
            }
        }
        row = row.wrapping_add(ld);
    }
    for (v, a) in acc.iter().enumerate() {
        // SAFETY: 8·V scales and outputs (contract).
        unsafe {
            let o = out.add(8 * v);
            _mm256_storeu_ps(o, _mm256_fmadd_ps(_mm256_loadu_ps(scales.add(8 * v)), *a, _mm256_loadu_ps(o)));
        }
    }
}

/// `out[j] += scales[j] · Σ_p x[p] · q[p, j]` for packed int4 rows starting at
/// an even column: `q[p, j]` is nibble `j` (low first, stored as `q + 8`) of
/// the bytes at `ptr + p·ld`. `more`: further rows follow at the same stride
/// (the next scale group), so the last block prefetches them.
///
/// # Safety
/// AVX2 and FMA are available; for every `p < x.len()`, `ptr + p·ld` starts
/// `out.len() / 2` readable bytes.
///
/// # Panics
/// If `out.len()` is not a multiple of 16 or `scales` is shorter than `out`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn gemv_i4(x: &[f32], ptr: *const u8, ld: usize, scales: &[f32], out: &mut [f32], more: bool) {
    let n = out.len();
    assert!(n.is_multiple_of(16) && scales.len() >= n);
    let blocks = x.len().div_ceil(BLOCK_ROWS);
    for (b, xb) in x.chunks(BLOCK_ROWS).enumerate() {
        // SAFETY: row b·BLOCK_ROWS < x.len() is readable (contract).
        let rows = unsafe { ptr.add(b * BLOCK_ROWS * ld) };
        let next = (more || b + 1 < blocks).then(|| rows.wrapping_add(xb.len() * ld));
        let mut j = 0;
        // SAFETY (each call): columns j..j + 16·V ≤ n, bytes j/2.., of every
        // row are readable (contract); `scales` and `out` hold them.
        while j + 64 <= n {
            unsafe {
                tile_i4::<4>(
                    xb,
                    rows.add(j / 2),
                    next.map(|p| p.wrapping_add(j / 2)),
                    ld,
                    scales.as_ptr().add(j),
                    out.as_mut_ptr().add(j),
                )
            };
            j += 64;
        }
        while j + 16 <= n {
            unsafe {
                tile_i4::<1>(
                    xb,
                    rows.add(j / 2),
                    next.map(|p| p.wrapping_add(j / 2)),
                    ld,
                    scales.as_ptr().add(j),
                    out.as_mut_ptr().add(j),
                )
            };
            j += 16;
        }
    }
}

/// One tile of [`gemv_i4`]: `16·V` columns. Eight bytes widen to eight 32-bit
/// lanes with one `vpmovzxbd`, and each lane's two nibbles split with an `and`
/// and a shift, so the tile accumulates its even and its odd columns
/// separately (one shuffle per 16 values, where decoding to column order would
/// take four); they are interleaved back once, before the scales.
///
/// # Safety
/// AVX2 and FMA are available; `ptr + p·ld` starts `8·V` readable bytes for
/// `p < x.len()`; `scales` and `out` hold `16·V` values.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_i4<const V: usize>(x: &[f32], ptr: *const u8, next: Option<*const u8>, ld: usize, scales: *const f32, out: *mut f32) {
    let (mask, eight) = (_mm256_set1_epi32(0x0F), _mm256_set1_epi32(8));
    let mut even = [_mm256_setzero_ps(); V];
    let mut odd = [_mm256_setzero_ps(); V];
    let mut row = ptr;
    for (t, &xp) in x.iter().enumerate() {
        if let Some(p) = next {
            // SAFETY: a prefetch does not fault.
            _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(t * ld) as *const i8);
        }
        // SAFETY: rows p < x.len() are readable (contract).
        unsafe {
            let xv = _mm256_set1_ps(xp);
            for v in 0..V {
                let w = _mm256_cvtepu8_epi32(_mm_loadl_epi64(row.add(8 * v) as *const __m128i));
                let lo = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(w, mask), eight));
                let hi = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32::<4>(w), eight));
                even[v] = _mm256_fmadd_ps(xv, lo, even[v]);
                odd[v] = _mm256_fmadd_ps(xv, hi, odd[v]);
            }
        }
        row = row.wrapping_add(ld);
    }
    for v in 0..V {
        // even[v] holds columns 0, 2, .., 14 of block v; odd[v] 1, 3, .., 15.
        let t0 = _mm256_unpacklo_ps(even[v], odd[v]); // columns 0-3 | 8-11
        let t1 = _mm256_unpackhi_ps(even[v], odd[v]); // columns 4-7 | 12-15
        let cols = [_mm256_permute2f128_ps::<0x20>(t0, t1), _mm256_permute2f128_ps::<0x31>(t0, t1)];
        for (h, c) in cols.into_iter().enumerate() {
            // SAFETY: 16·V scales and outputs (contract).
            unsafe {
                let o = out.add(16 * v + 8 * h);
                _mm256_storeu_ps(
                    o,
                    _mm256_fmadd_ps(_mm256_loadu_ps(scales.add(16 * v + 8 * h)), c, _mm256_loadu_ps(o)),
                );
            }
        }
    }
}
