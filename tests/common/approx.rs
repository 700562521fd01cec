//! Helpers for the approximate-rewrite tests: graphs built by hand, budgeted
//! optimization measured on seeded inputs, and error on fresh inputs.

use eqopt::backend::CpuModel;
use eqopt::budget::{CpuMeter, max_relative_error};
use eqopt::cost::HardwareProfile;
use eqopt::dtype::{DType, TensorType};
use eqopt::eval::{compare, random_inputs, run};
use eqopt::graph::op::Op;
use eqopt::graph::tensor::{ConstInit, Tensor};
use eqopt::graph::{Constant, Graph, Node};
use eqopt::optimize::{OptimizeOptions, Report, optimize_measured};
use eqopt::rules::RuleSet;
use eqopt_kir::{BufferKind, ElemType};
use std::sync::Arc;

/// Options for the built-in `cpu` target.
pub fn cpu_opts() -> OptimizeOptions {
    OptimizeOptions::new(HardwareProfile::load("cpu").unwrap())
}

/// `g` optimized with the default rules under `opts` and budget `max_error`,
/// measured on two seeded input sets.
pub fn budgeted_with(g: &Graph, max_error: f64, opts: OptimizeOptions) -> (Graph, Report) {
    let mut meter = CpuMeter::seeded(g, 0, 2).unwrap();
    optimize_measured(g, &RuleSet::defaults().unwrap(), &opts.with_max_error(max_error), Some(&mut meter)).unwrap()
}

/// [`budgeted_with`] on the built-in `cpu` target.
pub fn budgeted(g: &Graph, max_error: f64) -> (Graph, Report) {
    budgeted_with(g, max_error, cpu_opts())
}

/// The relative error of `optimized` against `original` on inputs the meter never saw.
pub fn fresh_error(original: &Graph, optimized: &Graph, seed: u64) -> f64 {
    let inputs = random_inputs(original, seed);
    let want = CpuModel::compile(original).unwrap().run(&inputs).unwrap();
    let got = CpuModel::compile(optimized).unwrap().run(&inputs).unwrap();
    max_relative_error(&got, &want)
}

/// A constant holding `t`.
pub fn constant(name: &str, t: Tensor) -> Constant {
    Constant {
        name: name.into(),
        ty: t.ty.clone(),
        init: ConstInit::Data(Arc::new(t)),
    }
}

/// An f32 constant of `shape` holding `values`.
pub fn f32_constant(name: &str, shape: Vec<usize>, values: &[f64]) -> Constant {
    constant(name, Tensor::from_f64(TensorType::new(shape, DType::F32), values))
}

/// A node whose type `Graph::new` infers.
pub fn node(name: &str, op: Op, inputs: &[&str]) -> Node {
    Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        ty: TensorType::new(vec![], DType::F32),
    }
}

/// Compiles `g` for the CPU backend and checks output `y` against the
/// reference interpreter on two input sets, within `rtol` of the output's
/// scale; returns the model.
pub fn check_cpu(label: &str, g: &Graph, rtol: f64) -> CpuModel {
    let model = CpuModel::compile(g).unwrap_or_else(|e| panic!("{label}: {e}"));
    for seed in [1, 2] {
        let inputs = random_inputs(g, seed);
        let want = run(g, &inputs).unwrap();
        let got = model.run(&inputs).unwrap_or_else(|e| panic!("{label}: {e}"));
        let c = compare(&got["y"], &want["y"]);
        let scale = want["y"].to_f64().iter().fold(1e-3f64, |m, x| m.max(x.abs()));
        assert!(
            c.shape_equal && c.max_abs <= rtol * scale,
            "{label}: max abs error {:.3e} (scale {scale:.3e})",
            c.max_abs
        );
    }
    model
}

/// Element types of the program's constant buffers.
pub fn constant_elems(model: &CpuModel) -> Vec<ElemType> {
    model
        .program()
        .buffers
        .iter()
        .filter(|b| matches!(b.kind, Some(BufferKind::Constant(_))))
        .map(|b| b.elem)
        .collect()
}
