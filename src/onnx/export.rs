//! eqopt [`Graph`] → standard ONNX model.
//!
//! Every eqopt op is written as standard ONNX ops at opset [`EXPORT_OPSET`]:
//! `FusedElementwise`, `FusedMatMul` and `FusedConv` are decomposed into their
//! expression's ops (a fused kernel is an eqopt execution decision, not a
//! different function), `Gelu` into its erf form, `Dropout` into `Identity`.
//! Every constant becomes an initializer with `raw_data`, so optimized weights
//! (folded batch norms, merged matrices) travel with the model. The output names
//! of the graph are kept; intermediate tensors of a decomposition are named
//! `<node>/<step>`.

use super::proto::{
    AttributeProto, Dimension, DimensionValue, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto,
    TypeProtoTensor, ValueInfoProto, attr_type,
};
use super::tensor::{dtype_to_onnx, tensor_to_proto};
use crate::dtype::{DType, TensorType};
use crate::error::{Error, Result};
use crate::ewexpr::EwExpr;
use crate::graph::op::{
    AttentionLayout, BinaryOp, ConvParams, HWIO_TO_OIHW, KEYS_TO_KT, Layout, NCHW_TO_NHWC, NHWC_TO_NCHW, Op, PoolKind, ReduceKind,
    SWAP_HEADS, UnaryOp,
};
use crate::graph::tensor::Tensor;
use crate::graph::{Graph, Node};
use prost::Message;
use std::collections::BTreeSet;
use std::path::Path;

/// The opset of exported models (ONNX 1.12+, ONNX Runtime 1.12+).
pub const EXPORT_OPSET: i64 = 17;
/// IR version matching [`EXPORT_OPSET`].
pub const EXPORT_IR_VERSION: i64 = 8;
/// The opset of exported models holding a `DequantizeLinear` (INT4 data and
/// `block_size` need opset 21; ONNX 1.16+, ONNX Runtime 1.20+).
pub const QUANT_EXPORT_OPSET: i64 = 21;
/// IR version matching [`QUANT_EXPORT_OPSET`].
pub const QUANT_EXPORT_IR_VERSION: i64 = 10;
/// Protobuf messages are limited to 2 GiB; exported models stay below this.
pub const MAX_MODEL_BYTES: usize = (1 << 31) - (1 << 20);

/// Writes `graph` to `path` as an ONNX model, through a temporary file renamed into place.
pub fn save(graph: &Graph, path: &Path) -> Result<()> {
    let model = to_model(graph)?;
    let bytes = model.encode_to_vec();
    if bytes.len() > MAX_MODEL_BYTES {
        return Err(Error::Usage {
            option: path.display().to_string(),
            expected: format!("an ONNX model under {MAX_MODEL_BYTES} bytes (the protobuf limit)"),
            found: format!("{} bytes", bytes.len()),
        });
    }
    crate::graph::json::write_atomic(path, &bytes)
}

/// The ONNX model of `graph`.
pub fn to_model(graph: &Graph) -> Result<ModelProto> {
    let mut w = Writer {
        taken: graph
            .inputs
            .iter()
            .map(|i| i.name.clone())
            .chain(graph.constants.iter().map(|c| c.name.clone()))
            .chain(graph.nodes.iter().map(|n| n.name.clone()))
            .collect(),
        nodes: Vec::new(),
        initializers: Vec::new(),
        opset: if graph.nodes.iter().any(|n| matches!(n.op, Op::Dequantize { .. })) {
            QUANT_EXPORT_OPSET
        } else {
            EXPORT_OPSET
        },
    };
    for c in &graph.constants {
        let t = c.init.materialize(&c.ty);
        w.initializers.push(tensor_to_proto(&c.name, &t));
    }
    for n in &graph.nodes {
        w.node(graph, n)?;
    }
    let value_info = |name: &str, ty: &TensorType| ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: dtype_to_onnx(ty.dtype),
                shape: Some(TensorShapeProto {
                    dim: ty
                        .shape
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(DimensionValue::DimValue(d as i64)),
                            denotation: String::new(),
                        })
                        .collect(),
                }),
            }),
            denotation: String::new(),
        }),
        doc_string: String::new(),
    };
    let outputs = graph
        .outputs
        .iter()
        .map(|o| value_info(o, graph.type_of(o).expect("outputs of a checked graph are defined")))
        .collect();
    Ok(ModelProto {
        ir_version: if w.opset == QUANT_EXPORT_OPSET {
            QUANT_EXPORT_IR_VERSION
        } else {
            EXPORT_IR_VERSION
        },
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: w.opset,
        }],
        producer_name: "eqopt".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(GraphProto {
            node: w.nodes,
            name: graph.name.clone(),
            initializer: w.initializers,
            input: graph.inputs.iter().map(|i| value_info(&i.name, &i.ty)).collect(),
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    })
}

struct Writer {
    /// Every tensor name used so far.
    taken: BTreeSet<String>,
    nodes: Vec<NodeProto>,
    initializers: Vec<super::proto::TensorProto>,
    /// The default-domain opset written.
    opset: i64,
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attr_type::INT,
        i: v,
        ..Default::default()
    }
}

fn float(name: &str, v: f64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attr_type::FLOAT,
        f: v as f32,
        ..Default::default()
    }
}

fn ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attr_type::INTS,
        ints: v.iter().map(|&x| x as i64).collect(),
        ..Default::default()
    }
}

impl Writer {
    fn fresh(&mut self, hint: &str) -> String {
        let mut name = hint.to_string();
        let mut k = 1;
        while self.taken.contains(&name) {
            name = format!("{hint}_{k}");
            k += 1;
        }
        self.taken.insert(name.clone());
        name
    }

    fn push(&mut self, op_type: &str, name: &str, inputs: Vec<String>, output: &str, attribute: Vec<AttributeProto>) {
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![output.to_string()],
            name: name.to_string(),
            op_type: op_type.to_string(),
            attribute,
            ..Default::default()
        });
    }

    /// An i64 vector initializer named after `hint`.
    fn ints_init(&mut self, hint: &str, v: &[i64]) -> String {
        let name = self.fresh(hint);
        let t = Tensor {
            ty: TensorType::new(vec![v.len()], DType::I64),
            data: crate::graph::tensor::TensorData::I64(v.to_vec()),
        };
        self.initializers.push(tensor_to_proto(&name, &t));
        name
    }

    fn scalar_init(&mut self, hint: &str, dtype: DType, v: f64) -> String {
        let name = self.fresh(hint);
        let t = Tensor::from_f64(TensorType::new(vec![], dtype), &[v]);
        self.initializers.push(tensor_to_proto(&name, &t));
        name
    }

    fn node(&mut self, graph: &Graph, n: &Node) -> Result<()> {
        let name = n.name.as_str();
        let usz = |v: &[usize]| v.iter().map(|&x| x as i64).collect::<Vec<i64>>();
        match &n.op {
            Op::Unary(u) => {
                let input = n.inputs[0].clone();
                self.unary(*u, name, input, name, n.ty.dtype);
            }
            Op::Binary(b) => self.push(b.onnx_name(), name, n.inputs.clone(), name, vec![]),
            Op::Cast { to } => self.push("Cast", name, n.inputs.clone(), name, vec![int("to", dtype_to_onnx(*to) as i64)]),
            Op::MatMul => self.push("MatMul", name, n.inputs.clone(), name, vec![]),
            Op::Dequantize { axis, block_size } => {
                let mut attrs = vec![int("axis", *axis as i64)];
                if *block_size > 0 {
                    attrs.push(int("block_size", *block_size as i64));
                }
                self.push("DequantizeLinear", name, n.inputs.clone(), name, attrs)
            }
            Op::Conv(p) => self.conv(graph, name, n.inputs.clone(), name, p),
            Op::Pool(kind, p) => {
                let mut attrs = vec![ints("kernel_shape", &p.kernel), ints("strides", &p.strides), ints("pads", &p.pads)];
                let op = match kind {
                    PoolKind::Max => "MaxPool",
                    PoolKind::AvgExcludePad => "AveragePool",
                    PoolKind::AvgIncludePad => {
                        attrs.push(int("count_include_pad", 1));
                        "AveragePool"
                    }
                };
                match p.layout {
                    Layout::Nchw => self.push(op, name, n.inputs.clone(), name, attrs),
                    Layout::Nhwc => {
                        let x = self.transposed(name, &n.inputs[0], "input_nchw", &NHWC_TO_NCHW);
                        let pooled = self.fresh(&format!("{name}/nchw"));
                        self.push(op, &pooled, vec![x], &pooled, attrs);
                        self.push("Transpose", name, vec![pooled], name, vec![ints("perm", &NCHW_TO_NHWC)]);
                    }
                }
            }
            Op::GlobalPool(kind) => {
                let op = if *kind == PoolKind::Max {
                    "GlobalMaxPool"
                } else {
                    "GlobalAveragePool"
                };
                self.push(op, name, n.inputs.clone(), name, vec![]);
            }
            Op::BatchNorm { epsilon } => self.push("BatchNormalization", name, n.inputs.clone(), name, vec![float("epsilon", *epsilon)]),
            Op::Concat { axis } => self.push("Concat", name, n.inputs.clone(), name, vec![int("axis", *axis as i64)]),
            Op::Flatten { axis } => self.push("Flatten", name, n.inputs.clone(), name, vec![int("axis", *axis as i64)]),
            Op::Reshape { shape } => {
                let s = self.ints_init(&format!("{name}/shape"), &usz(shape));
                self.push("Reshape", name, vec![n.inputs[0].clone(), s], name, vec![]);
            }
            Op::Transpose { perm } => self.push("Transpose", name, n.inputs.clone(), name, vec![ints("perm", perm)]),
            Op::Slice { axes, starts, ends, steps } => {
                let inputs = vec![
                    n.inputs[0].clone(),
                    self.ints_init(&format!("{name}/starts"), &usz(starts)),
                    self.ints_init(&format!("{name}/ends"), &usz(ends)),
                    self.ints_init(&format!("{name}/axes"), &usz(axes)),
                    self.ints_init(&format!("{name}/steps"), &usz(steps)),
                ];
                self.push("Slice", name, inputs, name, vec![]);
            }
            Op::Gather { axis } => self.push("Gather", name, n.inputs.clone(), name, vec![int("axis", *axis as i64)]),
            Op::Softmax { axis } => self.push("Softmax", name, n.inputs.clone(), name, vec![int("axis", *axis as i64)]),
            Op::LayerNorm { axis, epsilon } => self.push(
                "LayerNormalization",
                name,
                n.inputs.clone(),
                name,
                vec![int("axis", *axis as i64), float("epsilon", *epsilon)],
            ),
            Op::Reduce { kind, axes, keepdims } => {
                let keep = int("keepdims", i64::from(*keepdims));
                match kind {
                    // Opset 13+: ReduceSum takes its axes as an input; ReduceMean/Max until opset 18 as an attribute.
                    ReduceKind::Sum => {
                        let a = self.ints_init(&format!("{name}/axes"), &usz(axes));
                        self.push("ReduceSum", name, vec![n.inputs[0].clone(), a], name, vec![keep]);
                    }
                    // From opset 18 they take them as an input too.
                    ReduceKind::Mean | ReduceKind::Max if self.opset >= 18 => {
                        let a = self.ints_init(&format!("{name}/axes"), &usz(axes));
                        let op = if *kind == ReduceKind::Mean { "ReduceMean" } else { "ReduceMax" };
                        self.push(op, name, vec![n.inputs[0].clone(), a], name, vec![keep]);
                    }
                    ReduceKind::Mean => self.push("ReduceMean", name, n.inputs.clone(), name, vec![ints("axes", axes), keep]),
                    ReduceKind::Max => self.push("ReduceMax", name, n.inputs.clone(), name, vec![ints("axes", axes), keep]),
                }
            }
            Op::FusedElementwise { expr } => {
                let tys: Vec<&TensorType> = n.inputs.iter().map(|i| graph.type_of(i).expect("inputs are defined")).collect();
                self.expression(name, expr, &n.inputs, &tys, &n.ty);
            }
            Op::FusedMatMul { epilogue } => {
                let product = self.fresh(&format!("{name}/matmul"));
                self.push("MatMul", &product, n.inputs[..2].to_vec(), &product, vec![]);
                let product_ty = inner_type(graph, n, Op::MatMul);
                let mut args = vec![product];
                args.extend(n.inputs[2..].iter().cloned());
                let mut tys = vec![&product_ty];
                tys.extend(n.inputs[2..].iter().map(|i| graph.type_of(i).expect("inputs are defined")));
                self.expression(name, epilogue, &args, &tys, &n.ty);
            }
            Op::FusedAttention { divide, layout } => {
                // softmax(q·kt ∘ s + mask) · v with the standard ops; heads-interleaved
                // operands transposed to [B, H, S, D] first, and the output back.
                let step = |w: &mut Writer, s: &str| w.fresh(&format!("{name}/{s}"));
                let (scores, scaled, probs) = (step(self, "scores"), step(self, "scaled"), step(self, "probs"));
                let (mut q, mut kt, mut v) = (n.inputs[0].clone(), n.inputs[1].clone(), n.inputs[2].clone());
                let out = if *layout == AttentionLayout::Bshd {
                    q = self.transposed(name, &q, "q_bhsd", &SWAP_HEADS);
                    kt = self.transposed(name, &kt, "kt_bhsd", &KEYS_TO_KT);
                    v = self.transposed(name, &v, "v_bhsd", &SWAP_HEADS);
                    step(self, "out_bhsd")
                } else {
                    name.to_string()
                };
                self.push("MatMul", &scores, vec![q, kt], &scores, vec![]);
                let op = if *divide { "Div" } else { "Mul" };
                self.push(op, &scaled, vec![scores, n.inputs[3].clone()], &scaled, vec![]);
                let logits = match n.inputs.get(4) {
                    Some(mask) => {
                        let masked = step(self, "masked");
                        self.push("Add", &masked, vec![scaled, mask.clone()], &masked, vec![]);
                        masked
                    }
                    None => scaled,
                };
                let axis = n.ty.rank() as i64 - 1;
                self.push("Softmax", &probs, vec![logits], &probs, vec![int("axis", axis)]);
                self.push("MatMul", &out, vec![probs, v], &out, vec![]);
                if *layout == AttentionLayout::Bshd {
                    self.push("Transpose", name, vec![out], name, vec![ints("perm", &SWAP_HEADS)]);
                }
            }
            Op::FusedConv { params, epilogue } => {
                let conv = self.fresh(&format!("{name}/conv"));
                self.conv(graph, &conv.clone(), n.inputs[..2].to_vec(), &conv, params);
                let conv_ty = inner_type(graph, n, Op::Conv(params.clone()));
                let mut args = vec![conv];
                args.extend(n.inputs[2..].iter().cloned());
                let mut tys = vec![&conv_ty];
                tys.extend(n.inputs[2..].iter().map(|i| graph.type_of(i).expect("inputs are defined")));
                self.expression(name, epilogue, &args, &tys, &n.ty);
            }
        }
        Ok(())
    }

    /// `Transpose(perm)` of `input`, named after `node` and `what`; returns its output.
    fn transposed(&mut self, node: &str, input: &str, what: &str, perm: &[usize]) -> String {
        let out = self.fresh(&format!("{node}/{what}"));
        self.push("Transpose", &out, vec![input.to_string()], &out, vec![ints("perm", perm)]);
        out
    }

    /// An ONNX `Conv` computing `output` from `inputs` (x, w, optional bias). ONNX
    /// convolutions are NCHW/OIHW only: an NHWC convolution is written between
    /// transposes of its input, weights and output.
    fn conv(&mut self, graph: &Graph, node: &str, inputs: Vec<String>, output: &str, p: &ConvParams) {
        let attrs = self.conv_attrs(graph, &inputs[1], p);
        if p.layout == Layout::Nchw {
            self.push("Conv", node, inputs, output, attrs);
            return;
        }
        let mut nchw = inputs.clone();
        nchw[0] = self.transposed(node, &inputs[0], "input_nchw", &NHWC_TO_NCHW);
        nchw[1] = self.transposed(node, &inputs[1], "weight_oihw", &HWIO_TO_OIHW);
        let conv = self.fresh(&format!("{node}/conv_nchw"));
        self.push("Conv", &conv, nchw, &conv, attrs);
        let out_name = self.fresh(&format!("{node}/to_nhwc"));
        self.push("Transpose", &out_name, vec![conv], output, vec![ints("perm", &NCHW_TO_NHWC)]);
    }

    fn conv_attrs(&self, graph: &Graph, weight: &str, p: &ConvParams) -> Vec<AttributeProto> {
        let w = graph.type_of(weight).expect("conv weights are defined");
        let kernel = match p.layout {
            Layout::Nchw => &w.shape[2..],
            Layout::Nhwc => &w.shape[..2],
        };
        vec![
            ints("kernel_shape", kernel),
            ints("strides", &p.strides),
            ints("pads", &p.pads),
            ints("dilations", &p.dilations),
            int("group", p.group as i64),
        ]
    }

    /// Writes unary `u` of `input` as standard ops producing `output`.
    fn unary(&mut self, u: UnaryOp, node: &str, input: String, output: &str, dtype: DType) {
        match u {
            UnaryOp::Dropout => self.push("Identity", node, vec![input], output, vec![]),
            UnaryOp::Gelu => {
                // x · 0.5 · (1 + erf(x / √2)), the exact form (Gelu is an ONNX op only from opset 20).
                let step = |w: &mut Writer, s: &str| w.fresh(&format!("{output}/gelu_{s}"));
                let (scaled, erf, plus, half) = (step(self, "scaled"), step(self, "erf"), step(self, "plus1"), step(self, "half"));
                let c = self.scalar_init(&format!("{output}/gelu_rsqrt2"), dtype, std::f64::consts::FRAC_1_SQRT_2);
                self.push("Mul", &scaled, vec![input.clone(), c], &scaled, vec![]);
                self.push("Erf", &erf, vec![scaled], &erf, vec![]);
                let one = self.scalar_init(&format!("{output}/gelu_one"), dtype, 1.0);
                self.push("Add", &plus, vec![erf, one], &plus, vec![]);
                let h = self.scalar_init(&format!("{output}/gelu_0.5"), dtype, 0.5);
                self.push("Mul", &half, vec![input, h], &half, vec![]);
                self.push("Mul", node, vec![half, plus], output, vec![]);
            }
            u => self.push(u.onnx_name(), node, vec![input], output, vec![]),
        }
    }

    /// Writes a fused elementwise expression over `args` (of types `arg_tys`) as
    /// standard ops producing tensor `name` of type `ty`. When the inputs the
    /// expression uses broadcast to less than `ty` (an unused input widened the
    /// kernel), or the root is a bare input or literal, an `Expand` finishes it.
    fn expression(&mut self, name: &str, expr: &EwExpr, args: &[String], arg_tys: &[&TensorType], ty: &TensorType) {
        let mut used = BTreeSet::new();
        used_inputs(expr, &mut used);
        let mut shape: Vec<usize> = Vec::new();
        for &i in &used {
            shape = crate::graph::infer::broadcast(&shape, &arg_tys[i].shape).unwrap_or_else(|| ty.shape.clone());
        }
        let is_op = matches!(expr, EwExpr::Unary(..) | EwExpr::Binary(..));
        if shape == ty.shape && is_op {
            self.expr(name, expr, args, ty.dtype, true);
            return;
        }
        let value = if is_op {
            let v = self.fresh(&format!("{name}/value"));
            self.expr(&v, expr, args, ty.dtype, true)
        } else {
            self.expr(name, expr, args, ty.dtype, false)
        };
        let dims: Vec<i64> = ty.shape.iter().map(|&d| d as i64).collect();
        let target = self.ints_init(&format!("{name}/shape"), &dims);
        self.push("Expand", name, vec![value, target], name, vec![]);
    }

    /// Emits `e`; returns the tensor holding its value. `root` makes the result `name`.
    fn expr(&mut self, name: &str, e: &EwExpr, args: &[String], dtype: DType, root: bool) -> String {
        match e {
            EwExpr::Input(i) => args[*i].clone(),
            EwExpr::Lit(v) => self.scalar_init(&format!("{name}/lit"), dtype, *v),
            EwExpr::Unary(u, a) => {
                let input = self.expr(name, a, args, dtype, false);
                let out = if root {
                    name.to_string()
                } else {
                    self.fresh(&format!("{name}/{}", u.short_name()))
                };
                self.unary(*u, &out, input, &out, dtype);
                out
            }
            EwExpr::Binary(b, x, y) => {
                let (x, y) = (self.expr(name, x, args, dtype, false), self.expr(name, y, args, dtype, false));
                let out = if root {
                    name.to_string()
                } else {
                    self.fresh(&format!("{name}/{}", b.short_name()))
                };
                self.push(BinaryOp::onnx_name(*b), &out, vec![x, y], &out, vec![]);
                out
            }
        }
    }
}

fn used_inputs(e: &EwExpr, out: &mut BTreeSet<usize>) {
    match e {
        EwExpr::Input(i) => {
            out.insert(*i);
        }
        EwExpr::Lit(_) => {}
        EwExpr::Unary(_, a) => used_inputs(a, out),
        EwExpr::Binary(_, a, b) => {
            used_inputs(a, out);
            used_inputs(b, out);
        }
    }
}

/// Type of the matmul or conv inside a fused node (its first two inputs).
fn inner_type(graph: &Graph, n: &Node, op: Op) -> TensorType {
    let tys: Vec<&TensorType> = n.inputs[..2]
        .iter()
        .map(|i| graph.type_of(i).expect("inputs are defined"))
        .collect();
    crate::graph::infer::infer(&op, &tys).expect("the fused node was typed, so its inner op is")
}
