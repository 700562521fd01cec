//! # eqopt
//!
//! An equality-saturation optimizer for ML model graphs. A graph (graph.json) is
//! encoded as an [`egg`] e-graph, rewrite rules from text files are saturated,
//! and a DAG-aware extractor picks the cheapest equivalent graph under a roofline
//! cost model for a hardware target.
//!
//! The pipeline, one module per stage:
//! [`graph`] (IR, graph.json, shape inference) → [`lang`] + [`analysis`] (the
//! e-graph) → [`rules`] (rule files) → [`saturate`] → [`cost`] (roofline) →
//! [`extract`](mod@crate::extraction) → back to a [`graph::Graph`]. [`optimize`]
//! runs them all; [`cli`] is the command line.
#![warn(missing_docs)]

pub mod analysis;
pub mod backend;
pub mod budget;
pub mod calibrate;
pub mod cli;
pub mod cost;
pub mod dot;
pub mod dtype;
pub mod error;
pub mod eval;
pub mod ewexpr;
pub mod experiment;
pub mod explain;
pub mod extraction;
pub mod graph;
pub mod jsonfmt;
pub mod lang;
pub mod lower;
pub mod onnx;
pub mod optimize;
pub mod pareto;
pub mod ptx;
pub mod quant;
pub mod rules;
pub mod saturate;
pub mod tensor_io;
pub mod toolchain;

pub use error::{Error, Result};
