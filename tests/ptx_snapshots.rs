//! Snapshots of the PTX the backend emits, one per kernel kind (and per GEMM
//! weight format): the entry text with its launch configuration, from small
//! graphs optimized for `h100` and, for what no small graph lowers to (gather,
//! quantized and tensor-core GEMMs), small kernel programs built here. A change
//! to the emitted code shows up as a snapshot diff to review.

mod common;

use common::root;
use eqopt::optimize::{OptimizeOptions, optimize};
use eqopt::ptx::PtxModel;
use eqopt::rules::RuleSet;
use eqopt_kir::{Buffer, BufferKind, ConstData, ElemType, GemmCompute, Kernel, Program, View};
use eqopt_ptx::SmTarget;
use std::sync::Arc;

/// `(snapshot, graph, entry kind, occurrence)`: the entry snapshotted is the
/// `occurrence`-th launch of that kind in the graph's module.
pub const GRAPH_CASES: &[(&str, &str, &str, usize)] = &[
    ("elementwise", "tests/graphs/fusion_elementwise_chain.json", "elementwise", 0),
    ("gemm_epilogue", "tests/graphs/fusion_gemm_bias_relu.json", "gemm", 0),
    ("conv_implicit_gemm", "tests/graphs/fusion_conv_bn_relu.json", "conv", 0),
    ("conv_depthwise", "tests/ptx/small_cnn.json", "conv", 2),
    ("pool", "tests/ptx/small_cnn.json", "pool", 0),
    ("reduce", "tests/ptx/small_cnn.json", "reduce", 0),
    ("softmax", "tests/graphs/fusion_softmax_decomposed.json", "softmax", 0),
    ("layernorm", "tests/graphs/fusion_layernorm_decomposed.json", "layernorm", 0),
    ("attention", "tests/graphs/fusion_attention.json", "attention", 0),
    ("copy", "tests/graphs/layout_transpose_moves.json", "copy", 0),
];

/// Snapshots of the programs built in [`program_cases`].
pub const PROGRAM_CASES: &[&str] = &["gather", "gemm_f16", "gemm_int8", "gemm_int4", "gemm_bf16_mma"];

fn entry_text(ptx: &str, entry: &str) -> String {
    let start = ptx.find(&format!(".visible .entry {entry}(")).expect("the entry is in the module");
    let end = start + ptx[start..].find("\n}\n").expect("the entry ends") + 3;
    ptx[start..end].to_string()
}

fn snapshot(name: &str, program: &Program, compiled: &eqopt_ptx::Compiled, launch: usize) {
    let l = &compiled.launches[launch];
    let text = format!(
        "program {}, kernel {}: grid {:?}, block {:?}, {} bytes shared\n{}\n\n{}",
        program.name,
        l.kernel,
        l.grid,
        l.block,
        l.shared_bytes,
        program.kernels[l.kernel].name(),
        entry_text(&compiled.ptx, &l.entry)
    );
    insta::with_settings!({snapshot_path => root().join("snapshots"), prepend_module_to_snapshot => false, omit_expression => true}, {
        insta::assert_snapshot!(format!("ptx__{name}"), text);
    });
}

#[test]
fn emitted_ptx_of_small_graphs_matches_its_snapshots() {
    let rules = RuleSet::defaults().unwrap();
    let opts = OptimizeOptions::new(eqopt::cost::HardwareProfile::load("h100").unwrap());
    for &(name, rel, kind, occurrence) in GRAPH_CASES {
        let g = eqopt::graph::json::load(&root().join(rel)).unwrap();
        let g = optimize(&g, &rules, &opts).unwrap().0;
        let model = PtxModel::compile(&g, SmTarget::Sm90).unwrap();
        let launch = model
            .compiled
            .launches
            .iter()
            .enumerate()
            .filter(|(_, l)| l.kind == kind)
            .nth(occurrence)
            .unwrap_or_else(|| panic!("{rel}: no launch {occurrence} of kind {kind}"))
            .0;
        snapshot(name, &model.program, &model.compiled, launch);
    }
}

fn buffer(name: &str, elem: ElemType, len: usize, kind: Option<BufferKind>) -> Buffer {
    Buffer {
        name: name.into(),
        elem,
        len,
        kind,
    }
}

/// `y[3, 10] = x[3, 24] · w[24, 10]` with `w` stored as `data`.
fn gemm(name: &str, data: ConstData, compute: GemmCompute) -> Program {
    let elem = data.elem();
    Program {
        name: name.into(),
        buffers: vec![
            buffer("x", ElemType::F32, 72, Some(BufferKind::Input)),
            buffer("w", elem, 240, Some(BufferKind::Constant(data))),
            buffer("y", ElemType::F32, 30, Some(BufferKind::Output)),
        ],
        kernels: vec![Kernel::Gemm {
            a: View::dense(0, &[3, 24]),
            b: View::dense(1, &[24, 10]),
            out: View::dense(2, &[3, 10]),
            epilogue: None,
            compute,
        }],
        inputs: vec![(0, vec![3, 24])],
        outputs: vec![(2, vec![3, 10])],
    }
}

fn program_cases() -> Vec<(&'static str, Program)> {
    let w: Vec<f32> = (0..240).map(|i| ((i * 37 % 19) as f32 - 9.0) / 16.0).collect();
    let gather = Program {
        name: "gather".into(),
        buffers: vec![
            buffer("table", ElemType::F32, 5 * 6, Some(BufferKind::Input)),
            buffer("ids", ElemType::I64, 4, Some(BufferKind::Input)),
            buffer("rows", ElemType::F32, 4 * 6, Some(BufferKind::Output)),
        ],
        kernels: vec![Kernel::Gather {
            data: View::dense(0, &[5, 6]),
            indices: View::dense(1, &[4]),
            axis: 0,
            out: View::dense(2, &[4, 6]),
        }],
        inputs: vec![(0, vec![5, 6]), (1, vec![4])],
        outputs: vec![(2, vec![4, 6])],
    };
    let int8 = ConstData::Int8 {
        data: Arc::new((0..240i32).map(|i| (i % 200 - 100) as i8).collect()),
        scales: Arc::new(vec![0.01; 10]),
        k: 24,
        n: 10,
    };
    let int4 = ConstData::Int4 {
        data: Arc::new((0..24 * 5).map(|i| (i * 7 % 256) as u8).collect()),
        scales: Arc::new(vec![0.1; 30]),
        k: 24,
        n: 10,
        group: 8,
    };
    vec![
        ("gather", gather),
        (
            "gemm_f16",
            gemm(
                "gemm_f16",
                ConstData::F16(Arc::new(w.iter().map(|&x| half::f16::from_f32(x)).collect())),
                GemmCompute::F32,
            ),
        ),
        ("gemm_int8", gemm("gemm_int8", int8, GemmCompute::F32)),
        ("gemm_int4", gemm("gemm_int4", int4, GemmCompute::F32)),
        (
            "gemm_bf16_mma",
            gemm(
                "gemm_bf16_mma",
                ConstData::BF16(Arc::new(w.iter().map(|&x| half::bf16::from_f32(x)).collect())),
                GemmCompute::Bf16,
            ),
        ),
    ]
}

#[test]
fn emitted_ptx_of_small_programs_matches_its_snapshots() {
    let cases = program_cases();
    assert_eq!(cases.iter().map(|c| c.0).collect::<Vec<_>>(), PROGRAM_CASES);
    for (name, program) in cases {
        program.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        let offsets = vec![None; program.buffers.len()];
        let compiled = eqopt_ptx::compile(&program, &offsets, SmTarget::Sm90).unwrap();
        snapshot(name, &program, &compiled, 0);
    }
}
