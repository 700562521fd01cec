//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while building, reading or extracting from a
/// costed e-graph.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid egraph-serialize JSON.
    #[error("invalid egraph-serialize JSON in {}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// A cost value is NaN or negative.
    #[error("invalid cost {value}: costs must be non-negative and not NaN")]
    InvalidCost {
        /// The rejected value.
        value: f64,
    },
    /// An e-node of a serialized e-graph has a NaN cost.
    #[error("e-node {node} has a NaN cost")]
    NaNCost {
        /// The serialized node id.
        node: String,
    },
    /// An e-node of a serialized e-graph has a negative cost.
    #[error("e-node {node} has negative cost {value}")]
    NegativeCost {
        /// The serialized node id.
        node: String,
        /// The cost.
        value: f64,
    },
    /// An e-node refers to a child that does not exist.
    #[error("e-node {node} has unknown child {child}")]
    UnknownChild {
        /// The e-node (serialized id or class/op description).
        node: String,
        /// The missing child.
        child: String,
    },
    /// A class that must be extracted (a root) has no e-nodes.
    #[error("e-class {class} has no e-nodes")]
    EmptyClass {
        /// The class name.
        class: String,
    },
    /// The e-graph has no root classes, so there is nothing to extract.
    #[error("the e-graph has no root classes")]
    NoRoots,
    /// No extractor of this name exists.
    #[error("unknown extractor {name:?}; valid names: {valid}")]
    UnknownExtractor {
        /// The requested name.
        name: String,
        /// The valid names, comma separated.
        valid: String,
    },
    /// No acyclic, finite-cost extraction exists for some root classes.
    #[error("no acyclic extraction exists for root e-classes {roots:?}")]
    Infeasible {
        /// The names of the root classes without an acyclic extraction.
        roots: Vec<String>,
    },
    /// An extraction contains a cycle.
    #[error("extraction contains a cycle through e-classes {classes:?}")]
    Cycle {
        /// The names of the classes on the cycle.
        classes: Vec<String>,
    },
    /// An extraction leaves a needed class without a choice.
    #[error("extraction has no choice for needed e-class {class}")]
    Incomplete {
        /// The class name.
        class: String,
    },
    /// A class id or node id is out of range for the e-graph.
    #[error("{kind} id {id} is out of range (the e-graph has {len})")]
    OutOfRange {
        /// "class" or "node".
        kind: &'static str,
        /// The id.
        id: u32,
        /// How many exist.
        len: usize,
    },
}
