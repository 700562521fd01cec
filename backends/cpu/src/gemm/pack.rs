//! Packing of the operands of the packed SGEMM ([`super::packed`]) into the
//! micro-panel layouts its micro-kernels stream through.
//!
//! * `A` (`mc × kc` block) becomes `⌈mc / mr⌉` micro-panels of `mr` rows; panel
//!   `q` holds, for each `p < kc`, the `mr` values `A[q·mr + i, p]` one after
//!   another (`kc · mr` floats, rows past `mc` zero).
//! * `B` (`kc × nc` block) becomes `⌈nc / nr⌉` micro-panels of `nr` columns;
//!   panel `q` holds, for each `p < kc`, the `nr` values `B[p, q·nr + j]`
//!   (`kc · nr` floats, columns past `nc` zero). `f16`/`bf16` elements are
//!   converted to `f32` here, and int8/int4 elements dequantized, so
//!   reduced-precision weights need no separate pass.
//!
//! Both read arbitrary (row, column) element strides, so transposed operands
//! cost nothing extra beyond a different loop order.

use half::{bf16, f16};

use super::weights::f16_to_f32;
use crate::quant::QuantRef;
use crate::quant::convert::Cvt;

/// The element pointer of a `B` operand in one of the supported precisions.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BPtr<'a> {
    /// `f32` elements.
    F32(*const f32),
    /// IEEE half elements.
    F16(*const f16),
    /// bfloat16 elements.
    Bf16(*const bf16),
    /// Quantized elements.
    Quant(QuantSrc<'a>),
}

/// Element `(0, 0)` of a quantized `B`: stored row `row`, column `col`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QuantSrc<'a> {
    /// The stored matrix.
    pub w: QuantRef<'a>,
    /// Stored row of element `(0, 0)`.
    pub row: usize,
    /// Stored column of element `(0, 0)`.
    pub col: usize,
    /// The conversion code to use.
    pub cvt: Cvt,
}

/// A strided `B` operand: element `(p, j)` at `ptr + p·rs + j·cs`. For a
/// quantized `B`, `rs` counts stored rows and `cs` is 1: element `(p, j)` is
/// stored element `(row + p·rs, col + j)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BSrc<'a> {
    /// Element `(0, 0)`.
    pub ptr: BPtr<'a>,
    /// Distance between rows (the `k` dimension).
    pub rs: usize,
    /// Distance between columns (the `n` dimension).
    pub cs: usize,
}

impl<'a> BSrc<'a> {
    /// The same operand starting at element `(p, j)`.
    ///
    /// # Safety
    /// `(p, j)` is an element of the operand (its offset is in bounds).
    pub(crate) unsafe fn offset(&self, p: usize, j: usize) -> BSrc<'a> {
        let off = p * self.rs + j * self.cs;
        // SAFETY: in bounds by the caller's contract.
        let ptr = unsafe {
            match self.ptr {
                BPtr::F32(x) => BPtr::F32(x.add(off)),
                BPtr::F16(x) => BPtr::F16(x.add(off)),
                BPtr::Bf16(x) => BPtr::Bf16(x.add(off)),
                BPtr::Quant(q) => BPtr::Quant(QuantSrc {
                    row: q.row + p * self.rs,
                    col: q.col + j,
                    ..q
                }),
            }
        };
        BSrc {
            ptr,
            rs: self.rs,
            cs: self.cs,
        }
    }

    /// Converts `dst.len()` elements starting at element offset `off`, `stride` apart.
    ///
    /// # Safety
    /// Every element read (`off + t·stride`, `t < dst.len()`) is in bounds.
    #[inline(always)]
    unsafe fn read(&self, off: usize, stride: usize, dst: &mut [f32]) {
        let n = dst.len();
        // SAFETY: the caller guarantees the `n` elements are readable; a unit
        // stride makes them one contiguous run.
        unsafe {
            match self.ptr {
                BPtr::F32(p) if stride == 1 => dst.copy_from_slice(std::slice::from_raw_parts(p.add(off), n)),
                BPtr::F32(p) => {
                    for (t, d) in dst.iter_mut().enumerate() {
                        *d = *p.add(off + t * stride);
                    }
                }
                BPtr::F16(p) if stride == 1 => f16_to_f32(std::slice::from_raw_parts(p.add(off), n), dst),
                BPtr::F16(p) => {
                    for (t, d) in dst.iter_mut().enumerate() {
                        *d = (*p.add(off + t * stride)).to_f32();
                    }
                }
                BPtr::Bf16(p) => {
                    for (t, d) in dst.iter_mut().enumerate() {
                        *d = f32::from_bits(((*p.add(off + t * stride)).to_bits() as u32) << 16);
                    }
                }
                BPtr::Quant(_) => unreachable!("pack_b packs a quantized B before reading elements"),
            }
        }
    }
}

/// Packs the `mc × kc` block of `A` at `a` (element `(i, p)` at `a + i·rs + p·cs`)
/// into `mr`-row micro-panels in `dst` (see the module docs).
///
/// # Safety
/// Every `a + i·rs + p·cs` with `i < mc`, `p < kc` is readable, and
/// `dst.len() ≥ ⌈mc / mr⌉ · mr · kc`.
pub(crate) unsafe fn pack_a(a: *const f32, rs: usize, cs: usize, mc: usize, kc: usize, mr: usize, dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    let avx2 = std::arch::is_x86_feature_detected!("avx2");
    super::mv::wide(|| {
        for (q, panel) in dst[..mc.div_ceil(mr) * mr * kc].chunks_exact_mut(mr * kc).enumerate() {
            let (i0, rows) = (q * mr, mr.min(mc - q * mr));
            // SAFETY: rows i0..i0 + rows < mc and columns < kc are readable (contract).
            let src = unsafe { a.add(i0 * rs) };
            #[cfg(target_arch = "x86_64")]
            if cs == 1 && rs != 1 && kc >= 8 && avx2 {
                // SAFETY: as above; `panel` holds kc · mr floats; AVX2 checked.
                unsafe { pack_transposed_avx2(src, rs, kc, mr, rows, panel) };
                continue;
            }
            // SAFETY: as above; `panel` holds kc · mr floats.
            unsafe {
                match (mr, rows) {
                    (14, 14) => pack_a_full::<14>(src, rs, cs, kc, panel),
                    (6, 6) => pack_a_full::<6>(src, rs, cs, kc, panel),
                    _ => {
                        for (p, d) in panel.chunks_exact_mut(mr).enumerate() {
                            for (i, x) in d.iter_mut().enumerate() {
                                *x = if i < rows { *src.add(i * rs + p * cs) } else { 0.0 };
                            }
                        }
                    }
                }
            }
        }
    })
}

/// One full `MR`-row micro-panel of [`pack_a`]: step `p` takes column `p` of the rows.
///
/// # Safety
/// `src + i·rs + p·cs` is readable for `i < MR`, `p < kc`; `dst.len() ≥ kc · MR`.
#[inline(always)]
unsafe fn pack_a_full<const MR: usize>(src: *const f32, rs: usize, cs: usize, kc: usize, dst: &mut [f32]) {
    let rows: [*const f32; MR] = std::array::from_fn(|i| src.wrapping_add(i * rs));
    for (p, d) in dst[..kc * MR].chunks_exact_mut(MR).enumerate() {
        let d: &mut [f32; MR] = d.try_into().expect("chunk of MR");
        for i in 0..MR {
            // SAFETY: row i < MR, column p < kc (contract).
            d[i] = unsafe { *rows[i].add(p * cs) };
        }
    }
}

/// Packs the `kc × nc` block of `b` into `nr`-column micro-panels in `dst`
/// (see the module docs), converting to `f32`.
///
/// # Safety
/// Every element `(p, j)` with `p < kc`, `j < nc` of `b` is readable, and
/// `dst.len() ≥ ⌈nc / nr⌉ · nr · kc`.
pub(crate) unsafe fn pack_b(b: &BSrc<'_>, kc: usize, nc: usize, nr: usize, dst: &mut [f32]) {
    if let BPtr::Quant(q) = b.ptr {
        return pack_b_quant(&q, b.rs, kc, nc, nr, dst);
    }
    if b.cs == 1 && (b.rs != 1 || nc == 1) {
        // SAFETY: forwarded contract.
        return unsafe {
            match (b.ptr, nr) {
                (BPtr::F32(ptr), 32) => pack_b_rows::<32>(ptr, b.rs, kc, nc, dst),
                (BPtr::F32(ptr), 16) => pack_b_rows::<16>(ptr, b.rs, kc, nc, dst),
                _ => pack_b_rows_convert(b, kc, nc, nr, dst),
            }
        };
    }
    #[cfg(target_arch = "x86_64")]
    if b.rs == 1 && b.cs != 1 && kc >= 8 && std::arch::is_x86_feature_detected!("avx2") {
        // Column-major B: panel q is the transpose of columns q·nr.. (each
        // contiguous in p), exactly what the A packing does for rows.
        let f16c = std::arch::is_x86_feature_detected!("f16c");
        if matches!(b.ptr, BPtr::F32(_)) || (f16c && matches!(b.ptr, BPtr::F16(_))) {
            for (q, panel) in dst[..nc.div_ceil(nr) * nr * kc].chunks_exact_mut(nr * kc).enumerate() {
                let cols = nr.min(nc - q * nr);
                // SAFETY: columns q·nr..q·nr + cols < nc, rows < kc are readable
                // (contract); `panel` holds kc·nr floats; AVX2 (and F16C) checked.
                unsafe {
                    match b.ptr {
                        BPtr::F32(ptr) => pack_transposed_avx2(ptr.add(q * nr * b.cs), b.cs, kc, nr, cols, panel),
                        BPtr::F16(ptr) => pack_transposed_f16(ptr.add(q * nr * b.cs), b.cs, kc, nr, cols, panel),
                        BPtr::Bf16(_) | BPtr::Quant(_) => unreachable!("filtered above"),
                    }
                }
            }
            return;
        }
    }
    super::mv::wide(|| {
        let (rs, cs) = (b.rs, b.cs);
        for (q, panel) in dst[..nc.div_ceil(nr) * nr * kc].chunks_exact_mut(nr * kc).enumerate() {
            let (j0, cols) = (q * nr, nr.min(nc - q * nr));
            if rs == 1 && cs != 1 {
                // Column-major B: each column is contiguous; convert it, then scatter.
                let mut col = [0.0f32; 256];
                for j in 0..cols {
                    for p0 in (0..kc).step_by(col.len()) {
                        let len = col.len().min(kc - p0);
                        // SAFETY: column j0 + j < nc, rows p0..p0 + len < kc (contract).
                        unsafe { b.read((j0 + j) * cs + p0, 1, &mut col[..len]) };
                        for (d, &x) in panel[p0 * nr + j..].iter_mut().step_by(nr).zip(&col[..len]) {
                            *d = x;
                        }
                    }
                }
            } else {
                for (p, d) in panel.chunks_exact_mut(nr).enumerate() {
                    // SAFETY: row p < kc, columns j0..j0 + cols < nc (contract).
                    unsafe { b.read(p * rs + j0 * cs, cs, &mut d[..cols]) };
                }
            }
            if cols < nr {
                for d in panel.chunks_exact_mut(nr) {
                    d[cols..].fill(0.0);
                }
            }
        }
    })
}

/// [`pack_b`] for a row-major `f32` `B` and `NR`-column panels, walking `B`
/// row by row (one sequential read stream; each row's `nc` values go to the
/// `⌈nc / NR⌉` panels) rather than panel by panel (which touches `kc` rows,
/// usually 4 KiB apart, per 128 bytes read).
///
/// # Safety
/// As [`pack_b`], with `B`'s element `(p, j)` at `src + p·rs + j`.
unsafe fn pack_b_rows<const NR: usize>(src: *const f32, rs: usize, kc: usize, nc: usize, dst: &mut [f32]) {
    let (full, rest) = (nc / NR, nc % NR);
    let dst = &mut dst[..nc.div_ceil(NR) * NR * kc];
    for p in 0..kc {
        // SAFETY: row p < kc holds nc readable floats (contract).
        let row = unsafe { std::slice::from_raw_parts(src.add(p * rs), nc) };
        for q in 0..full {
            let d = &mut dst[(q * kc + p) * NR..][..NR];
            d.copy_from_slice(&row[q * NR..(q + 1) * NR]);
        }
        if rest > 0 {
            let d = &mut dst[(full * kc + p) * NR..][..NR];
            d[..rest].copy_from_slice(&row[full * NR..]);
            d[rest..].fill(0.0);
        }
    }
}

/// One micro-panel of [`pack_a`] for a row-major `A` (`cs == 1`), or of
/// [`pack_b`] for a column-major `B` (its columns play the rows): `dst[p·mr + i]
/// = src[i·rs + p]`, zero for `i ≥ rows`. 8 × 8 blocks are loaded row-wise and
/// transposed in registers, so each step's `mr` values
/// are written with vector stores. Groups of 8 rows are written last-first with
/// full 8-lane stores; a group narrower than 8 spills into the next step's first
/// rows, which the group before it (or the next step) overwrites afterwards; the
/// step where that spill would leave the panel is written by the scalar tail.
///
/// # Safety
/// AVX2 is available; `src + i·rs + p` is readable for `i < rows ≤ mr`,
/// `p < kc`; `dst.len() ≥ kc · mr`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pack_transposed_avx2(src: *const f32, rs: usize, kc: usize, mr: usize, rows: usize, dst: &mut [f32]) {
    use std::arch::x86_64::_mm256_loadu_ps;
    // SAFETY: forwarded contract; the loads read 8 floats of a readable row.
    unsafe {
        transpose_pack(
            |r, p| _mm256_loadu_ps(src.add(r * rs + p)),
            |r, p| *src.add(r * rs + p),
            kc,
            mr,
            rows,
            dst,
        )
    }
}

/// [`pack_transposed_avx2`] for `f16` elements, converted with F16C (a
/// column-major `f16` `B`).
///
/// # Safety
/// As [`pack_transposed_avx2`], with F16C available too.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
unsafe fn pack_transposed_f16(src: *const f16, rs: usize, kc: usize, mr: usize, rows: usize, dst: &mut [f32]) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm256_cvtph_ps};
    // SAFETY: forwarded contract; the loads read 8 halves of a readable row.
    unsafe {
        transpose_pack(
            |r, p| _mm256_cvtph_ps(_mm_loadu_si128(src.add(r * rs + p) as *const __m128i)),
            |r, p| (*src.add(r * rs + p)).to_f32(),
            kc,
            mr,
            rows,
            dst,
        )
    }
}

/// The body of the transposing packers: `load(r, p)` gives row `r`'s 8
/// values from column `p`, `scalar(r, p)` one value.
///
/// # Safety
/// Inlined only into functions with AVX2 enabled; `load` and `scalar` are
/// called for rows `r < rows` and columns `p < kc` (`p + 8 ≤ kc` for `load`),
/// which the caller guarantees readable; `dst.len() ≥ kc · mr`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn transpose_pack(
    load: impl Fn(usize, usize) -> std::arch::x86_64::__m256,
    scalar: impl Fn(usize, usize) -> f32,
    kc: usize,
    mr: usize,
    rows: usize,
    dst: &mut [f32],
) {
    use std::arch::x86_64::*;
    assert!(dst.len() >= kc * mr);
    let d = dst.as_mut_ptr();
    let groups = mr.div_ceil(8);
    for g in (0..groups).rev() {
        let i0 = g * 8;
        let valid = rows.saturating_sub(i0).min(8);
        // Vector steps: all of them, except that a group spilling past `mr`
        // leaves at least its last step to the scalar tail.
        let vec_steps = if i0 + 8 > mr { (kc - 1) / 8 * 8 } else { kc / 8 * 8 };
        for p0 in (0..vec_steps).step_by(8) {
            // SAFETY: rows i0 + r < rows and columns p0..p0 + 8 ≤ kc are readable;
            // each store writes dst[(p0 + u)·mr + i0 ..][..8], which ends at most at
            // (vec_steps - 1)·mr + i0 + 8 ≤ kc·mr (by the choice of vec_steps).
            unsafe {
                let mut v = [_mm256_setzero_ps(); 8];
                for (r, x) in v.iter_mut().enumerate().take(valid) {
                    *x = load(i0 + r, p0);
                }
                let t0 = _mm256_unpacklo_ps(v[0], v[1]);
                let t1 = _mm256_unpackhi_ps(v[0], v[1]);
                let t2 = _mm256_unpacklo_ps(v[2], v[3]);
                let t3 = _mm256_unpackhi_ps(v[2], v[3]);
                let t4 = _mm256_unpacklo_ps(v[4], v[5]);
                let t5 = _mm256_unpackhi_ps(v[4], v[5]);
                let t6 = _mm256_unpacklo_ps(v[6], v[7]);
                let t7 = _mm256_unpackhi_ps(v[6], v[7]);
                let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                let cols = [
                    _mm256_permute2f128_ps::<0x20>(u0, u4),
                    _mm256_permute2f128_ps::<0x20>(u1, u5),
                    _mm256_permute2f128_ps::<0x20>(u2, u6),
                    _mm256_permute2f128_ps::<0x20>(u3, u7),
                    _mm256_permute2f128_ps::<0x31>(u0, u4),
                    _mm256_permute2f128_ps::<0x31>(u1, u5),
                    _mm256_permute2f128_ps::<0x31>(u2, u6),
                    _mm256_permute2f128_ps::<0x31>(u3, u7),
                ];
                for (u, &c) in cols.iter().enumerate() {
                    _mm256_storeu_ps(d.add((p0 + u) * mr + i0), c);
                }
            }
        }
        let width = (mr - i0).min(8);
        for p in vec_steps..kc {
            for r in 0..width {
                // SAFETY: row i0 + r < rows, column p < kc when read; the index
                // p·mr + i0 + r < kc·mr.
                unsafe { *d.add(p * mr + i0 + r) = if r < valid { scalar(i0 + r, p) } else { 0.0 } };
            }
        }
    }
}

/// [`pack_b_rows`] for any element type and panel width: the same row-by-row
/// walk, converting each run of up to `nr` elements into its panel.
///
/// # Safety
/// As [`pack_b`], with `b.cs == 1`.
unsafe fn pack_b_rows_convert(b: &BSrc<'_>, kc: usize, nc: usize, nr: usize, dst: &mut [f32]) {
    let dst = &mut dst[..nc.div_ceil(nr) * nr * kc];
    for p in 0..kc {
        for q in 0..nc.div_ceil(nr) {
            let cols = nr.min(nc - q * nr);
            let d = &mut dst[(q * kc + p) * nr..][..nr];
            // SAFETY: row p < kc, columns q·nr..q·nr + cols ≤ nc (contract).
            unsafe { b.read(p * b.rs + q * nr, 1, &mut d[..cols]) };
            d[cols..].fill(0.0);
        }
    }
}

/// [`pack_b`] for a quantized `B` (element `(p, j)` at stored `(q.row + p·rs,
/// q.col + j)`): each row's run of up to `nr` columns is dequantized straight
/// into its panel (vectorised when `q.cvt` allows), so the micro-kernels see
/// plain `f32` panels. Safe: the stored matrix is read through bounds-checked
/// slices (a block outside it panics, an internal invariant that the GEMM's
/// layout checks uphold).
fn pack_b_quant(q: &QuantSrc<'_>, rs: usize, kc: usize, nc: usize, nr: usize, dst: &mut [f32]) {
    let panels = nc.div_ceil(nr);
    let dst = &mut dst[..panels * nr * kc];
    for p in 0..kc {
        let row = q.row + p * rs;
        for qi in 0..panels {
            let cols = nr.min(nc - qi * nr);
            let d = &mut dst[(qi * kc + p) * nr..][..nr];
            q.w.dequant_run(row, q.col + qi * nr, &mut d[..cols], q.cvt);
            d[cols..].fill(0.0);
        }
    }
}
