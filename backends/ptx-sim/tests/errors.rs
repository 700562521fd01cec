//! Everything the interpreter must refuse: text outside the subset (with its
//! line), faulting accesses (with entry, line and address), unsynchronised
//! collectives and barriers, runaway loops, bad launches.

mod common;

use common::*;
use eqopt_ptx_sim::{DEFAULT_INSTRUCTION_BUDGET, Device, Launch, Module, SimError, Space};

/// A one-entry module `k` with `params` u64 parameters and the given body lines
/// (after a fixed set of register declarations).
fn kernel(params: usize, body: &str) -> String {
    let params: Vec<String> = (0..params).map(|i| format!("    .param .u64 k_param_{i}")).collect();
    format!(
        "{HEADER}
.visible .entry k(
{}
)
{{
    .reg .pred %p<4>;
    .reg .b32 %r<10>;
    .reg .b64 %rd<10>;
    .reg .f32 %f<4>;
    .shared .align 4 .b8 k_smem[64];

{body}
}}
",
        params.join(",\n")
    )
}

fn parse_err(src: &str) -> SimError {
    match Module::parse(src) {
        Ok(_) => panic!("accepted:\n{src}"),
        Err(e) => e,
    }
}

#[test]
fn unknown_instructions_are_rejected_with_their_line() {
    for (instr, opcode) in [
        ("popc.b32 %r2, %r1;", "popc.b32"),
        ("add.sat.s32 %r2, %r1, %r1;", "add.sat.s32"),
        ("ld.global.f64 %rd1, [%rd2];", "ld.global.f64"),
        ("st.global.u64 [%rd2], %rd1;", "st.global.u64"),
        ("div.f32 %f1, %f2, %f3;", "div.f32"),
        ("ex2.approx.ftz.f32 %f1, %f2;", "ex2.approx.ftz.f32"),
        ("shfl.sync.up.b32 %r1, %r2, 1, 0, 0xffffffff;", "shfl.sync.up.b32"),
        ("setp.lo.u32 %p1, %r1, %r2;", "setp.lo.u32"),
        ("setp.ltu.s32 %p1, %r1, %r2;", "setp.ltu.s32"),
        ("mul.s32 %r1, %r2, %r3;", "mul.s32"),
        ("and.b16 %r1, %r2, %r3;", "and.b16"),
        ("cvt.rn.f16.f32 %r1, %f1;", "cvt.rn.f16.f32"),
        ("membar.gl;", "membar.gl"),
    ] {
        let src = kernel(0, &format!("    mov.u32 %r1, 3;\n    {instr}\n    ret;"));
        match parse_err(&src) {
            SimError::UnknownInstruction { line, opcode: o, text } => {
                assert_eq!(line, line_of(&src, instr), "{instr}");
                assert_eq!(o, opcode);
                assert_eq!(text, instr);
            }
            e => panic!("{instr}: {e}"),
        }
    }
}

/// Whether an error is the expected one.
type Check = fn(&SimError) -> bool;

#[test]
fn malformed_or_mistyped_statements_are_rejected_with_their_line() {
    let cases: &[(&str, Check)] = &[
        (
            "add.s32 %r1, %r12, 1;",
            |e| matches!(e, SimError::UnknownRegister { name, .. } if name == "%r12"),
        ),
        ("add.u32 %r1, %f1, %f2;", |e| matches!(e, SimError::Operand { index: 1, .. })),
        ("add.f32 %f1, %f1, 1;", |e| matches!(e, SimError::Operand { index: 2, .. })),
        ("mov.u32 %r1, 0f3f800000;", |e| matches!(e, SimError::Operand { index: 1, .. })),
        ("add.u32 %r1, %tid.x, 1;", |e| matches!(e, SimError::Operand { index: 1, .. })),
        ("mov.u64 %rd1, %tid.x;", |e| matches!(e, SimError::Operand { index: 1, .. })),
        ("shl.b64 %rd1, %rd2, %rd3;", |e| matches!(e, SimError::Operand { index: 2, .. })),
        ("ld.global.f32 %f1, [%r1];", |e| matches!(e, SimError::Operand { index: 1, .. })),
        ("ld.shared.f32 %f1, [%rd1];", |e| matches!(e, SimError::Operand { index: 1, .. })),
        ("ld.global.u8 %rd1, [%rd2];", |e| matches!(e, SimError::Operand { index: 0, .. })),
        ("cvt.f32.f16 %f1, %r1;", |e| matches!(e, SimError::Operand { index: 1, .. })),
        ("shfl.sync.bfly.b32 %r1, %r2, 1, 31, 0xffff;", |e| {
            matches!(e, SimError::Operand { index: 4, .. })
        }),
        ("shfl.sync.bfly.b32 %r1, %r2, 1, 0x1f1f, 0xffffffff;", |e| {
            matches!(e, SimError::Operand { index: 3, .. })
        }),
        ("bar.sync 1;", |e| matches!(e, SimError::Operand { index: 0, .. })),
        ("add.s32 %r1, %r2;", |e| matches!(e, SimError::Syntax { .. })),
        (
            "bra $L__nowhere;",
            |e| matches!(e, SimError::UnknownLabel { label, .. } if label == "$L__nowhere"),
        ),
        (
            "ld.param.u64 %rd1, [other_param];",
            |e| matches!(e, SimError::UnknownSymbol { name, .. } if name == "other_param"),
        ),
        ("mov.u32 %r1, other_smem;", |e| matches!(e, SimError::UnknownSymbol { .. })),
        ("@%r1 ret;", |e| matches!(e, SimError::Syntax { .. })),
        ("mov.u32 %r1, 1 * 2;", |e| matches!(e, SimError::Syntax { .. })),
        ("mov.u32 %r1, 0; mov.u32 %r2, 1;", |e| {
            matches!(
                e,
                SimError::Syntax {
                    expected: "one statement per line",
                    ..
                }
            )
        }),
        ("add.s32 %r1,\n    %r2, %r3;", |e| {
            matches!(
                e,
                SimError::Syntax {
                    expected: "one statement per line",
                    ..
                }
            )
        }),
        ("$L__a: ret;", |e| {
            matches!(
                e,
                SimError::Syntax {
                    expected: "one statement per line",
                    ..
                }
            )
        }),
        (".reg .f64 %fd<2>;", |e| matches!(e, SimError::Unsupported { .. })),
        (
            ".reg .b32 %r<2>;",
            |e| matches!(e, SimError::Duplicate { name, .. } if name == "%r0"),
        ),
        (".local .align 4 .b8 buf[16];", |e| matches!(e, SimError::Unsupported { .. })),
        (".shared .align 4 .f32 f_smem[16];", |e| matches!(e, SimError::Unsupported { .. })),
    ];
    for (stmt, ok) in cases {
        let src = kernel(1, &format!("    mov.u32 %r1, 3;\n    {stmt}\n    ret;"));
        let e = parse_err(&src);
        assert!(ok(&e), "{stmt}: unexpected error {e:?}");
        let first_line = stmt.lines().next().unwrap();
        assert!(
            e.to_string().contains(&format!("line {}", line_of(&src, first_line))),
            "{stmt}: {e}"
        );
    }
}

#[test]
fn module_level_errors() {
    let good = kernel(0, "    ret;");
    assert!(Module::parse(&good).is_ok());
    let e = parse_err(&good.replace(".target sm_80", ".target sm_75"));
    assert!(matches!(e, SimError::Unsupported { line: 2, .. }), "{e}");
    let e = parse_err(&good.replace(".version 8.0\n", ""));
    assert!(matches!(e, SimError::MissingDirective { directive: ".version" }), "{e}");
    let e = parse_err(&good.replace(".address_size 64", ".address_size 32"));
    assert!(matches!(e, SimError::Unsupported { line: 3, .. }), "{e}");
    let e = parse_err(&kernel(1, "    ret;").replace(".param .u64 k_param_0", ".param .u32 k_param_0"));
    assert!(matches!(e, SimError::Unsupported { .. }), "{e}");
    let e = parse_err(&good.replace(".visible .entry", ".entry"));
    assert!(matches!(e, SimError::Unsupported { .. }), "{e}");
    let e = parse_err(&good.replace("    ret;\n}\n", "    ret;\n"));
    assert!(matches!(e, SimError::Syntax { .. }), "{e}");
    let twice = format!("{good}{}", &good[good.find(".visible").unwrap()..]);
    assert!(matches!(parse_err(&twice), SimError::Duplicate { .. }));
    let e = parse_err(&kernel(0, "$L__a:\n    ret;\n$L__a:\n    ret;"));
    assert!(matches!(e, SimError::Duplicate { ref name, .. } if name == "$L__a"), "{e}");
}

const STORE: &str = "    ld.param.u64 %rd1, [k_param_0];
    mov.u32 %r1, %ctaid.x;
    mov.u32 %r2, %ntid.x;
    mov.u32 %r3, %tid.x;
    mad.lo.s32 %r4, %r1, %r2, %r3;
    mul.wide.u32 %rd2, %r4, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r4;
    ret;";

#[test]
fn out_of_bounds_store_names_entry_line_and_address() {
    let src = kernel(1, STORE);
    let m = module(&src);
    let mut dev = Device::new();
    let out = dev.alloc(4 * 100);
    let e = run1d(&mut dev, &m, "k", 2, 64, &[out]).unwrap_err();
    match e {
        SimError::OutOfBounds {
            ref entry,
            line,
            ref instruction,
            space,
            addr,
            size,
            block,
            thread,
        } => {
            assert_eq!(entry, "k");
            assert_eq!(line, line_of(&src, "st.global.u32"));
            assert_eq!(instruction, "st.global.u32 [%rd3], %r4;");
            assert_eq!(space, Space::Global);
            assert_eq!(addr, out + 400);
            assert_eq!(size, 4);
            assert_eq!(block, [1, 0, 0]);
            assert_eq!(thread, [36, 0, 0]);
        }
        e => panic!("{e}"),
    }
    assert!(e.to_string().contains(&format!("{:#x}", out + 400)), "{e}");
    // The in-bounds threads before it stored.
    assert_eq!(download_u32(&dev, out, 100), (0..100).collect::<Vec<u32>>());
    // The gap after an allocation is never another allocation.
    let next = dev.alloc(4);
    assert!(next >= out + 400 + 4, "allocations must not be adjacent");
}

#[test]
fn misaligned_global_and_shared_accesses() {
    let src = kernel(
        2,
        "    ld.param.u64 %rd1, [k_param_0];
    ld.param.u64 %rd2, [k_param_1];
    cvt.u32.u64 %r1, %rd2;
    mov.u32 %r2, k_smem;
    add.s32 %r2, %r2, %r1;
    ld.shared.u32 %r3, [%r2];
    ld.global.u16 %r4, [%rd1+2];
    ld.global.f32 %f1, [%rd1];
    ret;",
    );
    let m = module(&src);
    let mut dev = Device::new();
    let buf = dev.alloc(64);
    let e = run1d(&mut dev, &m, "k", 1, 1, &[buf + 2, 0]).unwrap_err();
    assert!(
        matches!(e, SimError::Misaligned { space: Space::Global, addr, size: 4, line, .. } if addr == buf + 2 && line == line_of(&src, "ld.global.f32")),
        "{e}"
    );
    let e = run1d(&mut dev, &m, "k", 1, 1, &[buf + 1, 0]).unwrap_err();
    assert!(matches!(e, SimError::Misaligned { size: 2, addr, .. } if addr == buf + 3), "{e}");
    let e = run1d(&mut dev, &m, "k", 1, 1, &[buf, 2]).unwrap_err();
    assert!(
        matches!(e, SimError::Misaligned { space: Space::Shared, addr: 2, line, .. } if line == line_of(&src, "ld.shared.u32")),
        "{e}"
    );
    let e = run1d(&mut dev, &m, "k", 1, 1, &[buf, 64]).unwrap_err();
    assert!(
        matches!(
            e,
            SimError::OutOfBounds {
                space: Space::Shared,
                addr: 64,
                ..
            }
        ),
        "{e}"
    );
    let e = run1d(&mut dev, &m, "k", 1, 1, &[buf, u64::from(u32::MAX - 3)]).unwrap_err();
    assert!(matches!(e, SimError::OutOfBounds { space: Space::Shared, .. }), "{e}");
    assert!(run1d(&mut dev, &m, "k", 1, 1, &[buf, 60]).is_ok());
    // A truncated (32-bit) address is never mapped.
    let e = run1d(&mut dev, &m, "k", 1, 1, &[buf & 0xffff_ffff, 0]).unwrap_err();
    assert!(matches!(e, SimError::OutOfBounds { space: Space::Global, .. }), "{e}");
}

#[test]
fn warp_collective_under_divergence() {
    let src = kernel(
        0,
        "    mov.u32 %r1, %tid.x;
    setp.lt.u32 %p1, %r1, 16;
    @%p1 bra $L__low;
    shfl.sync.bfly.b32 %r2, %r1, 1, 31, 0xffffffff; // high
    bra.uni $L__end;
$L__low:
    shfl.sync.bfly.b32 %r2, %r1, 1, 31, 0xffffffff; // low
$L__end:
    ret;",
    );
    let m = module(&src);
    let e = run1d(&mut Device::new(), &m, "k", 1, 32, &[]).unwrap_err();
    match e {
        SimError::Divergence {
            ref entry,
            block,
            warp,
            line,
            other_line,
            ..
        } => {
            assert_eq!((entry.as_str(), block, warp), ("k", [0, 0, 0], 0));
            assert_eq!(line, line_of(&src, "// low"));
            assert_eq!(other_line, line_of(&src, "// high"));
        }
        e => panic!("{e}"),
    }
}

#[test]
fn collective_and_barrier_in_one_warp_diverge() {
    let src = kernel(
        0,
        "    mov.u32 %r1, %tid.x;
    setp.lt.u32 %p1, %r1, 8;
    @%p1 bra $L__bar;
    shfl.sync.idx.b32 %r2, %r1, 0, 31, 0xffffffff;
$L__bar:
    bar.sync 0;
    ret;",
    );
    let m = module(&src);
    let e = run1d(&mut Device::new(), &m, "k", 1, 32, &[]).unwrap_err();
    assert!(
        matches!(e, SimError::Divergence { line, other_line, .. } if line == line_of(&src, "shfl") && other_line == line_of(&src, "bar.sync")),
        "{e}"
    );
}

#[test]
fn warp_collective_needs_32_live_lanes() {
    let src = kernel(
        0,
        "    mov.u32 %r1, %tid.x;
    setp.ge.u32 %p1, %r1, 40;
    @%p1 ret;
    shfl.sync.bfly.b32 %r2, %r1, 1, 31, 0xffffffff;
    ret;",
    );
    let m = module(&src);
    // Warp 0 is complete; warp 1 has lanes 32..40 live (the others ended).
    let e = run1d(&mut Device::new(), &m, "k", 1, 64, &[]).unwrap_err();
    assert!(
        matches!(e, SimError::PartialWarp { warp: 1, live: 8, line, .. } if line == line_of(&src, "shfl")),
        "{e}"
    );
    // A block of 36 threads: warp 1 has only 4 lanes.
    let e = run1d(&mut Device::new(), &m, "k", 1, 36, &[]).unwrap_err();
    assert!(matches!(e, SimError::PartialWarp { warp: 1, live: 4, .. }), "{e}");
    // Whole warps only: fine.
    assert!(run1d(&mut Device::new(), &m, "k", 1, 32, &[]).is_ok());
}

#[test]
fn barrier_deadlock_when_threads_ended() {
    let src = kernel(
        0,
        "    mov.u32 %r1, %tid.x;
    setp.eq.u32 %p1, %r1, 5;
    @%p1 ret;
    bar.sync 0;
    ret;",
    );
    let m = module(&src);
    let e = run1d(&mut Device::new(), &m, "k", 2, 64, &[]).unwrap_err();
    assert!(
        matches!(e, SimError::Deadlock { block: [0, 0, 0], waiting: 63, ended: 1, line, .. } if line == line_of(&src, "bar.sync")),
        "{e}"
    );
}

#[test]
fn threads_may_wait_at_different_barrier_instructions() {
    // Even threads write their id to shared memory at one barrier, odd threads at
    // another; after the barrier each reads its neighbour's slot.
    let src = kernel(
        1,
        "    ld.param.u64 %rd1, [k_param_0];
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, k_smem;
    shl.b32 %r3, %r1, 2;
    add.s32 %r4, %r2, %r3;
    st.shared.u32 [%r4], %r1;
    and.b32 %r5, %r1, 1;
    setp.eq.u32 %p1, %r5, 0;
    @%p1 bra $L__even;
    bar.sync 0;
    bra.uni $L__after;
$L__even:
    bar.sync 0;
$L__after:
    xor.b32 %r6, %r3, 4;
    add.s32 %r7, %r2, %r6;
    ld.shared.u32 %r8, [%r7];
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r8;
    ret;",
    );
    let m = module(&src);
    let mut dev = Device::new();
    let out = dev.alloc(64);
    run1d(&mut dev, &m, "k", 1, 16, &[out]).unwrap();
    assert_eq!(download_u32(&dev, out, 16), (0..16u32).map(|t| t ^ 1).collect::<Vec<_>>());
}

#[test]
fn runaway_loop_hits_the_budget() {
    let src = kernel(0, "$L__spin:\n    bra.uni $L__spin;\n    ret;");
    let m = module(&src);
    let launch = Launch {
        grid: [1, 1, 1],
        block: [4, 1, 1],
        instruction_budget: 10_000,
    };
    let e = Device::new().launch(&m, "k", &launch, &[]).unwrap_err();
    assert!(
        matches!(e, SimError::BudgetExceeded { budget: 10_000, line, block: [0, 0, 0], thread: [0, 0, 0], .. } if line == line_of(&src, "bra.uni")),
        "{e}"
    );
    assert_eq!(Launch::new([1, 1, 1], [1, 1, 1]).instruction_budget, DEFAULT_INSTRUCTION_BUDGET);
    // The budget counts the whole launch: 3 threads of 4 instructions fit in 12, not in 11.
    let m = module(&kernel(0, "    mov.u32 %r1, 1;\n    add.u32 %r1, %r1, 1;\n    @%p1 ret;\n    ret;"));
    let mut dev = Device::new();
    let ok = Launch {
        grid: [1, 1, 1],
        block: [3, 1, 1],
        instruction_budget: 12,
    };
    assert_eq!(dev.launch(&m, "k", &ok, &[]).unwrap().instructions, 12);
    let tight = Launch {
        instruction_budget: 11,
        ..ok
    };
    assert!(matches!(
        dev.launch(&m, "k", &tight, &[]),
        Err(SimError::BudgetExceeded { thread: [2, 0, 0], .. })
    ));
}

#[test]
fn integer_division_by_zero() {
    let src = kernel(
        1,
        "    ld.param.u64 %rd1, [k_param_0];
    mov.u32 %r1, 7;
    rem.s64 %rd2, 9, %rd1;
    cvt.u32.u64 %r2, %rd1;
    div.u32 %r3, %r1, %r2;
    ret;",
    );
    let m = module(&src);
    let e = run1d(&mut Device::new(), &m, "k", 1, 1, &[0]).unwrap_err();
    assert!(
        matches!(e, SimError::DivisionByZero { line, .. } if line == line_of(&src, "rem.s64")),
        "{e}"
    );
    let e = run1d(&mut Device::new(), &m, "k", 1, 1, &[1 << 32]).unwrap_err();
    assert!(
        matches!(e, SimError::DivisionByZero { line, .. } if line == line_of(&src, "div.u32")),
        "{e}"
    );
    assert!(run1d(&mut Device::new(), &m, "k", 1, 1, &[3]).is_ok());
}

#[test]
fn bad_launches() {
    let m = module(&kernel(1, STORE));
    let mut dev = Device::new();
    let out = dev.alloc(4 * 2048);
    let e = dev.launch(&m, "k", &Launch::new([1, 1, 1], [1, 1, 1]), &[]).unwrap_err();
    assert!(matches!(e, SimError::ParamCount { expected: 1, got: 0, .. }), "{e}");
    let e = dev.launch(&m, "k", &Launch::new([1, 1, 1], [1, 1, 1]), &[out, out]).unwrap_err();
    assert!(matches!(e, SimError::ParamCount { expected: 1, got: 2, .. }), "{e}");
    let e = dev.launch(&m, "nope", &Launch::new([1, 1, 1], [1, 1, 1]), &[out]).unwrap_err();
    assert!(matches!(e, SimError::UnknownEntry { ref entry } if entry == "nope"), "{e}");
    let e = dev.launch(&m, "k", &Launch::new([1, 0, 1], [1, 1, 1]), &[out]).unwrap_err();
    assert!(matches!(e, SimError::EmptyLaunch { .. }), "{e}");
    let e = dev.launch(&m, "k", &Launch::new([1, 1, 1], [32, 33, 1]), &[out]).unwrap_err();
    assert!(
        matches!(
            e,
            SimError::TooManyThreads {
                threads: 1056,
                limit: 1024,
                ..
            }
        ),
        "{e}"
    );
    assert!(dev.launch(&m, "k", &Launch::new([1, 1, 1], [1024, 1, 1]), &[out]).is_ok());

    let limited = kernel(1, STORE).replace("\n)\n{", "\n)\n.maxntid 64, 1, 1\n{");
    let m = module(&limited);
    let e = dev.launch(&m, "k", &Launch::new([1, 1, 1], [65, 1, 1]), &[out]).unwrap_err();
    assert!(
        matches!(
            e,
            SimError::TooManyThreads {
                threads: 65,
                limit: 64,
                source_of_limit: ".maxntid",
                ..
            }
        ),
        "{e}"
    );
    assert!(dev.launch(&m, "k", &Launch::new([1, 1, 1], [64, 1, 1]), &[out]).is_ok());
}

#[test]
fn host_accesses_stay_inside_one_allocation() {
    let mut dev = Device::new();
    let a = dev.alloc(16);
    let b = dev.alloc(16);
    assert_ne!(a, 0);
    assert_eq!(a % 256, 0);
    assert_eq!(b % 256, 0);
    assert!(dev.write(a, &[1; 16]).is_ok());
    assert!(matches!(dev.write(a + 8, &[1; 9]), Err(SimError::HostAccess { len: 9, .. })));
    assert!(matches!(dev.read(a, 17), Err(SimError::HostAccess { .. })));
    assert!(matches!(dev.read(b - 4, 4), Err(SimError::HostAccess { .. })));
    assert_eq!(dev.read(b, 16).unwrap(), vec![0; 16]);
    assert_eq!(dev.read(a + 15, 1).unwrap(), vec![1]);
}
