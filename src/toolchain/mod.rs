//! The toolchain stage: where and when each kernel of the extracted graph runs
//! on a platform of devices, and what that predicts.
//!
//! A lowered program becomes a task graph ([`tasks`]); [`heft`] places it on
//! the devices and streams of a [`platform::Platform`] with a HEFT list
//! scheduler; [`estimate`] reports `T_est` (the makespan: per stream the sum of
//! its kernels' compute and memory times plus the transfers it waits for),
//! throughput, the speedup over one stream on the best single device, the
//! scale-out `S(n)` over identical devices (with tensor-parallel splits of
//! large GEMMs), per-device memory (a schedule over a device's memory is
//! repaired or refused), and the sensitivity of `T_est` to each kernel's
//! alternatives. It is an analytical simulation, not a distributed runtime.
//!
//! ```
//! use eqopt::toolchain::{platform::Platform, tasks::TaskGraph, estimate::estimate};
//! let g = eqopt::graph::json::load("examples/mlp.json".as_ref()).unwrap();
//! let program = eqopt::lower::lower(&g).unwrap();
//! let graph = TaskGraph::from_program(&program);
//! let (schedule, e) = estimate(&graph, &Platform::load("cpu-h100").unwrap(), &[]).unwrap();
//! assert_eq!(schedule.slots.len(), program.kernels.len());
//! assert!(e.t_est > 0.0 && e.speedup >= 1.0);
//! ```

pub mod estimate;
pub mod gantt;
pub mod heft;
pub mod measure;
pub mod platform;
pub mod tasks;
