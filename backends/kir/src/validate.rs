//! Checking a [`Program`] against the contracts of [`crate::program`], and
//! the buffer lifetimes the memory planner works from.

use crate::program::{Buffer, BufferId, BufferKind, ConstData, ElemType, GemmCompute, Kernel, Program};

/// A defect found by [`Program::validate`]: a bug in whatever produced the program.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    /// A view names a buffer that does not exist.
    #[error("kernel {kernel} ({name}): view of buffer {buffer}, which does not exist")]
    NoSuchBuffer {
        /// Kernel index.
        kernel: usize,
        /// Kernel name.
        name: &'static str,
        /// The buffer id.
        buffer: BufferId,
    },
    /// A view reaches outside its buffer.
    #[error("kernel {kernel} ({name}): a view of {buffer_name} reaches elements {lo}..={hi}, the buffer holds {len}")]
    OutOfBounds {
        /// Kernel index.
        kernel: usize,
        /// Kernel name.
        name: &'static str,
        /// The buffer's name.
        buffer_name: String,
        /// Lowest element reached.
        lo: isize,
        /// Highest element reached.
        hi: isize,
        /// Buffer length.
        len: usize,
    },
    /// A view's shape and strides differ in rank.
    #[error("kernel {kernel} ({name}): a view has {shape} dims and {strides} strides")]
    Rank {
        /// Kernel index.
        kernel: usize,
        /// Kernel name.
        name: &'static str,
        /// Shape rank.
        shape: usize,
        /// Stride count.
        strides: usize,
    },
    /// An output view that must be dense is not, or a kernel writes an input or constant.
    #[error("kernel {kernel} ({name}): its output view of {buffer_name} is not a dense intermediate or output")]
    BadOutput {
        /// Kernel index.
        kernel: usize,
        /// Kernel name.
        name: &'static str,
        /// The buffer's name.
        buffer_name: String,
    },
    /// An `f16`/`bf16` buffer that is not a constant holding data of its type, or
    /// that a kernel reads other than as GEMM `b` or convolution weights.
    #[error(
        "kernel {kernel} ({name}): reads {elem:?} buffer {buffer_name} where only f32 is accepted (or it is not a constant of that type)"
    )]
    LowPrecision {
        /// Kernel index (`usize::MAX` for a buffer whose declaration is wrong).
        kernel: usize,
        /// Kernel name.
        name: &'static str,
        /// The buffer's name.
        buffer_name: String,
        /// Its element type.
        elem: ElemType,
    },
    /// A quantized constant whose parts disagree with its dimensions, or a
    /// quantized `b` a GEMM reads other than whole and row-major.
    #[error("kernel {kernel} ({name}): quantized buffer {buffer_name}: {problem}")]
    Quantized {
        /// Kernel index (`usize::MAX` for a buffer whose declaration is wrong).
        kernel: usize,
        /// Kernel name.
        name: &'static str,
        /// The buffer's name.
        buffer_name: String,
        /// What is wrong.
        problem: String,
    },
    /// A [`GemmCompute::Bf16`] GEMM whose `b` is not a `bf16` buffer.
    #[error("kernel {kernel} (gemm): computes in bf16 but its b operand {buffer_name} is {elem:?}, not a bf16 constant")]
    Bf16Operand {
        /// Kernel index.
        kernel: usize,
        /// The buffer's name.
        buffer_name: String,
        /// Its element type.
        elem: ElemType,
    },
}

impl Program {
    /// Constant bytes as stored (weights and other constant tensors).
    pub fn constant_bytes(&self) -> usize {
        self.buffers
            .iter()
            .filter(|b| matches!(b.kind, Some(BufferKind::Constant(_))))
            .map(Buffer::bytes)
            .sum()
    }

    /// Checks the contracts listed in the module docs that can be checked statically.
    pub fn validate(&self) -> Result<(), ProgramError> {
        for buf in &self.buffers {
            let ok = match &buf.kind {
                Some(BufferKind::Constant(d)) => d.elem() == buf.elem && d.len() == buf.len,
                _ => !buf.elem.is_low_precision(),
            };
            if !ok {
                return Err(ProgramError::LowPrecision {
                    kernel: usize::MAX,
                    name: "buffer",
                    buffer_name: buf.name.clone(),
                    elem: buf.elem,
                });
            }
            if let Some(BufferKind::Constant(d)) = &buf.kind
                && let Some(problem) = d.quant_mismatch()
            {
                return Err(ProgramError::Quantized {
                    kernel: usize::MAX,
                    name: "buffer",
                    buffer_name: buf.name.clone(),
                    problem,
                });
            }
        }
        for (k, kernel) in self.kernels.iter().enumerate() {
            let name = kernel.name();
            let weight = match kernel {
                Kernel::Gemm { b, .. } => Some(b),
                Kernel::Conv { w, .. } => Some(w),
                _ => None,
            };
            self.check_quantized_reads(k, kernel)?;
            if let Kernel::Gemm {
                b,
                compute: GemmCompute::Bf16,
                ..
            } = kernel
                && let Some(buf) = self.buffers.get(b.buffer).filter(|buf| buf.elem != ElemType::BF16)
            {
                return Err(ProgramError::Bf16Operand {
                    kernel: k,
                    buffer_name: buf.name.clone(),
                    elem: buf.elem,
                });
            }
            for view in kernel.inputs() {
                let low = self.buffers.get(view.buffer).filter(|b| b.elem.is_low_precision());
                if let Some(buf) = low
                    && !weight.is_some_and(|w| std::ptr::eq(w, view))
                {
                    return Err(ProgramError::LowPrecision {
                        kernel: k,
                        name,
                        buffer_name: buf.name.clone(),
                        elem: buf.elem,
                    });
                }
            }
            let mut all = kernel.inputs();
            all.push(kernel.output());
            for view in all {
                let buf = self.buffers.get(view.buffer).ok_or(ProgramError::NoSuchBuffer {
                    kernel: k,
                    name,
                    buffer: view.buffer,
                })?;
                if view.shape.len() != view.strides.len() {
                    return Err(ProgramError::Rank {
                        kernel: k,
                        name,
                        shape: view.shape.len(),
                        strides: view.strides.len(),
                    });
                }
                if let Some((lo, hi)) = view.extent() {
                    if lo < 0 || hi >= buf.len as isize {
                        return Err(ProgramError::OutOfBounds {
                            kernel: k,
                            name,
                            buffer_name: buf.name.clone(),
                            lo,
                            hi,
                            len: buf.len,
                        });
                    }
                }
            }
            let out = kernel.output();
            let target = &self.buffers[out.buffer];
            let writable = matches!(target.kind, None | Some(BufferKind::Output));
            let dense_ok = matches!(kernel, Kernel::Copy { .. } | Kernel::Attention { .. }) || out.is_dense();
            if !writable || !dense_ok {
                return Err(ProgramError::BadOutput {
                    kernel: k,
                    name,
                    buffer_name: target.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// Quantized buffers are read only as the whole row-major `b` of an `f32` GEMM.
    fn check_quantized_reads(&self, k: usize, kernel: &Kernel) -> Result<(), ProgramError> {
        for view in kernel.inputs() {
            let Some(buf) = self.buffers.get(view.buffer).filter(|b| b.elem.is_quantized()) else {
                continue;
            };
            let fail = |problem: String| ProgramError::Quantized {
                kernel: k,
                name: kernel.name(),
                buffer_name: buf.name.clone(),
                problem,
            };
            let Kernel::Gemm { b, compute, .. } = kernel else {
                return Err(fail("read by a kernel other than a GEMM (as its b operand)".into()));
            };
            if !std::ptr::eq(b, view) || *compute != GemmCompute::F32 {
                return Err(fail("read other than as the b operand of an f32 GEMM".into()));
            }
            let Some(BufferKind::Constant(ConstData::Int8 { k: rows, n, .. } | ConstData::Int4 { k: rows, n, .. })) = &buf.kind else {
                return Err(fail("not a quantized constant".into()));
            };
            let r = b.shape.len();
            let whole = r >= 2
                && b.offset == 0
                && b.shape[r - 2..] == [*rows, *n]
                && (b.shape[r - 2] <= 1 || b.strides[r - 2] == *n as isize)
                && (b.shape[r - 1] <= 1 || b.strides[r - 1] == 1)
                && b.strides[..r - 2].iter().zip(&b.shape).all(|(&s, &d)| s == 0 || d <= 1);
            if !whole {
                return Err(fail(format!(
                    "read through the view {b}, not the whole [{rows}, {n}] matrix row-major"
                )));
            }
        }
        Ok(())
    }

    /// For each intermediate buffer, the kernels that first write and last read it
    /// (`None` for buffers no kernel touches, inputs, outputs and constants).
    pub fn lifetimes(&self) -> Vec<Option<(usize, usize)>> {
        let mut life: Vec<Option<(usize, usize)>> = vec![None; self.buffers.len()];
        let touch = |b: BufferId, k: usize, life: &mut Vec<Option<(usize, usize)>>| {
            life[b] = Some(match life[b] {
                None => (k, k),
                Some((s, e)) => (s.min(k), e.max(k)),
            });
        };
        for (k, kernel) in self.kernels.iter().enumerate() {
            touch(kernel.output().buffer, k, &mut life);
            for v in kernel.inputs() {
                touch(v.buffer, k, &mut life);
            }
        }
        for (b, buf) in self.buffers.iter().enumerate() {
            if buf.kind.is_some() {
                life[b] = None;
            }
        }
        life
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::View;
    use std::sync::Arc;

    fn buf(name: &str, elem: ElemType, len: usize, kind: Option<BufferKind>) -> Buffer {
        Buffer {
            name: name.into(),
            elem,
            len,
            kind,
        }
    }

    /// `out = a · b` with `b` an int4 `[6, 5]` matrix (groups of 4 rows) read
    /// through `b_view`.
    fn program(data_len: usize, b_view: View, conv: bool) -> Program {
        let (k, n) = (6, 5);
        let q = ConstData::Int4 {
            data: Arc::new(vec![0x88; data_len]),
            scales: Arc::new(vec![1.0; 2 * n]),
            k,
            n,
            group: 4,
        };
        let kernel = if conv {
            Kernel::Conv {
                x: View::dense(0, &[1, 1, 2, 3]),
                w: View::dense(1, &[5, 1, 2, 3]),
                bias: None,
                out: View::dense(2, &[1, 5, 1, 1]),
                geometry: crate::ConvGeometry {
                    strides: [1, 1],
                    pads: [0; 4],
                    dilations: [1, 1],
                    group: 1,
                    nhwc: false,
                },
                epilogue: None,
            }
        } else {
            Kernel::Gemm {
                a: View::dense(0, &[2, 3, k]),
                b: b_view,
                out: View::dense(2, &[2, 3, n]),
                epilogue: None,
                compute: GemmCompute::F32,
            }
        };
        Program {
            name: "q".into(),
            buffers: vec![
                buf("a", ElemType::F32, 2 * 3 * k, Some(BufferKind::Input)),
                buf("w", ElemType::I4, k * n, Some(BufferKind::Constant(q))),
                buf("y", ElemType::F32, 2 * 3 * n, Some(BufferKind::Output)),
            ],
            kernels: vec![kernel],
            inputs: vec![],
            outputs: vec![],
        }
    }

    #[test]
    fn quantized_constants_are_read_whole_by_gemms_only() {
        let mut whole = View::dense(1, &[6, 5]);
        whole.shape.insert(0, 2);
        whole.strides.insert(0, 0);
        let p = program(6 * 3, whole.clone(), false);
        assert_eq!(p.validate(), Ok(()));
        // 18 packed bytes and 10 scales.
        assert_eq!(p.constant_bytes(), 18 + 40);
        let short = program(6 * 3 - 1, whole.clone(), false).validate().unwrap_err().to_string();
        assert!(short.contains("17 values and 10 scales") && short.contains("18 and 10"), "{short}");
        let mut part = View::dense(1, &[3, 5]);
        part.offset = 15;
        let e = program(18, part, false).validate().unwrap_err().to_string();
        assert!(e.contains("not the whole [6, 5] matrix"), "{e}");
        let e = program(18, whole, true).validate().unwrap_err().to_string();
        assert!(e.contains("other than a GEMM"), "{e}");
    }
}
