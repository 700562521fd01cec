//! Running an emitted program on the PTX interpreter and on the CPU backend,
//! and comparing the two.

use super::{Rng, offsets};
use eqopt_kir::{ElemType, Program};
use eqopt_ptx::host::{self, HostInput};
use eqopt_ptx::sim::SimGpu;
use eqopt_ptx::{SmTarget, compile};

/// Random inputs for `program`: `f32` in [-1, 1), `i64` indices in
/// `[-dim, dim)` for `index_bound` (`dim`).
pub enum Data {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl Data {
    fn host(&self) -> HostInput<'_> {
        match self {
            Data::F32(v) => HostInput::F32(v),
            Data::I64(v) => HostInput::I64(v),
        }
    }
    fn cpu(&self) -> eqopt_cpu::exec::InputData<'_> {
        match self {
            Data::F32(v) => eqopt_cpu::exec::InputData::F32(v),
            Data::I64(v) => eqopt_cpu::exec::InputData::I64(v),
        }
    }
}

/// Seeded random inputs; `i64` inputs are indices in `[-index_bound, index_bound)`.
pub fn random_inputs(program: &Program, seed: u64, index_bound: usize) -> Vec<Data> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    program
        .inputs
        .iter()
        .map(|(b, _)| {
            let buf = &program.buffers[*b];
            match buf.elem {
                ElemType::I64 => Data::I64(
                    (0..buf.len)
                        .map(|_| rng.below(2 * index_bound) as i64 - index_bound as i64)
                        .collect(),
                ),
                _ => Data::F32(rng.vec(buf.len)),
            }
        })
        .collect()
}

/// Outputs of `program` on the PTX interpreter (module emitted for `sm_90`).
pub fn run_sim(program: &Program, inputs: &[Data]) -> Vec<Vec<f32>> {
    let (offs, _) = offsets(program);
    let compiled = compile(program, &offs, SmTarget::Sm90).unwrap_or_else(|e| panic!("emission failed: {e}"));
    let mut gpu = SimGpu::new(&compiled.ptx).unwrap_or_else(|e| panic!("the interpreter rejected the module: {e}\n{}", compiled.ptx));
    let host: Vec<_> = inputs.iter().map(Data::host).collect();
    host::run(&mut gpu, &compiled, program, &host).unwrap_or_else(|e| panic!("interpreted run failed: {e}"))
}

/// Outputs of `program` on the CPU backend.
pub fn run_cpu(program: &Program, inputs: &[Data]) -> Vec<Vec<f32>> {
    let (offs, arena) = offsets(program);
    let offs = offs.into_iter().map(|o| o.map(|b| b / 4)).collect();
    let exe = eqopt_cpu::exec::Executable::new(program.clone(), offs, arena / 4).expect("the CPU backend takes the program");
    let cpu: Vec<_> = inputs.iter().map(Data::cpu).collect();
    exe.run(&cpu).expect("the CPU backend runs the program")
}

/// Runs `program` on both with seeded random inputs and asserts every output
/// element agrees: `|sim - cpu| <= atol + rtol·|cpu|`, NaN only where the other is NaN.
pub fn assert_matches_cpu(program: &Program, seed: u64, atol: f32, rtol: f32) {
    assert_matches_cpu_with_indices(program, seed, 4, atol, rtol)
}

/// [`assert_matches_cpu`] with `i64` inputs drawn from `[-index_bound, index_bound)`.
pub fn assert_matches_cpu_with_indices(program: &Program, seed: u64, index_bound: usize, atol: f32, rtol: f32) {
    let inputs = random_inputs(program, seed, index_bound);
    let sim = run_sim(program, &inputs);
    let cpu = run_cpu(program, &inputs);
    assert_eq!(sim.len(), cpu.len());
    for (o, (s, c)) in sim.iter().zip(&cpu).enumerate() {
        assert_eq!(s.len(), c.len(), "output {o}: lengths");
        for (i, (&a, &b)) in s.iter().zip(c).enumerate() {
            let ok = if b.is_nan() {
                a.is_nan()
            } else {
                (a - b).abs() <= atol + rtol * b.abs()
            };
            assert!(
                ok,
                "program {}: output {o}[{i}]: PTX (interpreted) {a}, CPU {b} (seed {seed})",
                program.name
            );
        }
    }
}
