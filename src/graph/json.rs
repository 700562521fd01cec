//! graph.json: reading and writing (format documented in `docs/graph-format.md`).
//!
//! Reading checks everything [`Graph::new`] checks and reports each problem with
//! the file and the node or field it concerns. Writing is atomic: the weights
//! file and the graph go to temporary files in the target directory and are
//! renamed into place only when complete.

use super::tensor::{ConstInit, Distribution, Tensor};
use super::{Constant, Graph, Input, Node, ValueRef, build, describe};
use crate::dtype::{DType, TensorType};
use crate::error::{Error, Result};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The `format` field of every graph.json.
pub const FORMAT_NAME: &str = "eqopt-graph";
/// The format version this build reads and writes.
pub const FORMAT_VERSION: i64 = 1;
/// The largest constant tensor eqopt accepts (2 GiB): rewrites that compute new
/// weights hold a constant in memory, so larger ones are refused at load rather
/// than exhausting memory during optimization.
pub const MAX_CONSTANT_BYTES: u64 = 2 << 30;

struct Ctx<'a> {
    path: &'a Path,
}

impl Ctx<'_> {
    fn bad(&self, location: impl Into<String>, expected: impl Into<String>, found: impl Into<String>) -> Error {
        Error::Format {
            path: self.path.to_path_buf(),
            location: location.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    fn field<'v>(&self, obj: &'v Map<String, Value>, loc: &str, key: &str) -> Result<&'v Value> {
        obj.get(key).ok_or_else(|| self.bad(format!("{loc}.{key}"), "a value", "nothing"))
    }

    fn str<'v>(&self, obj: &'v Map<String, Value>, loc: &str, key: &str) -> Result<&'v str> {
        let v = self.field(obj, loc, key)?;
        v.as_str().ok_or_else(|| self.bad(format!("{loc}.{key}"), "a string", short(v)))
    }

    fn object<'v>(&self, v: &'v Value, loc: &str) -> Result<&'v Map<String, Value>> {
        v.as_object().ok_or_else(|| self.bad(loc, "an object", short(v)))
    }

    fn array<'v>(&self, obj: &'v Map<String, Value>, loc: &str, key: &str, required: bool) -> Result<&'v [Value]> {
        match obj.get(key) {
            None if !required => Ok(&[]),
            None => Err(self.bad(format!("{loc}.{key}"), "a list", "nothing")),
            Some(Value::Array(a)) => Ok(a),
            Some(v) => Err(self.bad(format!("{loc}.{key}"), "a list", short(v))),
        }
    }

    fn strings(&self, obj: &Map<String, Value>, loc: &str, key: &str, required: bool) -> Result<Vec<String>> {
        self.array(obj, loc, key, required)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| self.bad(format!("{loc}.{key}[{i}]"), "a tensor name (string)", short(v)))
            })
            .collect()
    }

    fn tensor_type(&self, obj: &Map<String, Value>, loc: &str) -> Result<TensorType> {
        let shape = self
            .array(obj, loc, "shape", true)?
            .iter()
            .map(|v| {
                v.as_u64()
                    .map(|d| d as usize)
                    .ok_or_else(|| self.bad(format!("{loc}.shape"), "non-negative integer dims", short(v)))
            })
            .collect::<Result<Vec<_>>>()?;
        let d = self.str(obj, loc, "dtype")?;
        let dtype = d.parse::<DType>().map_err(|_| {
            self.bad(
                format!("{loc}.dtype"),
                "one of f32, f64, f16, bf16, i8, i32, i64, bool",
                format!("\"{d}\""),
            )
        })?;
        Ok(TensorType::new(shape, dtype))
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 { format!("{}...", &s[..57]) } else { s }
}

/// Reads and checks a graph.json file (and its weights file, if it names one).
pub fn load(path: &Path) -> Result<Graph> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse(&text, path).map_err(|e| match e {
        Error::Json { .. } | Error::Format { .. } | Error::Io { .. } | Error::Safetensors { .. } | Error::Weights { .. } => e,
        other => Error::InGraph {
            path: path.to_path_buf(),
            source: Box::new(other),
        },
    })
}

/// Parses graph.json text; `path` names the file in errors and anchors the weights file.
pub fn parse(text: &str, path: &Path) -> Result<Graph> {
    let doc: Value = serde_json::from_str(text).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string().split(" at line").next().unwrap_or_default().to_string(),
    })?;
    let cx = Ctx { path };
    let top = cx.object(&doc, "the document")?;
    let format = cx.str(top, "graph", "format")?;
    if format != FORMAT_NAME {
        return Err(cx.bad("format", format!("\"{FORMAT_NAME}\""), format!("\"{format}\"")));
    }
    let version = cx.field(top, "graph", "version")?;
    if version.as_i64() != Some(FORMAT_VERSION) {
        return Err(cx.bad("version", FORMAT_VERSION.to_string(), short(version)));
    }
    let name = top.get("name").and_then(Value::as_str).unwrap_or("graph").to_string();
    let weights = match top.get("weights") {
        None => None,
        Some(Value::String(w)) => Some(path.parent().unwrap_or(Path::new(".")).join(w)),
        Some(v) => return Err(cx.bad("weights", "a file name (string)", short(v))),
    };

    let mut inputs = Vec::new();
    for (i, v) in cx.array(top, "graph", "inputs", true)?.iter().enumerate() {
        let loc = format!("inputs[{i}]");
        let o = cx.object(v, &loc)?;
        inputs.push(Input {
            name: cx.str(o, &loc, "name")?.to_string(),
            ty: cx.tensor_type(o, &loc)?,
        });
    }
    let mut store = WeightStore {
        path: weights,
        graph: path.to_path_buf(),
        bytes: None,
    };
    let mut constants = Vec::new();
    for (i, v) in cx.array(top, "graph", "constants", false)?.iter().enumerate() {
        let loc = format!("constants[{i}]");
        let o = cx.object(v, &loc)?;
        let name = cx.str(o, &loc, "name")?.to_string();
        let loc = format!("constants[{i}] \"{name}\"");
        let ty = cx.tensor_type(o, &loc)?;
        super::check_size(&name, &ty)?;
        if ty.size_bytes() > MAX_CONSTANT_BYTES {
            return Err(cx.bad(
                format!("{loc}.shape"),
                format!("a constant of at most {} bytes (MAX_CONSTANT_BYTES)", MAX_CONSTANT_BYTES),
                format!("{} bytes ({ty})", ty.size_bytes()),
            ));
        }
        let init = const_init(&cx, o, &loc, &name, &ty, &mut store)?;
        constants.push(Constant { name, ty, init });
    }
    let outputs = cx.strings(top, "graph", "outputs", true)?;
    if outputs.is_empty() {
        return Err(cx.bad("outputs", "at least one output", "an empty list"));
    }
    let raw = raw_nodes(&cx, top)?;
    let nodes = type_nodes(&inputs, &constants, raw)?;
    Graph::new(name, inputs, constants, nodes, outputs)
}

struct RawNode {
    name: String,
    op: String,
    inputs: Vec<String>,
    attrs: Map<String, Value>,
    /// For `Split`: which output of how many (index, sizes).
    split_part: Option<(usize, Vec<i64>)>,
}

fn raw_nodes(cx: &Ctx<'_>, top: &Map<String, Value>) -> Result<Vec<RawNode>> {
    let mut out = Vec::new();
    for (i, v) in cx.array(top, "graph", "nodes", true)?.iter().enumerate() {
        let loc = format!("nodes[{i}]");
        let o = cx.object(v, &loc)?;
        let name = cx.str(o, &loc, "name")?.to_string();
        let loc = format!("nodes[{i}] \"{name}\"");
        let op = cx.str(o, &loc, "op")?.to_string();
        let inputs = cx.strings(o, &loc, "inputs", true)?;
        let attrs = match o.get("attrs") {
            None => Map::new(),
            Some(v) => cx.object(v, &format!("{loc}.attrs"))?.clone(),
        };
        let outputs = cx.strings(o, &loc, "outputs", false)?;
        if op == "Split" {
            let a = build::Attrs::new(&name, "Split", &attrs);
            let sizes = a.ints("split", None)?;
            if outputs.len() != sizes.len() || sizes.iter().any(|&s| s < 0) {
                return Err(cx.bad(
                    format!("{loc}.outputs"),
                    format!("one output name per split size ({} sizes, each >= 0)", sizes.len()),
                    format!("{} outputs", outputs.len()),
                ));
            }
            for (k, out_name) in outputs.into_iter().enumerate() {
                out.push(RawNode {
                    name: out_name,
                    op: op.clone(),
                    inputs: inputs.clone(),
                    attrs: attrs.clone(),
                    split_part: Some((k, sizes.clone())),
                });
            }
        } else {
            if !outputs.is_empty() && outputs != [name.clone()] {
                return Err(cx.bad(
                    format!("{loc}.outputs"),
                    format!("no outputs list, or [\"{name}\"] (only Split has several outputs)"),
                    format!("{outputs:?}"),
                ));
            }
            out.push(RawNode {
                name,
                op,
                inputs,
                attrs,
                split_part: None,
            });
        }
    }
    Ok(out)
}

/// Orders raw nodes, builds their typed ops against their input types.
fn type_nodes(inputs: &[Input], constants: &[Constant], raw: Vec<RawNode>) -> Result<Vec<Node>> {
    let mut index: BTreeMap<String, ValueRef> = BTreeMap::new();
    let named = inputs.iter().enumerate().map(|(i, x)| (&x.name, ValueRef::Input(i)));
    let named = named.chain(constants.iter().enumerate().map(|(i, c)| (&c.name, ValueRef::Constant(i))));
    let named = named.chain(raw.iter().enumerate().map(|(i, n)| (&n.name, ValueRef::Node(i))));
    for (name, r) in named {
        if let Some(prev) = index.get(name) {
            return Err(Error::DuplicateName {
                name: name.clone(),
                first: describe(*prev),
                second: describe(r),
            });
        }
        index.insert(name.clone(), r);
    }
    for n in &raw {
        if let Some(bad) = n.inputs.iter().find(|i| !index.contains_key(*i)) {
            return Err(Error::DanglingInput {
                node: n.name.clone(),
                input: bad.clone(),
            });
        }
    }
    let edges: Vec<(&str, &[String])> = raw.iter().map(|n| (n.name.as_str(), n.inputs.as_slice())).collect();
    let order = super::topo_order(&edges, &index)?;
    let mut types: BTreeMap<&str, TensorType> = BTreeMap::new();
    for x in inputs {
        types.insert(&x.name, x.ty.clone());
    }
    for c in constants {
        types.insert(&c.name, c.ty.clone());
    }
    let mut nodes: Vec<Node> = Vec::with_capacity(raw.len());
    for i in order {
        let n = &raw[i];
        let tys: Vec<&TensorType> = n.inputs.iter().map(|x| &types[x.as_str()]).collect();
        let op = match &n.split_part {
            Some((k, sizes)) => split_slice(&n.name, &n.attrs, &tys, *k, sizes)?,
            None => build::build_op(&n.name, &n.op, &n.attrs, &tys)?,
        };
        let ty = super::infer::infer_node(&n.name, &op, &tys)?;
        types.insert(&n.name, ty.clone());
        nodes.push(Node {
            name: n.name.clone(),
            op,
            inputs: n.inputs.clone(),
            ty,
        });
    }
    Ok(nodes)
}

fn split_slice(node: &str, attrs: &Map<String, Value>, tys: &[&TensorType], k: usize, sizes: &[i64]) -> Result<super::Op> {
    let Some(x) = tys.first() else {
        return Err(Error::Arity {
            node: node.to_string(),
            op: "Split".into(),
            expected: "1".into(),
            found: 0,
        });
    };
    let a = build::Attrs::new(node, "Split", attrs);
    let axis = a.axis("axis", Some(0), x.rank(), false)?;
    let total: i64 = sizes.iter().sum();
    if total != x.shape[axis] as i64 {
        return Err(Error::BadAttr {
            node: node.to_string(),
            op: "Split".into(),
            attr: "split".into(),
            expected: format!("sizes summing to {} (dim {axis} of {x})", x.shape[axis]),
            found: format!("{sizes:?}"),
        });
    }
    let start: i64 = sizes[..k].iter().sum();
    Ok(super::Op::Slice {
        axes: vec![axis],
        starts: vec![start as usize],
        ends: vec![(start + sizes[k]) as usize],
        steps: vec![1],
    })
}

/// eqopt dtypes and their safetensors names (both directions of the mapping).
/// `i4`, which safetensors lacks, is stored as `U8` of shape `[⌈numel / 2⌉]`
/// holding the packed values ([`Tensor::to_le_bytes`]); graph.json declares
/// the constant's real shape and dtype.
pub(crate) const SAFETENSORS_DTYPES: [(DType, safetensors::Dtype); 8] = [
    (DType::F32, safetensors::Dtype::F32),
    (DType::F64, safetensors::Dtype::F64),
    (DType::F16, safetensors::Dtype::F16),
    (DType::BF16, safetensors::Dtype::BF16),
    (DType::I8, safetensors::Dtype::I8),
    (DType::I32, safetensors::Dtype::I32),
    (DType::I64, safetensors::Dtype::I64),
    (DType::Bool, safetensors::Dtype::BOOL),
];

/// Lazily opened safetensors weights file.
struct WeightStore {
    path: Option<PathBuf>,
    graph: PathBuf,
    bytes: Option<Vec<u8>>,
}

impl WeightStore {
    fn tensor(&mut self, constant: &str, key: &str, ty: &TensorType) -> Result<Tensor> {
        let Some(path) = self.path.clone() else {
            return Err(Error::Weights {
                constant: constant.into(),
                file: self.graph.clone(),
                problem: format!("refers to weights key \"{key}\" but the graph names no \"weights\" file"),
            });
        };
        if self.bytes.is_none() {
            self.bytes = Some(std::fs::read(&path).map_err(|e| Error::io(&path, e))?);
        }
        let bytes = self.bytes.as_deref().expect("read above");
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|source| Error::Safetensors {
            path: path.clone(),
            source,
        })?;
        let bad = |problem: String| Error::Weights {
            constant: constant.into(),
            file: path.clone(),
            problem,
        };
        let view = st
            .tensor(key)
            .map_err(|_| bad(format!("weights key \"{key}\" is not in the file")))?;
        if ty.dtype == DType::I4 {
            let packed = [ty.numel().div_ceil(2)];
            if view.dtype() != safetensors::Dtype::U8 || view.shape() != packed {
                return Err(bad(format!(
                    "declared {ty}, stored as U8 {packed:?} (packed), but weights key \"{key}\" holds {:?} {:?}",
                    view.dtype(),
                    view.shape()
                )));
            }
            return Tensor::from_le_bytes(ty.clone(), view.data())
                .ok_or_else(|| bad(format!("weights key \"{key}\" byte length disagrees with its shape")));
        }
        let dtype = SAFETENSORS_DTYPES
            .iter()
            .find(|(_, st)| *st == view.dtype())
            .map(|(d, _)| *d)
            .ok_or_else(|| bad(format!("weights key \"{key}\" has unsupported dtype {:?}", view.dtype())))?;
        let found = TensorType::new(view.shape().to_vec(), dtype);
        if &found != ty {
            return Err(bad(format!("declared {ty} but weights key \"{key}\" holds {found}")));
        }
        Tensor::from_le_bytes(found, view.data()).ok_or_else(|| bad(format!("weights key \"{key}\" byte length disagrees with its shape")))
    }
}

fn const_init(cx: &Ctx<'_>, o: &Map<String, Value>, loc: &str, name: &str, ty: &TensorType, store: &mut WeightStore) -> Result<ConstInit> {
    let kinds: Vec<&str> = ["values", "fill", "random", "weights"]
        .into_iter()
        .filter(|k| o.contains_key(*k))
        .collect();
    if kinds.len() != 1 {
        return Err(cx.bad(
            loc,
            "exactly one of values, fill, random, weights",
            if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join(" and ")
            },
        ));
    }
    let num = |v: &Value, what: &str| v.as_f64().ok_or_else(|| cx.bad(format!("{loc}.{what}"), "a number", short(v)));
    match kinds[0] {
        "values" => {
            let vals = cx
                .array(o, loc, "values", true)?
                .iter()
                .map(|v| num(v, "values"))
                .collect::<Result<Vec<f64>>>()?;
            if vals.len() != ty.numel() {
                return Err(cx.bad(
                    format!("{loc}.values"),
                    format!("{} values for shape {}", ty.numel(), crate::dtype::ShapeDisplay(&ty.shape)),
                    format!("{} values", vals.len()),
                ));
            }
            Ok(ConstInit::Values(vals))
        }
        "fill" => Ok(ConstInit::Fill(num(&o["fill"], "fill")?)),
        "random" => {
            let r = cx.object(&o["random"], &format!("{loc}.random"))?;
            let rloc = format!("{loc}.random");
            let get = |k: &str, d: Option<f64>| match r.get(k) {
                Some(v) => num(v, &format!("random.{k}")),
                None => d.ok_or_else(|| cx.bad(format!("{rloc}.{k}"), "a number", "nothing")),
            };
            let seed = r.get("seed").and_then(Value::as_u64).ok_or_else(|| {
                cx.bad(
                    format!("{rloc}.seed"),
                    "a non-negative integer",
                    r.get("seed").map_or("nothing".into(), short),
                )
            })?;
            let dist = match cx.str(r, &rloc, "dist")? {
                "normal" => Distribution::Normal {
                    mean: get("mean", Some(0.0))?,
                    std: get("std", None)?,
                },
                "uniform" => Distribution::Uniform {
                    low: get("low", None)?,
                    high: get("high", None)?,
                },
                "randint" => Distribution::RandInt {
                    low: get("low", None)? as i64,
                    high: get("high", None)? as i64,
                },
                other => {
                    return Err(cx.bad(
                        format!("{rloc}.dist"),
                        "\"normal\", \"uniform\" or \"randint\"",
                        format!("\"{other}\""),
                    ));
                }
            };
            Ok(ConstInit::Random { dist, seed })
        }
        _ => {
            let key = cx.str(o, loc, "weights")?;
            Ok(ConstInit::Data(Arc::new(store.tensor(name, key, ty)?)))
        }
    }
}

/// The graph.json document for `graph`; constants holding data are referenced by
/// key in `weights_file` (their name), which the caller writes with [`weights_bytes`].
pub fn to_json(graph: &Graph, weights_file: Option<&str>) -> Value {
    let mut top = Map::new();
    top.insert("format".into(), FORMAT_NAME.into());
    top.insert("version".into(), FORMAT_VERSION.into());
    top.insert("name".into(), graph.name.clone().into());
    if let Some(w) = weights_file {
        top.insert("weights".into(), w.into());
    }
    let inputs: Vec<Value> = graph
        .inputs
        .iter()
        .map(|x| json!({"name": x.name, "shape": x.ty.shape, "dtype": x.ty.dtype.name()}))
        .collect();
    top.insert("inputs".into(), inputs.into());
    top.insert("outputs".into(), graph.outputs.clone().into());
    let constants: Vec<Value> = graph
        .constants
        .iter()
        .map(|c| {
            let (key, init) = match &c.init {
                ConstInit::Values(v) => ("values", json!(v)),
                ConstInit::Fill(x) => ("fill", json!(x)),
                ConstInit::Random { dist, seed } => (
                    "random",
                    match *dist {
                        Distribution::Normal { mean, std } => json!({"dist": "normal", "mean": mean, "std": std, "seed": seed}),
                        Distribution::Uniform { low, high } => json!({"dist": "uniform", "low": low, "high": high, "seed": seed}),
                        Distribution::RandInt { low, high } => json!({"dist": "randint", "low": low, "high": high, "seed": seed}),
                    },
                ),
                ConstInit::Data(_) => ("weights", json!(c.name)),
            };
            let mut m = Map::new();
            m.insert("name".into(), c.name.clone().into());
            m.insert("shape".into(), c.ty.shape.clone().into());
            m.insert("dtype".into(), c.ty.dtype.name().into());
            m.insert(key.into(), init);
            Value::Object(m)
        })
        .collect();
    top.insert("constants".into(), constants.into());
    let nodes: Vec<Value> = graph
        .nodes
        .iter()
        .map(|n| {
            let mut m = Map::new();
            m.insert("name".into(), n.name.clone().into());
            m.insert("op".into(), n.op.name().into());
            m.insert("inputs".into(), n.inputs.clone().into());
            let attrs = build::op_attrs(&n.op);
            if !attrs.is_empty() {
                m.insert("attrs".into(), Value::Object(attrs));
            }
            Value::Object(m)
        })
        .collect();
    top.insert("nodes".into(), nodes.into());
    Value::Object(top)
}

/// True if some constant holds data that must go to a weights file.
pub fn needs_weights(graph: &Graph) -> bool {
    graph.constants.iter().any(|c| matches!(c.init, ConstInit::Data(_)))
}

/// A safetensors file holding every data-backed constant, keyed by constant name.
pub fn weights_bytes(graph: &Graph, path: &Path) -> Result<Vec<u8>> {
    let mut owned: Vec<(String, TensorType, Vec<u8>)> = Vec::new();
    for c in &graph.constants {
        if let ConstInit::Data(t) = &c.init {
            owned.push((c.name.clone(), c.ty.clone(), t.to_le_bytes()));
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = owned
        .iter()
        .map(|(name, ty, bytes)| {
            let (dtype, shape) = match ty.dtype {
                DType::I4 => (safetensors::Dtype::U8, vec![bytes.len()]),
                d => (
                    SAFETENSORS_DTYPES
                        .iter()
                        .find(|(e, _)| *e == d)
                        .map(|(_, st)| *st)
                        .expect("every dtype but i4 has a safetensors dtype"),
                    ty.shape.clone(),
                ),
            };
            safetensors::tensor::TensorView::new(dtype, shape, bytes)
                .map(|v| (name.clone(), v))
                .map_err(|source| Error::Safetensors {
                    path: path.to_path_buf(),
                    source,
                })
        })
        .collect::<Result<_>>()?;
    safetensors::serialize(views, None).map_err(|source| Error::Safetensors {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `graph` to `path` (and `<stem>.safetensors` beside it when some constant
/// holds data), each through a temporary file renamed into place.
pub fn save(graph: &Graph, path: &Path) -> Result<()> {
    let weights_name = needs_weights(graph).then(|| {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("graph");
        format!("{stem}.safetensors")
    });
    if let Some(w) = &weights_name {
        let wpath = path.with_file_name(w);
        let bytes = weights_bytes(graph, &wpath)?;
        write_atomic(&wpath, &bytes)?;
    }
    let mut text = crate::jsonfmt::to_string(&to_json(graph, weights_name.as_deref()));
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Writes `bytes` to a temporary file next to `path`, then renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    // A temporary file is private (0600) by default; the output gets the mode
    // any new file gets (0666 less the umask), or the one it replaces.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_or(0o666, |m| m.permissions().mode() & 0o7777);
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(tmp.path(), e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::write_atomic;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn outputs_are_not_left_private_and_keep_the_mode_they_replace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        write_atomic(&path, b"{}").unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"").unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), mode(&plain), "a new output gets the mode of any new file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&path, b"[]").unwrap();
        assert_eq!(mode(&path), 0o640);
        assert_eq!(std::fs::read(&path).unwrap(), b"[]");
    }
}
