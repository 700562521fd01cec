//! ONNX model → eqopt [`Graph`].
//!
//! The importer walks the nodes in order, keeping for every ONNX tensor name a
//! [`Value`]: either a constant known at import (initializers, `Constant` nodes,
//! and anything computed only from those, such as the `Shape → Gather → Concat`
//! arithmetic exporters emit), or a tensor computed at run time by an eqopt node.
//! Nodes whose inputs are all known are evaluated right away by the reference
//! interpreter (see [`FOLD_MAX_ELEMENTS`]); the rest become eqopt nodes. Each ONNX
//! op is translated by [`super::ops`], possibly into several eqopt nodes (`Gemm`,
//! `LRN`, `Clip`, ...); the last one keeps the ONNX output's name.

use super::proto::{GraphProto, ModelProto, NodeProto, ValueInfoProto, data_type};
use super::tensor::{Origin, SUPPORTED_DTYPES, dtype_from_onnx, tensor_from_proto};
use super::{ImportOptions, MAX_OPSET, MIN_OPSET};
use crate::dtype::{DType, TensorType};
use crate::error::{Error, Result, UnsupportedOp};
use crate::graph::tensor::{ConstInit, Tensor};
use crate::graph::{Constant, Graph, Input, Node, Op};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

/// Nodes whose inputs are all constants are evaluated at import when their output
/// has at most this many elements (or, for views such as `Reshape`, at any size).
/// Larger constant computations stay in the graph, where the optimizer folds them.
pub const FOLD_MAX_ELEMENTS: usize = 1 << 16;

/// A tensor known at import: data, or a fill value (`ConstantOfShape`).
#[derive(Clone, Debug)]
pub(crate) struct ConstVal {
    pub ty: TensorType,
    /// `ConstInit::Data` or `ConstInit::Fill`.
    pub init: ConstInit,
    /// The ONNX name it was first bound to, used to name (and share) its eqopt constant.
    pub key: Option<String>,
}

impl ConstVal {
    pub fn data(t: Tensor) -> ConstVal {
        ConstVal {
            ty: t.ty.clone(),
            init: ConstInit::Data(Arc::new(t)),
            key: None,
        }
    }

    pub fn tensor(&self) -> Arc<Tensor> {
        self.init.materialize(&self.ty)
    }
}

/// What an ONNX tensor name stands for during import.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    /// Known at import.
    Const(ConstVal),
    /// Computed at run time: the eqopt input or node of this name.
    Dyn { name: String, ty: TensorType },
}

impl Value {
    pub fn ty(&self) -> &TensorType {
        match self {
            Value::Const(c) => &c.ty,
            Value::Dyn { ty, .. } => ty,
        }
    }

    pub fn scalar(dtype: DType, v: f64) -> Value {
        Value::Const(ConstVal::data(Tensor::from_f64(TensorType::new(vec![], dtype), &[v])))
    }
}

/// Reads and imports an ONNX file.
pub fn load(path: &Path, opts: &ImportOptions) -> Result<Graph> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let model = ModelProto::decode(bytes.as_slice()).map_err(|e| Error::OnnxDecode {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    import_model(&model, path, opts)
}

/// Imports a decoded model; `path` locates external data and names the file in errors.
pub fn import_model(model: &ModelProto, path: &Path, opts: &ImportOptions) -> Result<Graph> {
    let opset = default_opset(model, path)?;
    let Some(graph) = &model.graph else {
        return Err(format_err(path, "model", "a graph", "none"));
    };
    check_supported(graph, path)?;
    let mut imp = Importer::new(path, opset, graph);
    imp.bind_initializers(graph)?;
    imp.bind_inputs(graph, opts)?;
    let uses = uses(graph);
    for node in live_nodes(graph) {
        imp.import_node(node, &uses)?;
    }
    let outputs = imp.bind_outputs(graph)?;
    let name = if graph.name.is_empty() {
        path.file_stem().map_or("graph".to_string(), |s| s.to_string_lossy().into_owned())
    } else {
        graph.name.clone()
    };
    Graph::new(name, imp.inputs, imp.constants, imp.nodes, outputs).map_err(|e| Error::InGraph {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

fn format_err(path: &Path, location: &str, expected: &str, found: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        location: location.to_string(),
        expected: expected.to_string(),
        found: found.into(),
    }
}

fn default_opset(model: &ModelProto, path: &Path) -> Result<i64> {
    let found = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version);
    // IR version 3 models without an opset_import entry are opset 1: out of range either way.
    let version = found.unwrap_or(1);
    if !(MIN_OPSET..=MAX_OPSET).contains(&version) {
        return Err(Error::OnnxOpset {
            path: path.to_path_buf(),
            domain: String::new(),
            version,
            min: MIN_OPSET,
            max: MAX_OPSET,
        });
    }
    Ok(version)
}

/// The name a node is reported by: its own, else its first output's.
pub(crate) fn node_label(n: &NodeProto) -> String {
    if !n.name.is_empty() {
        n.name.clone()
    } else {
        n.output
            .iter()
            .find(|o| !o.is_empty())
            .cloned()
            .unwrap_or_else(|| format!("<unnamed {}>", n.op_type))
    }
}

fn check_supported(graph: &GraphProto, path: &Path) -> Result<()> {
    let mut bad: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for n in &graph.node {
        let default_domain = n.domain.is_empty() || n.domain == "ai.onnx";
        if default_domain && super::ops::SUPPORTED_OPS.contains(&n.op_type.as_str()) {
            continue;
        }
        let key = if default_domain {
            n.op_type.clone()
        } else {
            format!("{}::{}", n.domain, n.op_type)
        };
        if !bad.contains_key(&key) {
            order.push(key.clone());
        }
        bad.entry(key).or_default().push(node_label(n));
    }
    if bad.is_empty() {
        return Ok(());
    }
    Err(Error::OnnxUnsupportedOps {
        path: path.to_path_buf(),
        ops: order
            .into_iter()
            .map(|op_type| UnsupportedOp {
                nodes: bad.remove(&op_type).unwrap_or_default(),
                op_type,
            })
            .collect(),
        supported: super::ops::SUPPORTED_OPS.join(", "),
    })
}

/// Every tensor name some node reads or the graph outputs.
fn uses(graph: &GraphProto) -> BTreeSet<String> {
    let mut u: BTreeSet<String> = graph.node.iter().flat_map(|n| n.input.iter().cloned()).collect();
    u.extend(graph.output.iter().map(|o| o.name.clone()));
    u.remove("");
    u
}

/// Nodes that contribute to a graph output, in model order (ONNX requires
/// topological order; a node reading a name defined later is caught on import).
fn live_nodes(graph: &GraphProto) -> Vec<&NodeProto> {
    let mut producer: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, n) in graph.node.iter().enumerate() {
        for o in &n.output {
            producer.insert(o.as_str(), i);
        }
    }
    let mut live = vec![false; graph.node.len()];
    let mut stack: Vec<usize> = graph.output.iter().filter_map(|o| producer.get(o.name.as_str()).copied()).collect();
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut live[i], true) {
            continue;
        }
        for inp in &graph.node[i].input {
            if let Some(&j) = producer.get(inp.as_str()) {
                stack.push(j);
            }
        }
    }
    graph.node.iter().zip(live).filter(|(_, l)| *l).map(|(n, _)| n).collect()
}

pub(crate) struct Importer<'m> {
    pub path: &'m Path,
    pub opset: i64,
    values: BTreeMap<String, Value>,
    pub inputs: Vec<Input>,
    pub constants: Vec<Constant>,
    pub nodes: Vec<Node>,
    /// eqopt names in use.
    taken: BTreeSet<String>,
    /// Every ONNX tensor name: generated names avoid them.
    reserved: BTreeSet<String>,
    /// ONNX constant name → its eqopt constant.
    materialized: BTreeMap<String, String>,
}

impl<'m> Importer<'m> {
    fn new(path: &'m Path, opset: i64, graph: &GraphProto) -> Self {
        let mut reserved: BTreeSet<String> = BTreeSet::new();
        reserved.extend(graph.input.iter().map(|v| v.name.clone()));
        reserved.extend(graph.initializer.iter().map(|t| t.name.clone()));
        reserved.extend(graph.node.iter().flat_map(|n| n.output.iter().cloned()));
        Importer {
            path,
            opset,
            values: BTreeMap::new(),
            inputs: Vec::new(),
            constants: Vec::new(),
            nodes: Vec::new(),
            taken: BTreeSet::new(),
            reserved,
            materialized: BTreeMap::new(),
        }
    }

    fn bind_initializers(&mut self, graph: &GraphProto) -> Result<()> {
        for t in &graph.initializer {
            let origin = Origin {
                model: self.path,
                what: t.name.clone(),
            };
            let tensor = tensor_from_proto(t, &origin)?;
            let mut c = ConstVal::data(tensor);
            c.key = Some(t.name.clone());
            self.values.insert(t.name.clone(), Value::Const(c));
        }
        Ok(())
    }

    fn bind_inputs(&mut self, graph: &GraphProto, opts: &ImportOptions) -> Result<()> {
        let names: Vec<&str> = graph
            .input
            .iter()
            .filter(|v| !self.values.contains_key(&v.name))
            .map(|v| v.name.as_str())
            .collect();
        if let Some(unknown) = opts.input_shapes.keys().find(|k| !names.contains(&k.as_str())) {
            return Err(Error::Usage {
                option: "--input-shape".into(),
                expected: format!("the name of a graph input ({})", names.join(", ")),
                found: format!("\"{unknown}\""),
            });
        }
        for (i, v) in graph.input.iter().enumerate() {
            // Older exporters list every initializer as a graph input too: the initializer wins.
            if self.values.contains_key(&v.name) {
                continue;
            }
            let ty = self.input_type(i, v, opts)?;
            crate::graph::check_size(&v.name, &ty).map_err(|e| Error::InGraph {
                path: self.path.to_path_buf(),
                source: Box::new(e),
            })?;
            self.taken.insert(v.name.clone());
            self.inputs.push(Input {
                name: v.name.clone(),
                ty: ty.clone(),
            });
            self.values.insert(v.name.clone(), Value::Dyn { name: v.name.clone(), ty });
        }
        Ok(())
    }

    fn input_type(&self, i: usize, v: &ValueInfoProto, opts: &ImportOptions) -> Result<TensorType> {
        let location = format!("graph.input[{i}] \"{}\"", v.name);
        let Some(tt) = v.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()) else {
            return Err(format_err(self.path, &location, "a tensor type", "no tensor type"));
        };
        let dtype = dtype_from_onnx(tt.elem_type).ok_or_else(|| {
            format_err(
                self.path,
                &format!("{location} element type"),
                &format!("one of {SUPPORTED_DTYPES}"),
                data_type::name(tt.elem_type),
            )
        })?;
        let dims = tt.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or(&[]);
        if tt.shape.is_none() && !opts.input_shapes.contains_key(&v.name) {
            return Err(Error::SymbolicDim {
                path: self.path.to_path_buf(),
                input: v.name.clone(),
                dim: 0,
                what: "unknown (the input has no shape at all)".into(),
                example: "D0,D1,...".into(),
            });
        }
        let known: Vec<Option<usize>> = dims
            .iter()
            .map(|d| match &d.value {
                Some(super::proto::DimensionValue::DimValue(v)) if *v >= 0 => Some(*v as usize),
                _ => None,
            })
            .collect();
        if let Some(given) = opts.input_shapes.get(&v.name) {
            let consistent =
                tt.shape.is_none() || given.len() == known.len() && known.iter().zip(given).all(|(k, g)| k.is_none_or(|k| k == *g));
            if !consistent {
                return Err(Error::Usage {
                    option: "--input-shape".into(),
                    expected: format!("a shape for \"{}\" matching the model's {}", v.name, dims_text(dims)),
                    found: given.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","),
                });
            }
            return Ok(TensorType::new(given.clone(), dtype));
        }
        let mut shape = Vec::with_capacity(known.len());
        for (k, (d, proto)) in known.iter().zip(dims).enumerate() {
            match d {
                Some(d) => shape.push(*d),
                None => {
                    let what = match &proto.value {
                        Some(super::proto::DimensionValue::DimParam(p)) => format!("symbolic (\"{p}\")"),
                        _ => "unknown".to_string(),
                    };
                    let example: Vec<String> = known.iter().map(|d| d.map_or_else(|| "N".to_string(), |d| d.to_string())).collect();
                    return Err(Error::SymbolicDim {
                        path: self.path.to_path_buf(),
                        input: v.name.clone(),
                        dim: k,
                        what,
                        example: example.join(","),
                    });
                }
            }
        }
        Ok(TensorType::new(shape, dtype))
    }

    fn import_node(&mut self, node: &NodeProto, uses: &BTreeSet<String>) -> Result<()> {
        for inp in node.input.iter().filter(|i| !i.is_empty()) {
            if !self.values.contains_key(inp) {
                return Err(Error::InGraph {
                    path: self.path.to_path_buf(),
                    source: Box::new(Error::DanglingInput {
                        node: node_label(node),
                        input: inp.clone(),
                    }),
                });
            }
        }
        let outs = super::ops::translate(self, node, uses).map_err(|e| match e {
            e @ (Error::Weights { .. } | Error::Usage { .. }) => e,
            e => Error::InGraph {
                path: self.path.to_path_buf(),
                source: Box::new(e),
            },
        })?;
        for (name, value) in node.output.iter().zip(outs) {
            if name.is_empty() {
                continue;
            }
            let value = match value {
                Value::Const(mut c) => {
                    c.key.get_or_insert_with(|| name.clone());
                    Value::Const(c)
                }
                v => v,
            };
            self.values.insert(name.clone(), value);
        }
        Ok(())
    }

    fn bind_outputs(&mut self, graph: &GraphProto) -> Result<Vec<String>> {
        let mut outputs = Vec::new();
        for o in &graph.output {
            let Some(v) = self.values.get(&o.name).cloned() else {
                return Err(Error::InGraph {
                    path: self.path.to_path_buf(),
                    source: Box::new(Error::UnknownOutput { output: o.name.clone() }),
                });
            };
            let name = match v {
                Value::Dyn { name, .. } if name == o.name => name,
                v @ Value::Dyn { .. } => {
                    // The output is another tensor under a new name: an Identity keeps the ONNX name.
                    let op = Op::Unary(crate::graph::op::UnaryOp::Identity);
                    match self.emit(&o.name, op, &[v])? {
                        Value::Dyn { name, .. } => name,
                        Value::Const(_) => unreachable!("emit makes a node"),
                    }
                }
                Value::Const(c) => self.materialize(&c, &o.name),
            };
            outputs.push(name);
        }
        Ok(outputs)
    }

    /// The value of input `i` of `node`, or `None` when absent or named `""`.
    pub fn input(&self, node: &NodeProto, i: usize) -> Option<Value> {
        node.input.get(i).filter(|n| !n.is_empty()).map(|n| self.values[n].clone())
    }

    /// A fresh eqopt name based on `hint`.
    fn fresh(&mut self, hint: &str) -> String {
        let mut name = hint.to_string();
        let mut k = 1;
        while self.taken.contains(&name) || (name != hint && self.reserved.contains(&name)) {
            name = format!("{hint}_{k}");
            k += 1;
        }
        self.taken.insert(name.clone());
        name
    }

    /// The eqopt constant holding `c`, created once per ONNX constant.
    fn materialize(&mut self, c: &ConstVal, hint: &str) -> String {
        if let Some(key) = &c.key
            && let Some(name) = self.materialized.get(key)
        {
            return name.clone();
        }
        let name = self.fresh(c.key.as_deref().unwrap_or(hint));
        self.constants.push(Constant {
            name: name.clone(),
            ty: c.ty.clone(),
            init: c.init.clone(),
        });
        if let Some(key) = &c.key {
            self.materialized.insert(key.clone(), name.clone());
        }
        name
    }

    /// Applies `op` to `inputs`: evaluated now when every input is known (and the
    /// result is small, or a view), otherwise emitted as an eqopt node named `name`
    /// (or a fresh variant of it).
    pub fn apply(&mut self, name: &str, op: Op, inputs: &[Value]) -> Result<Value> {
        if inputs.iter().all(|v| matches!(v, Value::Const(_))) {
            let tys: Vec<&TensorType> = inputs.iter().map(|v| v.ty()).collect();
            let ty = crate::graph::infer::infer_node(name, &op, &tys)?;
            if let Some(folded) = fold(name, &op, inputs, &ty)? {
                return Ok(Value::Const(folded));
            }
        }
        self.emit(name, op, inputs)
    }

    /// Emits `op` as an eqopt node even when its inputs are all constant.
    pub fn emit(&mut self, name: &str, op: Op, inputs: &[Value]) -> Result<Value> {
        let node_name = self.fresh(name);
        let mut names = Vec::with_capacity(inputs.len());
        for (k, v) in inputs.iter().enumerate() {
            names.push(match v {
                Value::Dyn { name, .. } => name.clone(),
                Value::Const(c) => self.materialize(c, &format!("{node_name}/c{k}")),
            });
        }
        let tys: Vec<&TensorType> = inputs.iter().map(|v| v.ty()).collect();
        let ty = crate::graph::infer::infer_node(&node_name, &op, &tys)?;
        self.nodes.push(Node {
            name: node_name.clone(),
            op,
            inputs: names,
            ty: ty.clone(),
        });
        Ok(Value::Dyn { name: node_name, ty })
    }
}

/// Evaluates `op` on constant inputs when that is cheap; `None` leaves it to the graph.
/// Views (`Reshape`, `Flatten`, `Identity`, ...) are always folded and keep a fill a fill.
fn fold(name: &str, op: &Op, inputs: &[Value], ty: &TensorType) -> Result<Option<ConstVal>> {
    let consts: Vec<&ConstVal> = inputs
        .iter()
        .map(|v| match v {
            Value::Const(c) => c,
            Value::Dyn { .. } => unreachable!("fold is called on constants only"),
        })
        .collect();
    // A widening of f16/bf16 data stays a node, so the weight keeps its 2-byte
    // storage (see `extraction::fold_constants`).
    if matches!(op, Op::Cast { to: DType::F32 }) && consts[0].ty.dtype.is_reduced_float() {
        return Ok(None);
    }
    // So does a dequantization of int8/int4 data (see `src/lower/quant.rs`).
    if matches!(op, Op::Dequantize { .. }) && consts[0].ty.dtype.is_quantized() {
        return Ok(None);
    }
    if op.is_view() {
        let init = match &consts[0].init {
            ConstInit::Fill(x) => ConstInit::Fill(*x),
            _ => ConstInit::Data(Arc::new(Tensor {
                ty: ty.clone(),
                data: consts[0].tensor().data.clone(),
            })),
        };
        return Ok(Some(ConstVal {
            ty: ty.clone(),
            init,
            key: None,
        }));
    }
    if ty.numel() > FOLD_MAX_ELEMENTS || consts.iter().any(|c| c.ty.numel() > FOLD_MAX_ELEMENTS) {
        return Ok(None);
    }
    let tensors: Vec<Arc<Tensor>> = consts.iter().map(|c| c.tensor()).collect();
    let refs: Vec<&Tensor> = tensors.iter().map(|t| t.as_ref()).collect();
    let out = crate::eval::eval_node(name, op, &refs).map_err(|e| Error::OnnxNode {
        node: name.to_string(),
        op: op.name().to_string(),
        what: "constant folding at import".into(),
        expected: "an evaluable constant expression".into(),
        found: e.to_string(),
    })?;
    Ok(Some(ConstVal::data(out)))
}

fn dims_text(dims: &[super::proto::Dimension]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| match &d.value {
            Some(super::proto::DimensionValue::DimValue(v)) => v.to_string(),
            Some(super::proto::DimensionValue::DimParam(p)) => p.clone(),
            None => "?".into(),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}
