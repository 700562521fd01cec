//! The softmax, layer normalization, reduce, pool and attention emitters'
//! modules, in each of their variants, are accepted by NVIDIA's `ptxas` for
//! `sm_80` and `sm_90` without register spills.

mod common;

use common::{P, assemble, offsets, ptxas};
use eqopt_kir::{Kernel, PoolKind, Program, ReduceKind, View};
use eqopt_ptx::{SmTarget, compile};

fn view(buffer: usize, offset: usize, shape: &[usize], strides: &[isize]) -> View {
    View {
        buffer,
        offset,
        shape: shape.to_vec(),
        strides: strides.to_vec(),
    }
}

/// Softmax: dense rows longer than a warp, a transposed (strided) input, rows of one element.
fn softmax() -> Program {
    let mut p = P::new("softmax");
    let x = p.input("x", &[3, 5, 70]);
    let xt = p.input("xt", &[37, 6]);
    let y = p.output("y", &[3, 5, 70]);
    let yt = p.output("yt", &[6, 37]);
    let y1 = p.output("y1", &[9, 1]);
    p.0.kernels.push(Kernel::Softmax {
        x: View::dense(x, &[3, 5, 70]),
        out: View::dense(y, &[3, 5, 70]),
    });
    p.0.kernels.push(Kernel::Softmax {
        x: view(xt, 0, &[6, 37], &[1, 6]),
        out: View::dense(yt, &[6, 37]),
    });
    p.0.kernels.push(Kernel::Softmax {
        x: view(x, 3, &[9, 1], &[7, 1]),
        out: View::dense(y1, &[9, 1]),
    });
    p.0
}

/// Layer normalization over two trailing dims (broadcast scale) and over the last dim of a strided input.
fn layer_norm() -> Program {
    let mut p = P::new("layernorm");
    let x = p.input("x", &[4, 6, 10]);
    let g = p.input("g", &[10]);
    let b = p.input("b", &[6, 10]);
    let y = p.output("y", &[4, 6, 10]);
    let y2 = p.output("y2", &[10, 24]);
    p.0.kernels.push(Kernel::LayerNorm {
        x: View::dense(x, &[4, 6, 10]),
        scale: view(g, 0, &[6, 10], &[0, 1]),
        bias: View::dense(b, &[6, 10]),
        axis: 1,
        epsilon: 1e-5,
        out: View::dense(y, &[4, 6, 10]),
    });
    p.0.kernels.push(Kernel::LayerNorm {
        x: view(x, 0, &[10, 24], &[1, 10]),
        scale: view(b, 1, &[24], &[2]),
        bias: view(g, 4, &[24], &[0]),
        axis: 1,
        epsilon: 1e-3,
        out: View::dense(y2, &[10, 24]),
    });
    p.0
}

/// Every reduction kind over one axis, two non-adjacent axes and the two trailing axes.
fn reduce() -> Program {
    let mut p = P::new("reduce");
    let x = p.input("x", &[2, 3, 4, 5]);
    for (i, kind) in [ReduceKind::Sum, ReduceKind::Mean, ReduceKind::Max].into_iter().enumerate() {
        for (j, axes) in [vec![1], vec![0, 2], vec![2, 3]].into_iter().enumerate() {
            let mut shape = vec![2, 3, 4, 5];
            for &a in &axes {
                shape[a] = 1;
            }
            let y = p.output(&format!("y{i}{j}"), &shape);
            p.0.kernels.push(Kernel::Reduce {
                kind,
                axes,
                x: View::dense(x, &[2, 3, 4, 5]),
                out: View::dense(y, &shape),
            });
        }
    }
    p.0
}

/// Every pooling kind in both layouts, with pads and strides.
fn pool() -> Program {
    let mut p = P::new("pool");
    let xc = p.input("x_nchw", &[2, 3, 9, 8]);
    let xl = p.input("x_nhwc", &[2, 9, 8, 3]);
    for (i, kind) in [PoolKind::Max, PoolKind::AvgExcludePad, PoolKind::AvgIncludePad]
        .into_iter()
        .enumerate()
    {
        // 3x3 window, strides 2, pads 1: 5x4 outputs.
        let yc = p.output(&format!("yc{i}"), &[2, 3, 5, 4]);
        let yl = p.output(&format!("yl{i}"), &[2, 5, 4, 3]);
        for (x, y, nhwc, xs, ys) in [
            (xc, yc, false, [2, 3, 9, 8], [2, 3, 5, 4]),
            (xl, yl, true, [2, 9, 8, 3], [2, 5, 4, 3]),
        ] {
            p.0.kernels.push(Kernel::Pool {
                kind,
                kernel: [3, 3],
                strides: [2, 2],
                pads: [1, 1, 1, 0],
                nhwc,
                x: View::dense(x, &xs),
                out: View::dense(y, &ys),
            });
        }
    }
    p.0
}

/// Attention: BHSD with a broadcast mask and a multiplying scale; BSHD
/// (strided views, strided output) dividing, without a mask; an `E` wider than
/// one column tile; `T` a multiple of 32 and not; `D` not a multiple of 4.
fn attention() -> Program {
    let mut p = P::new("attention");
    let (b, h, s, t, d) = (2, 3, 5, 45, 8);
    let q = p.input("q", &[b, h, s, d]);
    let k = p.input("k", &[b, h, t, d]);
    let v = p.input("v", &[b, h, t, 20]);
    let mask = p.input("mask", &[b, 1, 1, t]);
    let scale = p.input("scale", &[1]);
    let y = p.output("y", &[b, h, s, 20]);
    p.0.kernels.push(Kernel::Attention {
        q: View::dense(q, &[b, h, s, d]),
        kt: view(k, 0, &[b, h, d, t], &[(h * t * d) as isize, (t * d) as isize, 1, d as isize]),
        v: View::dense(v, &[b, h, t, 20]),
        out: View::dense(y, &[b, h, s, 20]),
        mask: Some(view(mask, 0, &[b, h, s, t], &[t as isize, 0, 0, 1])),
        scale: View::dense(scale, &[1]),
        divide: false,
    });
    // BSHD: q [b, s, h, d] seen as [b, h, s, d]; out likewise; T = 64, D = 7, E = 300.
    let (t2, d2, e2) = (64, 7, 300);
    let q2 = p.input("q2", &[b, s, h, d2]);
    let k2 = p.input("k2", &[b, t2, h, d2]);
    let v2 = p.input("v2", &[b, t2, h, e2]);
    let y2 = p.output("y2", &[b, s, h, e2]);
    let hd = |x: usize| (h * x) as isize;
    p.0.kernels.push(Kernel::Attention {
        q: view(q2, 0, &[b, h, s, d2], &[(s * h * d2) as isize, d2 as isize, hd(d2), 1]),
        kt: view(k2, 0, &[b, h, d2, t2], &[(t2 * h * d2) as isize, d2 as isize, 1, hd(d2)]),
        v: view(v2, 0, &[b, h, t2, e2], &[(t2 * h * e2) as isize, e2 as isize, hd(e2), 1]),
        out: view(y2, 0, &[b, h, s, e2], &[(s * h * e2) as isize, e2 as isize, hd(e2), 1]),
        mask: None,
        scale: View::dense(scale, &[1]),
        divide: true,
    });
    p.0
}

/// Entries named in `report` with their spill-store byte counts.
fn spill_stores(report: &str) -> Vec<usize> {
    report
        .lines()
        .filter_map(|l| {
            let i = l.find(" bytes spill stores")?;
            let digits: String = l[..i].chars().rev().take_while(char::is_ascii_digit).collect();
            Some(digits.chars().rev().collect::<String>().parse().expect("a byte count"))
        })
        .collect()
}

/// Assembles `program` for both targets; every entry is compiled with no spills.
fn assembles_without_spills(program: &Program) {
    let Some(ptxas) = ptxas() else { return };
    let (offs, _) = offsets(program);
    for target in SmTarget::ALL {
        let c = compile(program, &offs, target).unwrap_or_else(|e| panic!("{}: {e}", program.name));
        let report = assemble(&ptxas, &c.ptx, target.name());
        for l in &c.launches {
            assert!(report.contains(&format!("Compiling entry function '{}'", l.entry)), "{report}");
        }
        let spills = spill_stores(&report);
        assert_eq!(spills.len(), c.launches.len(), "one spill line an entry:\n{report}");
        assert!(
            spills.iter().all(|&s| s == 0),
            "{} on {}: spills\n{report}",
            program.name,
            target.name()
        );
    }
}

#[test]
fn spill_lines_are_parsed() {
    let r = "ptxas info    : Used 20 registers\nptxas info    : Function properties for k0\n    0 bytes stack frame, 10 bytes spill stores, 10 bytes spill loads\n    8 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads";
    assert_eq!(spill_stores(r), vec![10, 0]);
}

#[test]
fn softmax_assembles() {
    assembles_without_spills(&softmax());
}

#[test]
fn layer_norm_assembles() {
    assembles_without_spills(&layer_norm());
}

#[test]
fn reduce_assembles() {
    assembles_without_spills(&reduce());
}

#[test]
fn pool_assembles() {
    assembles_without_spills(&pool());
}

#[test]
fn attention_assembles() {
    assembles_without_spills(&attention());
}

/// Every program here is valid, so the emitters are exercised on what the
/// lowering can produce.
#[test]
fn programs_are_valid() {
    for p in [softmax(), layer_norm(), reduce(), pool(), attention()] {
        p.validate().unwrap_or_else(|e| panic!("{}: {e}", p.name));
    }
}
