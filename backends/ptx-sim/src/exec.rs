//! The per-thread interpreter loop.
//!
//! [`run`] executes one thread from its `pc` until it ends (`ret`), reaches a
//! block barrier or a warp collective (which the block scheduler in
//! `launch` completes), or faults. Values follow the slot invariant of
//! `instr` (width-`w` values zero-extended to 64 bits; predicates 0/1).
//! Every instruction issued, including one whose guard is false, costs one
//! unit of the launch's budget.

use crate::error::Space;
use crate::float::{bf16_rne, max_f32, min_f32, setp_f32};
use crate::instr::{ICmp, Instr, Op};
use crate::memory::{Fault, Global};

/// Why a thread stopped running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// At `bar.sync` (its `pc`).
    Barrier,
    /// At `shfl.sync` or `mma.sync` (its `pc`).
    Collective,
    /// Executed `ret`.
    Done,
}

/// Bounds- and alignment-checked access to the block's shared window; `addr`
/// is the 32-bit offset in the window.
#[inline]
fn shared_offset(shared: &[u8], addr: u64) -> Result<usize, Fault> {
    if addr & 3 != 0 {
        return Err(Fault::Misaligned {
            space: Space::Shared,
            addr,
            size: 4,
        });
    }
    if addr + 4 > shared.len() as u64 {
        return Err(Fault::OutOfBounds {
            space: Space::Shared,
            addr,
            size: 4,
        });
    }
    Ok(addr as usize)
}

#[inline]
fn icmp<T: Ord>(cmp: ICmp, a: T, b: T) -> bool {
    match cmp {
        ICmp::Eq => a == b,
        ICmp::Ne => a != b,
        ICmp::Lt => a < b,
        ICmp::Le => a <= b,
        ICmp::Gt => a > b,
        ICmp::Ge => a >= b,
    }
}

#[inline]
fn f(x: u64) -> f32 {
    f32::from_bits(x as u32)
}

#[inline]
fn bits(x: f32) -> u64 {
    u64::from(x.to_bits())
}

#[inline]
fn i32_of(x: u64) -> i32 {
    x as u32 as i32
}

#[inline]
fn of_i32(x: i32) -> u64 {
    u64::from(x as u32)
}

/// Runs a thread whose register file is `r` from `*pc`. On return `*pc` is
/// the instruction that stopped it (the barrier, the collective, the `ret`)
/// or faulted; `budget` is decremented by the instructions issued.
pub(crate) fn run(
    code: &[Instr],
    r: &mut [u64],
    pc: &mut usize,
    global: &mut Global,
    shared: &mut [u8],
    budget: &mut u64,
) -> Result<Stop, Fault> {
    let mut p = *pc;
    let mut left = *budget;
    let result = loop {
        let ins = &code[p];
        if left == 0 {
            break Err(Fault::Budget);
        }
        left -= 1;
        if r[ins.guard as usize] ^ ins.negate == 0 {
            p += 1;
            continue;
        }
        macro_rules! g {
            ($s:expr) => {
                r[$s as usize]
            };
        }
        macro_rules! set {
            ($d:expr, $v:expr) => {{
                let v = $v;
                r[$d as usize] = v;
            }};
        }
        match ins.op {
            Op::Mov { d, a } => set!(d, g!(a)),
            Op::Pack16 { d, lo, hi } => set!(d, g!(lo) | (g!(hi) << 16)),
            Op::AddI32 { d, a, b } => set!(d, u64::from((g!(a) as u32).wrapping_add(g!(b) as u32))),
            Op::AddI64 { d, a, b } => set!(d, g!(a).wrapping_add(g!(b))),
            Op::SubI32 { d, a, b } => set!(d, u64::from((g!(a) as u32).wrapping_sub(g!(b) as u32))),
            Op::SubI64 { d, a, b } => set!(d, g!(a).wrapping_sub(g!(b))),
            Op::MulLoI32 { d, a, b } => set!(d, u64::from((g!(a) as u32).wrapping_mul(g!(b) as u32))),
            Op::MulLoI64 { d, a, b } => set!(d, g!(a).wrapping_mul(g!(b))),
            Op::MadLoI32 { d, a, b, c } => set!(d, u64::from((g!(a) as u32).wrapping_mul(g!(b) as u32).wrapping_add(g!(c) as u32))),
            Op::MadLoI64 { d, a, b, c } => set!(d, g!(a).wrapping_mul(g!(b)).wrapping_add(g!(c))),
            Op::MulWideU32 { d, a, b } => set!(d, g!(a) * g!(b)),
            Op::MulWideS32 { d, a, b } => set!(d, (i64::from(i32_of(g!(a))) * i64::from(i32_of(g!(b)))) as u64),
            Op::DivU32 { d, a, b } | Op::DivU64 { d, a, b } => {
                // Both widths: operands are zero-extended, so the u64 quotient is the u32 one.
                let y = g!(b);
                if y == 0 {
                    break Err(Fault::DivisionByZero);
                }
                set!(d, g!(a) / y)
            }
            Op::RemU32 { d, a, b } | Op::RemU64 { d, a, b } => {
                let y = g!(b);
                if y == 0 {
                    break Err(Fault::DivisionByZero);
                }
                set!(d, g!(a) % y)
            }
            Op::DivS32 { d, a, b } => {
                let y = i32_of(g!(b));
                if y == 0 {
                    break Err(Fault::DivisionByZero);
                }
                set!(d, of_i32(i32_of(g!(a)).wrapping_div(y)))
            }
            Op::RemS32 { d, a, b } => {
                let y = i32_of(g!(b));
                if y == 0 {
                    break Err(Fault::DivisionByZero);
                }
                set!(d, of_i32(i32_of(g!(a)).wrapping_rem(y)))
            }
            Op::DivS64 { d, a, b } => {
                let y = g!(b) as i64;
                if y == 0 {
                    break Err(Fault::DivisionByZero);
                }
                set!(d, (g!(a) as i64).wrapping_div(y) as u64)
            }
            Op::RemS64 { d, a, b } => {
                let y = g!(b) as i64;
                if y == 0 {
                    break Err(Fault::DivisionByZero);
                }
                set!(d, (g!(a) as i64).wrapping_rem(y) as u64)
            }
            Op::MinU { d, a, b } => set!(d, g!(a).min(g!(b))),
            Op::MaxU { d, a, b } => set!(d, g!(a).max(g!(b))),
            Op::MinS32 { d, a, b } => set!(d, of_i32(i32_of(g!(a)).min(i32_of(g!(b))))),
            Op::MaxS32 { d, a, b } => set!(d, of_i32(i32_of(g!(a)).max(i32_of(g!(b))))),
            Op::MinS64 { d, a, b } => set!(d, (g!(a) as i64).min(g!(b) as i64) as u64),
            Op::MaxS64 { d, a, b } => set!(d, (g!(a) as i64).max(g!(b) as i64) as u64),
            Op::NegS32 { d, a } => set!(d, of_i32(i32_of(g!(a)).wrapping_neg())),
            Op::AbsS32 { d, a } => set!(d, of_i32(i32_of(g!(a)).wrapping_abs())),
            Op::And { d, a, b } => set!(d, g!(a) & g!(b)),
            Op::Or { d, a, b } => set!(d, g!(a) | g!(b)),
            Op::Xor { d, a, b } => set!(d, g!(a) ^ g!(b)),
            Op::Not32 { d, a } => set!(d, !g!(a) & 0xffff_ffff),
            Op::Not64 { d, a } => set!(d, !g!(a)),
            Op::NotPred { d, a } => set!(d, g!(a) ^ 1),
            Op::Shl32 { d, a, b } => {
                let s = g!(b);
                set!(d, if s >= 32 { 0 } else { u64::from((g!(a) as u32) << s) })
            }
            Op::Shl64 { d, a, b } => {
                let s = g!(b);
                set!(d, if s >= 64 { 0 } else { g!(a) << s })
            }
            Op::ShrU32 { d, a, b } | Op::ShrU64 { d, a, b } => {
                // Zero-extended operands: a logical shift of the u64 is the u32 one.
                let s = g!(b);
                set!(d, if s >= 64 { 0 } else { g!(a) >> s })
            }
            Op::ShrS32 { d, a, b } => set!(d, of_i32(i32_of(g!(a)) >> g!(b).min(31))),
            Op::ShrS64 { d, a, b } => set!(d, ((g!(a) as i64) >> g!(b).min(63)) as u64),
            Op::AddF32 { d, a, b } => set!(d, bits(f(g!(a)) + f(g!(b)))),
            Op::SubF32 { d, a, b } => set!(d, bits(f(g!(a)) - f(g!(b)))),
            Op::MulF32 { d, a, b } => set!(d, bits(f(g!(a)) * f(g!(b)))),
            Op::DivF32 { d, a, b } => set!(d, bits(f(g!(a)) / f(g!(b)))),
            Op::MinF32 { d, a, b } => set!(d, bits(min_f32(f(g!(a)), f(g!(b))))),
            Op::MaxF32 { d, a, b } => set!(d, bits(max_f32(f(g!(a)), f(g!(b))))),
            Op::FmaF32 { d, a, b, c } => set!(d, bits(f(g!(a)).mul_add(f(g!(b)), f(g!(c))))),
            Op::NegF32 { d, a } => set!(d, g!(a) ^ 0x8000_0000),
            Op::AbsF32 { d, a } => set!(d, g!(a) & 0x7fff_ffff),
            Op::SqrtF32 { d, a } => set!(d, bits(f(g!(a)).sqrt())),
            Op::RcpF32 { d, a } => set!(d, bits(1.0 / f(g!(a)))),
            Op::RsqrtF32 { d, a } => set!(d, bits((1.0 / f64::from(f(g!(a))).sqrt()) as f32)),
            Op::Ex2F32 { d, a } => set!(d, bits(f64::from(f(g!(a))).exp2() as f32)),
            Op::Lg2F32 { d, a } => set!(d, bits(f64::from(f(g!(a))).log2() as f32)),
            Op::TanhF32 { d, a } => set!(d, bits(f64::from(f(g!(a))).tanh() as f32)),
            Op::SetpU { d, a, b, cmp } => set!(d, u64::from(icmp(cmp, g!(a), g!(b)))),
            Op::SetpS32 { d, a, b, cmp } => set!(d, u64::from(icmp(cmp, i32_of(g!(a)), i32_of(g!(b))))),
            Op::SetpS64 { d, a, b, cmp } => set!(d, u64::from(icmp(cmp, g!(a) as i64, g!(b) as i64))),
            Op::SetpF32 { d, a, b, cmp } => set!(d, u64::from(setp_f32(cmp, f(g!(a)), f(g!(b))))),
            Op::Selp { d, a, b, p } => set!(d, if g!(p) != 0 { g!(a) } else { g!(b) }),
            Op::SextS32 { d, a } => set!(d, i64::from(i32_of(g!(a))) as u64),
            Op::Trunc32 { d, a } => set!(d, g!(a) & 0xffff_ffff),
            Op::CvtF32S32 { d, a } => set!(d, bits(i32_of(g!(a)) as f32)),
            Op::CvtF32U32 { d, a } => set!(d, bits(g!(a) as u32 as f32)),
            Op::CvtS32F32Rzi { d, a } => set!(d, of_i32(f(g!(a)) as i32)),
            Op::CvtF32Rmi { d, a } => set!(d, bits(f(g!(a)).floor())),
            Op::CvtF32Rni { d, a } => set!(d, bits(f(g!(a)).round_ties_even())),
            Op::CvtF32Rzi { d, a } => set!(d, bits(f(g!(a)).trunc())),
            Op::CvtF32F16 { d, a } => set!(d, bits(half::f16::from_bits(g!(a) as u16).to_f32())),
            Op::CvtBf16x2 { d, hi, lo } => set!(d, (u64::from(bf16_rne(f(g!(hi)))) << 16) | u64::from(bf16_rne(f(g!(lo))))),
            Op::LdGU8 { d, a, off } => match global.load::<1>(g!(a).wrapping_add(g!(off))) {
                Ok(v) => set!(d, u64::from(v[0])),
                Err(e) => break Err(e),
            },
            Op::LdGS8 { d, a, off } => match global.load::<1>(g!(a).wrapping_add(g!(off))) {
                Ok(v) => set!(d, of_i32(i32::from(v[0] as i8))),
                Err(e) => break Err(e),
            },
            Op::LdG16 { d, a, off } => match global.load::<2>(g!(a).wrapping_add(g!(off))) {
                Ok(v) => set!(d, u64::from(u16::from_le_bytes(v))),
                Err(e) => break Err(e),
            },
            Op::LdG32 { d, a, off } => match global.load::<4>(g!(a).wrapping_add(g!(off))) {
                Ok(v) => set!(d, u64::from(u32::from_le_bytes(v))),
                Err(e) => break Err(e),
            },
            Op::LdG64 { d, a, off } => match global.load::<8>(g!(a).wrapping_add(g!(off))) {
                Ok(v) => set!(d, u64::from_le_bytes(v)),
                Err(e) => break Err(e),
            },
            Op::StG32 { a, off, v } => {
                if let Err(e) = global.store::<4>(g!(a).wrapping_add(g!(off)), (g!(v) as u32).to_le_bytes()) {
                    break Err(e);
                }
            }
            Op::LdS32 { d, a, off } => match shared_offset(shared, g!(a).wrapping_add(g!(off)) & 0xffff_ffff) {
                Ok(o) => set!(
                    d,
                    u64::from(u32::from_le_bytes([shared[o], shared[o + 1], shared[o + 2], shared[o + 3]]))
                ),
                Err(e) => break Err(e),
            },
            Op::StS32 { a, off, v } => match shared_offset(shared, g!(a).wrapping_add(g!(off)) & 0xffff_ffff) {
                Ok(o) => shared[o..o + 4].copy_from_slice(&(g!(v) as u32).to_le_bytes()),
                Err(e) => break Err(e),
            },
            Op::Bra { target } => {
                p = target as usize;
                continue;
            }
            Op::Ret => break Ok(Stop::Done),
            Op::BarSync => break Ok(Stop::Barrier),
            Op::Shfl { .. } | Op::Mma { .. } => break Ok(Stop::Collective),
        }
        p += 1;
    };
    *pc = p;
    *budget = left;
    result
}
