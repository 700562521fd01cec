//! Non-negative, totally ordered, saturating costs.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::iter::Sum;
use std::ops::{Add, AddAssign};

use crate::error::ExtractError;

/// A non-negative, non-NaN cost with a total order and saturating addition.
///
/// [`Cost::INFINITY`] stands for "impossible": anything plus infinity is
/// infinity.
///
/// ```
/// use eqopt_extract::Cost;
/// let a = Cost::new(1.5).unwrap();
/// assert_eq!((a + Cost::ZERO).value(), 1.5);
/// assert_eq!(a + Cost::INFINITY, Cost::INFINITY);
/// assert!(Cost::new(f64::NAN).is_err());
/// assert!(Cost::new(-1.0).is_err());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Cost(f64);

impl Cost {
    /// The zero cost.
    pub const ZERO: Cost = Cost(0.0);
    /// The cost of something impossible; absorbs every addition.
    pub const INFINITY: Cost = Cost(f64::INFINITY);

    /// Wraps `v`; NaN and negative values are rejected with
    /// [`ExtractError::InvalidCost`]. `-0.0` becomes `0.0`.
    pub fn new(v: f64) -> Result<Cost, ExtractError> {
        if v.is_nan() || v < 0.0 {
            return Err(ExtractError::InvalidCost { value: v });
        }
        // `v + 0.0` turns -0.0 into +0.0 so that equal costs hash equally.
        Ok(Cost(v + 0.0))
    }

    /// The wrapped value.
    pub fn value(self) -> f64 {
        self.0
    }

    /// Whether the cost is finite (not [`Cost::INFINITY`]).
    pub fn is_finite(self) -> bool {
        self.0.is_finite()
    }
}

impl PartialEq for Cost {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Cost {}

impl PartialOrd for Cost {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Cost {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl Hash for Cost {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

impl Add for Cost {
    type Output = Cost;
    fn add(self, rhs: Cost) -> Cost {
        // Both operands are >= 0 and not NaN, so the sum is too (inf + x = inf).
        Cost(self.0 + rhs.0)
    }
}

impl AddAssign for Cost {
    fn add_assign(&mut self, rhs: Cost) {
        *self = *self + rhs;
    }
}

impl Sum for Cost {
    fn sum<I: Iterator<Item = Cost>>(iter: I) -> Cost {
        iter.fold(Cost::ZERO, Add::add)
    }
}

impl<'a> Sum<&'a Cost> for Cost {
    fn sum<I: Iterator<Item = &'a Cost>>(iter: I) -> Cost {
        iter.copied().sum()
    }
}

impl fmt::Display for Cost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_infinite() {
            f.write_str("inf")
        } else {
            fmt::Display::fmt(&self.0, f)
        }
    }
}

impl TryFrom<f64> for Cost {
    type Error = ExtractError;
    fn try_from(v: f64) -> Result<Cost, ExtractError> {
        Cost::new(v)
    }
}
