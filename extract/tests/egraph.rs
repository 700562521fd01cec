//! Building, serializing and measuring e-graphs and extractions.

mod common;

use common::c;
use eqopt_extract::{ClassId, Cost, CostedEGraph, ExtractError, Extraction};

#[test]
fn cost_rules() {
    assert!(matches!(Cost::new(f64::NAN), Err(ExtractError::InvalidCost { .. })));
    assert!(matches!(Cost::new(-0.5), Err(ExtractError::InvalidCost { .. })));
    assert_eq!(Cost::new(-0.0).unwrap(), Cost::ZERO);
    assert_eq!(c(1.0) + Cost::INFINITY, Cost::INFINITY);
    assert!(!Cost::INFINITY.is_finite());
    let total: Cost = [c(1.0), c(2.5)].into_iter().sum();
    assert_eq!(total.value(), 3.5);
    let mut x = c(1.0);
    x += c(1.0);
    assert_eq!(x, c(2.0));
    assert!(c(1.0) < c(2.0) && c(2.0) < Cost::INFINITY);
    assert_eq!(Cost::INFINITY.to_string(), "inf");
    assert_eq!(c(0.25).to_string(), "0.25");
}

#[test]
fn json_round_trip_preserves_costs() {
    let mut g = CostedEGraph::new();
    let x = g.add_class("x");
    let y = g.add_class("y");
    g.add_node(x, "leaf", c(0.125), vec![]);
    g.add_node(x, "free", Cost::ZERO, vec![]);
    g.add_node(y, "f", c(3.0e-7), vec![x, x]);
    g.add_root(y);
    let h = CostedEGraph::from_serialized(&g.to_serialized()).unwrap();
    assert_eq!(h.num_classes(), 2);
    for (id, node) in g.nodes() {
        assert_eq!(h.node(id), node);
    }
    assert_eq!(h.roots(), &[y]);
    let text = g.to_json_string();
    assert_eq!(
        CostedEGraph::from_json_str(&text).unwrap().node_name(eqopt_extract::NodeId(2)),
        "y__0"
    );
}

#[test]
fn json_errors() {
    let unknown = r#"{"nodes": {"a": {"op": "f", "eclass": "A", "cost": 1.0, "children": ["zz"]}},
                      "root_eclasses": ["A"]}"#;
    match CostedEGraph::from_json_str(unknown).unwrap_err() {
        ExtractError::UnknownChild { node, child } => {
            assert_eq!((node.as_str(), child.as_str()), ("a", "zz"))
        }
        e => panic!("{e}"),
    }
    let negative = r#"{"nodes": {"a": {"op": "f", "eclass": "A", "cost": -1.0}}, "root_eclasses": ["A"]}"#;
    assert!(matches!(
        CostedEGraph::from_json_str(negative).unwrap_err(),
        ExtractError::NegativeCost { .. }
    ));
    let empty_root = r#"{"nodes": {"a": {"op": "f", "eclass": "A", "cost": 1.0}}, "root_eclasses": ["B"]}"#;
    match CostedEGraph::from_json_str(empty_root).unwrap_err() {
        ExtractError::EmptyClass { class } => assert_eq!(class, "B"),
        e => panic!("{e}"),
    }
    // NaN cannot be written in JSON; serde rejects it before we see it.
    let nan = r#"{"nodes": {"a": {"op": "f", "eclass": "A", "cost": NaN}}, "root_eclasses": ["A"]}"#;
    assert!(matches!(CostedEGraph::from_json_str(nan).unwrap_err(), ExtractError::Json { .. }));
}

#[test]
fn extraction_measures() {
    // r = f(s, s), s = g(t), t = leaf.
    let mut g = CostedEGraph::new();
    let t = g.add_class("t");
    let s = g.add_class("s");
    let r = g.add_class("r");
    let nt = g.add_node(t, "leaf", c(1.0), vec![]);
    let ns = g.add_node(s, "g", c(2.0), vec![t]);
    let nr = g.add_node(r, "f", c(4.0), vec![s, s]);
    let back = g.add_node(t, "loop", c(0.0), vec![r]);
    g.add_root(r);
    let mut ex = Extraction::new(g.num_classes());
    assert!(!ex.is_complete(&g));
    assert_eq!(ex.dag_cost(&g), Cost::INFINITY);
    ex.set_choice(r, nr);
    ex.set_choice(s, ns);
    ex.set_choice(t, nt);
    assert!(ex.is_complete(&g));
    assert_eq!(ex.dag_cost(&g).value(), 7.0);
    assert_eq!(ex.tree_cost(&g).value(), 10.0);
    assert_eq!(ex.find_cycle(&g), None);
    assert_eq!(ex.reachable(&g), vec![r, s, t]);
    ex.set_choice(t, back);
    let cycle = ex.find_cycle(&g).unwrap();
    assert_eq!(cycle.len(), 3);
    assert!(cycle.contains(&r) && cycle.contains(&s) && cycle.contains(&t));
    assert_eq!(ex.tree_cost(&g), Cost::INFINITY);
    assert!(matches!(ex.validate(&g), Err(ExtractError::Cycle { .. })));
    assert_eq!(ClassId(3).to_string(), "c3");
}
