//! Bad input gets an error, never a panic: every graph of the corpus is mutated
//! many times (fields deleted, numbers changed, strings swapped, lists shortened)
//! and each mutant is loaded, and optimized when it loads.

mod common;

use eqopt::cost::HardwareProfile;
use eqopt::graph::json;
use eqopt::graph::tensor::SplitMix64;
use eqopt::optimize::{OptimizeOptions, optimize};
use eqopt::rules::RuleSet;
use eqopt::saturate::Limits;
use serde_json::Value;

const MUTANTS_PER_FILE: u64 = 400;

/// Every value in the document, as JSON pointers, in document order.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => m
            .iter()
            .for_each(|(k, x)| pointers(x, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| pointers(x, format!("{at}/{i}"), out)),
        _ => {}
    }
}

fn mutate(doc: &Value, rng: &mut SplitMix64) -> Value {
    let mut d = doc.clone();
    let mut ptrs = Vec::new();
    pointers(&d, String::new(), &mut ptrs);
    let target = &ptrs[(rng.next_u64() % ptrs.len() as u64) as usize];
    let replacement = match rng.next_u64() % 9 {
        0 => Value::Null,
        1 => Value::from(-1),
        2 => Value::from(0),
        3 => Value::from(1u64 << 40),
        4 => Value::from("Relu"),
        5 => Value::from("x"),
        6 => Value::Array(vec![]),
        7 => Value::from(vec![3, 0, 2]),
        _ => Value::from(2.5),
    };
    if let Some(slot) = d.pointer_mut(target) {
        match slot {
            Value::Array(a) if !a.is_empty() && rng.next_u64() % 2 == 0 => {
                a.pop();
            }
            Value::Object(m) if !m.is_empty() && rng.next_u64() % 2 == 0 => {
                let key = m
                    .keys()
                    .nth((rng.next_u64() % m.len() as u64) as usize)
                    .cloned()
                    .expect("non-empty");
                m.remove(&key);
            }
            _ => *slot = replacement,
        }
    }
    d
}

#[test]
fn mutated_graphs_load_or_fail_cleanly() {
    let rules = RuleSet::defaults().unwrap();
    let limits = Limits::default().with_iter_limit(4).with_node_limit(5_000);
    let opts = OptimizeOptions::new(HardwareProfile::load("cpu").unwrap()).with_limits(limits);
    let mut loaded = 0;
    for path in common::corpus("tests/graphs", "json") {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut rng = SplitMix64::new(path.to_string_lossy().len() as u64);
        for i in 0..MUTANTS_PER_FILE {
            let mutant = mutate(&doc, &mut rng);
            let text = mutant.to_string();
            let outcome = std::panic::catch_unwind(|| match json::parse(&text, std::path::Path::new("mutant.json")) {
                Ok(g) => optimize(&g, &rules, &opts)
                    .map(|_| true)
                    .or_else(|e| Ok::<bool, String>(!e.to_string().is_empty())),
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    Ok(false)
                }
            });
            match outcome {
                Ok(Ok(true)) => loaded += 1,
                Ok(_) => {}
                Err(_) => panic!("{} mutant {i} panicked:\n{text}", common::rel(&path)),
            }
        }
    }
    assert!(loaded > 0, "some mutants should still be valid graphs");
}
