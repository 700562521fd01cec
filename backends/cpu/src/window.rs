//! Sliding-window index arithmetic shared by the direct convolution and pooling
//! kernels: which input position a window tap reads.

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
    fn tap_index_is_inside_exactly_when_the_tap_misses_the_padding() {
        for (out, len, stride, dil, pad, k) in [(5, 5, 1, 1, 1, 3), (4, 7, 2, 1, 0, 3), (3, 9, 2, 2, 2, 3), (1, 1, 1, 1, 0, 1)] {
            for t in 0..k {
                for o in 0..out {
                    let padded = (o * stride + t * dil) as isize;
                    let inside = padded >= pad as isize && padded < (pad + len) as isize;
                    assert_eq!(tap_index(o, t, stride, dil, pad, len), inside.then(|| padded as usize - pad));
                }
            }
        }
    }
}
