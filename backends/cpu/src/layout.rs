//! Data movement: materialising strided views (transpose/permute included),
//! concatenation, gather, and `NCHW` ↔ `NHWC` conversion.
//!
//! The kernels are generic over any `Copy` element (`f32`, `i64`, …). Shapes
//! are row-major (last axis fastest); outputs are dense.

use rayon::prelude::*;

use crate::KernelError;

/// Below this many elements copies run on the calling thread.
const PAR_MIN: usize = 1 << 15;
/// Side of the square tiles of a 2-D transpose.
const TILE: usize = 32;

#[derive(Clone, Copy)]
struct OutPtr<T>(*mut T);
// SAFETY: used only to let parallel tasks write disjoint output elements.
unsafe impl<T: Send> Send for OutPtr<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for OutPtr<T> {}
impl<T> OutPtr<T> {
    #[inline(always)]
    fn get(self) -> *mut T {
        self.0
    }
}

fn numel(kernel: &'static str, shape: &[usize]) -> Result<usize, KernelError> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| KernelError::Shape {
            kernel,
            what: format!("shape {shape:?} overflows"),
        })
}

/// Row-major (contiguous) strides of `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<isize> {
    let mut s = vec![1isize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1] as isize;
    }
    s
}

/// Materialises a strided view: `output[i₀,…,iₙ] = input[offset + Σ iₖ·strides[k]]`
/// for the dense row-major `shape`. Strides may be negative or zero (broadcast).
/// Transposes become 2-D tiled copies; contiguous runs become `memcpy`s.
///
/// # Errors
/// [`KernelError::Shape`] if `strides` and `shape` differ in rank or sizes
/// overflow, [`KernelError::BufferLength`] if `output.len()` is not the shape's
/// element count, [`KernelError::ViewOutOfBounds`] if the view reaches outside `input`.
pub fn strided_copy<T: Copy + Send + Sync>(
    input: &[T],
    offset: usize,
    shape: &[usize],
    strides: &[isize],
    output: &mut [T],
) -> Result<(), KernelError> {
    const K: &str = "strided_copy";
    if shape.len() != strides.len() {
        return Err(KernelError::Shape {
            kernel: K,
            what: format!("shape {shape:?} and strides {strides:?} differ in rank"),
        });
    }
    let total = numel(K, shape)?;
    KernelError::check_len(K, "output", total, output.len())?;
    if total == 0 {
        return Ok(());
    }
    let (mut lo, mut hi) = (offset as i128, offset as i128);
    for (&d, &s) in shape.iter().zip(strides) {
        let reach = (d as i128 - 1) * s as i128;
        if reach < 0 { lo += reach } else { hi += reach }
    }
    if lo < 0 || hi >= input.len() as i128 {
        let clamp = |v: i128| v.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        return Err(KernelError::ViewOutOfBounds {
            kernel: K,
            operand: "input",
            index: 0,
            min: clamp(lo),
            max: clamp(hi),
            len: input.len(),
        });
    }
    // Simplify: drop unit dims, merge dims that are contiguous with their successor.
    let mut dims: Vec<(usize, isize)> = Vec::new();
    for (&d, &s) in shape.iter().zip(strides) {
        if d == 1 {
            continue;
        }
        match dims.last_mut() {
            Some(last) if last.1 == s * d as isize => *last = (last.0 * d, s),
            _ => dims.push((d, s)),
        }
    }
    if dims.is_empty() {
        output[0] = input[offset];
        return Ok(());
    }
    copy_dims(input, offset as isize, &dims, output);
    Ok(())
}

/// Copies the validated view `dims` (size, input stride) starting at `base` into dense `output`.
fn copy_dims<T: Copy + Send + Sync>(input: &[T], base: isize, dims: &[(usize, isize)], output: &mut [T]) {
    let nd = dims.len();
    let (nx, sx) = dims[nd - 1];
    let mut out_strides = vec![1usize; nd];
    for i in (0..nd - 1).rev() {
        out_strides[i] = out_strides[i + 1] * dims[i + 1].0;
    }
    // A dim other than the last that reads (nearly) contiguously: tile it against the last.
    let tiled = (0..nd - 1)
        .filter(|&j| dims[j].1.unsigned_abs() < sx.unsigned_abs())
        .min_by_key(|&j| dims[j].1.unsigned_abs());
    let outer: Vec<usize> = (0..nd - 1).filter(|&j| Some(j) != tiled).collect();
    let outer_count: usize = outer.iter().map(|&j| dims[j].0).product();
    let ny = tiled.map_or(1, |j| dims[j].0);
    let (sy, oy) = tiled.map_or((0, 0), |j| (dims[j].1, out_strides[j]));
    // Tasks: outer index × block of rows of the tiled dim (or of the last dim).
    let chunk = if tiled.is_some() { TILE * 4 } else { PAR_MIN };
    let blocks = if tiled.is_some() { ny.div_ceil(chunk) } else { nx.div_ceil(chunk) };
    let out = OutPtr(output.as_mut_ptr());
    let task = |t: usize| {
        let (mut o, b) = (t / blocks, t % blocks);
        let (mut ib, mut ob) = (base, 0usize);
        for &j in outer.iter().rev() {
            let idx = o % dims[j].0;
            o /= dims[j].0;
            ib += idx as isize * dims[j].1;
            ob += idx * out_strides[j];
        }
        // SAFETY (all writes below): distinct (outer index, block, y, x) map to distinct
        // output offsets ob + y·oy + x < output.len(), and the input offsets were
        // validated to lie in 0..input.len() by `strided_copy`.
        unsafe {
            if tiled.is_none() {
                let (x0, x1) = (b * chunk, (b * chunk + chunk).min(nx));
                let dst = out.get().add(ob);
                if sx == 1 {
                    std::ptr::copy_nonoverlapping(input.as_ptr().offset(ib + x0 as isize), dst.add(x0), x1 - x0);
                } else {
                    for x in x0..x1 {
                        *dst.add(x) = *input.get_unchecked((ib + x as isize * sx) as usize);
                    }
                }
                return;
            }
            let (y0, y1) = (b * chunk, (b * chunk + chunk).min(ny));
            for ty in (y0..y1).step_by(TILE) {
                for tx in (0..nx).step_by(TILE) {
                    for y in ty..(ty + TILE).min(y1) {
                        let src = ib + y as isize * sy;
                        let dst = out.get().add(ob + y * oy);
                        for x in tx..(tx + TILE).min(nx) {
                            *dst.add(x) = *input.get_unchecked((src + x as isize * sx) as usize);
                        }
                    }
                }
            }
        }
    };
    let tasks = outer_count * blocks;
    if output.len() < PAR_MIN || tasks == 1 || rayon::current_num_threads() <= 1 {
        (0..tasks).for_each(task);
    } else {
        (0..tasks).into_par_iter().for_each(task);
    }
}

/// Permutes the axes of a dense tensor: `output` has shape
/// `[shape[perm[0]], …, shape[perm[n-1]]]` and
/// `output[i₀,…] = input[j]` with `j[perm[k]] = iₖ` (NumPy's `transpose(perm)`).
///
/// # Errors
/// [`KernelError::Shape`] if `perm` is not a permutation of `0..shape.len()`,
/// [`KernelError::BufferLength`] if a slice's length is not the element count.
pub fn permute<T: Copy + Send + Sync>(input: &[T], shape: &[usize], perm: &[usize], output: &mut [T]) -> Result<(), KernelError> {
    const K: &str = "permute";
    let mut seen = vec![false; shape.len()];
    if perm.len() != shape.len() || perm.iter().any(|&p| p >= shape.len() || std::mem::replace(&mut seen[p], true)) {
        return Err(KernelError::Shape {
            kernel: K,
            what: format!("{perm:?} is not a permutation of the {} axes of {shape:?}", shape.len()),
        });
    }
    KernelError::check_len(K, "input", numel(K, shape)?, input.len())?;
    let strides = contiguous_strides(shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let out_strides: Vec<isize> = perm.iter().map(|&p| strides[p]).collect();
    strided_copy(input, 0, &out_shape, &out_strides, output)
}

/// `[N, C, H, W]` → `[N, H, W, C]`.
///
/// # Errors
/// As [`permute`].
pub fn nchw_to_nhwc<T: Copy + Send + Sync>(input: &[T], nchw: [usize; 4], output: &mut [T]) -> Result<(), KernelError> {
    permute(input, &nchw, &[0, 2, 3, 1], output)
}

/// `[N, H, W, C]` → `[N, C, H, W]`.
///
/// # Errors
/// As [`permute`].
pub fn nhwc_to_nchw<T: Copy + Send + Sync>(input: &[T], nhwc: [usize; 4], output: &mut [T]) -> Result<(), KernelError> {
    permute(input, &nhwc, &[0, 3, 1, 2], output)
}

/// Copies `input` (shape `in_shape`) into the region of `output` (shape
/// `out_shape`) that starts at `start` along `axis`: one operand of a concat.
/// All other axes must match.
///
/// # Errors
/// [`KernelError::Shape`] for mismatched ranks/dims, a bad axis, or a region
/// past the end of the axis; [`KernelError::BufferLength`] for wrong slice lengths.
pub fn copy_into_axis<T: Copy + Send + Sync>(
    input: &[T],
    in_shape: &[usize],
    axis: usize,
    start: usize,
    output: &mut [T],
    out_shape: &[usize],
) -> Result<(), KernelError> {
    const K: &str = "concat";
    let fits = in_shape.len() == out_shape.len()
        && axis < in_shape.len()
        && in_shape.iter().zip(out_shape).enumerate().all(|(i, (a, b))| i == axis || a == b)
        && start.checked_add(in_shape[axis]).is_some_and(|end| end <= out_shape[axis]);
    if !fits {
        return Err(KernelError::Shape {
            kernel: K,
            what: format!("cannot place {in_shape:?} at {start} along axis {axis} of {out_shape:?}"),
        });
    }
    KernelError::check_len(K, "input", numel(K, in_shape)?, input.len())?;
    KernelError::check_len(K, "output", numel(K, out_shape)?, output.len())?;
    let inner: usize = in_shape[axis + 1..].iter().product();
    let (in_block, out_block) = (in_shape[axis] * inner, out_shape[axis] * inner);
    if in_block == 0 {
        return Ok(());
    }
    let at = start * inner;
    let copy = |(src, dst): (&[T], &mut [T])| dst[at..at + in_block].copy_from_slice(src);
    if input.len() < PAR_MIN || rayon::current_num_threads() <= 1 {
        input.chunks_exact(in_block).zip(output.chunks_exact_mut(out_block)).for_each(copy);
    } else {
        input
            .par_chunks_exact(in_block)
            .zip(output.par_chunks_exact_mut(out_block))
            .for_each(copy);
    }
    Ok(())
}

/// Concatenates `inputs` (each `(data, shape)`) along `axis` into `output`,
/// whose shape is the inputs' with the `axis` sizes summed.
///
/// # Errors
/// As [`copy_into_axis`]; also [`KernelError::Shape`] for no inputs.
pub fn concat<T: Copy + Send + Sync>(inputs: &[(&[T], &[usize])], axis: usize, output: &mut [T]) -> Result<(), KernelError> {
    let Some(&(_, first)) = inputs.first() else {
        return Err(KernelError::Shape {
            kernel: "concat",
            what: "no inputs".to_string(),
        });
    };
    if axis >= first.len() {
        return Err(KernelError::Shape {
            kernel: "concat",
            what: format!("axis {axis} out of range for rank {}", first.len()),
        });
    }
    let mut out_shape = first.to_vec();
    out_shape[axis] = inputs
        .iter()
        .try_fold(0usize, |a, (_, s)| a.checked_add(*s.get(axis)?))
        .unwrap_or(usize::MAX);
    // Check every operand before writing anything.
    let mut start = 0;
    for &(data, shape) in inputs {
        let ok = shape.len() == out_shape.len() && shape.iter().zip(&out_shape).enumerate().all(|(i, (a, b))| i == axis || a == b);
        if !ok {
            return Err(KernelError::Shape {
                kernel: "concat",
                what: format!("input {shape:?} does not match {first:?} off axis {axis}"),
            });
        }
        KernelError::check_len("concat", "input", numel("concat", shape)?, data.len())?;
    }
    KernelError::check_len("concat", "output", numel("concat", &out_shape)?, output.len())?;
    for &(data, shape) in inputs {
        copy_into_axis(data, shape, axis, start, output, &out_shape)?;
        start += shape[axis];
    }
    Ok(())
}

/// Gathers along `axis`: for `input` of shape `[A…, D, B…]` (`D = shape[axis]`)
/// and flat `indices` (`len L`, values in `-D..D`, negative counting from the
/// end), `output` has shape `[A…, L, B…]` and
/// `output[a, l, b] = input[a, indices[l], b]`. (Reshape `output` to give the
/// indices their own shape.)
///
/// # Errors
/// [`KernelError::IndexOutOfRange`] naming the first bad index and the bound,
/// [`KernelError::Shape`] for a bad axis, [`KernelError::BufferLength`] for wrong slice lengths.
pub fn gather<T: Copy + Send + Sync>(
    input: &[T],
    shape: &[usize],
    axis: usize,
    indices: &[i64],
    output: &mut [T],
) -> Result<(), KernelError> {
    const K: &str = "gather";
    if axis >= shape.len() {
        return Err(KernelError::Shape {
            kernel: K,
            what: format!("axis {axis} out of range for shape {shape:?}"),
        });
    }
    KernelError::check_len(K, "input", numel(K, shape)?, input.len())?;
    let (outer, d, inner) = (
        shape[..axis].iter().product::<usize>(),
        shape[axis],
        shape[axis + 1..].iter().product::<usize>(),
    );
    let need = outer.checked_mul(indices.len()).and_then(|x| x.checked_mul(inner));
    let Some(need) = need else {
        return Err(KernelError::Shape {
            kernel: K,
            what: "output size overflows".to_string(),
        });
    };
    KernelError::check_len(K, "output", need, output.len())?;
    let mut idx = Vec::with_capacity(indices.len());
    for (position, &i) in indices.iter().enumerate() {
        let j = if i < 0 { i.checked_add(d as i64) } else { Some(i) };
        match j {
            Some(j) if j >= 0 && (j as u64) < d as u64 => idx.push(j as usize),
            _ => {
                return Err(KernelError::IndexOutOfRange {
                    kernel: K,
                    index: i,
                    position,
                    bound: d,
                });
            }
        }
    }
    if need == 0 {
        return Ok(());
    }
    let row = indices.len() * inner;
    let body = |o: usize, dst: &mut [T]| {
        let src = &input[o * d * inner..][..d * inner];
        for (l, &j) in idx.iter().enumerate() {
            dst[l * inner..(l + 1) * inner].copy_from_slice(&src[j * inner..(j + 1) * inner]);
        }
    };
    if need < PAR_MIN || rayon::current_num_threads() <= 1 {
        output.chunks_exact_mut(row).enumerate().for_each(|(o, dst)| body(o, dst));
    } else {
        output.par_chunks_exact_mut(row).enumerate().for_each(|(o, dst)| body(o, dst));
    }
    Ok(())
}
