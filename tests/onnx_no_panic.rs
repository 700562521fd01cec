//! Bad ONNX input gets an error, never a panic: every fixture is mutated many
//! times, both as bytes (truncated, bytes flipped) and as messages (attributes,
//! dims, op types, inputs and data types changed), and each mutant is imported,
//! and run and optimized when it imports.

mod common;

use eqopt::cost::HardwareProfile;
use eqopt::graph::tensor::SplitMix64;
use eqopt::onnx::ImportOptions;
use eqopt::onnx::proto::{DimensionValue, ModelProto};
use eqopt::optimize::{OptimizeOptions, optimize};
use eqopt::rules::RuleSet;
use eqopt::saturate::Limits;
use prost::Message;

const MUTANTS_PER_FILE: u64 = 300;

fn pick<T>(rng: &mut SplitMix64, v: &[T]) -> usize {
    (rng.next_u64() % v.len().max(1) as u64) as usize
}

fn number(rng: &mut SplitMix64) -> i64 {
    [-3, -1, 0, 1, 2, 3, 7, 1 << 40, i64::MAX][(rng.next_u64() % 9) as usize]
}

/// One structural change to the model.
fn mutate(m: &mut ModelProto, rng: &mut SplitMix64) {
    let g = m.graph.as_mut().expect("fixtures have a graph");
    match rng.next_u64() % 9 {
        0 if !g.node.is_empty() => {
            let i = pick(rng, &g.node);
            let n = &mut g.node[i];
            if !n.attribute.is_empty() {
                let a = pick(rng, &n.attribute);
                let attr = &mut n.attribute[a];
                attr.i = number(rng);
                attr.f = [f32::NAN, -1.0, 0.0, 1e30][(rng.next_u64() % 4) as usize];
                if !attr.ints.is_empty() {
                    let k = pick(rng, &attr.ints);
                    attr.ints[k] = number(rng);
                    if rng.next_u64() % 2 == 0 {
                        attr.ints.pop();
                    }
                }
            }
        }
        1 if !g.node.is_empty() => {
            let i = pick(rng, &g.node);
            let ops = eqopt::onnx::SUPPORTED_OPS;
            g.node[i].op_type = ops[pick(rng, ops)].to_string();
        }
        2 if !g.node.is_empty() => {
            let i = pick(rng, &g.node);
            let n = &mut g.node[i];
            match rng.next_u64() % 3 {
                0 => {
                    n.input.pop();
                }
                1 => n.input.push(n.input.first().cloned().unwrap_or_default()),
                _ => n.input.insert(0, String::new()),
            }
        }
        3 if !g.initializer.is_empty() => {
            let i = pick(rng, &g.initializer);
            let t = &mut g.initializer[i];
            if !t.dims.is_empty() {
                let k = pick(rng, &t.dims);
                t.dims[k] = number(rng);
            } else {
                t.dims.push(number(rng));
            }
        }
        4 if !g.initializer.is_empty() => {
            let i = pick(rng, &g.initializer);
            g.initializer[i].data_type = (rng.next_u64() % 24) as i32;
        }
        5 if !g.initializer.is_empty() => {
            let i = pick(rng, &g.initializer);
            let t = &mut g.initializer[i];
            let keep = t.raw_data.len() / 2;
            t.raw_data.truncate(keep);
        }
        6 if !g.input.is_empty() => {
            let i = pick(rng, &g.input);
            if let Some(shape) = g.input[i]
                .r#type
                .as_mut()
                .and_then(|t| t.tensor_type.as_mut())
                .and_then(|t| t.shape.as_mut())
                && !shape.dim.is_empty()
            {
                let k = pick(rng, &shape.dim);
                shape.dim[k].value = match rng.next_u64() % 3 {
                    0 => Some(DimensionValue::DimValue(number(rng))),
                    1 => Some(DimensionValue::DimParam("n".into())),
                    _ => None,
                };
            }
        }
        7 if !g.node.is_empty() => {
            let i = pick(rng, &g.node);
            let n = g.node.remove(i);
            let j = pick(rng, &g.node);
            g.node.insert(j.min(g.node.len()), n);
        }
        _ => {
            if let Some(o) = m.opset_import.first_mut() {
                o.version = [6, 7, 9, 11, 13, 18, 21, 22][(rng.next_u64() % 8) as usize];
            }
        }
    }
}

fn exercise(model: &ModelProto, path: &std::path::Path, rules: &RuleSet, opts: &OptimizeOptions) {
    let Ok(g) = eqopt::onnx::import::import_model(model, path, &ImportOptions::default()) else {
        return;
    };
    let _ = optimize(&g, rules, opts);
    // Evaluating or exporting materializes every tensor: only for mutants of sane size
    // (a dim of 2^40 is a valid model that no machine can run).
    let small = |ty: &eqopt::dtype::TensorType| ty.numel() <= 1 << 22;
    let sane = g.inputs.iter().all(|i| small(&i.ty)) && g.constants.iter().all(|c| small(&c.ty)) && g.nodes.iter().all(|n| small(&n.ty));
    if sane {
        let _ = eqopt::eval::run(&g, &eqopt::eval::random_inputs(&g, 1));
        let _ = eqopt::onnx::export::to_model(&g).map(|m| m.encode_to_vec());
    }
}

#[test]
fn mutated_onnx_models_never_panic() {
    let rules = RuleSet::defaults().unwrap();
    let opts = OptimizeOptions::new(HardwareProfile::load("cpu").unwrap())
        .with_limits(Limits::default().with_iter_limit(4).with_node_limit(2_000));
    let mut rng = SplitMix64::new(2026);
    let mut imported = 0;
    for path in common::corpus("tests/onnx/ok", "onnx") {
        let bytes = std::fs::read(&path).unwrap();
        let model = ModelProto::decode(bytes.as_slice()).unwrap();
        for k in 0..MUTANTS_PER_FILE {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if k % 4 == 0 {
                    // Bytes: truncate and flip.
                    let mut b = bytes.clone();
                    b.truncate(1 + (rng.next_u64() as usize) % b.len());
                    if !b.is_empty() {
                        let at = (rng.next_u64() as usize) % b.len();
                        b[at] ^= 1 << (rng.next_u64() % 8);
                    }
                    if let Ok(m) = ModelProto::decode(b.as_slice()) {
                        exercise(&m, &path, &rules, &opts);
                    }
                } else {
                    let mut m = model.clone();
                    for _ in 0..1 + rng.next_u64() % 2 {
                        mutate(&mut m, &mut rng);
                    }
                    if eqopt::onnx::import::import_model(&m, &path, &ImportOptions::default()).is_ok() {
                        imported += 1;
                    }
                    exercise(&m, &path, &rules, &opts);
                }
            }));
            assert!(result.is_ok(), "{}: mutant {k} panicked", common::rel(&path));
        }
    }
    // The mutants must not all be rejected, or this test checks only the front door.
    assert!(imported > 2000, "only {imported} mutants imported");
}
