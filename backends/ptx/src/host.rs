//! Running a [`Compiled`] program on a device: allocate, upload the weights and
//! inputs, launch every kernel of the plan in order, read the outputs back.
//!
//! The device is anything implementing [`Gpu`]: the PTX interpreter in the tests,
//! a CUDA driver context on a machine with a GPU.

use crate::plan::{Compiled, Placement, WEIGHT_ALIGN};
use eqopt_kir::Program;

/// A device that can hold memory and launch the module's entries.
pub trait Gpu {
    /// The device's error.
    type Error: std::error::Error + 'static;
    /// Allocates `bytes` (at least 1) of zeroed device memory, aligned to
    /// [`WEIGHT_ALIGN`], and returns its address.
    fn alloc(&mut self, bytes: usize) -> Result<u64, Self::Error>;
    /// Copies `data` to device address `addr`.
    fn upload(&mut self, addr: u64, data: &[u8]) -> Result<(), Self::Error>;
    /// Copies `len` bytes from device address `addr`.
    fn download(&mut self, addr: u64, len: usize) -> Result<Vec<u8>, Self::Error>;
    /// Launches entry `entry` with the grid, block and shared memory of `spec`
    /// and the given parameter values, and waits for it.
    fn launch(&mut self, spec: &crate::LaunchSpec, params: &[u64]) -> Result<(), Self::Error>;
}

/// A graph input's data, in the program's input order.
#[derive(Clone, Copy, Debug)]
pub enum HostInput<'a> {
    /// `f32` data.
    F32(&'a [f32]),
    /// `i64` data (gather indices).
    I64(&'a [i64]),
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError<E: std::error::Error + 'static> {
    /// The device failed (its own error).
    #[error("device: {0}")]
    Device(#[source] E),
    /// Input `index` has the wrong element count or type.
    #[error("input {index} (\"{name}\"): expected {expected} elements of {elem}, found {found}")]
    Input {
        /// Position among the inputs.
        index: usize,
        /// Buffer name.
        name: String,
        /// The element type the program wants.
        elem: String,
        /// Elements the program wants.
        expected: usize,
        /// What was given.
        found: String,
    },
    /// Launch `launch` (its entry) failed on the device.
    #[error("launch {launch} ({entry}): {source}")]
    Launch {
        /// Position in the plan.
        launch: usize,
        /// Entry name.
        entry: String,
        /// The device's error.
        #[source]
        source: E,
    },
}

/// Runs `compiled` (emitted from `program`) on `gpu` with `inputs`, returning
/// every output's `f32` values in the program's output order.
pub fn run<G: Gpu>(
    gpu: &mut G,
    compiled: &Compiled,
    program: &Program,
    inputs: &[HostInput<'_>],
) -> Result<Vec<Vec<f32>>, RunError<G::Error>> {
    let dev = RunError::Device;
    if inputs.len() != program.inputs.len() {
        return Err(RunError::Input {
            index: inputs.len().min(program.inputs.len()),
            name: String::new(),
            elem: "-".into(),
            expected: program.inputs.len(),
            found: format!("{} inputs", inputs.len()),
        });
    }
    let weights = compiled.weights_image(program);
    let wbase = gpu.alloc(weights.len().max(1)).map_err(dev)?;
    gpu.upload(wbase, &weights).map_err(dev)?;
    let abase = gpu.alloc(compiled.arena_bytes.max(1)).map_err(dev)?;
    let mut addr = vec![0u64; program.buffers.len()];
    for (b, placed) in compiled.buffers.iter().enumerate() {
        addr[b] = match placed.placement {
            Placement::Constant { offset, .. } => wbase + offset as u64,
            Placement::Arena { offset } => abase + offset as u64,
            Placement::Input { .. } | Placement::Output { .. } => {
                gpu.alloc(placed.bytes.max(1).next_multiple_of(WEIGHT_ALIGN)).map_err(dev)?
            }
        };
    }
    for (index, ((b, _), data)) in program.inputs.iter().zip(inputs).enumerate() {
        let buf = &program.buffers[*b];
        let (bytes, given) = match (data, buf.elem) {
            (HostInput::F32(v), eqopt_kir::ElemType::F32) => (v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(), v.len()),
            (HostInput::I64(v), eqopt_kir::ElemType::I64) => (v.iter().flat_map(|x| x.to_le_bytes()).collect(), v.len()),
            (HostInput::F32(v), _) => (Vec::new(), v.len()),
            (HostInput::I64(v), _) => (Vec::new(), v.len()),
        };
        let kind = match data {
            HostInput::F32(_) => "f32",
            HostInput::I64(_) => "i64",
        };
        if given != buf.len || kind != compiled.buffers[*b].elem {
            return Err(RunError::Input {
                index,
                name: buf.name.clone(),
                elem: compiled.buffers[*b].elem.clone(),
                expected: buf.len,
                found: format!("{given} elements of {kind}"),
            });
        }
        gpu.upload(addr[*b], &bytes).map_err(dev)?;
    }
    for (i, spec) in compiled.launches.iter().enumerate() {
        let params: Vec<u64> = spec.buffers.iter().map(|&b| addr[b]).collect();
        gpu.launch(spec, &params).map_err(|source| RunError::Launch {
            launch: i,
            entry: spec.entry.clone(),
            source,
        })?;
    }
    program
        .outputs
        .iter()
        .map(|(b, _)| {
            let bytes = gpu.download(addr[*b], program.buffers[*b].len * 4).map_err(dev)?;
            Ok(bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        })
        .collect()
}
