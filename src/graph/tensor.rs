//! Tensor values: constant data, how graph.json declares it, and the seeded
//! random generator that makes synthetic weights reproducible.

use crate::dtype::{DType, TensorType};
use half::{bf16, f16};
use std::sync::Arc;

/// Element storage of a tensor, one variant per dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// f32 elements.
    F32(Vec<f32>),
    /// f64 elements.
    F64(Vec<f64>),
    /// f16 elements.
    F16(Vec<f16>),
    /// bf16 elements.
    BF16(Vec<bf16>),
    /// i8 elements.
    I8(Vec<i8>),
    /// i4 elements, one per `i8` in memory (each in `[-8, 7]`); two to a byte in
    /// [`Tensor::to_le_bytes`].
    I4(Vec<i8>),
    /// i32 elements.
    I32(Vec<i32>),
    /// i64 elements.
    I64(Vec<i64>),
    /// bool elements as 0/1 bytes.
    Bool(Vec<u8>),
}

/// A dense row-major tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Shape and dtype; `data` holds exactly `ty.numel()` elements of `ty.dtype`.
    pub ty: TensorType,
    /// The elements.
    pub data: TensorData,
}

impl Tensor {
    /// Builds a tensor of type `ty` from f64 values, converting (rounding toward
    /// zero and saturating for integers). `values.len()` must equal `ty.numel()`.
    pub fn from_f64(ty: TensorType, values: &[f64]) -> Tensor {
        debug_assert_eq!(values.len(), ty.numel());
        let data = match ty.dtype {
            DType::F32 => TensorData::F32(values.iter().map(|&v| v as f32).collect()),
            DType::F64 => TensorData::F64(values.to_vec()),
            DType::F16 => TensorData::F16(values.iter().map(|&v| f16::from_f64(v)).collect()),
            // Through f32: `half`'s `bf16::from_f64` drops the bits below the
            // rounding bit (0x3f808001 as f64 gives 0x3f80, not 0x3f81), so it
            // would disagree with the CPU kernels' round-to-nearest-even.
            DType::BF16 => TensorData::BF16(values.iter().map(|&v| bf16::from_f32(v as f32)).collect()),
            DType::I8 => TensorData::I8(values.iter().map(|&v| v as i8).collect()),
            DType::I4 => TensorData::I4(values.iter().map(|&v| (v as i8).clamp(-8, 7)).collect()),
            DType::I32 => TensorData::I32(values.iter().map(|&v| v as i32).collect()),
            DType::I64 => TensorData::I64(values.iter().map(|&v| v as i64).collect()),
            DType::Bool => TensorData::Bool(values.iter().map(|&v| u8::from(v != 0.0)).collect()),
        };
        Tensor { ty, data }
    }

    /// All elements widened to f64.
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::F64(v) => v.clone(),
            TensorData::F16(v) => v.iter().map(|x| x.to_f64()).collect(),
            TensorData::BF16(v) => v.iter().map(|x| x.to_f64()).collect(),
            TensorData::I8(v) | TensorData::I4(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::I32(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }

    /// Little-endian bytes of the elements (the safetensors layout). `i4`
    /// elements are packed two to a byte in row-major order, the first in the
    /// low nibble, as two's complement (ONNX's `INT4` layout); an odd count
    /// leaves the last high nibble 0.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        fn collect<T, const N: usize>(v: &[T], f: impl Fn(&T) -> [u8; N]) -> Vec<u8> {
            v.iter().flat_map(f).collect()
        }
        match &self.data {
            TensorData::F32(v) => collect(v, |x| x.to_le_bytes()),
            TensorData::F64(v) => collect(v, |x| x.to_le_bytes()),
            TensorData::F16(v) => collect(v, |x| x.to_le_bytes()),
            TensorData::BF16(v) => collect(v, |x| x.to_le_bytes()),
            TensorData::I8(v) => collect(v, |x| x.to_le_bytes()),
            TensorData::I4(v) => pack_i4(v),
            TensorData::I32(v) => collect(v, |x| x.to_le_bytes()),
            TensorData::I64(v) => collect(v, |x| x.to_le_bytes()),
            TensorData::Bool(v) => v.clone(),
        }
    }

    /// Parses little-endian bytes; `None` if the length disagrees with `ty`.
    pub fn from_le_bytes(ty: TensorType, bytes: &[u8]) -> Option<Tensor> {
        let n = ty.numel();
        if ty.dtype == DType::I4 {
            if bytes.len() != n.div_ceil(2) {
                return None;
            }
            return Some(Tensor {
                ty,
                data: TensorData::I4(unpack_i4(bytes, n)),
            });
        }
        if bytes.len() != n.checked_mul(ty.dtype.size_bytes())? {
            return None;
        }
        fn parse<T, const N: usize>(b: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
            b.chunks_exact(N).map(|c| f(c.try_into().expect("chunk size is N"))).collect()
        }
        let data = match ty.dtype {
            DType::F32 => TensorData::F32(parse(bytes, f32::from_le_bytes)),
            DType::F64 => TensorData::F64(parse(bytes, f64::from_le_bytes)),
            DType::F16 => TensorData::F16(parse(bytes, f16::from_le_bytes)),
            DType::BF16 => TensorData::BF16(parse(bytes, bf16::from_le_bytes)),
            DType::I8 => TensorData::I8(parse(bytes, i8::from_le_bytes)),
            DType::I4 => unreachable!("handled above"),
            DType::I32 => TensorData::I32(parse(bytes, i32::from_le_bytes)),
            DType::I64 => TensorData::I64(parse(bytes, i64::from_le_bytes)),
            DType::Bool => TensorData::Bool(bytes.to_vec()),
        };
        Some(Tensor { ty, data })
    }
}

/// Packs 4-bit values two to a byte, the first in the low nibble (two's
/// complement); an odd count leaves the last high nibble 0.
pub fn pack_i4(v: &[i8]) -> Vec<u8> {
    v.chunks(2)
        .map(|p| (p[0] as u8 & 0x0F) | (p.get(1).map_or(0, |&h| (h as u8 & 0x0F) << 4)))
        .collect()
}

/// The first `n` 4-bit values of `bytes` packed as by [`pack_i4`], sign-extended.
pub fn unpack_i4(bytes: &[u8], n: usize) -> Vec<i8> {
    (0..n)
        .map(|i| {
            let nib = (bytes[i / 2] >> (4 * (i % 2))) & 0x0F;
            ((nib << 4) as i8) >> 4
        })
        .collect()
}

/// How a random constant's values are drawn.
#[derive(Clone, Debug, PartialEq)]
pub enum Distribution {
    /// Gaussian with the given mean and standard deviation.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
    /// Uniform on `[low, high)`.
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// Uniform integers on `[low, high)`.
    RandInt {
        /// Lower bound (inclusive).
        low: i64,
        /// Upper bound (exclusive).
        high: i64,
    },
}

/// Where a constant's values come from.
#[derive(Clone, Debug, PartialEq)]
pub enum ConstInit {
    /// Values written inline in graph.json, row-major.
    Values(Vec<f64>),
    /// Every element equal to one value.
    Fill(f64),
    /// Seeded random values (see [`random_values`]).
    Random {
        /// The distribution.
        dist: Distribution,
        /// The seed.
        seed: u64,
    },
    /// Concrete data (read from the weights file, or computed by a rewrite).
    Data(Arc<Tensor>),
}

impl ConstInit {
    /// The constant's values as a tensor of type `ty`.
    pub fn materialize(&self, ty: &TensorType) -> Arc<Tensor> {
        match self {
            ConstInit::Values(v) => Arc::new(Tensor::from_f64(ty.clone(), v)),
            ConstInit::Fill(x) => Arc::new(Tensor::from_f64(ty.clone(), &vec![*x; ty.numel()])),
            ConstInit::Random { dist, seed } => Arc::new(Tensor::from_f64(ty.clone(), &random_values(dist, *seed, ty.numel()))),
            ConstInit::Data(t) => t.clone(),
        }
    }

    /// The values as f64 if they are cheap to get without materializing a large tensor
    /// (inline values, fills and data of at most `max` elements).
    pub fn small_values(&self, ty: &TensorType, max: usize) -> Option<Vec<f64>> {
        let n = ty.numel();
        if n > max {
            return None;
        }
        Some(match self {
            ConstInit::Values(v) => Tensor::from_f64(ty.clone(), v).to_f64(),
            ConstInit::Fill(x) => Tensor::from_f64(ty.clone(), &vec![*x; n]).to_f64(),
            ConstInit::Random { .. } => return None,
            ConstInit::Data(t) => t.to_f64(),
        })
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): the generator behind random constants.
///
/// The graph format fixes this algorithm so a seed means the same values on every
/// machine and in every eqopt version.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator with the given seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform on `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// `n` values from `dist` seeded by `seed`: normal values by the Box–Muller
/// transform, each pair from two uniforms `u1` in (0, 1] and `u2` in [0, 1).
pub fn random_values(dist: &Distribution, seed: u64, n: usize) -> Vec<f64> {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::with_capacity(n);
    match *dist {
        Distribution::Normal { mean, std } => {
            while out.len() < n {
                let u1 = 1.0 - rng.next_f64();
                let u2 = rng.next_f64();
                let r = (-2.0 * u1.ln()).sqrt();
                let t = 2.0 * std::f64::consts::PI * u2;
                out.push(mean + std * r * t.cos());
                if out.len() < n {
                    out.push(mean + std * r * t.sin());
                }
            }
        }
        Distribution::Uniform { low, high } => {
            out.extend((0..n).map(|_| low + (high - low) * rng.next_f64()));
        }
        Distribution::RandInt { low, high } => {
            let span = (high - low).max(1) as u64;
            out.extend((0..n).map(|_| (low + (rng.next_u64() % span) as i64) as f64));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // First outputs for seed 1234567 from the reference implementation.
        let mut g = SplitMix64::new(1234567);
        assert_eq!(g.next_u64(), 6457827717110365317);
        assert_eq!(g.next_u64(), 3203168211198807973);
    }

    #[test]
    fn normal_values_have_the_declared_moments() {
        let v = random_values(&Distribution::Normal { mean: 1.0, std: 2.0 }, 7, 20000);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!((mean - 1.0).abs() < 0.05, "mean {mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.05, "std {}", var.sqrt());
    }

    #[test]
    fn bytes_round_trip_and_length_is_checked() {
        let ty = TensorType::new(vec![2, 3], DType::BF16);
        let t = Tensor::from_f64(ty.clone(), &[1.0, -2.0, 0.5, 4.0, 8.0, -0.25]);
        let b = t.to_le_bytes();
        assert_eq!(Tensor::from_le_bytes(ty.clone(), &b), Some(t));
        assert_eq!(Tensor::from_le_bytes(ty, &b[1..]), None);
    }

    #[test]
    fn i4_packs_two_to_a_byte() {
        let ty = TensorType::new(vec![5], DType::I4);
        let t = Tensor::from_f64(ty.clone(), &[-8.0, 7.0, -1.0, 0.0, 3.0]);
        let b = t.to_le_bytes();
        assert_eq!(b, vec![0x78, 0x0F, 0x03]);
        assert_eq!(ty.size_bytes(), 3);
        assert_eq!(Tensor::from_le_bytes(ty.clone(), &b), Some(t));
        assert_eq!(Tensor::from_le_bytes(ty, &b[1..]), None);
    }
}
