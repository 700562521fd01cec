//! The costed e-graph: classes of e-nodes with costs and child classes.

use std::fmt;

use crate::cost::Cost;

/// The index of an e-class in a [`CostedEGraph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClassId(pub u32);

/// The index of an e-node in a [`CostedEGraph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

impl ClassId {
    /// The id as a `usize` index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl NodeId {
    /// The id as a `usize` index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ClassId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// One e-node: an operator applied to child e-classes, with its own cost.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The class the node belongs to.
    pub class: ClassId,
    /// The operator label (for display only).
    pub op: String,
    /// The node's own cost (not counting its children).
    pub cost: Cost,
    /// The child classes, in operand order (repeats allowed).
    pub children: Vec<ClassId>,
}

#[derive(Clone, Debug, Default)]
struct Class {
    name: String,
    nodes: Vec<NodeId>,
}

/// A costed e-graph: classes of e-nodes, each e-node with an operator label,
/// a cost and child classes, plus the root classes to extract.
#[derive(Clone, Debug, Default)]
pub struct CostedEGraph {
    classes: Vec<Class>,
    nodes: Vec<Node>,
    node_names: Vec<String>,
    roots: Vec<ClassId>,
}

impl CostedEGraph {
    /// An empty e-graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an empty class. The name is used for display and JSON output and
    /// should be unique.
    pub fn add_class(&mut self, name: impl Into<String>) -> ClassId {
        let id = ClassId(self.classes.len() as u32);
        self.classes.push(Class {
            name: name.into(),
            nodes: Vec::new(),
        });
        id
    }

    /// Adds an e-node to `class`; its serialized name is `"{class name}__{k}"`
    /// where `k` counts the class's nodes.
    ///
    /// # Panics
    /// If `class` or a child is not a class of this e-graph.
    pub fn add_node(&mut self, class: ClassId, op: impl Into<String>, cost: Cost, children: Vec<ClassId>) -> NodeId {
        let name = format!("{}__{}", self.classes[class.index()].name, self.classes[class.index()].nodes.len());
        self.add_named_node(class, name, op, cost, children)
    }

    /// Adds an e-node with an explicit serialized name (used when reading
    /// JSON, so that writing it back keeps the node ids).
    ///
    /// # Panics
    /// If `class` or a child is not a class of this e-graph.
    pub fn add_named_node(
        &mut self,
        class: ClassId,
        name: impl Into<String>,
        op: impl Into<String>,
        cost: Cost,
        children: Vec<ClassId>,
    ) -> NodeId {
        let n = self.classes.len();
        assert!(class.index() < n, "class {class} out of range ({n} classes)");
        for c in &children {
            assert!(c.index() < n, "child class {c} out of range ({n} classes)");
        }
        let id = NodeId(self.nodes.len() as u32);
        self.nodes.push(Node {
            class,
            op: op.into(),
            cost,
            children,
        });
        self.node_names.push(name.into());
        self.classes[class.index()].nodes.push(id);
        id
    }

    /// Marks `class` as a root to extract (adding it twice has no effect).
    ///
    /// # Panics
    /// If `class` is not a class of this e-graph.
    pub fn add_root(&mut self, class: ClassId) {
        assert!(class.index() < self.classes.len(), "root {class} out of range");
        if !self.roots.contains(&class) {
            self.roots.push(class);
        }
    }

    /// The root classes, in insertion order.
    pub fn roots(&self) -> &[ClassId] {
        &self.roots
    }

    /// The number of classes.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// The number of e-nodes.
    pub fn num_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// The e-nodes of class `c`.
    pub fn class_nodes(&self, c: ClassId) -> &[NodeId] {
        &self.classes[c.index()].nodes
    }

    /// The display / JSON name of class `c`.
    pub fn class_name(&self, c: ClassId) -> &str {
        &self.classes[c.index()].name
    }

    /// The e-node `n`.
    pub fn node(&self, n: NodeId) -> &Node {
        &self.nodes[n.index()]
    }

    /// The serialized name of e-node `n`.
    pub fn node_name(&self, n: NodeId) -> &str {
        &self.node_names[n.index()]
    }

    /// All class ids, in order.
    pub fn class_ids(&self) -> impl Iterator<Item = ClassId> + '_ {
        (0..self.classes.len() as u32).map(ClassId)
    }

    /// All e-nodes with their ids, in order.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &Node)> + '_ {
        self.nodes.iter().enumerate().map(|(i, n)| (NodeId(i as u32), n))
    }

    /// The names of `classes`, for error messages.
    pub(crate) fn class_names(&self, classes: &[ClassId]) -> Vec<String> {
        classes.iter().map(|&c| self.class_name(c).to_string()).collect()
    }
}
