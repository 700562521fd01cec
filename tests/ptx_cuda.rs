//! The PTX backend on a real NVIDIA GPU (`cargo test --features cuda` on a
//! machine with one): the small whole models of `tests/ptx/` and
//! `examples/mlp.json`, optimized for `h100`, run through the CUDA driver and
//! match the CPU backend. Without the feature, or without a CUDA driver, the
//! test says it was skipped.

mod common;

#[cfg(feature = "cuda")]
fn run_on_gpu() {
    use eqopt::backend::CpuModel;
    use eqopt::ptx::PtxModel;
    use eqopt_ptx::cuda::{CudaError, CudaGpu};
    // Looser than against the interpreter: the GPU's ex2/lg2.approx are the
    // hardware's, not the interpreter's exactly rounded ones.
    const RTOL: f32 = 1e-3;
    const ATOL: f32 = 1e-5;
    let rules = eqopt::rules::RuleSet::defaults().unwrap();
    let opts = eqopt::optimize::OptimizeOptions::new(eqopt::cost::HardwareProfile::load("h100").unwrap());
    for rel in [
        "tests/ptx/small_cnn.json",
        "tests/ptx/transformer_layer_small.json",
        "examples/mlp.json",
    ] {
        let g = eqopt::graph::json::load(&common::root().join(rel)).unwrap();
        let g = eqopt::optimize::optimize(&g, &rules, &opts).unwrap().0;
        let inputs = eqopt::eval::random_inputs(&g, 11);
        let expected = CpuModel::compile(&g).unwrap().run(&inputs).unwrap();
        let model = PtxModel::compile(&g, eqopt_ptx::SmTarget::Sm80).unwrap();
        let mut gpu = match CudaGpu::new(&model.compiled.ptx) {
            Err(CudaError::NoDriver) => {
                eprintln!("SKIPPED: no CUDA driver on this machine");
                return;
            }
            r => r.unwrap_or_else(|e| panic!("{rel}: {e}")),
        };
        let got = model.run(&mut gpu, &inputs).unwrap_or_else(|e| panic!("{rel}: {e}"));
        for (name, want) in &expected {
            for (i, (&a, &b)) in got[name].to_f64().iter().zip(&want.to_f64()).enumerate() {
                let (a, b) = (a as f32, b as f32);
                assert!(
                    a == b || (a - b).abs() <= ATOL + RTOL * b.abs(),
                    "{rel}: {name}[{i}]: GPU {a}, CPU backend {b}"
                );
            }
        }
        eprintln!("{rel}: {} launches on the GPU match the CPU backend", model.compiled.launches.len());
    }
}

#[test]
fn small_models_run_on_a_real_gpu_when_one_is_present() {
    #[cfg(feature = "cuda")]
    run_on_gpu();
    #[cfg(not(feature = "cuda"))]
    eprintln!("SKIPPED: built without the cuda feature (cargo test --features cuda --test ptx_cuda)");
}
