//! ONNX models in and out.
//!
//! [`import::load`] reads an ONNX protobuf (opsets [`MIN_OPSET`] to [`MAX_OPSET`],
//! initializers in raw or typed fields or external-data files) into a checked
//! [`Graph`], folding the shape arithmetic exporters emit. [`export::save`] writes
//! a graph as a standard ONNX model at opset [`export::EXPORT_OPSET`]: eqopt's fused
//! kernels are decomposed into standard ops so that any ONNX runtime can run it,
//! and every constant (folded batch norms, merged weights) is a real initializer.
//!
//! ```
//! use eqopt::onnx::{export, import, ImportOptions};
//! let graph = eqopt::graph::json::parse(
//!     r#"{"format": "eqopt-graph", "version": 1,
//!         "inputs": [{"name": "x", "shape": [2, 3], "dtype": "f32"}],
//!         "outputs": ["y"],
//!         "nodes": [{"name": "y", "op": "Relu", "inputs": ["x"]}]}"#,
//!     std::path::Path::new("inline.json"),
//! )?;
//! let model = export::to_model(&graph)?;
//! let back = import::import_model(&model, std::path::Path::new("inline.onnx"), &ImportOptions::default())?;
//! assert_eq!(back.nodes.len(), 1);
//! assert_eq!(back.nodes[0].op.name(), "Relu");
//! # Ok::<(), eqopt::Error>(())
//! ```

pub mod export;
pub mod import;
mod ops;
pub mod proto;
pub mod tensor;

use crate::error::{Error, Result};
use crate::graph::Graph;
use std::collections::BTreeMap;
use std::path::Path;

pub use ops::SUPPORTED_OPS;

/// Oldest default-domain opset the importer reads.
pub const MIN_OPSET: i64 = 7;
/// Newest default-domain opset the importer reads.
pub const MAX_OPSET: i64 = 21;

/// Options of the importer.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Static shapes for graph inputs, replacing symbolic or unknown dims
    /// (`--input-shape name=1,3,224,224`).
    pub input_shapes: BTreeMap<String, Vec<usize>>,
}

impl ImportOptions {
    /// Sets the static shape of graph input `name` (builder style).
    pub fn input_shape(mut self, name: impl Into<String>, shape: Vec<usize>) -> Self {
        self.input_shapes.insert(name.into(), shape);
        self
    }
}

/// Parses one `--input-shape` value, `name=d0,d1,...` (dims may also be separated by `x`).
pub fn parse_input_shape(text: &str) -> Result<(String, Vec<usize>)> {
    let bad = || Error::Usage {
        option: "--input-shape".into(),
        expected: "NAME=D0,D1,... with non-negative integer dims (e.g. x=1,3,224,224)".into(),
        found: format!("\"{text}\""),
    };
    let (name, dims) = text.rsplit_once('=').ok_or_else(bad)?;
    if name.is_empty() {
        return Err(bad());
    }
    let dims: Vec<usize> = if dims.trim().is_empty() {
        Vec::new()
    } else {
        dims.split([',', 'x'])
            .map(|d| d.trim().parse::<usize>().map_err(|_| bad()))
            .collect::<Result<_>>()?
    };
    Ok((name.to_string(), dims))
}

/// True when `path` names an ONNX model (extension `.onnx`, any case).
pub fn is_onnx(path: &Path) -> bool {
    crate::tensor_io::has_extension(path, "onnx")
}

/// Loads a model graph from graph.json or ONNX, picking the format by extension.
pub fn load_any(path: &Path, opts: &ImportOptions) -> Result<Graph> {
    let graph = if is_onnx(path) {
        import::load(path, opts)?
    } else {
        if !opts.input_shapes.is_empty() {
            return Err(Error::Usage {
                option: "--input-shape".into(),
                expected: "an ONNX model (graph.json shapes are always static)".into(),
                found: path.display().to_string(),
            });
        }
        crate::graph::json::load(path)?
    };
    tracing::info!(
        inputs = graph.inputs.len(),
        constants = graph.constants.len(),
        nodes = graph.nodes.len(),
        "loaded {}",
        path.display()
    );
    Ok(graph)
}

/// Writes a graph as graph.json (+ weights) or ONNX, picking the format by extension.
pub fn save_any(graph: &Graph, path: &Path) -> Result<()> {
    if is_onnx(path) {
        export::save(graph, path)
    } else {
        crate::graph::json::save(graph, path)
    }
}
