//! DAG-cost extraction over generic costed e-graphs.
//!
//! An e-graph here is a set of classes, each holding e-nodes; an e-node has
//! an operator label, a non-negative [`Cost`] and child classes. Extraction
//! picks one e-node per needed class so that the chosen graph, reachable
//! from the roots, is acyclic and its *DAG cost* (each chosen class counted
//! once, however often it is used) is as small as possible. The crate knows
//! nothing about tensors; it reads and writes the `egraph-serialize` JSON
//! format.
//!
//! Extractors (see [`extractor_names`]):
//! * `greedy` — bottom-up greedy with DAG-aware cost sets;
//! * `eqopt` (the default) — greedy, then any-time exact-delta local search
//!   with compound "switch and share" moves and deterministic perturbation;
//! * `ilp` (feature `ilp`) — exact integer programming with the pure-Rust
//!   `microlp` solver, warm-started from and falling back to `eqopt`.
//!
//! ```
//! use eqopt_extract::{CostedEGraph, Cost, ExtractOptions, extractor_by_name};
//!
//! // x is shared: f(x, x) as a DAG costs f + x once.
//! let mut g = CostedEGraph::new();
//! let x = g.add_class("x");
//! g.add_node(x, "expensive_x", Cost::new(10.0)?, vec![]);
//! let root = g.add_class("root");
//! g.add_node(root, "f", Cost::new(1.0)?, vec![x, x]);
//! g.add_root(root);
//!
//! let ex = extractor_by_name("eqopt")?;
//! let result = ex.extract(&g, &ExtractOptions::default())?;
//! assert_eq!(result.dag_cost(&g).value(), 11.0);
//! assert_eq!(result.tree_cost(&g).value(), 21.0);
//! assert!(result.find_cycle(&g).is_none());
//! # Ok::<(), eqopt_extract::ExtractError>(())
//! ```
#![warn(missing_docs)]

mod cost;
mod egraph;
mod eqopt;
mod error;
mod extraction;
mod greedy;
#[cfg(feature = "ilp")]
mod ilp;
mod improve;
mod prepare;
mod serialize;

use std::time::Duration;

pub use cost::Cost;
pub use egraph::{ClassId, CostedEGraph, Node, NodeId};
pub use eqopt::EqoptExtractor;
pub use error::ExtractError;
pub use extraction::Extraction;
pub use greedy::GreedyExtractor;
#[cfg(feature = "ilp")]
pub use ilp::IlpExtractor;

/// The name of the extractor the rest of eqopt uses by default.
pub const DEFAULT_EXTRACTOR: &str = "eqopt";

/// Options shared by all extractors.
#[derive(Clone, Debug)]
pub struct ExtractOptions {
    /// Wall-clock budget. Extractors stop improving when it is spent and
    /// return the best extraction found so far (the greedy start is always
    /// completed so that a result exists).
    pub time_limit: Duration,
    /// Upper bound on the perturbation rounds of the `eqopt` local search.
    /// With enough time the search stops here, which makes its result
    /// independent of machine speed.
    pub max_rounds: usize,
    /// Seed of the deterministic pseudo-random perturbations.
    pub seed: u64,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            time_limit: Duration::from_secs(1),
            max_rounds: 150,
            seed: 0x5eed_0071,
        }
    }
}

impl ExtractOptions {
    /// Sets [`ExtractOptions::time_limit`].
    pub fn with_time_limit(mut self, time_limit: Duration) -> Self {
        self.time_limit = time_limit;
        self
    }

    /// Sets [`ExtractOptions::max_rounds`].
    pub fn with_max_rounds(mut self, max_rounds: usize) -> Self {
        self.max_rounds = max_rounds;
        self
    }

    /// Sets [`ExtractOptions::seed`].
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// An extraction together with what the extractor knows about its quality.
#[derive(Clone, Debug, PartialEq)]
pub struct ExtractOutcome {
    /// The extraction (complete and acyclic).
    pub extraction: Extraction,
    /// Whether the extractor proved that no cheaper extraction exists.
    pub proven_optimal: bool,
}

/// A budget-limited extractor. Implementations return a complete, acyclic
/// extraction of every root, or [`ExtractError::Infeasible`] when some root
/// has none.
pub trait Extractor {
    /// The extractor's registry name.
    fn name(&self) -> &'static str;

    /// Extracts from `g` within `opts`.
    fn extract(&self, g: &CostedEGraph, opts: &ExtractOptions) -> Result<Extraction, ExtractError>;

    /// Like [`Extractor::extract`], also telling whether optimality was
    /// proven (only exact extractors ever say so).
    fn extract_with_status(&self, g: &CostedEGraph, opts: &ExtractOptions) -> Result<ExtractOutcome, ExtractError> {
        Ok(ExtractOutcome {
            extraction: self.extract(g, opts)?,
            proven_optimal: false,
        })
    }
}

/// The names accepted by [`extractor_by_name`].
pub fn extractor_names() -> &'static [&'static str] {
    #[cfg(feature = "ilp")]
    {
        &["greedy", "eqopt", "ilp"]
    }
    #[cfg(not(feature = "ilp"))]
    {
        &["greedy", "eqopt"]
    }
}

/// Looks an extractor up by name; unknown names give
/// [`ExtractError::UnknownExtractor`] listing the valid ones.
pub fn extractor_by_name(name: &str) -> Result<Box<dyn Extractor>, ExtractError> {
    match name {
        "greedy" => Ok(Box::new(GreedyExtractor)),
        "eqopt" => Ok(Box::new(EqoptExtractor)),
        #[cfg(feature = "ilp")]
        "ilp" => Ok(Box::new(IlpExtractor)),
        _ => Err(ExtractError::UnknownExtractor {
            name: name.to_string(),
            valid: extractor_names().join(", "),
        }),
    }
}
