//! Which rules the optimized graph uses (`eqopt optimize --explain`).
//!
//! Saturation records, for every e-node, the rule application that added it
//! ([`crate::saturate::Provenance`]). Each node and constant of the extracted graph
//! is traced to the first e-node with its (canonical) form: a node the input graph
//! already had is "from the input"; any other was built by a rule, whose rewrite the
//! result therefore uses. Rules that only merge existing classes (cancellations such
//! as `transpose(transpose(x)) = x`) add no e-node; they are listed separately with
//! their application counts, as applied rather than traced.

use crate::analysis::TEGraph;
use crate::graph::Graph;
use crate::lang::TNode;
use crate::saturate::Provenance;
use egg::Language;
use std::collections::BTreeMap;

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
            s += "applied, but built nothing the result uses (matches):\n";
            for (rule, n) in &self.applied_only {
                s += &format!("  {rule:<34} {n:>5}\n");
            }
        }
        s
    }
}
