//! AVX2 + FMA row-accumulation kernels of the dequant-GEMV (`gemv.rs`):
//! `acc[j] += Σ_r x[r] · q_r[j]` over `R` rows of stored integers, 16 columns
//! per step (two 8-lane accumulators kept in registers across the `R` rows).

use std::arch::x86_64::*;

use crate::quant::convert::{decode16, nibble};

/// `acc[j] += Σ_r x[r] · rows[r][j]` for int8 rows.
///
/// # Safety
/// AVX2 and FMA are available.
///
/// # Panics
/// If a row holds fewer than `acc.len()` values.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn acc_i8<const R: usize>(acc: &mut [f32], rows: [&[i8]; R], x: [f32; R]) {
    let n = acc.len();
    let rows: [&[i8]; R] = std::array::from_fn(|r| &rows[r][..n]);
    let xs: [__m256; R] = std::array::from_fn(|r| _mm256_set1_ps(x[r]));
    let load = |r: usize, j: usize| {
        // SAFETY: callers pass j + 8 <= n; every row holds n values.
        unsafe { _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(rows[r].as_ptr().add(j) as *const __m128i))) }
    };
    let d = acc.as_mut_ptr();
    let mut j = 0;
    while j + 16 <= n {
        // SAFETY: j + 16 <= n: 16 accumulators readable and writable, 16 values per row.
        unsafe {
            let (mut a0, mut a1) = (_mm256_loadu_ps(d.add(j)), _mm256_loadu_ps(d.add(j + 8)));
            for (r, &x) in xs.iter().enumerate() {
                a0 = _mm256_fmadd_ps(x, load(r, j), a0);
                a1 = _mm256_fmadd_ps(x, load(r, j + 8), a1);
            }
            _mm256_storeu_ps(d.add(j), a0);
            _mm256_storeu_ps(d.add(j + 8), a1);
        }
        j += 16;
    }
    if j + 8 <= n {
        // SAFETY: as above, for 8 columns.
        unsafe {
            let mut a0 = _mm256_loadu_ps(d.add(j));
            for (r, &x) in xs.iter().enumerate() {
                a0 = _mm256_fmadd_ps(x, load(r, j), a0);
            }
            _mm256_storeu_ps(d.add(j), a0);
        }
        j += 8;
    }
    for (t, o) in acc.iter_mut().enumerate().skip(j) {
        for r in 0..R {
            *o += x[r] * rows[r][t] as f32;
        }
    }
}

/// `acc[j] += Σ_r x[r] · value(rows[r], j)` for packed int4 rows starting at
/// an even column (element `j` is nibble `j`, see [`nibble`]).
///
/// # Safety
/// AVX2 and FMA are available.
///
/// # Panics
/// If a row holds fewer than `acc.len()` nibbles.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn acc_i4<const R: usize>(acc: &mut [f32], rows: [&[u8]; R], x: [f32; R]) {
    let n = acc.len();
    let rows: [&[u8]; R] = std::array::from_fn(|r| &rows[r][..n.div_ceil(2)]);
    let xs: [__m256; R] = std::array::from_fn(|r| _mm256_set1_ps(x[r]));
    let d = acc.as_mut_ptr();
    let mut j = 0;
    while j + 16 <= n {
        // SAFETY: j + 16 <= n: 16 accumulators readable and writable; each row
        // holds ⌈n/2⌉ ≥ j/2 + 8 bytes.
        unsafe {
            let (mut a0, mut a1) = (_mm256_loadu_ps(d.add(j)), _mm256_loadu_ps(d.add(j + 8)));
            for (row, &x) in rows.iter().zip(&xs) {
                let q = decode16(row.as_ptr().add(j / 2));
                let f0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
                let f1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128::<8>(q)));
                a0 = _mm256_fmadd_ps(x, f0, a0);
                a1 = _mm256_fmadd_ps(x, f1, a1);
            }
            _mm256_storeu_ps(d.add(j), a0);
            _mm256_storeu_ps(d.add(j + 8), a1);
        }
        j += 16;
    }
    for (t, o) in acc.iter_mut().enumerate().skip(j) {
        for r in 0..R {
            *o += x[r] * nibble(rows[r], t) as f32;
        }
    }
}
