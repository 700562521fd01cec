//! Strided input views, their bounds checks, and the row layout the executor walks.

use crate::KernelError;

/// One input of an elementwise kernel: a strided view of `data` indexed by the
/// *output*'s coordinates. Output element `(i_0, …, i_{r-1})` reads
/// `data[offset + Σ i_d · strides[d]]`. A stride of 0 broadcasts along that
/// dimension; negative strides are allowed (with an `offset` that keeps every
/// reached index in bounds).
#[derive(Debug, Clone, PartialEq)]
pub struct EwInput<'a> {
    /// The buffer the view reads.
    pub data: &'a [f32],
    /// Element offset of output coordinate zero.
    pub offset: usize,
    /// Element stride per output dimension (one per dimension of the output shape).
    pub strides: Vec<isize>,
}

impl<'a> EwInput<'a> {
    /// A view with explicit offset and strides.
    pub fn strided(data: &'a [f32], offset: usize, strides: Vec<isize>) -> Self {
        EwInput { data, offset, strides }
    }

    /// A dense row-major input of exactly the output's shape.
    pub fn contiguous(data: &'a [f32], out_shape: &[usize]) -> Self {
        EwInput {
            data,
            offset: 0,
            strides: row_major_strides(out_shape),
        }
    }

    /// A dense row-major input of shape `in_shape`, broadcast to `out_shape` by
    /// NumPy's rules (shapes aligned at the right; a missing or size-1 dimension
    /// repeats). Errors ([`KernelError::Shape`]) if the shapes are not compatible;
    /// the buffer's length is checked when the kernel runs.
    pub fn broadcast(data: &'a [f32], in_shape: &[usize], out_shape: &[usize]) -> Result<Self, KernelError> {
        if in_shape.len() > out_shape.len() {
            return Err(KernelError::Shape {
                kernel: "elementwise",
                what: format!("input shape {in_shape:?} has more dimensions than output shape {out_shape:?}"),
            });
        }
        let lead = out_shape.len() - in_shape.len();
        let dense = row_major_strides(in_shape);
        let mut strides = vec![0isize; out_shape.len()];
        for (d, (&n, &st)) in in_shape.iter().zip(&dense).enumerate() {
            let o = out_shape[lead + d];
            strides[lead + d] = if n == o {
                st
            } else if n == 1 {
                0
            } else {
                return Err(KernelError::Shape {
                    kernel: "elementwise",
                    what: format!("input shape {in_shape:?} does not broadcast to {out_shape:?}"),
                });
            };
        }
        Ok(EwInput { data, offset: 0, strides })
    }
}

/// Row-major element strides of a dense tensor.
pub(crate) fn row_major_strides(shape: &[usize]) -> Vec<isize> {
    let mut strides = vec![0isize; shape.len()];
    let mut acc: isize = 1;
    for (s, &n) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc = acc.saturating_mul(n as isize);
    }
    strides
}

/// The smallest and largest element offsets a view of a non-empty `shape` reaches,
/// or `None` on arithmetic overflow.
pub(crate) fn view_range(offset: usize, shape: &[usize], strides: &[isize]) -> Option<(i64, i64)> {
    let mut lo = i64::try_from(offset).ok()?;
    let mut hi = lo;
    for (&n, &st) in shape.iter().zip(strides) {
        let span = i64::try_from(n.checked_sub(1)?).ok()?.checked_mul(st as i64)?;
        if span < 0 {
            lo = lo.checked_add(span)?;
        } else {
            hi = hi.checked_add(span)?;
        }
    }
    Some((lo, hi))
}

/// Checks that a view of a non-empty `shape` stays inside `len` elements.
pub(crate) fn check_view(
    kernel: &'static str,
    operand: &'static str,
    index: usize,
    len: usize,
    offset: usize,
    shape: &[usize],
    strides: &[isize],
) -> Result<(), KernelError> {
    let oob = |min, max| KernelError::ViewOutOfBounds {
        kernel,
        operand,
        index,
        min,
        max,
        len,
    };
    match view_range(offset, shape, strides) {
        None => Err(oob(i64::MIN, i64::MAX)),
        Some((lo, hi)) if lo < 0 || hi >= len as i64 => Err(oob(lo, hi)),
        Some(_) => Ok(()),
    }
}

/// The output split into rows: dimensions of size one dropped and adjacent
/// dimensions merged wherever every input allows, so that the innermost
/// dimension (the row) is as long as possible.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    /// Merged output shape (at least one dimension; the last is the row).
    pub shape: Vec<usize>,
    /// Per input, its strides over `shape`.
    pub strides: Vec<Vec<isize>>,
}

impl Layout {
    /// Builds the layout of a non-empty output.
    pub fn new(out_shape: &[usize], inputs: &[EwInput<'_>]) -> Layout {
        let keep: Vec<usize> = (0..out_shape.len()).filter(|&d| out_shape[d] != 1).collect();
        let mut shape: Vec<usize> = Vec::new();
        let mut strides: Vec<Vec<isize>> = vec![Vec::new(); inputs.len()];
        for &d in &keep {
            let n = out_shape[d];
            let mergeable = !shape.is_empty()
                && inputs.iter().zip(&strides).all(|(inp, st)| {
                    let prev = st[st.len() - 1];
                    prev == inp.strides[d].wrapping_mul(n as isize)
                });
            if mergeable {
                let last = shape.len() - 1;
                shape[last] *= n;
                for (inp, st) in inputs.iter().zip(strides.iter_mut()) {
                    let l = st.len() - 1;
                    st[l] = inp.strides[d];
                }
            } else {
                shape.push(n);
                for (inp, st) in inputs.iter().zip(strides.iter_mut()) {
                    st.push(inp.strides[d]);
                }
            }
        }
        if shape.is_empty() {
            shape.push(1);
            for st in strides.iter_mut() {
                st.push(0);
            }
        }
        Layout { shape, strides }
    }

    /// Length of a row.
    pub fn row_len(&self) -> usize {
        self.shape[self.shape.len() - 1]
    }

    /// Element offset of row `row`'s first element in input `k`.
    pub fn row_base(&self, k: usize, offset: usize, row: usize) -> isize {
        let st = &self.strides[k];
        let r = self.shape.len() - 1;
        let mut rem = row;
        let mut base = offset as isize;
        for d in (0..r).rev() {
            let n = self.shape[d];
            base += (rem % n) as isize * st[d];
            rem /= n;
        }
        base
    }
}
