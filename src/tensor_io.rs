//! Reading and writing tensors as NumPy `.npy` / `.npz` files and safetensors,
//! and the summary table that `eqopt run` prints.
//!
//! `.npy` files go through the [`npyz`] crate, which parses the header (format
//! versions 1 to 3) and converts elements from either byte order. eqopt reads and
//! writes these NumPy dtypes:
//!
//! | eqopt  | NumPy descr |
//! |--------|-------------|
//! | `f32`  | `<f4`       |
//! | `f64`  | `<f8`       |
//! | `f16`  | `<f2`       |
//! | `i8`   | `\|i1`      |
//! | `i32`  | `<i4`       |
//! | `i64`  | `<i8`       |
//! | `bool` | `\|b1`      |
//!
//! Big-endian files (`>f4`, ...) are read too. NumPy has no `bf16` dtype: a `bf16`
//! tensor is *written* widened to `f32` (exactly; see [`npy_compatible`]) and a
//! `bf16` graph input cannot be given as `.npy` (use safetensors). Fortran-order
//! arrays, other dtypes and structured arrays are refused with an error naming the
//! file. Every failure is an [`Error`], never a panic.

use crate::dtype::{DType, ShapeDisplay, TensorType, checked_numel};
use crate::error::{Error, Result};
use crate::graph::json::write_atomic;
use crate::graph::tensor::{Tensor, TensorData};
use half::f16;
use npyz::{NpyFile, NpyHeader, Order, TypeChar, WriterBuilder};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, Cursor, Read, Write};
use std::path::Path;

/// The NumPy type string eqopt writes for `dtype` (`<f4`, `|b1`, ...); `None` for
/// `bf16`, which NumPy lacks.
pub fn npy_descr(dtype: DType) -> Option<&'static str> {
    Some(match dtype {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::F16 => "<f2",
        DType::I8 => "|i1",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::Bool => "|b1",
        DType::BF16 | DType::I4 => return None,
    })
}

/// The eqopt dtype of a NumPy type string, if eqopt supports it (either byte order).
fn dtype_of(ts: &npyz::TypeStr) -> Option<DType> {
    Some(match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 4) => DType::F32,
        (TypeChar::Float, 8) => DType::F64,
        (TypeChar::Float, 2) => DType::F16,
        (TypeChar::Int, 1) => DType::I8,
        (TypeChar::Int, 4) => DType::I32,
        (TypeChar::Int, 8) => DType::I64,
        (TypeChar::Bool, 1) => DType::Bool,
        _ => return None,
    })
}

fn bad(path: &Path, problem: impl Into<String>) -> Error {
    Error::TensorFile {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// Reads a `.npy` file.
pub fn read_npy(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_npy(&bytes, path)
}

/// Parses the bytes of a `.npy` file; `path` only names the file in errors.
pub fn parse_npy(bytes: &[u8], path: &Path) -> Result<Tensor> {
    if header_shape_overflows(bytes) {
        return Err(bad(path, "the shape in the header is too large"));
    }
    let mut data = bytes;
    let header = NpyHeader::from_reader(&mut data).map_err(|e| bad(path, format!("not a valid .npy file: {e}")))?;
    let supported = "f32 (<f4), f64 (<f8), f16 (<f2), i8 (|i1), i32 (<i4), i64 (<i8) or bool (|b1)";
    let npyz::DType::Plain(ts) = header.dtype() else {
        return Err(bad(
            path,
            format!("unsupported dtype {}: expected {supported}", header.dtype().descr()),
        ));
    };
    let dtype = dtype_of(&ts).ok_or_else(|| bad(path, format!("unsupported dtype '{ts}': expected {supported}")))?;
    if header.order() == Order::Fortran {
        return Err(bad(
            path,
            "Fortran-order arrays are not supported: save a C-order array (numpy.ascontiguousarray)",
        ));
    }
    let shape: Vec<usize> = header
        .shape()
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad(path, "the shape in the header is too large"))?;
    let ty = TensorType::new(shape, dtype);
    let n = checked_numel(&ty.shape, dtype.size_bytes()).ok_or_else(|| bad(path, "the shape in the header is too large"))?;
    let want = n * dtype.size_bytes();
    if data.len() < want {
        return Err(bad(
            path,
            format!("truncated: a {ty} array needs {want} data bytes, the file holds {}", data.len()),
        ));
    }
    if data.len() > want {
        return Err(bad(
            path,
            format!("{} bytes of trailing data after a {ty} array", data.len() - want),
        ));
    }
    let file = NpyFile::with_header(header, data);
    let read_err = |e: io::Error| bad(path, format!("reading the data: {e}"));
    let data = match dtype {
        DType::F32 => TensorData::F32(file.into_vec().map_err(read_err)?),
        DType::F64 => TensorData::F64(file.into_vec().map_err(read_err)?),
        DType::F16 => TensorData::F16(file.into_vec::<f16>().map_err(read_err)?),
        DType::I8 => TensorData::I8(file.into_vec().map_err(read_err)?),
        DType::I32 => TensorData::I32(file.into_vec().map_err(read_err)?),
        DType::I64 => TensorData::I64(file.into_vec().map_err(read_err)?),
        DType::Bool => TensorData::Bool(file.into_vec::<bool>().map_err(read_err)?.into_iter().map(u8::from).collect()),
        DType::BF16 | DType::I4 => unreachable!("no NumPy type string maps to bf16 or i4"),
    };
    Ok(Tensor { ty, data })
}

/// True when the header's shape has dimensions whose product (zeros left out)
/// overflows `u64`. npyz multiplies them unchecked, which panics in debug builds,
/// so such headers are refused before npyz sees them. Headers this scan does not
/// understand are left to npyz.
fn header_shape_overflows(bytes: &[u8]) -> bool {
    let (start, len) = match bytes.get(6) {
        Some(1) => (10usize, bytes.get(8..10).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)),
        Some(2 | 3) => (12, bytes.get(8..12).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)),
        _ => return false,
    };
    let Some(text) = len.and_then(|len| bytes.get(start..start.saturating_add(len))) else {
        return false;
    };
    let text = String::from_utf8_lossy(text);
    let Some(rest) = text.find("shape").map(|i| &text[i + 5..]) else {
        return false;
    };
    let Some(open) = rest.find(['(', '[']) else {
        return false;
    };
    let Some(close) = rest[open..].find([')', ']']) else {
        return false;
    };
    let mut n: u64 = 1;
    for tok in rest[open + 1..open + close].split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let Ok(d) = tok.trim_end_matches(['L', 'l']).parse::<u64>() else {
            // Not a plain integer: either npyz refuses it or it is too large for u64.
            return tok.bytes().all(|b| b.is_ascii_digit());
        };
        if d != 0 {
            match n.checked_mul(d) {
                Some(m) => n = m,
                None => return true,
            }
        }
    }
    false
}

/// `t` as NumPy can hold it: `bf16` widened (exactly) to `f32`, anything else as is.
pub fn npy_compatible(t: &Tensor) -> Cow<'_, Tensor> {
    match &t.data {
        TensorData::BF16(v) => Cow::Owned(Tensor {
            ty: TensorType::new(t.ty.shape.clone(), DType::F32),
            data: TensorData::F32(v.iter().map(|x| x.to_f32()).collect()),
        }),
        TensorData::I4(v) => Cow::Owned(Tensor {
            ty: TensorType::new(t.ty.shape.clone(), DType::I8),
            data: TensorData::I8(v.clone()),
        }),
        _ => Cow::Borrowed(t),
    }
}

fn write_elems<T: npyz::Serialize + Clone>(w: &mut Vec<u8>, descr: &str, shape: &[u64], v: &[T]) -> io::Result<()> {
    let ts: npyz::TypeStr = descr.parse().expect("eqopt's type strings parse");
    let mut wr = npyz::WriteOptions::<T>::new()
        .dtype(npyz::DType::Plain(ts))
        .shape(shape)
        .writer(w)
        .begin_nd()?;
    wr.extend(v.iter().cloned())?;
    wr.finish()
}

/// The bytes of a `.npy` file (format version 1.0, C order, little-endian) holding `t`.
///
/// A `bf16` tensor is written as `f32` (see [`npy_compatible`]). Fails only when the
/// tensor's data disagree with its type (wrong element count or dtype).
pub fn npy_bytes(t: &Tensor) -> io::Result<Vec<u8>> {
    let t = npy_compatible(t);
    if t.to_le_bytes().len() as u64 != t.ty.size_bytes() || data_dtype(&t.data) != t.ty.dtype {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("tensor of type {} holds data of another size or dtype", t.ty),
        ));
    }
    let shape: Vec<u64> = t.ty.shape.iter().map(|&d| d as u64).collect();
    let descr = npy_descr(t.ty.dtype).expect("bf16 was widened");
    let mut out = Vec::with_capacity(128 + t.ty.size_bytes() as usize);
    match &t.data {
        TensorData::F32(v) => write_elems(&mut out, descr, &shape, v)?,
        TensorData::F64(v) => write_elems(&mut out, descr, &shape, v)?,
        TensorData::F16(v) => write_elems(&mut out, descr, &shape, v)?,
        TensorData::I8(v) => write_elems(&mut out, descr, &shape, v)?,
        TensorData::I32(v) => write_elems(&mut out, descr, &shape, v)?,
        TensorData::I64(v) => write_elems(&mut out, descr, &shape, v)?,
        TensorData::Bool(v) => write_elems(&mut out, descr, &shape, &v.iter().map(|&b| b != 0).collect::<Vec<bool>>())?,
        TensorData::BF16(_) | TensorData::I4(_) => unreachable!("bf16 and i4 were widened"),
    }
    Ok(out)
}

fn data_dtype(d: &TensorData) -> DType {
    match d {
        TensorData::F32(_) => DType::F32,
        TensorData::F64(_) => DType::F64,
        TensorData::F16(_) => DType::F16,
        TensorData::BF16(_) => DType::BF16,
        TensorData::I8(_) => DType::I8,
        TensorData::I4(_) => DType::I4,
        TensorData::I32(_) => DType::I32,
        TensorData::I64(_) => DType::I64,
        TensorData::Bool(_) => DType::Bool,
    }
}

/// Writes `t` to a `.npy` file atomically (temporary file, then rename).
pub fn write_npy(path: &Path, t: &Tensor) -> Result<()> {
    let bytes = npy_bytes(t).map_err(|e| Error::io(path, e))?;
    write_atomic(path, &bytes)
}

/// The bytes of an uncompressed `.npz` archive holding `tensors` as `<name>.npy`
/// members, in the given order (what `numpy.savez` writes; `numpy.load` reads it).
///
/// Member timestamps are fixed (1980-01-01), so equal tensors give equal bytes.
pub fn npz_bytes(tensors: &[(&str, &Tensor)]) -> io::Result<Vec<u8>> {
    use npyz::zip;
    let mut zw = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, t) in tensors {
        let npy = npy_bytes(t)?;
        let opts = zip::write::FileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .last_modified_time(zip::DateTime::default())
            .large_file(npy.len() as u64 >= u64::from(u32::MAX));
        zw.start_file(npyz::npz::file_name_from_array_name(name), opts)
            .map_err(io::Error::other)?;
        zw.write_all(&npy)?;
    }
    Ok(zw.finish().map_err(io::Error::other)?.into_inner())
}

/// Writes `tensors` to a `.npz` file atomically (see [`npz_bytes`]).
pub fn write_npz(path: &Path, tensors: &[(&str, &Tensor)]) -> Result<()> {
    let bytes = npz_bytes(tensors).map_err(|e| Error::io(path, e))?;
    write_atomic(path, &bytes)
}

/// Reads every array of a `.npz` file (stored or deflate-compressed), keyed by name.
pub fn read_npz(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut zip = npyz::zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| bad(path, format!("not a valid .npz file: {e}")))?;
    let mut out = BTreeMap::new();
    for i in 0..zip.len() {
        let mut member = zip.by_index(i).map_err(|e| bad(path, format!("not a valid .npz file: {e}")))?;
        let Some(name) = npyz::npz::array_name_from_file_name(member.name()).map(str::to_string) else {
            continue;
        };
        let member_path = path.join(member.name());
        let mut npy = Vec::new();
        member
            .read_to_end(&mut npy)
            .map_err(|e| bad(&member_path, format!("reading the archive member: {e}")))?;
        let t = parse_npy(&npy, &member_path)?;
        if out.insert(name.clone(), t).is_some() {
            return Err(bad(path, format!("array \"{name}\" appears twice")));
        }
    }
    Ok(out)
}

/// Reads every tensor of a safetensors file, keyed by name.
pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|source| Error::Safetensors {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let dtype = crate::graph::json::SAFETENSORS_DTYPES
            .iter()
            .find(|(_, s)| *s == view.dtype())
            .map(|(d, _)| *d)
            .ok_or_else(|| bad(path, format!("tensor \"{name}\" has unsupported dtype {:?}", view.dtype())))?;
        let ty = TensorType::new(view.shape().to_vec(), dtype);
        let t = Tensor::from_le_bytes(ty.clone(), view.data())
            .ok_or_else(|| bad(path, format!("tensor \"{name}\": byte length disagrees with its type {ty}")))?;
        out.insert(name, t);
    }
    Ok(out)
}

/// Reads a file of named tensors: `.npz` by its extension, safetensors otherwise.
pub fn read_tensors(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    if has_extension(path, "npz") {
        read_npz(path)
    } else {
        read_safetensors(path)
    }
}

/// True when `path`'s extension is `ext` (ASCII case-insensitive).
pub fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// The file name `<name>.npy` for a tensor name, with `/` and `\` replaced by `_`
/// (and a name of only dots, or none, replaced by underscores) so that it is one
/// plain file inside the output directory.
pub fn npy_file_name(name: &str) -> String {
    let mut s: String = name.chars().map(|c| if c == '/' || c == '\\' { '_' } else { c }).collect();
    if s.chars().all(|c| c == '.') {
        s = "_".repeat(s.len().max(1));
    }
    format!("{s}.npy")
}

/// Formats a value with 6 significant digits, like C's `%g` (`1.5`, `-0.000123`,
/// `1.23457e+08`, `nan`, `inf`).
pub fn format_g(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let e = format!("{v:.5e}");
    let (mant, exp) = e.split_once('e').expect("exponent format");
    let exp: i32 = exp.parse().expect("integer exponent");
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if (-4..6).contains(&exp) {
        let decimals = (5 - exp).max(0) as usize;
        trim(&format!("{v:.decimals$}"))
    } else {
        format!("{}e{}{:02}", trim(mant), if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

/// Statistics of one tensor: finite min, max and mean, and non-finite counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    /// Smallest finite element (`None` when there is none).
    pub min: Option<f64>,
    /// Largest finite element.
    pub max: Option<f64>,
    /// Mean of the finite elements, summed in element order.
    pub mean: Option<f64>,
    /// Number of NaN elements.
    pub nan: usize,
    /// Number of infinite elements (either sign).
    pub inf: usize,
}

/// Computes [`Stats`] of `t` (values widened to `f64`).
pub fn stats(t: &Tensor) -> Stats {
    let (mut min, mut max, mut sum, mut n, mut nan, mut inf) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize, 0, 0);
    for v in t.to_f64() {
        if v.is_nan() {
            nan += 1;
        } else if v.is_infinite() {
            inf += 1;
        } else {
            min = min.min(v);
            max = max.max(v);
            sum += v;
            n += 1;
        }
    }
    let some = |x: f64| (n > 0).then_some(x);
    Stats {
        min: some(min),
        max: some(max),
        mean: some(sum / n.max(1) as f64),
        nan,
        inf,
    }
}

/// A table with one line per tensor: name, dtype, shape, min, max and mean of the
/// finite elements, and NaN/inf counts when there are any. Columns are aligned;
/// the text depends only on the tensors, so it is deterministic.
pub fn summary_table(tensors: &[(&str, &Tensor)]) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "output".into(),
        "dtype".into(),
        "shape".into(),
        "min".into(),
        "max".into(),
        "mean".into(),
        "non-finite".into(),
    ]];
    for (name, t) in tensors {
        let s = stats(t);
        let f = |v: Option<f64>| v.map_or_else(|| "-".to_string(), format_g);
        let mut nonfinite = Vec::new();
        if s.nan > 0 {
            nonfinite.push(format!("{} nan", s.nan));
        }
        if s.inf > 0 {
            nonfinite.push(format!("{} inf", s.inf));
        }
        rows.push([
            name.to_string(),
            t.ty.dtype.to_string(),
            ShapeDisplay(&t.ty.shape).to_string(),
            f(s.min),
            f(s.max),
            f(s.mean),
            if nonfinite.is_empty() { "-".into() } else { nonfinite.join(", ") },
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c > 0 {
                line.push_str("  ");
            }
            // Text columns left-aligned, numbers right-aligned.
            if c < 3 || c == 6 {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            } else {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::bf16;

    fn ty(shape: &[usize], d: DType) -> TensorType {
        TensorType::new(shape.to_vec(), d)
    }

    fn sample(shape: &[usize], d: DType) -> Tensor {
        let t = ty(shape, d);
        let vals: Vec<f64> = (0..t.numel()).map(|i| (i as f64 - 3.0) * 0.75).collect();
        Tensor::from_f64(t, &vals)
    }

    const SHAPES: [&[usize]; 6] = [&[], &[0], &[1], &[7], &[2, 3, 5], &[3, 0, 2]];
    const NPY_DTYPES: [DType; 7] = [DType::F32, DType::F64, DType::F16, DType::I8, DType::I32, DType::I64, DType::Bool];

    #[test]
    fn npy_round_trips_every_dtype_and_odd_shapes() {
        for d in NPY_DTYPES {
            for s in SHAPES {
                let t = sample(s, d);
                let bytes = npy_bytes(&t).unwrap();
                assert_eq!(&bytes[..6], b"\x93NUMPY");
                assert_eq!(
                    bytes.len() % 64,
                    (t.ty.size_bytes() % 64) as usize,
                    "{d} {s:?}: header is padded to 64 bytes"
                );
                let back = parse_npy(&bytes, Path::new("t.npy")).unwrap();
                assert_eq!(back, t, "{d} {s:?}");
            }
        }
    }

    #[test]
    fn npy_header_is_numpy_style() {
        let header = |b: &[u8]| {
            assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
            let len = u16::from_le_bytes([b[8], b[9]]) as usize;
            assert_eq!((10 + len) % 64, 0, "data start 64-byte aligned");
            String::from_utf8(b[10..10 + len].to_vec()).unwrap()
        };
        let text = header(&npy_bytes(&sample(&[2, 3], DType::F32)).unwrap());
        assert!(
            text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3"),
            "{text}"
        );
        assert!(text.ends_with('\n'), "{text}");
        let text = header(&npy_bytes(&sample(&[], DType::I64)).unwrap());
        assert!(text.contains("'shape': ()"), "{text}");
    }

    #[test]
    fn special_float_values_round_trip_bitwise() {
        let v = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, f32::MIN_POSITIVE / 4.0, f32::MAX];
        let t = Tensor {
            ty: ty(&[6], DType::F32),
            data: TensorData::F32(v.to_vec()),
        };
        let back = parse_npy(&npy_bytes(&t).unwrap(), Path::new("t.npy")).unwrap();
        let (TensorData::F32(a), TensorData::F32(b)) = (&t.data, &back.data) else {
            panic!()
        };
        assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    #[test]
    fn bf16_is_written_as_f32() {
        let t = Tensor {
            ty: ty(&[3], DType::BF16),
            data: TensorData::BF16(vec![bf16::from_f32(1.5), bf16::from_f32(-2.0), bf16::from_f32(0.1)]),
        };
        let back = parse_npy(&npy_bytes(&t).unwrap(), Path::new("t.npy")).unwrap();
        assert_eq!(back.ty, ty(&[3], DType::F32));
        assert_eq!(back.to_f64(), t.to_f64());
    }

    #[test]
    fn big_endian_files_are_read() {
        let mut bytes = npy_bytes(&sample(&[3], DType::I32)).unwrap();
        let hdr = bytes.windows(3).position(|w| w == b"<i4").unwrap();
        bytes[hdr] = b'>';
        let n = bytes.len();
        for c in bytes[n - 12..].chunks_mut(4) {
            c.reverse();
        }
        assert_eq!(parse_npy(&bytes, Path::new("t.npy")).unwrap(), sample(&[3], DType::I32));
    }

    /// A version 1.0 .npy file with the given header dictionary text and data bytes.
    fn raw_npy(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut h = dict.to_string();
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut v = b"\x93NUMPY\x01\x00".to_vec();
        v.extend_from_slice(&(h.len() as u16).to_le_bytes());
        v.extend_from_slice(h.as_bytes());
        v.extend_from_slice(data);
        v
    }

    fn err(bytes: &[u8]) -> String {
        let e = parse_npy(bytes, Path::new("bad.npy")).unwrap_err().to_string();
        assert!(e.starts_with("bad.npy: "), "{e}");
        e
    }

    #[test]
    fn bad_files_are_errors_naming_the_file() {
        let good = npy_bytes(&sample(&[4, 4], DType::F64)).unwrap();
        assert!(err(&good[..good.len() - 3]).contains("truncated"));
        assert!(err(&good[..20]).contains("not a valid .npy"));
        assert!(err(b"").contains("not a valid .npy"));
        assert!(err(b"PK\x03\x04 this is a zip").contains("not a valid .npy"));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(err(&trailing).contains("trailing"));
        let e = err(&raw_npy("{'descr': '<u8', 'fortran_order': False, 'shape': (2,), }", &[0; 16]));
        assert!(e.contains("unsupported dtype '<u8'"), "{e}");
        let e = err(&raw_npy("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", &[0; 16]));
        assert!(e.contains("unsupported dtype"), "{e}");
        let e = err(&raw_npy(
            "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (2,), }",
            &[0; 16],
        ));
        assert!(e.contains("unsupported dtype"), "{e}");
        let e = err(&raw_npy("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }", &[0; 32]));
        assert!(e.contains("Fortran"), "{e}");
        // A header that claims a huge array must not allocate it.
        let e = err(&raw_npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (9999999999,), }",
            &[0; 32],
        ));
        assert!(e.contains("truncated"), "{e}");
        let e = err(&raw_npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }",
            &[],
        ));
        assert!(e.contains("too large"), "{e}");
        err(&raw_npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
            &[],
        ));
        err(&raw_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (-1,), }", &[]));
        err(&raw_npy("{'descr': '<f8', 'fortran_order': False, }", &[]));
        err(&raw_npy("not python", &[]));
        // Invalid bool bytes.
        let mut b = npy_bytes(&sample(&[2], DType::Bool)).unwrap();
        let n = b.len();
        b[n - 1] = 7;
        assert!(err(&b).contains("reading the data"));
    }

    #[test]
    fn npz_round_trips_in_order_with_odd_names() {
        let a = sample(&[2, 3], DType::F32);
        let b = sample(&[], DType::Bool);
        let c = sample(&[0, 5], DType::F16);
        let tensors = [("z/out", &a), ("a", &b), ("m.0", &c)];
        let bytes = npz_bytes(&tensors).unwrap();
        assert_eq!(bytes, npz_bytes(&tensors).unwrap(), "deterministic");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npz");
        write_npz(&p, &tensors).unwrap();
        let back = read_npz(&p).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back["z/out"], a);
        assert_eq!(back["a"], b);
        assert_eq!(back["m.0"], c);
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let e = read_npz(&p).unwrap_err().to_string();
        assert!(e.contains("x.npz") && e.contains("not a valid .npz"), "{e}");
    }

    #[test]
    fn file_names_are_sanitized() {
        assert_eq!(npy_file_name("logits"), "logits.npy");
        assert_eq!(npy_file_name("layer/0\\out"), "layer_0_out.npy");
        assert_eq!(npy_file_name(".."), "__.npy");
        assert_eq!(npy_file_name(""), "_.npy");
    }

    #[test]
    fn g_format() {
        let cases = [
            (1.5, "1.5"),
            (-0.000123, "-0.000123"),
            (123456789.0, "1.23457e+08"),
            (0.1 + 0.2, "0.3"),
            (1e-7, "1e-07"),
            (100000.0, "100000"),
            (999999.5, "1e+06"),
            (0.0, "0"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (v, want) in cases {
            assert_eq!(format_g(v), want, "{v}");
        }
    }

    #[test]
    fn summary_counts_non_finite_values() {
        let t = Tensor {
            ty: ty(&[5], DType::F32),
            data: TensorData::F32(vec![1.0, f32::NAN, 3.0, f32::INFINITY, -1.0]),
        };
        let e = sample(&[0], DType::I32);
        let table = summary_table(&[("y", &t), ("empty", &e)]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("output"));
        let y: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(y, ["y", "f32", "[5]", "-1", "3", "1", "1", "nan,", "1", "inf"]);
        let e: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(e, ["empty", "i32", "[0]", "-", "-", "-", "-"]);
    }
}
