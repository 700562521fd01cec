//! Sliding-window index arithmetic shared by the direct convolution and pooling
//! kernels: which input position a window tap reads, and which outputs' taps land
//! inside the input.

/// Output positions `o` (of `out`) whose input index `o·stride + off` is in `0..len`,
/// as a half-open range `(lo, hi)` (empty when `lo == hi`).
#[inline(always)]
pub(crate) fn valid_range(out: usize, len: usize, stride: usize, off: isize) -> (usize, usize) {
    // lo = ceil(-off / stride) clamped at 0; hi = floor((len - 1 - off) / stride) + 1.
    let lo = if off >= 0 { 0 } else { (-off) as usize }.div_ceil(stride);
    let last = len as isize - 1 - off;
    let hi = if last < 0 { 0 } else { (last as usize / stride + 1).min(out) };
    (lo.min(hi), hi)
}

/// The input index that tap `t` of the window at output position `o` reads along
/// one axis (`o·stride + t·dil − pad`), or `None` when it falls in the padding.
#[inline(always)]
pub(crate) fn tap_index(o: usize, t: usize, stride: usize, dil: usize, pad: usize, len: usize) -> Option<usize> {
    (o * stride + t * dil).checked_sub(pad).filter(|&i| i < len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_range_and_tap_index_agree() {
        for (out, len, stride, dil, pad, k) in [(5, 5, 1, 1, 1, 3), (4, 7, 2, 1, 0, 3), (3, 9, 2, 2, 2, 3), (1, 1, 1, 1, 0, 1)] {
            for t in 0..k {
                let off = (t * dil) as isize - pad as isize;
                let (lo, hi) = valid_range(out, len, stride, off);
                for o in 0..out {
                    let inside = tap_index(o, t, stride, dil, pad, len).is_some();
                    assert_eq!(inside, (lo..hi).contains(&o), "o {o} t {t}");
                }
            }
        }
    }
}
