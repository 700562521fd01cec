//! [`CudaGpu`]: a [`Gpu`] on a real NVIDIA GPU, through the CUDA driver API
//! (crate `cudarc`, which loads `libcuda` at run time, so this compiles on a
//! machine without CUDA). Only with the `cuda` cargo feature.
//!
//! Not yet run on real hardware by the project: the machines it is developed
//! on have no GPU (see `docs/ptx-backend.md`).

use crate::LaunchSpec;
use crate::host::Gpu;
use cudarc::driver::{CudaContext, DriverError, result, sys};
use std::ffi::{CString, c_void};
use std::sync::Arc;

/// Why the CUDA device failed.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// No CUDA driver library on this machine.
    #[error("no CUDA driver (libcuda) on this machine")]
    NoDriver,
    /// A driver call failed.
    #[error("{call}: {source}")]
    Driver {
        /// The call.
        call: &'static str,
        /// The driver's error.
        #[source]
        source: DriverError,
    },
    /// The module has no such entry.
    #[error("the module has no entry \"{entry}\"")]
    NoEntry {
        /// The entry asked for.
        entry: String,
    },
    /// The module text holds a NUL byte.
    #[error("the PTX text holds a NUL byte")]
    BadText,
}

fn driver(call: &'static str) -> impl FnOnce(DriverError) -> CudaError {
    move |source| CudaError::Driver { call, source }
}

/// GPU 0 with one PTX module loaded, and the allocations made through it
/// (freed on drop).
pub struct CudaGpu {
    ctx: Arc<CudaContext>,
    module: sys::CUmodule,
    allocations: Vec<sys::CUdeviceptr>,
}

impl CudaGpu {
    /// Opens GPU 0 and loads (JIT-compiles) `ptx`. [`CudaError::NoDriver`] on a
    /// machine without a CUDA driver.
    pub fn new(ptx: &str) -> Result<CudaGpu, CudaError> {
        // SAFETY: only probes whether the library can be loaded.
        if !unsafe { sys::is_culib_present() } {
            return Err(CudaError::NoDriver);
        }
        let ctx = CudaContext::new(0).map_err(driver("cuInit/cuDevicePrimaryCtxRetain"))?;
        let text = CString::new(ptx).map_err(|_| CudaError::BadText)?;
        // SAFETY: `text` is a NUL-terminated PTX image that outlives the call.
        let module = unsafe { result::module::load_data(text.as_ptr() as *const c_void) }.map_err(driver("cuModuleLoadData"))?;
        Ok(CudaGpu {
            ctx,
            module,
            allocations: Vec::new(),
        })
    }
}

impl Gpu for CudaGpu {
    type Error = CudaError;

    fn alloc(&mut self, bytes: usize) -> Result<u64, CudaError> {
        self.ctx.bind_to_thread().map_err(driver("cuCtxSetCurrent"))?;
        // SAFETY: a plain allocation of `bytes`, zeroed before use and freed on drop.
        let p = unsafe { result::malloc_sync(bytes.max(1)) }.map_err(driver("cuMemAlloc"))?;
        self.allocations.push(p);
        // SAFETY: `p` holds `bytes` bytes.
        unsafe { result::memset_d8_sync(p, 0, bytes.max(1)) }.map_err(driver("cuMemsetD8"))?;
        Ok(p)
    }

    fn upload(&mut self, addr: u64, data: &[u8]) -> Result<(), CudaError> {
        self.ctx.bind_to_thread().map_err(driver("cuCtxSetCurrent"))?;
        // SAFETY: the host runner only writes inside allocations it made.
        unsafe { result::memcpy_htod_sync(addr, data) }.map_err(driver("cuMemcpyHtoD"))
    }

    fn download(&mut self, addr: u64, len: usize) -> Result<Vec<u8>, CudaError> {
        self.ctx.bind_to_thread().map_err(driver("cuCtxSetCurrent"))?;
        let mut v = vec![0u8; len];
        // SAFETY: the host runner only reads inside allocations it made.
        unsafe { result::memcpy_dtoh_sync(&mut v, addr) }.map_err(driver("cuMemcpyDtoH"))?;
        Ok(v)
    }

    fn launch(&mut self, spec: &LaunchSpec, params: &[u64]) -> Result<(), CudaError> {
        self.ctx.bind_to_thread().map_err(driver("cuCtxSetCurrent"))?;
        let name = CString::new(spec.entry.as_str()).map_err(|_| CudaError::BadText)?;
        // SAFETY: the module is loaded and not yet unloaded.
        let f = unsafe { result::module::get_function(self.module, name) }.map_err(|_| CudaError::NoEntry { entry: spec.entry.clone() })?;
        let mut values: Vec<u64> = params.to_vec();
        let mut ptrs: Vec<*mut c_void> = values.iter_mut().map(|v| v as *mut u64 as *mut c_void).collect();
        let (g, b) = (spec.grid, spec.block);
        // SAFETY: every entry takes exactly `params.len()` `.u64` parameters (the
        // plan's buffers), which point at live allocations; shared memory is
        // declared statically in the module, so no dynamic shared memory is asked for.
        unsafe { result::launch_kernel(f, (g[0], g[1], g[2]), (b[0], b[1], b[2]), 0, std::ptr::null_mut(), &mut ptrs) }
            .map_err(driver("cuLaunchKernel"))?;
        self.ctx.synchronize().map_err(driver("cuCtxSynchronize"))
    }
}

impl Drop for CudaGpu {
    fn drop(&mut self) {
        if self.ctx.bind_to_thread().is_err() {
            return;
        }
        for &p in &self.allocations {
            // SAFETY: allocated by `alloc`, freed once.
            let _ = unsafe { result::free_sync(p) };
        }
        // SAFETY: loaded in `new`, unloaded once.
        let _ = unsafe { result::module::unload(self.module) };
    }
}
