//! Warp collectives, executed once all 32 lanes of a warp are at the same one.
//!
//! `warp` is the register files of the warp's 32 lanes, lane `l` at
//! `warp[l * file .. (l + 1) * file]`. Every source is read for all lanes
//! before any destination is written, so a destination may alias a source.

use crate::float::bf16_to_f32;
use crate::instr::{MmaRegs, ShflMode};

/// `shfl.sync.MODE.b32 d, a, b, 31, 0xffffffff` (PTX ISA with `c = 31`, so
/// `maxLane = 31`, `minLane = 0`): lane `l` reads `a` of lane `j`, where with
/// `bv = b & 31`, `j = l ^ bv` (bfly), `l + bv` or `l` itself past lane 31
/// (down), `bv` (idx).
pub(crate) fn shfl(warp: &mut [u64], file: usize, d: u32, a: u32, b: u32, mode: ShflMode) {
    let (d, a, b) = (d as usize, a as usize, b as usize);
    let src: [u64; 32] = std::array::from_fn(|l| warp[l * file + a]);
    for l in 0..32 {
        let bv = (warp[l * file + b] & 31) as usize;
        let j = match mode {
            ShflMode::Bfly => l ^ bv,
            ShflMode::Down if l + bv <= 31 => l + bv,
            ShflMode::Down => l,
            ShflMode::Idx => bv,
        };
        warp[l * file + d] = src[j];
    }
}

/// `mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32`: `D = A·B + C` with
/// the fragment layout of SUBSET.md. Summation order (ours; the hardware's
/// is unspecified): for each `D[i][j]`, `acc = C[i][j]`, then for `k = 0..16`
/// in increasing order `acc = acc + A[i][k] * B[k][j]`, every product and
/// sum rounded to `f32` (a product of two bf16 values is exact in `f32`
/// unless it overflows or underflows), no fused multiply-add.
pub(crate) fn mma(warp: &mut [u64], file: usize, m: &MmaRegs) {
    let mut a = [[0f32; 16]; 16];
    let mut b = [[0f32; 8]; 16];
    let mut c = [[0f32; 8]; 16];
    let lo = |x: u64| bf16_to_f32(x as u16);
    let hi = |x: u64| bf16_to_f32((x >> 16) as u16);
    for l in 0..32 {
        let r = &warp[l * file..(l + 1) * file];
        let (g, t) = (l >> 2, l & 3);
        let reg = |s: u32| r[s as usize];
        for (i, &(row, col)) in [(g, 2 * t), (g + 8, 2 * t), (g, 2 * t + 8), (g + 8, 2 * t + 8)].iter().enumerate() {
            let v = reg(m.a[i]);
            a[row][col] = lo(v);
            a[row][col + 1] = hi(v);
        }
        for (i, &row) in [2 * t, 2 * t + 8].iter().enumerate() {
            let v = reg(m.b[i]);
            b[row][g] = lo(v);
            b[row + 1][g] = hi(v);
        }
        for (i, &(row, col)) in [(g, 2 * t), (g, 2 * t + 1), (g + 8, 2 * t), (g + 8, 2 * t + 1)].iter().enumerate() {
            c[row][col] = f32::from_bits(reg(m.c[i]) as u32);
        }
    }
    let mut out = [[0f32; 8]; 16];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, o) in row.iter_mut().enumerate() {
            let mut acc = c[i][j];
            for k in 0..16 {
                acc += a[i][k] * b[k][j];
            }
            *o = acc;
        }
    }
    for l in 0..32 {
        let (g, t) = (l >> 2, l & 3);
        for (i, &(row, col)) in [(g, 2 * t), (g, 2 * t + 1), (g + 8, 2 * t), (g + 8, 2 * t + 1)].iter().enumerate() {
            warp[l * file + m.d[i] as usize] = u64::from(out[row][col].to_bits());
        }
    }
}
