//! Which rules the optimized graph uses (`eqopt optimize --explain`), and where
//! it differs from the input (`eqopt explain`, [`changes`]).
//!
//! Saturation records, for every e-node, the rule application that added it
//! ([`crate::saturate::Provenance`]). Each node and constant of the extracted graph
//! is traced to the first e-node with its (canonical) form: a node the input graph
//! already had is "from the input"; any other was built by a rule, whose rewrite the
//! result therefore uses. Rules that only merge existing classes (cancellations such
//! as `transpose(transpose(x)) = x`) add no e-node; they are listed separately with
//! their application counts, as applied rather than traced.

use crate::analysis::TEGraph;
use crate::graph::{Graph, Node, ValueRef};
use crate::lang::TNode;
use crate::rules::{Lhs, Rhs, RuleSet};
use crate::saturate::{Provenance, Saturation};
use egg::{ENodeOrVar, Id, Language, PatternAst, Searcher, Subst};
use std::collections::{BTreeMap, BTreeSet};

/// The nodes of the result that one rule built.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RuleUse {
    /// Rule name, or `(input)` for nodes the input graph already had.
    pub rule: String,
    /// Names of the optimized graph's nodes and constants the rule built, sorted.
    pub nodes: Vec<String>,
}

/// What `--explain` reports.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Explanation {
    /// Rules whose e-nodes the result contains, most nodes first (then by name).
    pub used: Vec<RuleUse>,
    /// Rules that applied but added no e-node the result contains, with their match counts.
    pub applied_only: Vec<(String, usize)>,
}

/// Traces the chosen e-nodes (by result name) to the rules that built them; names
/// that constant folding removed from `result` are left out.
pub fn explain(egraph: &TEGraph, provenance: &Provenance, chosen: &BTreeMap<String, TNode>, result: &Graph) -> Explanation {
    // First id of every canonical e-node form.
    let mut first: BTreeMap<TNode, usize> = BTreeMap::new();
    for (id, n) in egraph.nodes().iter().enumerate() {
        let canonical = n.clone().map_children(|c| egraph.find(c));
        first.entry(canonical).or_insert(id);
    }
    let mut by_rule: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, node) in chosen.iter().filter(|(name, _)| result.lookup(name).is_some()) {
        let canonical = node.clone().map_children(|c| egraph.find(c));
        let rule = first
            .get(&canonical)
            .and_then(|&id| provenance.rule_of(id))
            .unwrap_or("(input)")
            .to_string();
        by_rule.entry(rule).or_default().push(name.clone());
    }
    let mut used: Vec<RuleUse> = by_rule.into_iter().map(|(rule, nodes)| RuleUse { rule, nodes }).collect();
    used.sort_by(|a, b| b.nodes.len().cmp(&a.nodes.len()).then_with(|| a.rule.cmp(&b.rule)));
    let applied_only = provenance
        .applications
        .iter()
        .filter(|(rule, n)| **n > 0 && !used.iter().any(|u| &u.rule == *rule))
        .map(|(rule, &n)| (rule.clone(), n))
        .collect();
    Explanation { used, applied_only }
}

impl Explanation {
    /// The listing printed under the report table.
    pub fn table(&self) -> String {
        let mut s = String::from("rules in the result (nodes of the optimized graph each one built):\n");
        for u in &self.used {
            let shown: Vec<&str> = u.nodes.iter().take(6).map(String::as_str).collect();
            let more = if u.nodes.len() > 6 {
                format!(", ... ({} more)", u.nodes.len() - 6)
            } else {
                String::new()
            };
            s += &format!("  {:<34} {:>5}  {}{more}\n", u.rule, u.nodes.len(), shown.join(", "));
        }
        if !self.applied_only.is_empty() {
            s += "applied, but built nothing the result uses (applications):\n";
            for (rule, n) in &self.applied_only {
                s += &format!("  {rule:<34} {n:>5}\n");
            }
        }
        s
    }
}

/// An input node the optimized graph does not keep as it was.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Replaced {
    /// Node name in the input graph.
    pub name: String,
    /// Its op, with distinguishing attributes ([`crate::dot::op_label`]).
    pub op: String,
    /// The result tensor (another name) it was found equal to, if any; `None`
    /// when its value is computed under its own name or only inside a kernel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    /// Rules that equate it with `merged_into`: applied rules whose left side
    /// matches its class with this op at the root, whose conditions hold there,
    /// and whose right side is already in that class.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub merged_by: Vec<String>,
}

/// A node or new constant of the optimized graph that the input did not have as it is.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Built {
    /// Name in the optimized graph.
    pub name: String,
    /// Its op name, or `constant`.
    pub op: String,
    /// The attributes that tell it apart ([`crate::dot::op_attrs`]); for a
    /// constant, its type.
    pub attrs: String,
    /// Its input tensors (empty for a constant).
    pub inputs: Vec<String>,
    /// The rules that built its e-node, earliest first: the rule that added it,
    /// preceded by the chain of the rule-built e-node it was most likely
    /// rewritten from (see [`changes`]). Empty when the e-node is the input's.
    pub chain: Vec<String>,
}

/// One place where the optimized graph differs from the input: the input nodes
/// replaced and the result nodes that replace them.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Change {
    /// Input nodes replaced, in input order.
    pub replaced: Vec<Replaced>,
    /// Result nodes and new constants replacing them, constants first, then nodes in result order.
    pub by: Vec<Built>,
}

/// Every difference between an input graph and its optimized graph (`eqopt explain`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Changes {
    /// Graph name.
    pub graph: String,
    /// Nodes of the input graph.
    pub input_nodes: usize,
    /// Nodes of the optimized graph.
    pub result_nodes: usize,
    /// The places that differ, in input order.
    pub changes: Vec<Change>,
    /// Input nodes the result keeps unchanged (same name, op and inputs), in input order.
    pub unchanged: Vec<String>,
}

/// E-classes a derivation search visits below a rule-built e-node at most.
const MAX_CONE_CLASSES: usize = 64;

/// Finds where `result` (extracted from `sat` with `chosen` e-nodes, see
/// [`crate::extraction::ExtractStats::chosen`]) differs from `input`, grouped
/// into places, and the rules behind each.
///
/// An input node is unchanged when the result has a node of its name with the
/// same op and inputs. The others are replaced; each joins the place of the
/// result node that computes its e-class, or, when no changed result node does
/// (it was absorbed into a kernel, or found equal to an existing tensor), the
/// place of its replaced users. New result tensors join the place of their users.
///
/// Chains: saturation records which rule added each e-node (the provenance),
/// not which e-nodes its match used, so the step before is inferred: among the
/// rule-built e-nodes that existed before the rule's application and lie
/// between the e-node's class and its inputs' classes, one of the same
/// operator, sharing the most inputs, latest (a heuristic: the rules named did
/// build those e-nodes, but the match may have used others).
pub fn changes(input: &Graph, sat: &Saturation, chosen: &BTreeMap<String, TNode>, result: &Graph, rules: &RuleSet) -> Changes {
    let eg = &sat.egraph;
    let mut first: BTreeMap<TNode, usize> = BTreeMap::new();
    for (id, n) in eg.nodes().iter().enumerate() {
        first.entry(n.clone().map_children(|c| eg.find(c))).or_insert(id);
    }
    let unchanged_node = |n: &Node| match result.lookup(&n.name) {
        Some(ValueRef::Node(j)) => result.nodes[j].op == n.op && result.nodes[j].inputs == n.inputs,
        _ => false,
    };
    let class_of_result = |name: &str| -> Option<Id> {
        chosen
            .get(name)
            .and_then(|n| eg.lookup(n.clone()))
            .or_else(|| sat.classes.get(name).map(|&c| eg.find(c)))
    };
    // Changed result items: nodes not kept as they were, and new constants.
    let input_consts: BTreeSet<&str> = input.constants.iter().map(|c| c.name.as_str()).collect();
    let mut changed: Vec<Built> = Vec::new();
    for c in result.constants.iter().filter(|c| !input_consts.contains(c.name.as_str())) {
        changed.push(Built {
            name: c.name.clone(),
            op: "constant".into(),
            attrs: c.ty.to_string(),
            inputs: Vec::new(),
            chain: chosen.get(&c.name).map(|n| chain(sat, &first, n)).unwrap_or_default(),
        });
    }
    for n in &result.nodes {
        let kept = input.lookup(&n.name).is_some_and(|r| match r {
            ValueRef::Node(i) => input.nodes[i].op == n.op && input.nodes[i].inputs == n.inputs,
            _ => false,
        });
        if !kept {
            changed.push(Built {
                name: n.name.clone(),
                op: n.op.name().to_string(),
                attrs: crate::dot::op_attrs(&n.op),
                inputs: n.inputs.clone(),
                chain: chosen.get(&n.name).map(|c| chain(sat, &first, c)).unwrap_or_default(),
            });
        }
    }
    let changed_names: BTreeSet<&str> = changed.iter().map(|b| b.name.as_str()).collect();
    // The result tensor computing each class (inputs, constants, then nodes).
    let mut computed: BTreeMap<Id, &str> = BTreeMap::new();
    let result_names = result
        .inputs
        .iter()
        .map(|i| i.name.as_str())
        .chain(result.constants.iter().map(|c| c.name.as_str()))
        .chain(result.nodes.iter().map(|n| n.name.as_str()));
    for name in result_names {
        if let Some(c) = class_of_result(name) {
            computed.entry(c).or_insert(name);
        }
    }
    let input_classes: BTreeSet<Id> = sat.classes.values().map(|&c| eg.find(c)).collect();
    let mut uf = UnionFind::default();
    let mut users: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for n in &input.nodes {
        for i in &n.inputs {
            users.entry(i.as_str()).or_default().push(&n.name);
        }
    }
    let replaced_nodes: Vec<&Node> = input.nodes.iter().filter(|n| !unchanged_node(n)).collect();
    let replaced_names: BTreeSet<&str> = replaced_nodes.iter().map(|n| n.name.as_str()).collect();
    let mut replaced: BTreeMap<&str, Replaced> = BTreeMap::new();
    for n in &replaced_nodes {
        let key = format!("i:{}", n.name);
        uf.add(&key);
        let class = sat.classes.get(&n.name).map(|&c| eg.find(c));
        let by = class.and_then(|c| computed.get(&c).copied());
        match by {
            Some(r) if changed_names.contains(r) => uf.union(&key, &format!("r:{r}")),
            _ => {
                for u in users.get(n.name.as_str()).into_iter().flatten() {
                    if replaced_names.contains(u) {
                        uf.union(&key, &format!("i:{u}"));
                    }
                }
            }
        }
        let merged_into = by.filter(|r| *r != n.name).map(str::to_string);
        let merged_by = match (&merged_into, class) {
            (Some(_), Some(c)) => merge_rules(eg, &sat.provenance, rules, &n.op, c),
            _ => Vec::new(),
        };
        replaced.insert(
            &n.name,
            Replaced {
                name: n.name.clone(),
                op: crate::dot::op_label(&n.op),
                merged_into,
                merged_by,
            },
        );
    }
    for b in &changed {
        let key = format!("r:{}", b.name);
        uf.add(&key);
        if class_of_result(&b.name).is_some_and(|c| input_classes.contains(&c)) {
            continue;
        }
        for n in result
            .nodes
            .iter()
            .filter(|n| n.inputs.contains(&b.name) && changed_names.contains(n.name.as_str()))
        {
            uf.union(&key, &format!("r:{}", n.name));
        }
    }
    // Places in input order (places with no replaced input node last, in result order).
    let input_pos: BTreeMap<&str, usize> = input.nodes.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
    let result_pos: BTreeMap<&str, usize> = changed.iter().enumerate().map(|(i, b)| (b.name.as_str(), i)).collect();
    let mut groups: BTreeMap<String, (Vec<&str>, Vec<&str>)> = BTreeMap::new();
    for n in &replaced_nodes {
        groups.entry(uf.find(&format!("i:{}", n.name))).or_default().0.push(&n.name);
    }
    for b in &changed {
        groups.entry(uf.find(&format!("r:{}", b.name))).or_default().1.push(&b.name);
    }
    let mut places: Vec<(usize, usize, Change)> = groups
        .into_values()
        .map(|(ins, outs)| {
            let key = (
                ins.iter().map(|n| input_pos[n]).min().unwrap_or(usize::MAX),
                outs.iter().map(|n| result_pos[n]).min().unwrap_or(usize::MAX),
            );
            let change = Change {
                replaced: ins.iter().filter_map(|n| replaced.get(n).cloned()).collect(),
                by: outs.iter().map(|n| changed[result_pos[n]].clone()).collect(),
            };
            (key.0, key.1, change)
        })
        .collect();
    places.sort_by_key(|(i, r, _)| (*i, *r));
    Changes {
        graph: input.name.clone(),
        input_nodes: input.nodes.len(),
        result_nodes: result.nodes.len(),
        changes: places.into_iter().map(|(_, _, c)| c).collect(),
        unchanged: input.nodes.iter().filter(|n| unchanged_node(n)).map(|n| n.name.clone()).collect(),
    }
}

/// The rules that built `node` (canonical e-node), earliest first.
fn chain(sat: &Saturation, first: &BTreeMap<TNode, usize>, node: &TNode) -> Vec<String> {
    let eg = &sat.egraph;
    let canonical = node.clone().map_children(|c| eg.find(c));
    let mut at = first.get(&canonical).copied();
    let mut rules = Vec::new();
    while let Some(id) = at {
        let Some((start, rule)) = span_of(&sat.provenance, id) else { break };
        rules.push(rule.to_string());
        at = predecessor(eg, &sat.provenance, first, id, start);
    }
    rules.reverse();
    rules
}

/// The start and rule of the provenance span holding e-node `id`, if a rule added it.
fn span_of(p: &Provenance, id: usize) -> Option<(usize, &str)> {
    let rule = p.rule_of(id)?;
    let k = p.spans.partition_point(|(_, end, _)| *end <= id);
    p.spans.get(k).map(|(start, _, _)| (*start, rule))
}

/// The rule-built e-node, added before `before`, that e-node `id` was most
/// likely rewritten from: among the e-nodes between `id`'s class and the classes
/// of its inputs, one of the same operator first, then one sharing the most
/// input classes with it, then the latest.
fn predecessor(eg: &TEGraph, p: &Provenance, first: &BTreeMap<TNode, usize>, id: usize, before: usize) -> Option<usize> {
    let node = eg.nodes().get(id)?;
    let leaves: BTreeSet<Id> = node.inputs().iter().map(|&c| eg.find(c)).collect();
    let root = eg.find(Id::from(id));
    let mut seen: BTreeSet<Id> = BTreeSet::from([root]);
    let mut queue = std::collections::VecDeque::from([root]);
    let mut best: Option<(bool, usize, usize)> = None;
    while let Some(class) = queue.pop_front() {
        for m in &eg[class].nodes {
            let Some(&mid) = first.get(&m.clone().map_children(|c| eg.find(c))) else {
                continue;
            };
            if mid >= before {
                continue;
            }
            if p.rule_of(mid).is_some() {
                let shared = m.inputs().iter().filter(|&&c| leaves.contains(&eg.find(c))).count();
                best = best.max(Some((m.op == node.op, shared, mid)));
            }
            for &c in m.inputs() {
                let c = eg.find(c);
                if !leaves.contains(&c) && seen.len() < MAX_CONE_CLASSES && seen.insert(c) {
                    queue.push_back(c);
                }
            }
        }
    }
    best.map(|(_, _, mid)| mid)
}

/// Applied rules that equate an `op` node of class `class` with another member:
/// a pattern rule whose left side has `op` at its root and matches at `class`
/// with its conditions holding, and whose right side is already in `class`.
fn merge_rules(eg: &TEGraph, p: &Provenance, rules: &RuleSet, op: &crate::graph::Op, class: Id) -> Vec<String> {
    let (top, _) = crate::lang::encode_op(op);
    let mut found = Vec::new();
    for rule in rules.rules() {
        if p.applications.get(&rule.name).is_none_or(|&n| n == 0) {
            continue;
        }
        let (Lhs::Pattern(lhs), Rhs::Pattern(rhs)) = (&rule.lhs, &rule.rhs) else {
            continue;
        };
        let root_matches = matches!(lhs.ast.as_ref().last(), Some(ENodeOrVar::ENode(n)) if n.op == top);
        if !root_matches {
            continue;
        }
        let Some(m) = lhs.search_eclass(eg, class) else { continue };
        let holds = m.substs.iter().any(|s| {
            rule.conditions.iter().all(|c| c.holds(eg, s)) && lookup_instance(eg, &rhs.ast, s).is_some_and(|id| eg.find(id) == class)
        });
        if holds {
            found.push(rule.name.clone());
        }
    }
    found
}

/// The class of `ast` instantiated with `subst`, if every e-node of it is in the e-graph.
fn lookup_instance(eg: &TEGraph, ast: &PatternAst<TNode>, subst: &Subst) -> Option<Id> {
    let mut ids: Vec<Id> = Vec::with_capacity(ast.as_ref().len());
    for n in ast.as_ref() {
        let id = match n {
            ENodeOrVar::Var(v) => eg.find(*subst.get(*v)?),
            ENodeOrVar::ENode(e) => eg.lookup(e.clone().map_children(|c| ids[usize::from(c)]))?,
        };
        ids.push(id);
    }
    ids.last().copied()
}

/// Union-find over string keys (deterministic: the smaller key is the root).
#[derive(Default)]
struct UnionFind(BTreeMap<String, String>);

impl UnionFind {
    fn add(&mut self, k: &str) {
        self.0.entry(k.to_string()).or_insert_with(|| k.to_string());
    }

    fn find(&self, k: &str) -> String {
        let mut k = k.to_string();
        while let Some(p) = self.0.get(&k).filter(|p| **p != k) {
            k = p.clone();
        }
        k
    }

    fn union(&mut self, a: &str, b: &str) {
        self.add(a);
        self.add(b);
        let (ra, rb) = (self.find(a), self.find(b));
        match ra.cmp(&rb) {
            std::cmp::Ordering::Less => self.0.insert(rb, ra),
            std::cmp::Ordering::Greater => self.0.insert(ra, rb),
            std::cmp::Ordering::Equal => None,
        };
    }
}

/// A chain as text: rules joined by `→`, a run of one rule as `rule ×N`.
pub fn chain_text(chain: &[String]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chain.len() {
        let run = chain[i..].iter().take_while(|r| **r == chain[i]).count();
        parts.push(if run > 1 {
            format!("{} ×{run}", chain[i])
        } else {
            chain[i].clone()
        });
        i += run;
    }
    parts.join(" → ")
}

/// Up to `max` names, then `... (N more)`.
fn some_names(names: &[String], max: usize) -> String {
    let shown: Vec<&str> = names.iter().take(max).map(String::as_str).collect();
    let more = names.len().saturating_sub(max);
    if more > 0 {
        format!("{}, ... ({more} more)", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// `n thing` or `n things`.
fn count(n: usize, thing: &str) -> String {
    if n == 1 { format!("1 {thing}") } else { format!("{n} {thing}s") }
}

impl Changes {
    /// The listing `eqopt explain` prints: one block per place, then one line for
    /// the unchanged nodes.
    pub fn table(&self) -> String {
        if self.changes.is_empty() {
            return format!(
                "no changes: the optimized graph is the input graph, all {} unchanged ({})\n",
                count(self.unchanged.len(), "node"),
                some_names(&self.unchanged, 8)
            );
        }
        let mut s = format!(
            "{} ({} in, {} out)\n",
            count(self.changes.len(), "change"),
            count(self.input_nodes, "node"),
            count(self.result_nodes, "node")
        );
        for (k, c) in self.changes.iter().enumerate() {
            s += &format!(
                "\nchange {}: {} replaced by {}\n",
                k + 1,
                count(c.replaced.len(), "node"),
                count(c.by.len(), "tensor")
            );
            let replaced: Vec<String> = c.replaced.iter().map(|r| format!("{} ({})", r.name, r.op)).collect();
            if !replaced.is_empty() {
                s += &format!("  replaced  {}\n", replaced.join(", "));
            }
            for (j, b) in c.by.iter().enumerate() {
                let head = if j == 0 { "  by        " } else { "            " };
                let call = match (b.op.as_str(), b.attrs.is_empty()) {
                    ("constant", _) => format!("{} = new constant {}", b.name, b.attrs),
                    (_, true) => format!("{} = {}({})", b.name, b.op, b.inputs.join(", ")),
                    (_, false) => format!("{} = {}({}); {}", b.name, b.op, b.inputs.join(", "), b.attrs),
                };
                let why = if b.chain.is_empty() {
                    "none: the input's op, reading other tensors".to_string()
                } else {
                    chain_text(&b.chain)
                };
                s += &format!("{head}{call}\n              rules: {why}\n");
            }
            for r in c.replaced.iter().filter(|r| r.merged_into.is_some()) {
                let into = r.merged_into.as_deref().unwrap_or_default();
                let by = if r.merged_by.is_empty() {
                    "(no single rule matches there)".to_string()
                } else {
                    r.merged_by.join(", ")
                };
                s += &format!("  equal     {} = {into}: {by}\n", r.name);
            }
        }
        s += &format!("\nunchanged: {} of {}", self.unchanged.len(), count(self.input_nodes, "input node"));
        if !self.unchanged.is_empty() {
            s += &format!(" ({})", some_names(&self.unchanged, 8));
        }
        s.push('\n');
        s
    }
}
