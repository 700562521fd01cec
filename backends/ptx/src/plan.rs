//! The launch plan: where every buffer lives on the device, the weights to
//! upload, and the kernels to launch in order with their grids.

use crate::SmTarget;
use eqopt_kir::{BufferId, BufferKind, ConstData, Program};
use serde::Serialize;

/// Alignment of every constant in the weights image (and of device allocations).
pub const WEIGHT_ALIGN: usize = 256;

/// One kernel launch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LaunchSpec {
    /// Index of the kernel in the program.
    pub kernel: usize,
    /// The `.entry` name in the module.
    pub entry: String,
    /// The kernel's kind (`gemm`, `elementwise`, ...).
    pub kind: String,
    /// Grid dimensions (blocks).
    pub grid: [u32; 3],
    /// Block dimensions (threads).
    pub block: [u32; 3],
    /// Static shared memory per block, bytes.
    pub shared_bytes: u32,
    /// Parameter `i` is the device address of buffer `buffers[i]`.
    pub buffers: Vec<BufferId>,
}

/// Where a buffer lives on the device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Placement {
    /// Graph input `index` (the caller uploads it).
    Input {
        /// Position among the program's inputs.
        index: usize,
    },
    /// Graph output `index` (the caller reads it back).
    Output {
        /// Position among the program's outputs.
        index: usize,
    },
    /// A constant, at `offset` in the weights image.
    Constant {
        /// Byte offset in the weights image.
        offset: usize,
        /// Bytes in the image (a quantized matrix: values, padding, scales).
        bytes: usize,
    },
    /// An intermediate at `offset` in the device arena.
    Arena {
        /// Byte offset in the arena.
        offset: usize,
    },
}

/// A buffer of the program and its placement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BufferPlacement {
    /// The buffer's name.
    pub name: String,
    /// Element type, as written in the kernel program (`f32`, `bf16`, ...).
    pub elem: String,
    /// Size in bytes.
    pub bytes: usize,
    /// Where it lives.
    pub placement: Placement,
}

/// A program emitted as PTX: the module text and its launch plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Compiled {
    /// The architecture the module targets.
    #[serde(serialize_with = "target_name")]
    pub target: SmTarget,
    /// The PTX module.
    #[serde(skip)]
    pub ptx: String,
    /// Kernel launches in execution order.
    pub launches: Vec<LaunchSpec>,
    /// Every buffer of the program, by id.
    pub buffers: Vec<BufferPlacement>,
    /// Bytes of the device arena for intermediates.
    pub arena_bytes: usize,
    /// Bytes of the weights image.
    pub weights_bytes: usize,
}

fn target_name<S: serde::Serializer>(t: &SmTarget, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.name())
}

impl Compiled {
    /// The launch plan as pretty JSON (`plan.json`): target, arena and weights
    /// sizes, every buffer's placement, and the launches.
    pub fn plan_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the plan serializes") + "\n"
    }

    /// The weights image: every constant at its [`Placement::Constant`] offset.
    pub fn weights_image(&self, program: &Program) -> Vec<u8> {
        let mut image = vec![0u8; self.weights_bytes];
        for (buf, placed) in program.buffers.iter().zip(&self.buffers) {
            if let (Some(BufferKind::Constant(data)), Placement::Constant { offset, bytes }) = (&buf.kind, &placed.placement) {
                image[*offset..offset + bytes].copy_from_slice(&const_bytes(data));
            }
        }
        image
    }
}

/// Byte offset of the scales of a quantized constant in its device layout
/// ([`const_bytes`]): after the values, rounded up to 16.
pub fn scales_offset(data: &ConstData) -> usize {
    match data {
        ConstData::Int8 { data, .. } => data.len().next_multiple_of(16),
        ConstData::Int4 { data, .. } => data.len().next_multiple_of(16),
        _ => 0,
    }
}

/// A constant's device layout: its elements little-endian; for a quantized
/// matrix, the values, zero padding to [`scales_offset`], then the `f32` scales.
pub fn const_bytes(data: &ConstData) -> Vec<u8> {
    fn scales_after(mut v: Vec<u8>, scales: &[f32]) -> Vec<u8> {
        v.resize(v.len().next_multiple_of(16), 0);
        v.extend(scales.iter().flat_map(|s| s.to_le_bytes()));
        v
    }
    match data {
        ConstData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ConstData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ConstData::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ConstData::BF16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ConstData::Int8 { data, scales, .. } => scales_after(data.iter().map(|&q| q as u8).collect(), scales),
        ConstData::Int4 { data, scales, .. } => scales_after(data.to_vec(), scales),
    }
}

/// Bytes of [`const_bytes`]`(data)`, without building it.
pub fn const_len(data: &ConstData) -> usize {
    match data {
        ConstData::Int8 { scales, .. } | ConstData::Int4 { scales, .. } => scales_offset(data) + 4 * scales.len(),
        d => d.bytes(),
    }
}

fn elem_name(e: eqopt_kir::ElemType) -> &'static str {
    use eqopt_kir::ElemType::*;
    match e {
        F32 => "f32",
        I64 => "i64",
        F16 => "f16",
        BF16 => "bf16",
        I8 => "i8",
        I4 => "i4",
    }
}

/// Placements of every buffer and the size of the weights image.
pub(crate) fn place_buffers(program: &Program, arena_offsets: &[Option<usize>]) -> (Vec<BufferPlacement>, usize) {
    let mut weights = 0usize;
    let index_in = |list: &[(BufferId, Vec<usize>)], b: BufferId| list.iter().position(|(id, _)| *id == b).unwrap_or(0);
    let placed = program
        .buffers
        .iter()
        .enumerate()
        .map(|(b, buf)| {
            let (placement, bytes) = match &buf.kind {
                Some(BufferKind::Input) => (
                    Placement::Input {
                        index: index_in(&program.inputs, b),
                    },
                    buf.bytes(),
                ),
                Some(BufferKind::Output) => (
                    Placement::Output {
                        index: index_in(&program.outputs, b),
                    },
                    buf.bytes(),
                ),
                Some(BufferKind::Constant(data)) => {
                    let bytes = const_len(data);
                    let offset = weights;
                    weights = (offset + bytes).next_multiple_of(WEIGHT_ALIGN);
                    (Placement::Constant { offset, bytes }, bytes)
                }
                None => (
                    Placement::Arena {
                        offset: arena_offsets[b].unwrap_or(0),
                    },
                    buf.bytes(),
                ),
            };
            BufferPlacement {
                name: buf.name.clone(),
                elem: elem_name(buf.elem).to_string(),
                bytes,
                placement,
            }
        })
        .collect();
    (placed, weights)
}
