//! [`SimGpu`]: a [`Gpu`] on the PTX interpreter (`eqopt-ptx-sim`), so emitted
//! modules run — slowly, exactly as written — on a machine without a GPU. The
//! interpreter rejects anything outside `SUBSET.md` and checks every memory
//! access, so a run is also a check of the module.

use crate::LaunchSpec;
use crate::host::Gpu;
use eqopt_ptx_sim::{Device, Launch, LaunchStats, Module, SimError};

/// The interpreter with one module loaded.
pub struct SimGpu {
    device: Device,
    module: Module,
    stats: Vec<LaunchStats>,
}

impl SimGpu {
    /// Parses `ptx`; an error names the line the interpreter does not accept.
    pub fn new(ptx: &str) -> Result<SimGpu, SimError> {
        Ok(SimGpu {
            device: Device::new(),
            module: Module::parse(ptx)?,
            stats: Vec::new(),
        })
    }

    /// What each launch so far executed, in order.
    pub fn stats(&self) -> &[LaunchStats] {
        &self.stats
    }
}

impl Gpu for SimGpu {
    type Error = SimError;

    fn alloc(&mut self, bytes: usize) -> Result<u64, SimError> {
        Ok(self.device.alloc(bytes.max(1)))
    }

    fn upload(&mut self, addr: u64, data: &[u8]) -> Result<(), SimError> {
        self.device.write(addr, data)
    }

    fn download(&mut self, addr: u64, len: usize) -> Result<Vec<u8>, SimError> {
        self.device.read(addr, len)
    }

    fn launch(&mut self, spec: &LaunchSpec, params: &[u64]) -> Result<(), SimError> {
        let stats = self
            .device
            .launch(&self.module, &spec.entry, &Launch::new(spec.grid, spec.block), params)?;
        self.stats.push(stats);
        Ok(())
    }
}
