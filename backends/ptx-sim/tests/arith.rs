//! Every arithmetic, logic, comparison and conversion instruction of the
//! subset against its PTX ISA semantics, over operand pairs that include the
//! edge cases (wraparound, `MIN / -1`, shifts of 32 and more, NaN, signed
//! zeros, infinities, ties, saturation).
//!
//! The kernels are generated from a table: each row is one instruction (or a
//! `setp` + `selp` pair) that writes `%r3` (32-bit result) or `%rd3` (64-bit)
//! or `%f3`, and the value it must produce for inputs `a`, `b`.

mod common;

use common::*;
use eqopt_ptx_sim::Device;
use proptest::prelude::*;

/// Where a row's result is.
#[derive(Clone, Copy)]
enum Out {
    R32,
    R64,
}

/// Builds a kernel that loads pair `tid` (two 32-bit values into `%r1 %r2`,
/// `%f1 %f2`, and sign-extended into `%rd1 %rd2`), runs every row, and
/// stores each result as one or two `u32` at `out[tid * width + k]`.
fn kernel(rows: &[(&str, Out)]) -> (String, usize) {
    let width: usize = rows.iter().map(|r| if matches!(r.1, Out::R64) { 2 } else { 1 }).sum();
    let mut body = String::new();
    let mut k = 0;
    for (ptx, out) in rows {
        for line in ptx.split(';').map(str::trim).filter(|l| !l.is_empty()) {
            body += &format!("    {line};\n");
        }
        match out {
            Out::R32 => {
                body += &format!("    st.global.u32 [%rd9+{}], %r3;\n", 4 * k);
                k += 1;
            }
            Out::R64 => {
                body += &format!(
                    "    cvt.u32.u64 %r3, %rd3;\n    st.global.u32 [%rd9+{}], %r3;\n    shr.b64 %rd4, %rd3, 32;\n    cvt.u32.u64 %r3, %rd4;\n    st.global.u32 [%rd9+{}], %r3;\n",
                    4 * k,
                    4 * k + 4
                );
                k += 2;
            }
        }
    }
    let src = format!(
        "{HEADER}
.visible .entry ops(
    .param .u64 ops_param_0,
    .param .u64 ops_param_1
)
{{
    .reg .pred %p<2>;
    .reg .b32 %r<8>;
    .reg .b64 %rd<12>;
    .reg .f32 %f<6>;

    ld.param.u64 %rd10, [ops_param_0];
    ld.param.u64 %rd11, [ops_param_1];
    mov.u32 %r7, %tid.x;
    mul.wide.u32 %rd8, %r7, 8;
    add.s64 %rd8, %rd10, %rd8;
    ld.global.u32 %r1, [%rd8];
    ld.global.u32 %r2, [%rd8+4];
    ld.global.f32 %f1, [%rd8];
    ld.global.f32 %f2, [%rd8+4];
    cvt.s64.s32 %rd1, %r1;
    cvt.s64.s32 %rd2, %r2;
    mul.wide.u32 %rd9, %r7, {};
    add.s64 %rd9, %rd11, %rd9;
{body}    ret;
}}
",
        4 * width
    );
    (src, width)
}

/// Runs the table's kernel over `pairs` (bits) and returns each pair's row of results.
fn run(rows: &[(&str, Out)], pairs: &[(u32, u32)]) -> Vec<Vec<u64>> {
    let (src, width) = kernel(rows);
    let m = module(&src);
    let mut dev = Device::new();
    let input: Vec<u32> = pairs.iter().flat_map(|&(a, b)| [a, b]).collect();
    let pin = upload_u32(&mut dev, &input);
    let out = dev.alloc(4 * width * pairs.len());
    run1d(&mut dev, &m, "ops", 1, pairs.len() as u32, &[pin, out]).unwrap();
    let v = download_u32(&dev, out, width * pairs.len());
    pairs
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let row = &v[i * width..][..width];
            let mut k = 0;
            rows.iter()
                .map(|(_, o)| match o {
                    Out::R32 => {
                        k += 1;
                        u64::from(row[k - 1])
                    }
                    Out::R64 => {
                        k += 2;
                        u64::from(row[k - 2]) | (u64::from(row[k - 1]) << 32)
                    }
                })
                .collect()
        })
        .collect()
}

type IntRow = (&'static str, Out, fn(i32, i32) -> u64);

fn u(x: i32) -> u64 {
    u64::from(x as u32)
}

fn int_rows() -> Vec<IntRow> {
    use Out::*;
    vec![
        ir("add.s32 %r3, %r1, %r2", R32, |a, b| u(a.wrapping_add(b))),
        ir("sub.s32 %r3, %r1, %r2", R32, |a, b| u(a.wrapping_sub(b))),
        ir("add.u32 %r3, %r1, -1", R32, |a, _| u(a.wrapping_sub(1))),
        ir("mul.lo.s32 %r3, %r1, %r2", R32, |a, b| u(a.wrapping_mul(b))),
        ir("mad.lo.s32 %r3, %r1, %r2, %r1", R32, |a, b| u(a.wrapping_mul(b).wrapping_add(a))),
        ir("div.s32 %r3, %r1, %r2", R32, |a, b| u(a.wrapping_div(b))),
        ir("rem.s32 %r3, %r1, %r2", R32, |a, b| u(a.wrapping_rem(b))),
        ir("div.u32 %r3, %r1, %r2", R32, |a, b| u64::from(a as u32 / b as u32)),
        ir("rem.u32 %r3, %r1, %r2", R32, |a, b| u64::from(a as u32 % b as u32)),
        ir("min.s32 %r3, %r1, %r2", R32, |a, b| u(a.min(b))),
        ir("max.s32 %r3, %r1, %r2", R32, |a, b| u(a.max(b))),
        ir("min.u32 %r3, %r1, %r2", R32, |a, b| u64::from((a as u32).min(b as u32))),
        ir("max.u32 %r3, %r1, %r2", R32, |a, b| u64::from((a as u32).max(b as u32))),
        ir("neg.s32 %r3, %r1", R32, |a, _| u(a.wrapping_neg())),
        ir("abs.s32 %r3, %r1", R32, |a, _| u(a.wrapping_abs())),
        ir("shl.b32 %r3, %r1, %r2", R32, |a, b| {
            if b as u32 >= 32 { 0 } else { u64::from((a as u32) << b) }
        }),
        ir("shl.b32 %r3, %r1, 3", R32, |a, _| u64::from((a as u32) << 3)),
        ir("shr.u32 %r3, %r1, %r2", R32, |a, b| {
            if b as u32 >= 32 { 0 } else { u64::from(a as u32 >> b) }
        }),
        ir("shr.b32 %r3, %r1, %r2", R32, |a, b| {
            if b as u32 >= 32 { 0 } else { u64::from(a as u32 >> b) }
        }),
        ir("shr.s32 %r3, %r1, %r2", R32, |a, b| u(a >> (b as u32).min(31))),
        ir("and.b32 %r3, %r1, %r2", R32, |a, b| u(a & b)),
        ir("and.b32 %r3, %r1, 0xff00ff00", R32, |a, _| u(a) & 0xff00_ff00),
        ir("or.b32 %r3, %r1, %r2", R32, |a, b| u(a | b)),
        ir("xor.b32 %r3, %r1, %r2", R32, |a, b| u(a ^ b)),
        ir("not.b32 %r3, %r1", R32, |a, _| u(!a)),
        ir("setp.lt.s32 %p1, %r1, %r2; selp.u32 %r3, 1, 0, %p1", R32, |a, b| u64::from(a < b)),
        ir("setp.le.s32 %p1, %r1, %r2; selp.u32 %r3, 1, 0, %p1", R32, |a, b| u64::from(a <= b)),
        ir("setp.gt.s32 %p1, %r1, %r2; selp.u32 %r3, 1, 0, %p1", R32, |a, b| u64::from(a > b)),
        ir("setp.ge.s32 %p1, %r1, %r2; selp.u32 %r3, 1, 0, %p1", R32, |a, b| u64::from(a >= b)),
        ir("setp.eq.s32 %p1, %r1, %r2; selp.u32 %r3, 1, 0, %p1", R32, |a, b| u64::from(a == b)),
        ir("setp.ne.u32 %p1, %r1, %r2; selp.u32 %r3, 1, 0, %p1", R32, |a, b| u64::from(a != b)),
        ir("setp.lt.u32 %p1, %r1, %r2; selp.u32 %r3, 1, 0, %p1", R32, |a, b| {
            u64::from((a as u32) < b as u32)
        }),
        ir("setp.ge.u32 %p1, %r1, 7; selp.s32 %r3, %r1, %r2, %p1", R32, |a, b| {
            u(if a as u32 >= 7 { a } else { b })
        }),
        ir("setp.lt.s64 %p1, %rd1, %rd2; selp.u32 %r3, 1, 0, %p1", R32, |a, b| u64::from(a < b)),
        ir("setp.lt.u64 %p1, %rd1, %rd2; selp.u32 %r3, 1, 0, %p1", R32, |a, b| {
            u64::from((a as i64 as u64) < b as i64 as u64)
        }),
        ir("cvt.u32.u64 %r3, %rd1", R32, |a, _| u(a)),
        ir("cvt.s32.s64 %r3, %rd2", R32, |_, b| u(b)),
        ir("mul.wide.s32 %rd3, %r1, %r2", R64, |a, b| (i64::from(a) * i64::from(b)) as u64),
        ir("mul.wide.u32 %rd3, %r1, %r2", R64, |a, b| u64::from(a as u32) * u64::from(b as u32)),
        ir("cvt.s64.s32 %rd3, %r1", R64, |a, _| i64::from(a) as u64),
        ir("cvt.u64.u32 %rd3, %r1", R64, |a, _| u(a)),
        ir("add.s64 %rd3, %rd1, %rd2", R64, |a, b| {
            i64::from(a).wrapping_add(i64::from(b)) as u64
        }),
        ir("sub.u64 %rd3, %rd1, %rd2", R64, |a, b| {
            i64::from(a).wrapping_sub(i64::from(b)) as u64
        }),
        ir("mul.lo.s64 %rd3, %rd1, %rd2", R64, |a, b| {
            i64::from(a).wrapping_mul(i64::from(b)) as u64
        }),
        ir("mad.lo.u64 %rd3, %rd1, %rd2, %rd1", R64, |a, b| {
            i64::from(a).wrapping_mul(i64::from(b)).wrapping_add(i64::from(a)) as u64
        }),
        ir("mad.lo.s64 %rd3, %rd1, 0x100000000, %rd2", R64, |a, b| {
            (i64::from(a) << 32).wrapping_add(i64::from(b)) as u64
        }),
        ir("div.s64 %rd3, %rd1, %rd2", R64, |a, b| (i64::from(a) / i64::from(b)) as u64),
        ir("rem.s64 %rd3, %rd1, %rd2", R64, |a, b| (i64::from(a) % i64::from(b)) as u64),
        ir("div.u64 %rd3, %rd1, %rd2", R64, |a, b| i64::from(a) as u64 / i64::from(b) as u64),
        ir("rem.u64 %rd3, %rd1, %rd2", R64, |a, b| i64::from(a) as u64 % i64::from(b) as u64),
        ir("min.s64 %rd3, %rd1, %rd2", R64, |a, b| i64::from(a.min(b)) as u64),
        ir("max.s64 %rd3, %rd1, %rd2", R64, |a, b| i64::from(a.max(b)) as u64),
        ir("min.u64 %rd3, %rd1, %rd2", R64, |a, b| {
            (i64::from(a) as u64).min(i64::from(b) as u64)
        }),
        ir("max.u64 %rd3, %rd1, %rd2", R64, |a, b| {
            (i64::from(a) as u64).max(i64::from(b) as u64)
        }),
        ir("shl.b64 %rd3, %rd1, %r2", R64, |a, b| {
            if b as u32 >= 64 { 0 } else { (i64::from(a) as u64) << b }
        }),
        ir("shr.u64 %rd3, %rd1, %r2", R64, |a, b| {
            if b as u32 >= 64 { 0 } else { i64::from(a) as u64 >> b }
        }),
        ir("shr.s64 %rd3, %rd1, %r2", R64, |a, b| (i64::from(a) >> (b as u32).min(63)) as u64),
        ir("shr.b64 %rd3, %rd1, 40", R64, |a, _| i64::from(a) as u64 >> 40),
        ir("and.b64 %rd3, %rd1, %rd2", R64, |a, b| i64::from(a & b) as u64),
        ir("or.b64 %rd3, %rd1, %rd2", R64, |a, b| i64::from(a | b) as u64),
        ir("xor.b64 %rd3, %rd1, %rd2", R64, |a, b| i64::from(a ^ b) as u64),
        ir("not.b64 %rd3, %rd1", R64, |a, _| !(i64::from(a) as u64)),
        ir("mov.b64 %rd3, -1", R64, |_, _| u64::MAX),
        ir("mov.u64 %rd3, 0xfedcba9876543210", R64, |_, _| 0xfedc_ba98_7654_3210),
        ir("selp.b64 %rd3, %rd1, %rd2, %p1", R64, |a, b| {
            // %p1 still holds the last setp (lt.u64 of the sign-extended values).
            let p = (i64::from(a) as u64) < i64::from(b) as u64;
            i64::from(if p { a } else { b }) as u64
        }),
    ]
}

fn ir(ptx: &'static str, out: Out, want: fn(i32, i32) -> u64) -> IntRow {
    (ptx, out, want)
}

#[test]
fn integer_instructions_follow_the_isa() {
    let pairs: Vec<(i32, i32)> = vec![
        (7, 2),
        (-7, 2),
        (7, -2),
        (-7, -2),
        (i32::MIN, -1),
        (i32::MAX, 1),
        (5, 40),
        (-5, 33),
        (0x1234_5678, 4),
        (-1, 31),
        (-1, 32),
        (123_456_789, 1000),
        (-100, -3),
        (1, 63),
        (3, 64),
        (0, 5),
        (-8, -1),
        (i32::MIN, i32::MIN),
    ];
    check_int(&pairs);
}

/// Runs the integer table over `pairs` (no zero divisor) and compares every result.
fn check_int(pairs: &[(i32, i32)]) {
    let rows = int_rows();
    let table: Vec<(&str, Out)> = rows.iter().map(|r| (r.0, r.1)).collect();
    let got = run(&table, &pairs.iter().map(|&(a, b)| (a as u32, b as u32)).collect::<Vec<_>>());
    for (i, &(a, b)) in pairs.iter().enumerate() {
        for (k, row) in rows.iter().enumerate() {
            assert_eq!(got[i][k], (row.2)(a, b), "`{}` with a = {a}, b = {b}", row.0);
        }
    }
}

type FloatRow = (&'static str, fn(f32, f32) -> u32);

fn fb(x: f32) -> u32 {
    x.to_bits()
}

/// `min.f32` / `max.f32` of the ISA: NaN yields the other operand; -0 < +0.
fn isa_min(a: f32, b: f32) -> f32 {
    match (a.is_nan(), b.is_nan()) {
        (true, _) => b,
        (_, true) => a,
        _ if a == b && a == 0.0 => {
            if a.is_sign_negative() {
                a
            } else {
                b
            }
        }
        _ => a.min(b),
    }
}

fn isa_max(a: f32, b: f32) -> f32 {
    match (a.is_nan(), b.is_nan()) {
        (true, _) => b,
        (_, true) => a,
        _ if a == b && a == 0.0 => {
            if a.is_sign_positive() {
                a
            } else {
                b
            }
        }
        _ => a.max(b),
    }
}

fn float_rows() -> Vec<FloatRow> {
    vec![
        fr("add.f32 %f3, %f1, %f2", |a, b| fb(a + b)),
        fr("add.rn.f32 %f3, %f1, 0f3f800000", |a, _| fb(a + 1.0)),
        fr("sub.f32 %f3, %f1, %f2", |a, b| fb(a - b)),
        fr("sub.rn.f32 %f3, %f1, %f2", |a, b| fb(a - b)),
        fr("mul.f32 %f3, %f1, %f2", |a, b| fb(a * b)),
        fr("mul.rn.f32 %f3, %f1, 0fbf000000", |a, _| fb(a * -0.5)),
        fr("div.rn.f32 %f3, %f1, %f2", |a, b| fb(a / b)),
        fr("fma.rn.f32 %f3, %f1, %f2, %f1", |a, b| fb(a.mul_add(b, a))),
        fr("min.f32 %f3, %f1, %f2", |a, b| fb(isa_min(a, b))),
        fr("max.f32 %f3, %f1, %f2", |a, b| fb(isa_max(a, b))),
        fr("neg.f32 %f3, %f1", |a, _| fb(-a)),
        fr("abs.f32 %f3, %f1", |a, _| fb(a.abs())),
        fr("sqrt.rn.f32 %f3, %f1", |a, _| fb(a.sqrt())),
        fr("rcp.rn.f32 %f3, %f2", |_, b| fb(1.0 / b)),
        fr("rsqrt.approx.f32 %f3, %f1", |a, _| fb((1.0 / f64::from(a).sqrt()) as f32)),
        fr("ex2.approx.f32 %f3, %f1", |a, _| fb(f64::from(a).exp2() as f32)),
        fr("lg2.approx.f32 %f3, %f1", |a, _| fb(f64::from(a).log2() as f32)),
        fr("tanh.approx.f32 %f3, %f1", |a, _| fb(f64::from(a).tanh() as f32)),
        fr("cvt.rzi.s32.f32 %r3, %f1", |a, _| a as i32 as u32),
        fr("cvt.rmi.f32.f32 %f3, %f1", |a, _| fb(a.floor())),
        fr("cvt.rni.f32.f32 %f3, %f1", |a, _| fb(a.round_ties_even())),
        fr("cvt.rzi.f32.f32 %f3, %f1", |a, _| fb(a.trunc())),
        fr("cvt.rzi.s32.f32 %r4, %f1; cvt.rn.f32.s32 %f3, %r4", |a, _| fb(a as i32 as f32)),
        fr("mov.b32 %r4, %f2; cvt.rn.f32.s32 %f3, %r4", |_, b| fb(b.to_bits() as i32 as f32)),
        fr("mov.b32 %r4, %f2; cvt.rn.f32.u32 %f3, %r4", |_, b| fb(b.to_bits() as f32)),
        fr("setp.eq.f32 %p1, %f1, %f2; selp.u32 %r3, 1, 0, %p1", |a, b| u32::from(a == b)),
        fr("setp.ne.f32 %p1, %f1, %f2; selp.u32 %r3, 1, 0, %p1", |a, b| {
            u32::from(!(a.is_nan() || b.is_nan()) && a != b)
        }),
        fr("setp.lt.f32 %p1, %f1, %f2; selp.u32 %r3, 1, 0, %p1", |a, b| u32::from(a < b)),
        fr("setp.le.f32 %p1, %f1, %f2; selp.u32 %r3, 1, 0, %p1", |a, b| u32::from(a <= b)),
        fr("setp.gt.f32 %p1, %f1, %f2; selp.u32 %r3, 1, 0, %p1", |a, b| u32::from(a > b)),
        fr("setp.ge.f32 %p1, %f1, %f2; selp.u32 %r3, 1, 0, %p1", |a, b| u32::from(a >= b)),
        fr("setp.equ.f32 %p1, %f1, %f2; selp.u32 %r3, 1, 0, %p1", |a, b| {
            u32::from(a.is_nan() || b.is_nan() || a == b)
        }),
        fr("setp.neu.f32 %p1, %f1, %f2; selp.u32 %r3, 1, 0, %p1", |a, b| u32::from(a != b)),
        fr("setp.ltu.f32 %p1, %f1, %f2; selp.u32 %r3, 1, 0, %p1", |a, b| {
            u32::from(a.is_nan() || b.is_nan() || a < b)
        }),
        fr("setp.leu.f32 %p1, %f1, %f2; selp.u32 %r3, 1, 0, %p1", |a, b| {
            u32::from(a.is_nan() || b.is_nan() || a <= b)
        }),
        fr("setp.gtu.f32 %p1, %f1, %f2; selp.u32 %r3, 1, 0, %p1", |a, b| {
            u32::from(a.is_nan() || b.is_nan() || a > b)
        }),
        fr("setp.geu.f32 %p1, %f1, %f2; selp.u32 %r3, 1, 0, %p1", |a, b| {
            u32::from(a.is_nan() || b.is_nan() || a >= b)
        }),
        fr("setp.num.f32 %p1, %f1, %f2; selp.u32 %r3, 1, 0, %p1", |a, b| {
            u32::from(!a.is_nan() && !b.is_nan())
        }),
        fr("setp.nan.f32 %p1, %f1, %f2; selp.u32 %r3, 1, 0, %p1", |a, b| {
            u32::from(a.is_nan() || b.is_nan())
        }),
        fr("setp.lt.f32 %p1, %f1, 0f00000000; selp.f32 %f3, %f2, 0f7f800000, %p1", |a, b| {
            fb(if a < 0.0 { b } else { f32::INFINITY })
        }),
    ]
}

fn fr(ptx: &'static str, want: fn(f32, f32) -> u32) -> FloatRow {
    (ptx, want)
}

#[test]
fn float_instructions_follow_the_isa() {
    let pairs: Vec<(f32, f32)> = vec![
        (1.5, 2.5),
        (-2.5, 0.5),
        (0.5, -1.5),
        (2.5, 3.5),
        (-0.5, -3.5),
        (f32::NAN, 1.0),
        (1.0, f32::NAN),
        (f32::NAN, f32::NAN),
        (f32::INFINITY, f32::NEG_INFINITY),
        (-0.0, 0.0),
        (0.0, -0.0),
        (3e9, -3e9),
        (1e-39, 2.0),
        (-7.25, 3.0),
        (4.0, 8.0),
        (100.0, 0.0),
        (-1.0, 2.0),
        (8.0, -0.0),
        (16_777_217.0, 1.0),
        (0.3, 0.7),
    ];
    check_float(&pairs);
}

/// Runs the float table over `pairs` and compares every result (NaN results: any NaN).
fn check_float(pairs: &[(f32, f32)]) {
    let rows = float_rows();
    // Rows writing %f3 store it through %r3.
    let patched: Vec<String> = rows
        .iter()
        .map(|r| {
            if r.0.contains("%f3") {
                format!("{}; mov.b32 %r3, %f3", r.0)
            } else {
                r.0.to_string()
            }
        })
        .collect();
    let table: Vec<(&str, Out)> = patched.iter().map(|s| (s.as_str(), Out::R32)).collect();
    let got = run(&table, &pairs.iter().map(|&(a, b)| (a.to_bits(), b.to_bits())).collect::<Vec<_>>());
    for (i, &(a, b)) in pairs.iter().enumerate() {
        for (k, row) in rows.iter().enumerate() {
            let (g, w) = (got[i][k] as u32, (row.1)(a, b));
            let both_nan = row.0.contains("%f3") && f32::from_bits(g).is_nan() && f32::from_bits(w).is_nan();
            assert!(
                g == w || both_nan,
                "`{}` with a = {a:?}, b = {b:?}: got {g:#x} ({}), want {w:#x} ({})",
                row.0,
                f32::from_bits(g),
                f32::from_bits(w)
            );
        }
    }
}

#[test]
fn approximations_are_close_to_the_exact_functions() {
    let rows: Vec<(&str, Out)> = vec![
        ("ex2.approx.f32 %f3, %f1; mov.b32 %r3, %f3", Out::R32),
        ("lg2.approx.f32 %f3, %f1; mov.b32 %r3, %f3", Out::R32),
        ("rsqrt.approx.f32 %f3, %f1; mov.b32 %r3, %f3", Out::R32),
        ("tanh.approx.f32 %f3, %f1; mov.b32 %r3, %f3", Out::R32),
    ];
    let got = run(
        &rows,
        &[
            (3.0f32.to_bits(), 0),
            (4.0f32.to_bits(), 0),
            (0.0f32.to_bits(), 0),
            ((-1.0f32).to_bits(), 0),
        ],
    );
    let f = |x: u64| f32::from_bits(x as u32);
    assert_eq!(
        got[0].iter().map(|&x| f(x)).collect::<Vec<_>>()[..3],
        [8.0, 1.584_962_5, 0.577_350_26]
    );
    assert_eq!(f(got[1][0]), 16.0);
    assert_eq!(f(got[1][1]), 2.0);
    assert_eq!(f(got[1][2]), 0.5);
    assert_eq!(f(got[2][0]), 1.0);
    assert_eq!(f(got[2][1]), f32::NEG_INFINITY);
    assert_eq!(f(got[2][2]), f32::INFINITY);
    assert_eq!(f(got[2][3]), 0.0);
    assert!(f(got[3][1]).is_nan() && f(got[3][2]).is_nan());
    assert!((f(got[3][3]) - (-1.0f32).tanh()).abs() <= f32::EPSILON);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn integer_instructions_on_random_operands(
        pairs in prop::collection::vec((any::<i32>(), any::<i32>().prop_filter("no zero divisor", |b| *b != 0)), 1..=64)
    ) {
        check_int(&pairs);
    }

    #[test]
    fn float_instructions_on_random_operands(pairs in prop::collection::vec((any::<u32>(), any::<u32>()), 1..=64)) {
        let pairs: Vec<(f32, f32)> = pairs.into_iter().map(|(a, b)| (f32::from_bits(a), f32::from_bits(b))).collect();
        check_float(&pairs);
    }

    #[test]
    fn small_shift_amounts_and_near_ties(a in any::<i32>(), s in 1i32..70, m in any::<u16>()) {
        // Shift amounts around the widths, and floats with a random mantissa tail
        // near the bf16 / integer rounding boundaries.
        let x = f32::from_bits(0x4b00_0000 | u32::from(m)) - 8_388_608.5;
        check_int(&[(a, s), (a, -s - 1)]);
        check_float(&[(x, x * 0.5), (-x, 2.5)]);
    }
}
