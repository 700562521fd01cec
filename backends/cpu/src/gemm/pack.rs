//! Packing of the operands of the packed SGEMM ([`super::packed`]) into the
//! micro-panel layouts its micro-kernels stream through.
//!
//! * `A` (`mc × kc` block) becomes `⌈mc / mr⌉` micro-panels of `mr` rows; panel
//!   `q` holds, for each `p < kc`, the `mr` values `A[q·mr + i, p]` one after
//!   another (`kc · mr` floats, rows past `mc` zero).
//! * `B` (`kc × nc` block) becomes `⌈nc / nr⌉` micro-panels of `nr` columns;
//!   panel `q` holds, for each `p < kc`, the `nr` values `B[p, q·nr + j]`
//!   (`kc · nr` floats, columns past `nc` zero). `f16`/`bf16` elements are
//!   converted to `f32` here, so reduced-precision weights need no separate pass.
//!
//! Both read arbitrary (row, column) element strides, so transposed operands
//! cost nothing extra beyond a different loop order.

use half::{bf16, f16};

use super::weights::f16_to_f32;

/// The element pointer of a `B` operand in one of the supported precisions.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BPtr {
    /// `f32` elements.
    F32(*const f32),
    /// IEEE half elements.
    F16(*const f16),
    /// bfloat16 elements.
    Bf16(*const bf16),
}

/// A strided `B` operand: element `(p, j)` at `ptr + p·rs + j·cs`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BSrc {
    /// Element `(0, 0)`.
    pub ptr: BPtr,
    /// Distance between rows (the `k` dimension).
    pub rs: usize,
    /// Distance between columns (the `n` dimension).
    pub cs: usize,
}

impl BSrc {
    /// The same operand starting at element `(p, j)`.
    ///
    /// # Safety
    /// `(p, j)` is an element of the operand (its offset is in bounds).
    pub(crate) unsafe fn offset(&self, p: usize, j: usize) -> BSrc {
        let off = p * self.rs + j * self.cs;
        // SAFETY: in bounds by the caller's contract.
        let ptr = unsafe {
            match self.ptr {
                BPtr::F32(x) => BPtr::F32(x.add(off)),
                BPtr::F16(x) => BPtr::F16(x.add(off)),
                BPtr::Bf16(x) => BPtr::Bf16(x.add(off)),
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
    super::mv::wide(|| {
        for (q, panel) in dst[..mc.div_ceil(mr) * mr * kc].chunks_exact_mut(mr * kc).enumerate() {
            let (i0, rows) = (q * mr, mr.min(mc - q * mr));
            // SAFETY: rows i0..i0 + rows < mc and columns < kc are readable (contract).
            let src = unsafe { a.add(i0 * rs) };
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
pub(crate) unsafe fn pack_b(b: &BSrc, kc: usize, nc: usize, nr: usize, dst: &mut [f32]) {
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
            } else if let (BPtr::F32(ptr), 1, 32, 32) = (b.ptr, cs, cols, nr) {
                // The common full AVX-512 panel of a row-major f32 B: fixed-size copies.
                // SAFETY: row p < kc, columns j0..j0 + 32 ≤ nc (contract).
                unsafe { copy_rows::<32>(ptr.add(j0), rs, panel) };
            } else if let (BPtr::F32(ptr), 1, 16, 16) = (b.ptr, cs, cols, nr) {
                // SAFETY: as above, for the AVX2 panel.
                unsafe { copy_rows::<16>(ptr.add(j0), rs, panel) };
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

/// Copies `W` contiguous floats from each row `p` (`src + p·rs`) to `dst[p·W..]`,
/// for every full chunk of `dst`.
///
/// # Safety
/// `src + p·rs .. + W` is readable for every `p < dst.len() / W`.
#[inline(always)]
unsafe fn copy_rows<const W: usize>(src: *const f32, rs: usize, dst: &mut [f32]) {
    for (p, d) in dst.chunks_exact_mut(W).enumerate() {
        // SAFETY: row p is readable for W floats (contract); `[f32; W]` has align 4.
        let row = unsafe { &*(src.add(p * rs) as *const [f32; W]) };
        d.copy_from_slice(row);
    }
}
