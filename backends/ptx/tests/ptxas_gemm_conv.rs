//! Every GEMM and convolution variant assembles with NVIDIA's `ptxas` for
//! `sm_80` and `sm_90` without spilling registers.

mod common;
mod gemm_conv;

use common::{assemble, offsets, ptxas};
use eqopt_kir::Program;
use eqopt_ptx::{SmTarget, compile};
use gemm_conv::{ConvCase, GemmCase, Weights, conv_program, gemm_program};

/// Assembles `program` for both targets and checks that every entry compiled
/// without spill stores; returns the `sm_90` report.
fn check(what: &str, program: &Program) -> Option<String> {
    let ptxas = ptxas()?;
    let (offs, _) = offsets(program);
    let mut last = String::new();
    for target in SmTarget::ALL {
        let c = compile(program, &offs, target).unwrap_or_else(|e| panic!("{what}: {e}"));
        let report = assemble(&ptxas, &c.ptx, target.name());
        for l in &c.launches {
            assert!(
                report.contains(&format!("Compiling entry function '{}'", l.entry)),
                "{what}: {report}"
            );
        }
        let spills: Vec<&str> = report.lines().filter(|l| l.contains("spill stores")).collect();
        assert_eq!(spills.len(), c.launches.len(), "{what} ({}): {report}", target.name());
        for line in spills {
            assert!(
                line.contains(" 0 bytes spill stores"),
                "{what} ({}) spills: {line}\n{report}",
                target.name()
            );
        }
        last = report;
    }
    Some(last)
}

fn gemm(what: &str, case: GemmCase) {
    if let Some(report) = check(what, &gemm_program(&case, 1)) {
        eprintln!(
            "{what}: {}",
            report.lines().filter(|l| l.contains("registers")).collect::<Vec<_>>().join(" | ")
        );
    }
}

fn conv(what: &str, case: ConvCase) {
    if let Some(report) = check(what, &conv_program(&case, 1)) {
        eprintln!(
            "{what}: {}",
            report.lines().filter(|l| l.contains("registers")).collect::<Vec<_>>().join(" | ")
        );
    }
}

#[test]
fn gemm_f32_with_epilogue_and_batch() {
    gemm("f32", GemmCase::new(&[], 65, 300, 33));
    gemm(
        "f32 epilogue batch",
        GemmCase {
            epilogue: true,
            ..GemmCase::new(&[2, 3], 37, 19, 70)
        },
    );
}

#[test]
fn gemm_low_precision_b() {
    for b in [Weights::F32, Weights::F16, Weights::Bf16, Weights::Int8, Weights::Int4 { group: 4 }] {
        gemm(
            &format!("{b:?}"),
            GemmCase {
                b,
                b_broadcast: true,
                ..GemmCase::new(&[2], 17, 45, 29)
            },
        );
    }
}

#[test]
fn gemm_bf16_tensor_cores() {
    gemm(
        "bf16",
        GemmCase {
            b: Weights::Bf16,
            bf16: true,
            ..GemmCase::new(&[], 70, 50, 66)
        },
    );
    gemm(
        "bf16 epilogue transposed",
        GemmCase {
            b: Weights::Bf16,
            bf16: true,
            epilogue: true,
            a_transposed: true,
            b_transposed: true,
            ..GemmCase::new(&[3], 9, 33, 5)
        },
    );
}

#[test]
fn gemm_strided_and_broadcast() {
    gemm(
        "a transposed",
        GemmCase {
            a_transposed: true,
            ..GemmCase::new(&[2], 31, 17, 12)
        },
    );
    gemm(
        "b transposed",
        GemmCase {
            b_transposed: true,
            ..GemmCase::new(&[2], 31, 17, 12)
        },
    );
    gemm(
        "a broadcast",
        GemmCase {
            a_broadcast: true,
            b_broadcast: false,
            ..GemmCase::new(&[3, 2], 5, 8, 7)
        },
    );
    gemm(
        "b broadcast",
        GemmCase {
            b_broadcast: true,
            ..GemmCase::new(&[4, 1, 2], 5, 8, 7)
        },
    );
}

#[test]
fn conv_layouts_and_geometry() {
    conv("nchw 3x3", ConvCase::new(2, 8, 9, 11, 20));
    conv(
        "nhwc 3x3",
        ConvCase {
            nhwc: true,
            ..ConvCase::new(2, 8, 9, 11, 20)
        },
    );
    for nhwc in [false, true] {
        conv(
            "stride dilation pad bias epilogue",
            ConvCase {
                nhwc,
                strides: [2, 3],
                pads: [0, 2, 1, 1],
                dilations: [2, 1],
                bias: true,
                epilogue: true,
                ..ConvCase::new(2, 5, 13, 12, 7)
            },
        );
    }
}

#[test]
fn conv_groups_depthwise_and_weights() {
    for nhwc in [false, true] {
        conv(
            "groups",
            ConvCase {
                group: 2,
                nhwc,
                bias: true,
                ..ConvCase::new(1, 32, 6, 7, 64)
            },
        );
        conv(
            "depthwise",
            ConvCase {
                group: 16,
                nhwc,
                bias: true,
                epilogue: true,
                ..ConvCase::new(2, 16, 8, 7, 16)
            },
        );
        conv(
            "grouped direct",
            ConvCase {
                group: 4,
                nhwc,
                kh: 7,
                kw: 7,
                pads: [3; 4],
                ..ConvCase::new(1, 12, 8, 8, 8)
            },
        );
        for weights in [Weights::F16, Weights::Bf16] {
            conv(
                "low precision",
                ConvCase {
                    weights,
                    nhwc,
                    ..ConvCase::new(1, 3, 10, 10, 4)
                },
            );
            conv(
                "low precision depthwise",
                ConvCase {
                    weights,
                    nhwc,
                    group: 3,
                    ..ConvCase::new(1, 3, 10, 10, 6)
                },
            );
        }
    }
}
