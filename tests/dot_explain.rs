//! `eqopt dot` and `eqopt explain`, run as the real binary on the examples: the
//! DOT parses (a small parser of the DOT subset eqopt writes: every brace closed,
//! every edge endpoint declared), fused kernels are clusters, `--egraph` draws
//! small e-graphs and refuses large ones, explain accounts for every input node
//! and names the rules, and both are deterministic.

mod common;

use common::bin::{eqopt, fails, ok, s};
use common::root;
use std::collections::{BTreeMap, BTreeSet};

fn snapshot(name: &str, value: &str) {
    insta::with_settings!({snapshot_path => root().join("snapshots"), prepend_module_to_snapshot => false, omit_expression => true}, {
        insta::assert_snapshot!(name, value);
    });
}

/// A DOT document: declared nodes (id → label, enclosing clusters), edges, clusters.
#[derive(Debug, Default)]
struct Dot {
    nodes: BTreeMap<String, (String, Vec<String>)>,
    edges: Vec<(String, String, BTreeMap<String, String>)>,
    /// Cluster name → (label, ids of the nodes declared directly inside).
    clusters: BTreeMap<String, (String, Vec<String>)>,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Id(String),
    Sym(&'static str),
}

fn lex(text: &str) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut it = text.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            c if c.is_whitespace() => {}
            '{' => toks.push(Tok::Sym("{")),
            '}' => toks.push(Tok::Sym("}")),
            '[' => toks.push(Tok::Sym("[")),
            ']' => toks.push(Tok::Sym("]")),
            ';' => toks.push(Tok::Sym(";")),
            ',' => toks.push(Tok::Sym(",")),
            '=' => toks.push(Tok::Sym("=")),
            '-' if it.peek() == Some(&'>') => {
                it.next();
                toks.push(Tok::Sym("->"));
            }
            '"' => {
                let mut s = String::new();
                loop {
                    match it.next().expect("a quoted string is closed") {
                        '"' => break,
                        '\\' => {
                            let e = it.next().expect("an escape has a character");
                            s.push(if e == 'n' { '\n' } else { e });
                        }
                        c => s.push(c),
                    }
                }
                toks.push(Tok::Id(s));
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' || c == '#' => {
                let mut s = c.to_string();
                while let Some(&d) = it.peek().filter(|d| d.is_alphanumeric() || **d == '_' || **d == '.' || **d == '#') {
                    s.push(d);
                    it.next();
                }
                toks.push(Tok::Id(s));
            }
            c => panic!("unexpected character {c:?} in DOT"),
        }
    }
    toks
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    dot: Dot,
}

impl Parser {
    fn next(&mut self) -> Tok {
        let t = self.toks.get(self.pos).cloned().expect("the document does not end early");
        self.pos += 1;
        t
    }
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn id(&mut self) -> String {
        match self.next() {
            Tok::Id(s) => s,
            t => panic!("expected an id, found {t:?}"),
        }
    }
    fn expect(&mut self, sym: &'static str) {
        assert_eq!(self.next(), Tok::Sym(sym));
    }
    fn attrs(&mut self) -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        if self.peek() != Some(&Tok::Sym("[")) {
            return a;
        }
        self.expect("[");
        while self.peek() != Some(&Tok::Sym("]")) {
            let k = self.id();
            self.expect("=");
            let v = self.id();
            a.insert(k, v);
            if self.peek() == Some(&Tok::Sym(",")) {
                self.next();
            }
        }
        self.expect("]");
        a
    }
    /// Statements up to the closing brace of the current block.
    fn block(&mut self, clusters: &mut Vec<String>) {
        self.expect("{");
        loop {
            match self.next() {
                Tok::Sym("}") => return,
                Tok::Sym(";") => {}
                Tok::Id(k) if k == "subgraph" => {
                    let name = self.id();
                    assert!(!self.dot.clusters.contains_key(&name), "cluster {name} declared twice");
                    self.dot.clusters.insert(name.clone(), (String::new(), Vec::new()));
                    clusters.push(name);
                    self.block(clusters);
                    clusters.pop();
                }
                Tok::Id(k) if ["graph", "node", "edge"].contains(&k.as_str()) => {
                    self.attrs();
                }
                Tok::Id(a) => match self.peek() {
                    Some(Tok::Sym("=")) => {
                        self.next();
                        let v = self.id();
                        if a == "label" {
                            let c = clusters.last().expect("a bare attribute sits in a cluster");
                            self.dot.clusters.get_mut(c).unwrap().0 = v;
                        }
                    }
                    Some(Tok::Sym("->")) => {
                        self.next();
                        let b = self.id();
                        let attrs = self.attrs();
                        self.dot.edges.push((a, b, attrs));
                    }
                    _ => {
                        let attrs = self.attrs();
                        assert!(!self.dot.nodes.contains_key(&a), "node {a} declared twice");
                        let label = attrs.get("label").cloned().unwrap_or_default();
                        if let Some(c) = clusters.last() {
                            self.dot.clusters.get_mut(c).unwrap().1.push(a.clone());
                        }
                        self.dot.nodes.insert(a, (label, clusters.clone()));
                    }
                },
                t => panic!("unexpected {t:?}"),
            }
        }
    }
}

/// Parses `text`, asserting the structure: one `digraph NAME { ... }`, every
/// block closed, nodes declared once, every edge endpoint (and `lhead` cluster) declared.
fn parse_dot(text: &str) -> Dot {
    let mut p = Parser {
        toks: lex(text),
        pos: 0,
        dot: Dot::default(),
    };
    assert_eq!(p.id(), "digraph");
    p.id();
    p.block(&mut Vec::new());
    assert_eq!(p.pos, p.toks.len(), "nothing follows the graph");
    for (a, b, attrs) in &p.dot.edges {
        assert!(p.dot.nodes.contains_key(a), "edge tail {a} is not declared");
        assert!(p.dot.nodes.contains_key(b), "edge head {b} is not declared");
        if let Some(c) = attrs.get("lhead") {
            let members = &p.dot.clusters.get(c).unwrap_or_else(|| panic!("lhead {c} is not a cluster")).1;
            assert!(members.contains(b), "edge to {b} ends at {c}, which does not hold it");
        }
    }
    p.dot
}

fn model(name: &str) -> String {
    format!("examples/{name}.json")
}

fn examples() -> Vec<String> {
    common::corpus("examples", "json").iter().map(|p| common::rel(p)).collect()
}

#[test]
fn the_input_graph_has_a_node_per_tensor_and_an_edge_per_use() {
    for path in examples() {
        let g = eqopt::graph::json::load(&root().join(&path)).unwrap();
        let dot = parse_dot(&ok(&eqopt(&["dot", &path])));
        let tensors = g.inputs.len() + g.constants.len() + g.nodes.len() + g.outputs.len();
        assert_eq!(dot.nodes.len(), tensors, "{path}");
        let uses: usize = g.nodes.iter().map(|n| n.inputs.len()).sum::<usize>() + g.outputs.len();
        assert_eq!(dot.edges.len(), uses, "{path}");
        assert!(dot.clusters.is_empty(), "{path}: the examples have no fused kernels");
        for n in &g.nodes {
            assert!(
                dot.nodes
                    .values()
                    .any(|(label, _)| label.starts_with(&format!("{}\n{}", n.name, n.op.name()))),
                "{path}: no node labelled {} ({})",
                n.name,
                n.op.name()
            );
        }
    }
}

/// The optimized graph `eqopt optimize` writes for `path`.
fn optimized(path: &str, target: &str) -> eqopt::graph::Graph {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("opt.json");
    ok(&eqopt(&["optimize", path, "-o", s(&out), "--target", target]));
    eqopt::onnx::load_any(&out, &Default::default()).unwrap()
}

#[test]
fn fused_kernels_are_clusters_of_the_ops_they_fuse() {
    for (name, target) in [("mlp", "cpu"), ("bert_layer", "h100"), ("inception_block", "cpu")] {
        let path = model(name);
        let g = optimized(&path, target);
        let dot = parse_dot(&ok(&eqopt(&["dot", &path, "--optimize", "--target", target])));
        let fused: Vec<&eqopt::graph::Node> = g.nodes.iter().filter(|n| n.op.name().starts_with("Fused")).collect();
        assert!(!fused.is_empty(), "{name}: optimization fuses something");
        assert_eq!(dot.clusters.len(), fused.len(), "{name}: one cluster per fused kernel");
        for n in fused {
            let (_, (_, members)) = dot
                .clusters
                .iter()
                .find(|(c, (label, _))| c.starts_with("cluster_") && label.starts_with(&format!("{}\n{}", n.name, n.op.name())))
                .unwrap_or_else(|| panic!("{name}: no cluster for {}", n.name));
            let ops: Vec<&str> = members.iter().map(|m| dot.nodes[m].0.split('\n').next().unwrap()).collect();
            match n.op.name() {
                "FusedMatMul" => assert_eq!(ops.first(), Some(&"MatMul"), "{name} {}: {ops:?}", n.name),
                "FusedConv" => assert_eq!(ops.first(), Some(&"Conv"), "{name} {}: {ops:?}", n.name),
                "FusedAttention" => {
                    assert!(
                        ops.contains(&"Softmax") && ops.iter().filter(|o| **o == "MatMul").count() == 2,
                        "{ops:?}"
                    )
                }
                _ => assert!(!ops.is_empty()),
            }
            // The kernel's last op carries the output type, and its edges out name the tensor.
            let last = members.iter().rfind(|m| dot.nodes[*m].0.parse::<f64>().is_err()).unwrap();
            assert!(dot.nodes[last].0.ends_with(&n.ty.to_string()), "{}", dot.nodes[last].0);
            for (_, _, attrs) in dot.edges.iter().filter(|(a, _, _)| a == last) {
                assert_eq!(attrs.get("taillabel"), Some(&n.name));
            }
        }
        let inputs: Vec<&String> = dot.nodes.values().filter(|(l, _)| l.contains("\ninput ")).map(|(l, _)| l).collect();
        assert_eq!(inputs.len(), g.inputs.len(), "{name}");
    }
}

#[test]
fn dot_and_explain_are_deterministic() {
    for args in [
        vec!["dot", "examples/bert_layer.json", "--optimize", "--target", "h100"],
        vec!["dot", "examples/inception_block.json"],
        vec!["dot", "examples/mlp.json", "--egraph"],
        vec!["explain", "examples/bert_layer.json", "--target", "h100"],
        vec!["explain", "examples/inception_block.json", "--json"],
    ] {
        let a = eqopt(&args).stdout;
        let b = eqopt(&args).stdout;
        assert!(!a.is_empty(), "{args:?}");
        assert!(a == b, "{args:?}: two runs differ");
    }
}

#[test]
fn egraph_has_a_cluster_per_class_and_refuses_large_ones() {
    let text = ok(&eqopt(&["dot", "examples/mlp.json", "--egraph"]));
    let dot = parse_dot(&text);
    assert!(dot.clusters.len() > 10, "{}", dot.clusters.len());
    for (name, (label, members)) in &dot.clusters {
        let id = name.strip_prefix("cluster_c").expect("e-class clusters are cluster_cN");
        assert!(label.starts_with(&format!("c{id}: f32[")), "{label}");
        assert!(!members.is_empty(), "{name} holds its e-nodes");
        assert!(members.iter().all(|m| m.starts_with(&format!("c{id}_"))));
    }
    // The output's class is marked, some class holds alternatives, and the
    // extracted e-nodes are filled: three fused matmuls among them.
    assert!(dot.clusters.values().any(|(l, _)| l.ends_with("\noutput probs")));
    assert!(dot.clusters.values().any(|(_, m)| m.len() > 1));
    let filled: Vec<&str> = text.lines().filter(|l| l.contains("filled,bold")).collect();
    assert_eq!(filled.iter().filter(|l| l.contains("fused_matmul")).count(), 3, "{filled:?}");
    assert!(dot.edges.iter().any(|(_, _, a)| a.contains_key("lhead")));

    let err = fails(&eqopt(&["dot", "examples/mlp.json", "--egraph", "--max-nodes", "20"]));
    assert!(err.contains("--max-nodes") && err.contains("at most 20 e-nodes"), "{err}");
    let found: usize = err
        .split("found ")
        .nth(1)
        .and_then(|r| r.split_whitespace().find_map(|w| w.parse().ok()))
        .unwrap_or_else(|| panic!("no count in {err}"));
    assert!(found > 20, "{err}");
    let big = fails(&eqopt(&["dot", "examples/bert_layer.json", "--egraph", "--max-nodes", "100"]));
    assert!(big.contains("at most 100 e-nodes"), "{big}");
    let help = ok(&eqopt(&["dot", "--help"]));
    assert!(help.contains("[default: 2000]"), "{help}");
}

#[test]
fn dot_writes_a_file_and_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mlp.dot");
    let said = ok(&eqopt(&["dot", "examples/mlp.json", "--optimize", "-o", s(&out)]));
    assert!(said.contains(&format!("wrote {}", out.display())), "{said}");
    let stdout = ok(&eqopt(&["dot", "examples/mlp.json", "--optimize"]));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), stdout);

    for cmd in ["dot", "explain"] {
        let err = fails(&eqopt(&[cmd, "no/such/model.json"]));
        assert!(err.contains("no/such/model.json"), "{err}");
    }
    let err = fails(&eqopt(&["dot", "examples/mlp.json", "-o", "examples/mlp.json"]));
    assert!(err.contains("--output"), "{err}");
}

#[test]
fn explain_accounts_for_every_input_node_once() {
    for path in examples() {
        let g = eqopt::graph::json::load(&root().join(&path)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&ok(&eqopt(&["explain", &path, "--json"]))).unwrap();
        let mut seen: Vec<String> = v["unchanged"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect();
        for c in v["changes"].as_array().unwrap() {
            seen.extend(
                c["replaced"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["name"].as_str().unwrap().to_string()),
            );
            assert!(!c["by"].as_array().unwrap().is_empty(), "{path}: a change replaces with something");
        }
        seen.sort();
        let mut want: Vec<String> = g.nodes.iter().map(|n| n.name.clone()).collect();
        want.sort();
        assert_eq!(seen, want, "{path}: every input node is unchanged or replaced, once");
        assert_eq!(v["stop_reason"]["reason"], "Saturated", "{path}");
        assert!(v["limits"]["node_limit"].is_u64());
    }
}

#[test]
fn explain_names_the_rule_chains_of_a_changed_model() {
    let text = ok(&eqopt(&["explain", "examples/mlp.json"]));
    assert!(text.contains("3 changes (10 nodes in, 4 nodes out)"), "{text}");
    assert!(
        text.contains("replaced  fc1.matmul (MatMul), fc1 (Add), relu1 (Relu), dropout1 (Dropout)"),
        "{text}"
    );
    assert!(text.contains("rules: fusion/gemm-epilogue ×2"), "{text}");
    assert!(text.contains("dropout1 = relu1: simplify/dropout-elim"), "{text}");
    assert!(text.contains("unchanged: 1 of 10 input nodes (probs)"), "{text}");

    // A chain of several rules: attention fused, then its heads interleaved.
    let v: serde_json::Value =
        serde_json::from_str(&ok(&eqopt(&["explain", "examples/bert_layer.json", "--target", "h100", "--json"]))).unwrap();
    let by: Vec<&serde_json::Value> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["by"].as_array().unwrap())
        .collect();
    let attention = by.iter().find(|b| b["op"] == "FusedAttention").expect("bert's attention is fused");
    let chain: Vec<&str> = attention["chain"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert!(chain.len() >= 2 && chain.contains(&"fusion/attention"), "{chain:?}");
    assert!(
        by.iter()
            .any(|b| b["op"] == "constant" && b["chain"][0] == "fusion/merge-sibling-matmuls")
    );

    // Nodes removed by rules that only merge classes: the rules that equate them.
    let text = ok(&eqopt(&["explain", "examples/transpose_chain.json"]));
    assert!(text.contains("t2 = x: layout/transpose-cancel"), "{text}");
    assert!(text.contains("identity = x: simplify/identity-elim"), "{text}");
}

#[test]
fn explain_says_unchanged_for_a_model_optimization_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.json");
    std::fs::write(
        &path,
        r#"{"format": "eqopt-graph", "version": 1, "name": "plain",
  "inputs": [{"name": "a", "shape": [4, 8], "dtype": "f32"}, {"name": "b", "shape": [8, 3], "dtype": "f32"}],
  "outputs": ["p"],
  "nodes": [{"name": "y", "op": "MatMul", "inputs": ["a", "b"]},
            {"name": "p", "op": "Softmax", "inputs": ["y"], "attrs": {"axis": 1}}]}"#,
    )
    .unwrap();
    let text = ok(&eqopt(&["explain", s(&path)]));
    assert!(
        text.contains("no changes: the optimized graph is the input graph, all 2 nodes unchanged (y, p)"),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&eqopt(&["explain", s(&path), "--json"]))).unwrap();
    assert_eq!(v["changes"].as_array().map(Vec::len), Some(0));
    assert_eq!(v["unchanged"], serde_json::json!(["y", "p"]));
}

#[test]
fn mlp_dot_and_explain_match_their_snapshots() {
    let dot = ok(&eqopt(&["dot", "examples/mlp.json", "--optimize"]));
    parse_dot(&dot);
    snapshot("dot_explain__mlp_dot", &dot);
    snapshot("dot_explain__mlp_explain", &ok(&eqopt(&["explain", "examples/mlp.json"])));
    let ids: BTreeSet<String> = parse_dot(&dot).nodes.into_keys().collect();
    assert!(ids.contains("o0") && ids.contains("i0"));
}
