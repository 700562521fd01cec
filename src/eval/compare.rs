//! Comparing two tensors elementwise, with NumPy `allclose` semantics.

use crate::graph::tensor::Tensor;
use std::fmt;

/// How far apart two tensors are. Built by [`compare`].
///
/// NaN against NaN and an infinity against the same infinity count as equal;
/// any other pair involving a NaN or an infinity is a mismatch with infinite
/// difference.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// Largest `|a − b|` over the elements (0 for no elements, infinite when the
    /// shapes differ or a NaN/infinity is unmatched).
    pub max_abs: f64,
    /// Largest `|a − b| / |b|` (a zero `b` gives 0 when `a` is 0 too, else infinity).
    pub max_rel: f64,
    /// Whether the shapes are equal (the values are compared only then).
    pub shape_equal: bool,
    /// Whether the dtypes are equal.
    pub dtype_equal: bool,
    /// Row-major position of the element with the largest `|a − b|`, if any differ.
    pub worst: Option<usize>,
    /// `(a, b)` at `worst`.
    pub worst_values: Option<(f64, f64)>,
    /// Per element `(|a − b|, |b|)` (`|a − b|` is 0 for matching NaNs and infinities).
    diffs: Vec<(f64, f64)>,
}

impl Comparison {
    /// True when dtypes and shapes are equal and every element satisfies
    /// `|a − b| <= atol + rtol · |b|` (NumPy `allclose(a, b, rtol, atol, equal_nan=True)`).
    pub fn within(&self, atol: f64, rtol: f64) -> bool {
        self.shape_equal && self.dtype_equal && self.diffs.iter().all(|&(d, b)| close(d, b, atol, rtol))
    }

    /// Number of elements that fail `within(atol, rtol)`'s test.
    pub fn count_outside(&self, atol: f64, rtol: f64) -> usize {
        self.diffs.iter().filter(|&&(d, b)| !close(d, b, atol, rtol)).count()
    }
}

fn close(diff: f64, b_abs: f64, atol: f64, rtol: f64) -> bool {
    diff <= atol + rtol * b_abs
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.shape_equal {
            return f.write_str("shapes differ");
        }
        write!(f, "max abs diff {:e}, max rel diff {:e}", self.max_abs, self.max_rel)?;
        if let (Some(i), Some((a, b))) = (self.worst, self.worst_values) {
            write!(f, " (worst at element {i}: {a} vs {b})")?;
        }
        if !self.dtype_equal {
            f.write_str("; dtypes differ")?;
        }
        Ok(())
    }
}

/// Compares `a` against the reference `b` elementwise (values widened to f64).
pub fn compare(a: &Tensor, b: &Tensor) -> Comparison {
    let shape_equal = a.ty.shape == b.ty.shape;
    let dtype_equal = a.ty.dtype == b.ty.dtype;
    let mut c = Comparison {
        max_abs: if shape_equal { 0.0 } else { f64::INFINITY },
        max_rel: if shape_equal { 0.0 } else { f64::INFINITY },
        shape_equal,
        dtype_equal,
        worst: None,
        worst_values: None,
        diffs: Vec::new(),
    };
    if !shape_equal {
        return c;
    }
    let (av, bv) = (a.to_f64(), b.to_f64());
    c.diffs.reserve(av.len());
    for (i, (&x, &y)) in av.iter().zip(&bv).enumerate() {
        let same_special = (x.is_nan() && y.is_nan()) || (x.is_infinite() && x == y);
        let d = if same_special {
            0.0
        } else if x.is_finite() && y.is_finite() {
            (x - y).abs()
        } else {
            f64::INFINITY
        };
        let rel = if d == 0.0 { 0.0 } else { d / y.abs() };
        c.max_rel = c.max_rel.max(if rel.is_nan() { f64::INFINITY } else { rel });
        if d > c.max_abs {
            c.max_abs = d;
            c.worst = Some(i);
            c.worst_values = Some((x, y));
        }
        c.diffs.push((d, if y.is_finite() { y.abs() } else { 0.0 }));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::{DType, TensorType};

    fn t(v: &[f64]) -> Tensor {
        Tensor::from_f64(TensorType::new(vec![v.len()], DType::F64), v)
    }

    #[test]
    fn allclose_semantics_per_element() {
        let c = compare(&t(&[1.0, 100.0, 0.0]), &t(&[1.1, 101.0, 0.0]));
        assert!((c.max_abs - 1.0).abs() < 1e-12);
        assert_eq!(c.worst, Some(1));
        assert!((c.max_rel - 0.1 / 1.1).abs() < 1e-12);
        // element 0 needs atol >= 0.1 (rtol 0.01 · 1.1 is too little); element 1 fits rtol.
        assert!(!c.within(0.05, 0.01));
        assert!(c.within(0.1, 0.01));
        assert!(c.within(0.0, 0.1));
        assert_eq!(c.count_outside(0.0, 0.05), 1);
    }

    #[test]
    fn nan_and_infinity_handling() {
        let same = compare(&t(&[f64::NAN, f64::INFINITY]), &t(&[f64::NAN, f64::INFINITY]));
        assert!(same.within(0.0, 0.0));
        assert_eq!(same.max_abs, 0.0);
        let diff = compare(&t(&[f64::NAN, 1.0]), &t(&[0.0, 1.0]));
        assert!(!diff.within(1e9, 1e9));
        assert_eq!(diff.max_abs, f64::INFINITY);
        let zero = compare(&t(&[1e-9]), &t(&[0.0]));
        assert_eq!(zero.max_rel, f64::INFINITY);
        assert!(zero.within(1e-8, 0.0));
    }

    #[test]
    fn shape_and_dtype_mismatch_are_not_within() {
        let c = compare(&t(&[1.0, 2.0]), &t(&[1.0]));
        assert!(!c.shape_equal && !c.within(1.0, 1.0));
        let f32 = Tensor::from_f64(TensorType::new(vec![1], DType::F32), &[1.0]);
        let c = compare(&f32, &t(&[1.0]));
        assert!(c.shape_equal && !c.dtype_equal && !c.within(1.0, 1.0));
        assert_eq!(c.max_abs, 0.0);
    }
}
