//! Floating-point semantics that differ from Rust's defaults or need care.

use crate::instr::FCmp;

/// `min.f32`: a NaN operand yields the other one (NaN only if both are);
/// `-0.0` is smaller than `+0.0`.
#[inline]
pub(crate) fn min_f32(a: f32, b: f32) -> f32 {
    if a.is_nan() {
        b
    } else if b.is_nan() || a < b {
        a
    } else if b < a {
        b
    } else {
        // Equal: differs only for zeros of both signs, where the negative one wins.
        f32::from_bits(a.to_bits() | b.to_bits())
    }
}

/// `max.f32`: a NaN operand yields the other one; `+0.0` is larger than `-0.0`.
#[inline]
pub(crate) fn max_f32(a: f32, b: f32) -> f32 {
    if a.is_nan() {
        b
    } else if b.is_nan() || a > b {
        a
    } else if b > a {
        b
    } else {
        f32::from_bits(a.to_bits() & b.to_bits())
    }
}

/// `setp.CMP.f32`: ordered comparisons are false when either operand is
/// NaN, unordered ones (`*u`) true; `num` / `nan` test for NaN.
#[inline]
pub(crate) fn setp_f32(cmp: FCmp, a: f32, b: f32) -> bool {
    let unordered = a.is_nan() || b.is_nan();
    match cmp {
        FCmp::Eq => a == b,
        FCmp::Ne => !unordered && a != b,
        FCmp::Lt => a < b,
        FCmp::Le => a <= b,
        FCmp::Gt => a > b,
        FCmp::Ge => a >= b,
        FCmp::Equ => unordered || a == b,
        FCmp::Neu => a != b,
        FCmp::Ltu => unordered || a < b,
        FCmp::Leu => unordered || a <= b,
        FCmp::Gtu => unordered || a > b,
        FCmp::Geu => unordered || a >= b,
        FCmp::Num => !unordered,
        FCmp::Nan => unordered,
    }
}

/// The bf16 nearest to `x`, ties to even (so values past the largest finite
/// bf16 round to infinity); any NaN becomes the canonical quiet NaN `0x7fc0`.
#[inline]
pub(crate) fn bf16_rne(x: f32) -> u16 {
    if x.is_nan() {
        return 0x7fc0;
    }
    let bits = x.to_bits();
    let lsb = (bits >> 16) & 1;
    // No overflow: the largest non-NaN pattern is 0xff80_0000 (-inf).
    ((bits + 0x7fff + lsb) >> 16) as u16
}

/// The `f32` value of a bf16 (exact).
#[inline]
pub(crate) fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounding() {
        assert_eq!(bf16_rne(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
        assert_eq!(bf16_rne(f32::from_bits(0x3f80_8000)), 0x3f80);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: even is the upper.
        assert_eq!(bf16_rne(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(bf16_rne(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(bf16_rne(f32::MAX), 0x7f80);
        assert_eq!(bf16_rne(f32::NEG_INFINITY), 0xff80);
        assert_eq!(bf16_rne(f32::NAN), 0x7fc0);
        assert_eq!(bf16_to_f32(0xc040), -3.0);
    }

    #[test]
    fn min_max_zeros_and_nan() {
        assert_eq!(min_f32(0.0, -0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(max_f32(-0.0, 0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(min_f32(f32::NAN, 2.0), 2.0);
        assert_eq!(max_f32(2.0, f32::NAN), 2.0);
        assert!(min_f32(f32::NAN, f32::NAN).is_nan());
    }
}
