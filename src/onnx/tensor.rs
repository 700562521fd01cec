//! Conversions between ONNX `TensorProto`s and eqopt tensors: dtypes, raw and
//! typed data fields, and external data files.

use super::proto::{DATA_LOCATION_EXTERNAL, TensorProto, data_type};
use crate::dtype::{DType, TensorType};
use crate::error::{Error, Result};
use crate::graph::tensor::{Tensor, TensorData};
use half::{bf16, f16};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

/// The eqopt dtype of an ONNX data type number, if eqopt has one.
pub fn dtype_from_onnx(t: i32) -> Option<DType> {
    Some(match t {
        data_type::FLOAT => DType::F32,
        data_type::DOUBLE => DType::F64,
        data_type::FLOAT16 => DType::F16,
        data_type::BFLOAT16 => DType::BF16,
        data_type::INT8 => DType::I8,
        data_type::INT4 => DType::I4,
        data_type::INT32 => DType::I32,
        data_type::INT64 => DType::I64,
        data_type::BOOL => DType::Bool,
        _ => return None,
    })
}

/// The ONNX data type number of an eqopt dtype.
pub fn dtype_to_onnx(d: DType) -> i32 {
    match d {
        DType::F32 => data_type::FLOAT,
        DType::F64 => data_type::DOUBLE,
        DType::F16 => data_type::FLOAT16,
        DType::BF16 => data_type::BFLOAT16,
        DType::I8 => data_type::INT8,
        DType::I4 => data_type::INT4,
        DType::I32 => data_type::INT32,
        DType::I64 => data_type::INT64,
        DType::Bool => data_type::BOOL,
    }
}

/// The dtypes eqopt reads, as ONNX names, for messages.
pub const SUPPORTED_DTYPES: &str = "FLOAT, DOUBLE, FLOAT16, BFLOAT16, INT8, INT4, INT32, INT64, BOOL";

/// Where a tensor proto comes from, for error messages.
pub struct Origin<'a> {
    /// The model file.
    pub model: &'a Path,
    /// The initializer's name, or `node.attr (attribute of the Op node)`.
    pub what: String,
}

impl Origin<'_> {
    fn error(&self, problem: impl Into<String>) -> Error {
        Error::Weights {
            constant: self.what.clone(),
            file: self.model.to_path_buf(),
            problem: problem.into(),
        }
    }
}

/// Decodes a tensor proto (raw data, typed fields or external data) into a tensor.
///
/// Errors name the model file and the tensor when the dtype is not supported, a
/// dim is negative, the data length disagrees with the shape, or an external-data
/// file is missing, outside the model's folder, or too short.
pub fn tensor_from_proto(t: &TensorProto, origin: &Origin<'_>) -> Result<Tensor> {
    let dtype = dtype_from_onnx(t.data_type).ok_or_else(|| {
        origin.error(format!(
            "data type {} is not supported (eqopt reads {SUPPORTED_DTYPES})",
            data_type::name(t.data_type)
        ))
    })?;
    let mut shape = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        if d < 0 {
            return Err(origin.error(format!("dims {:?} contain a negative size", t.dims)));
        }
        shape.push(d as usize);
    }
    let ty = TensorType::new(shape, dtype);
    let Some(numel) = crate::dtype::checked_numel(&ty.shape, dtype.size_bytes()) else {
        return Err(origin.error(format!("dims {:?} overflow the addressable size", t.dims)));
    };
    let want_bytes = ty.size_bytes() as usize;
    if t.data_location == DATA_LOCATION_EXTERNAL {
        let bytes = read_external(t, want_bytes, origin)?;
        return Ok(Tensor::from_le_bytes(ty, &bytes).expect("length checked"));
    }
    if !t.raw_data.is_empty() || numel == 0 && typed_len(t) == 0 {
        if t.raw_data.len() != want_bytes {
            return Err(origin.error(format!(
                "raw_data holds {} bytes but dims {:?} of {} need {want_bytes}",
                t.raw_data.len(),
                t.dims,
                data_type::name(t.data_type)
            )));
        }
        return Ok(Tensor::from_le_bytes(ty, &t.raw_data).expect("length checked"));
    }
    let (field, found) = typed_field(t);
    if dtype == DType::I4 {
        // INT4 in int32_data: one packed byte (two values) per entry.
        if found != numel.div_ceil(2) {
            return Err(origin.error(format!(
                "{field} holds {found} packed bytes but dims {:?} of INT4 need {}",
                t.dims,
                numel.div_ceil(2)
            )));
        }
        let bytes: Vec<u8> = t.int32_data.iter().map(|&v| v as u8).collect();
        return Ok(Tensor::from_le_bytes(ty, &bytes).expect("length checked"));
    }
    if found != numel {
        return Err(origin.error(format!("{field} holds {found} values but dims {:?} need {numel}", t.dims)));
    }
    let data = match dtype {
        DType::F32 => TensorData::F32(t.float_data.clone()),
        DType::F64 => TensorData::F64(t.double_data.clone()),
        DType::I64 => TensorData::I64(t.int64_data.clone()),
        DType::I32 => TensorData::I32(t.int32_data.clone()),
        DType::I8 => TensorData::I8(t.int32_data.iter().map(|&v| v as i8).collect()),
        DType::I4 => unreachable!("handled above"),
        DType::Bool => TensorData::Bool(t.int32_data.iter().map(|&v| u8::from(v != 0)).collect()),
        DType::F16 => TensorData::F16(t.int32_data.iter().map(|&v| f16::from_bits(v as u16)).collect()),
        DType::BF16 => TensorData::BF16(t.int32_data.iter().map(|&v| bf16::from_bits(v as u16)).collect()),
    };
    Ok(Tensor { ty, data })
}

fn typed_field(t: &TensorProto) -> (&'static str, usize) {
    match t.data_type {
        data_type::FLOAT => ("float_data", t.float_data.len()),
        data_type::DOUBLE => ("double_data", t.double_data.len()),
        data_type::INT64 => ("int64_data", t.int64_data.len()),
        _ => ("int32_data", t.int32_data.len()),
    }
}

fn typed_len(t: &TensorProto) -> usize {
    typed_field(t).1
}

fn read_external(t: &TensorProto, want: usize, origin: &Origin<'_>) -> Result<Vec<u8>> {
    let mut location = None;
    let mut offset = 0u64;
    let mut length = None;
    for e in &t.external_data {
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| origin.error(format!("external_data {} is \"{v}\", expected a byte count", e.key)))
        };
        match e.key.as_str() {
            "location" => location = Some(e.value.clone()),
            "offset" => offset = number(&e.value)?,
            "length" => length = Some(number(&e.value)?),
            _ => {}
        }
    }
    let Some(location) = location else {
        return Err(origin.error("data_location is EXTERNAL but external_data has no \"location\""));
    };
    let rel = Path::new(&location);
    if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(origin.error(format!(
            "external data location \"{location}\" must be a relative path inside the model's folder"
        )));
    }
    if let Some(len) = length
        && len != want as u64
    {
        return Err(origin.error(format!("external data length is {len} bytes but dims {:?} need {want}", t.dims)));
    }
    let dir = origin.model.parent().unwrap_or(Path::new("."));
    let file = dir.join(rel);
    let mut f = std::fs::File::open(&file).map_err(|e| {
        origin.error(format!(
            "external data file {} cannot be opened ({e}); it must sit beside the model",
            file.display()
        ))
    })?;
    let size = f.metadata().map_err(|e| Error::io(&file, e))?.len();
    if offset.checked_add(want as u64).is_none_or(|end| end > size) {
        return Err(origin.error(format!(
            "external data file {} has {size} bytes; the tensor needs {want} bytes at offset {offset}",
            file.display()
        )));
    }
    f.seek(SeekFrom::Start(offset)).map_err(|e| Error::io(&file, e))?;
    let mut bytes = vec![0u8; want];
    f.read_exact(&mut bytes).map_err(|e| Error::io(&file, e))?;
    Ok(bytes)
}

/// Encodes a tensor as a tensor proto with `raw_data` (little-endian, as ONNX requires).
pub fn tensor_to_proto(name: &str, t: &Tensor) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: t.ty.shape.iter().map(|&d| d as i64).collect(),
        data_type: dtype_to_onnx(t.ty.dtype),
        raw_data: t.to_le_bytes(),
        ..Default::default()
    }
}
