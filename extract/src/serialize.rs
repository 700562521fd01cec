//! Conversion from and to the egraph-serialize format and its JSON files.

use std::path::Path;

use indexmap::IndexMap;

use crate::cost::Cost;
use crate::egraph::{ClassId, CostedEGraph};
use crate::error::ExtractError;

impl CostedEGraph {
    /// Converts an egraph-serialize e-graph. Classes are numbered in order of
    /// first appearance among the nodes; subsumed nodes are dropped (they
    /// still name their class for children pointing at them).
    ///
    /// Errors: a child naming no node ([`ExtractError::UnknownChild`]), a
    /// NaN or negative cost, a root class with no nodes
    /// ([`ExtractError::EmptyClass`]).
    pub fn from_serialized(s: &egraph_serialize::EGraph) -> Result<Self, ExtractError> {
        let mut g = CostedEGraph::new();
        let mut class_of: IndexMap<&str, ClassId> = IndexMap::new();
        for node in s.nodes.values() {
            let name: &str = node.eclass.as_ref();
            if !class_of.contains_key(name) {
                let id = g.add_class(name);
                class_of.insert(name, id);
            }
        }
        // Classes that appear only in class_data or as roots.
        for name in s.class_data.keys().chain(&s.root_eclasses) {
            let name: &str = name.as_ref();
            if !class_of.contains_key(name) {
                let id = g.add_class(name);
                class_of.insert(name, id);
            }
        }
        for (id, node) in &s.nodes {
            if node.subsumed {
                continue;
            }
            let cost = node.cost.into_inner();
            if cost.is_nan() {
                return Err(ExtractError::NaNCost { node: id.to_string() });
            }
            let cost = Cost::new(cost).map_err(|_| ExtractError::NegativeCost {
                node: id.to_string(),
                value: cost,
            })?;
            let mut children = Vec::with_capacity(node.children.len());
            for child in &node.children {
                let child_node = s.nodes.get(child).ok_or_else(|| ExtractError::UnknownChild {
                    node: id.to_string(),
                    child: child.to_string(),
                })?;
                children.push(class_of[child_node.eclass.as_ref() as &str]);
            }
            let class = class_of[node.eclass.as_ref() as &str];
            g.add_named_node(class, id.as_ref() as &str, node.op.clone(), cost, children);
        }
        for root in &s.root_eclasses {
            let c = class_of[root.as_ref() as &str];
            if g.class_nodes(c).is_empty() {
                return Err(ExtractError::EmptyClass { class: root.to_string() });
            }
            g.add_root(c);
        }
        Ok(g)
    }

    /// Converts to the egraph-serialize format. A child class is named by its
    /// first node; empty classes are omitted (children pointing at them can
    /// not be expressed, so their parent nodes are omitted too).
    pub fn to_serialized(&self) -> egraph_serialize::EGraph {
        let mut out = egraph_serialize::EGraph::default();
        let representative = |c: ClassId| self.class_nodes(c).first().map(|&n| self.node_name(n));
        for (id, node) in self.nodes() {
            let children: Option<Vec<egraph_serialize::NodeId>> = node
                .children
                .iter()
                .map(|&c| representative(c).map(egraph_serialize::NodeId::from))
                .collect();
            let Some(children) = children else { continue };
            let cost = egraph_serialize::Cost::new(node.cost.value()).expect("Cost is never NaN");
            out.add_node(
                self.node_name(id),
                egraph_serialize::Node {
                    op: node.op.clone(),
                    children,
                    eclass: self.class_name(node.class).into(),
                    cost,
                    subsumed: false,
                },
            );
        }
        out.root_eclasses = self.roots().iter().map(|&c| self.class_name(c).into()).collect();
        out
    }

    /// Reads an egraph-serialize JSON file; errors name the file.
    pub fn read_json(path: &Path) -> Result<Self, ExtractError> {
        let text = std::fs::read_to_string(path).map_err(|source| ExtractError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text).map_err(|e| match e {
            ExtractError::Json { source, .. } => ExtractError::Json {
                path: path.to_path_buf(),
                source,
            },
            other => other,
        })
    }

    /// Parses egraph-serialize JSON text (errors carry an empty path).
    pub fn from_json_str(text: &str) -> Result<Self, ExtractError> {
        let s: egraph_serialize::EGraph = serde_json::from_str(text).map_err(|source| ExtractError::Json {
            path: Default::default(),
            source,
        })?;
        Self::from_serialized(&s)
    }

    /// Renders the e-graph as egraph-serialize JSON text.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(&self.to_serialized()).expect("egraph-serialize values always serialize")
    }
}
