//! (being written) The attention kernel emitter.

use super::Emitted;
use crate::error::PtxError;
use eqopt_kir::{Kernel, Program};

/// Emits kernel `index` (`kernel`) of `program` as entry `name`.
pub fn emit(_program: &Program, _name: &str, kernel: &Kernel, index: usize) -> Result<Emitted, PtxError> {
    Err(PtxError::Unsupported {
        kernel: index,
        kind: kernel.name(),
        reason: "no PTX emitter for this kernel kind yet".into(),
    })
}
