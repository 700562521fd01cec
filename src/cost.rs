//! The roofline cost model and hardware profiles.
//!
//! A kernel costs `max(FLOPs / peak[dtype], bytes moved / bandwidth) + launch overhead`.
//! Bytes moved are the tensors the kernel reads and writes in memory, so a fused
//! kernel pays only for its inputs and its output: fusion shows up in the cost and
//! extraction decides it. Views (reshape, flatten, identity, dropout, unit-step
//! slices, transposes of unit axes) cost nothing,
//! and so do ops whose inputs are all constants: they are folded at compile time.

use crate::dtype::{DType, TensorType};
use crate::error::{Error, Result};
use crate::graph::op::{AttentionLayout, ConvParams, Layout, Op};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The embedded hardware profiles, `(name, json)`.
pub const BUILTIN_TARGETS: &[(&str, &str)] = &[
    ("a100", include_str!("../targets/a100.json")),
    ("cpu", include_str!("../targets/cpu.json")),
    ("h100", include_str!("../targets/h100.json")),
];

/// A hardware target for the roofline model.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HardwareProfile {
    /// Short name (`cpu`, `h100`, ...).
    pub name: String,
    /// Where the numbers come from.
    pub description: String,
    /// Peak arithmetic throughput per dtype, in operations per second.
    pub peak_flops: BTreeMap<DType, f64>,
    /// Sustained memory bandwidth in bytes per second.
    pub memory_bandwidth: f64,
    /// Fixed cost per kernel launch, in seconds.
    pub launch_overhead: f64,
    /// The activation layout this target's convolutions run natively (`"NCHW"` or
    /// `"NHWC"`), if it has one. A convolution in the other layout is charged the
    /// traffic of converting its input and output (what cuDNN does internally for
    /// tensor cores, which want NHWC); without a preference neither layout is
    /// charged, so the `layout/*-nhwc` rules never pay and extraction keeps NCHW.
    #[serde(default)]
    pub conv_layout: Option<Layout>,
    /// For a profile written by `eqopt calibrate`: what was measured, per thread
    /// count (the top-level figures are those of [`Calibration::threads`]).
    #[serde(default)]
    pub calibration: Option<Calibration>,
}

/// The measurements behind a calibrated profile (see `eqopt calibrate`).
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// When it was measured (UTC, ISO 8601).
    pub date: String,
    /// The processor, as the OS names it.
    pub cpu: String,
    /// The instruction set the kernels ran with (`avx512`, `avx2`, `scalar`).
    pub isa: String,
    /// The thread count whose figures the profile's top level carries.
    pub threads: usize,
    /// The figures for each thread count measured, increasing.
    pub per_threads: Vec<ThreadCalibration>,
}

/// The roofline of one thread count.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ThreadCalibration {
    /// Threads of the pool.
    pub threads: usize,
    /// The vector unit's f32 ceiling: fused multiply-adds on registers, FLOP/s.
    pub fma_peak_f32: f64,
    /// Best GEMM throughput per dtype over the sizes measured, FLOP/s: `f32`
    /// and `f16` with weights of that type (f32 arithmetic), `bf16` on bf16
    /// operands (see `eqopt calibrate`).
    pub peak_flops: BTreeMap<DType, f64>,
    /// Copy bandwidth, bytes read plus written per second.
    pub memory_bandwidth: f64,
    /// Fixed cost of one kernel in the executor, seconds.
    pub launch_overhead: f64,
    /// Every GEMM measured.
    pub gemm: Vec<GemmPoint>,
}

/// One GEMM measurement: an `n×n·n×n` product with `B` in `dtype` (for
/// `bf16`, both operands rounded to bf16: [`ThreadCalibration::peak_flops`]).
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GemmPoint {
    /// Weight dtype (`bf16`: bf16 operands).
    pub dtype: DType,
    /// Matrix size.
    pub n: usize,
    /// FLOP/s.
    pub flops: f64,
}

impl HardwareProfile {
    /// A built-in profile by name, or a JSON profile file by path.
    pub fn load(name_or_path: &str) -> Result<HardwareProfile> {
        let bad = |problem: String| Error::Target {
            target: name_or_path.to_string(),
            problem,
        };
        let text = match BUILTIN_TARGETS.iter().find(|(n, _)| *n == name_or_path) {
            Some((_, json)) => json.to_string(),
            None if Path::new(name_or_path).is_file() => std::fs::read_to_string(name_or_path).map_err(|e| Error::io(name_or_path, e))?,
            None => {
                let names: Vec<&str> = BUILTIN_TARGETS.iter().map(|(n, _)| *n).collect();
                return Err(bad(format!("not a built-in target ({}) nor a profile file", names.join(", "))));
            }
        };
        let p: HardwareProfile = serde_json::from_str(&text).map_err(|e| bad(format!("invalid profile: {e}")))?;
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let valid = positive(p.memory_bandwidth)
            && p.launch_overhead.is_finite()
            && p.launch_overhead >= 0.0
            && p.peak_flops.values().all(|&f| positive(f));
        if !valid {
            return Err(bad(
                "memory_bandwidth and every peak must be positive, launch_overhead non-negative".into(),
            ));
        }
        if !p.peak_flops.contains_key(&DType::F32) {
            return Err(bad("peak_flops must give at least f32".into()));
        }
        Ok(p)
    }

    /// The profile for a pool of `threads` threads: a calibrated profile that
    /// measured that thread count carries its figures; any other is returned as is.
    pub fn for_threads(&self, threads: usize) -> HardwareProfile {
        let mut p = self.clone();
        if let Some(t) = self
            .calibration
            .as_ref()
            .and_then(|c| c.per_threads.iter().find(|t| t.threads == threads))
        {
            p.peak_flops = t.peak_flops.clone();
            p.memory_bandwidth = t.memory_bandwidth;
            p.launch_overhead = t.launch_overhead;
        }
        p
    }

    /// Peak for `dtype`, falling back to the f32 peak.
    pub fn peak(&self, dtype: DType) -> f64 {
        self.peak_flops
            .get(&dtype)
            .or_else(|| self.peak_flops.get(&DType::F32))
            .copied()
            .unwrap_or(1.0)
    }

    /// Roofline time of one kernel in seconds.
    pub fn kernel_time(&self, w: &Work) -> f64 {
        if !w.is_kernel() {
            return 0.0;
        }
        let compute = w.flops as f64 / self.peak(w.dtype);
        let relayout = match (self.conv_layout, w.conv_layout) {
            (Some(native), Some(layout)) if native != layout => w.relayout_bytes,
            _ => 0,
        };
        let memory = (w.bytes_read.saturating_add(w.bytes_written).saturating_add(relayout)) as f64 / self.memory_bandwidth;
        compute.max(memory) + self.launch_overhead
    }
}

/// How an op is executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecKind {
    /// A kernel launch.
    Kernel,
    /// A view of its input's memory: no kernel.
    View,
    /// All inputs constant: evaluated at compile time.
    Folded,
}

/// The work of one op: arithmetic and memory traffic, kept apart.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Work {
    /// Floating-point (or integer) operations.
    pub flops: u64,
    /// Bytes read from memory.
    pub bytes_read: u64,
    /// Bytes written to memory.
    pub bytes_written: u64,
    /// Dtype whose peak applies.
    pub dtype: DType,
    /// How it runs.
    pub kind: ExecKind,
    /// For a convolution, its activation layout.
    pub conv_layout: Option<Layout>,
    /// For a convolution, the bytes moved to run it in the other layout: its input
    /// and output each read and written once more. Charged by
    /// [`HardwareProfile::kernel_time`] on a target whose `conv_layout` differs.
    pub relayout_bytes: u64,
}

impl Work {
    /// True if it launches a kernel.
    pub fn is_kernel(&self) -> bool {
        self.kind == ExecKind::Kernel
    }
}

/// Operator count of an op: fused kernels count the ops they stand for.
pub fn op_count(op: &Op) -> usize {
    match op {
        Op::FusedElementwise { expr } => expr.num_ops(),
        Op::FusedMatMul { epilogue } | Op::FusedConv { epilogue, .. } => 1 + epilogue.num_ops(),
        // matmul, scale, (mask), softmax, matmul
        Op::FusedAttention { .. } => 5,
        _ => 1,
    }
}

/// Saturating product: absurd shapes give huge costs, never an overflow.
fn mul(factors: &[u64]) -> u64 {
    factors.iter().fold(1u64, |a, &b| a.saturating_mul(b))
}

/// Q·Kᵀ, scaling, masking and softmax over the scores, and P·V. The scores are
/// computed and consumed tile by tile: they add FLOPs but no memory traffic.
fn attention_flops(inputs: &[&TensorType], out: &TensorType, layout: AttentionLayout) -> u64 {
    let (q, k) = (inputs[0], inputs[1]);
    let d = *q.shape.last().unwrap_or(&1) as u64;
    let t = match layout {
        AttentionLayout::Bhsd => k.shape.last(),
        AttentionLayout::Bshd => k.shape.get(1),
    };
    let t = *t.unwrap_or(&1) as u64;
    let scores = (out.numel() as u64 / (*out.shape.last().unwrap_or(&1) as u64).max(1)).saturating_mul(t);
    mul(&[2, scores, d])
        .saturating_add(mul(&[7, scores]))
        .saturating_add(mul(&[2, out.numel() as u64, t]))
}

fn matmul_flops(a: &TensorType, out: &TensorType) -> u64 {
    mul(&[2, out.numel() as u64, *a.shape.last().unwrap_or(&1) as u64])
}

/// Multiply-adds of a convolution, two FLOPs each: every output element sums
/// `I/g · KH · KW` products (weights OIHW or HWIO as the layout says).
fn conv_flops(w: &TensorType, out: &TensorType, p: &ConvParams) -> u64 {
    let dim = |i: usize| w.shape.get(i).copied().unwrap_or(1) as u64;
    let per_out = match p.layout {
        Layout::Nchw => mul(&[dim(1), dim(2), dim(3)]),
        Layout::Nhwc => mul(&[dim(2), dim(0), dim(1)]),
    };
    mul(&[2, out.numel() as u64, per_out])
}

/// True when `op` is a `Slice` with unit steps. The cost model treats it as a view:
/// eqopt's kernels read their inputs through strides, so a slice (of a merged Q/K/V
/// projection, of a merged conv's channels) costs nothing by itself and its consumer
/// pays for reading the elements it selects. Backends must honour this (issue 6:
/// kernels take strided inputs, or the memory planner copies only where one cannot).
pub fn is_strided_view(op: &Op) -> bool {
    matches!(op, Op::Slice { steps, .. } if steps.iter().all(|&s| s == 1))
}

/// True when `op` is a `Transpose` of `x` that keeps the order of every axis longer
/// than 1 (it only moves unit axes, e.g. NHWC `[N,1,1,C]` to NCHW `[N,C,1,1]`): the
/// bytes do not move, so it is a reshape and costs nothing.
pub fn is_unit_axes_transpose(op: &Op, x: &TensorType) -> bool {
    let Op::Transpose { perm } = op else {
        return false;
    };
    let moved: Vec<usize> = perm.iter().copied().filter(|&a| x.shape.get(a).is_some_and(|&d| d != 1)).collect();
    moved.windows(2).all(|w| w[0] < w[1])
}

/// True when `op` is a `Slice` whose result is one contiguous block of its row-major
/// input (e.g. a channel range of an NCHW tensor at batch 1): a view, not a kernel.
/// That holds when, for some axis `i`, every earlier axis keeps one index, every
/// later axis is kept whole, and axis `i` itself has step 1 (or keeps one index).
pub fn is_contiguous_slice(op: &Op, x: &TensorType, out: &TensorType) -> bool {
    let Op::Slice { axes, steps, .. } = op else {
        return false;
    };
    if x.rank() != out.rank() {
        return false;
    }
    let step = |a: usize| axes.iter().position(|&s| s == a).map_or(1, |k| steps[k]);
    let r = x.rank();
    (0..=r).any(|i| {
        (0..i.min(r)).all(|a| out.shape[a] == 1)
            && (i >= r || out.shape[i] <= 1 || step(i) == 1)
            && ((i + 1).min(r)..r).all(|a| out.shape[a] == x.shape[a])
    })
}

/// The work of `op` applied to inputs of types `inputs` (with const-ness `consts`)
/// producing `out`.
pub fn work(op: &Op, inputs: &[&TensorType], consts: &[bool], out: &TensorType) -> Work {
    let dtype = inputs.first().map_or(out.dtype, |t| t.dtype);
    let n = out.numel() as u64;
    let mut w = Work {
        flops: 0,
        bytes_read: inputs.iter().fold(0u64, |a, t| a.saturating_add(t.size_bytes())),
        bytes_written: out.size_bytes(),
        dtype,
        kind: ExecKind::Kernel,
        conv_layout: None,
        relayout_bytes: 0,
    };
    if op.is_view()
        || is_strided_view(op)
        || inputs
            .first()
            .is_some_and(|x| is_contiguous_slice(op, x, out) || is_unit_axes_transpose(op, x))
    {
        return Work {
            flops: 0,
            bytes_read: 0,
            bytes_written: 0,
            dtype,
            kind: ExecKind::View,
            conv_layout: None,
            relayout_bytes: 0,
        };
    }
    if !consts.is_empty() && consts.iter().all(|&c| c) {
        return Work {
            flops: 0,
            bytes_read: 0,
            bytes_written: 0,
            dtype,
            kind: ExecKind::Folded,
            conv_layout: None,
            relayout_bytes: 0,
        };
    }
    w.flops = match op {
        Op::Unary(u) => mul(&[n, u.flops_per_element()]),
        Op::Binary(b) => mul(&[n, b.flops_per_element()]),
        Op::FusedElementwise { expr } => mul(&[n, expr.flops_per_element()]),
        Op::MatMul => matmul_flops(inputs[0], out),
        Op::Dequantize { .. } => n,
        Op::FusedMatMul { epilogue } => matmul_flops(inputs[0], out).saturating_add(mul(&[n, epilogue.flops_per_element()])),
        Op::Conv(p) => conv_flops(inputs[1], out, p).saturating_add(if inputs.len() > 2 { n } else { 0 }),
        Op::FusedConv { params, epilogue } => conv_flops(inputs[1], out, params).saturating_add(mul(&[n, epilogue.flops_per_element()])),
        Op::Pool(_, p) => mul(&[n, p.kernel[0] as u64, p.kernel[1] as u64]),
        Op::GlobalPool(_) => inputs[0].numel() as u64,
        Op::BatchNorm { .. } => mul(&[2, n]),
        Op::Softmax { .. } => mul(&[5, n]),
        Op::FusedAttention { layout, .. } => attention_flops(inputs, out, *layout),
        Op::LayerNorm { .. } => mul(&[8, n]),
        Op::Reduce { .. } => inputs[0].numel() as u64,
        Op::Cast { .. } | Op::Concat { .. } | Op::Transpose { .. } | Op::Slice { .. } | Op::Gather { .. } => 0,
        Op::Reshape { .. } | Op::Flatten { .. } => 0,
    };
    if let Op::Conv(p) | Op::FusedConv { params: p, .. } = op {
        w.conv_layout = Some(p.layout);
        w.relayout_bytes = inputs[0].size_bytes().saturating_add(out.size_bytes()).saturating_mul(2);
    }
    match op {
        Op::Gather { .. } => w.bytes_read = out.size_bytes().saturating_add(inputs[1].size_bytes()),
        Op::Slice { .. } => w.bytes_read = out.size_bytes(),
        _ => {}
    }
    w
}

/// Totals over a graph (or any list of ops).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Totals {
    /// Operators (fused kernels count the ops inside).
    pub ops: usize,
    /// Kernel launches.
    pub kernels: usize,
    /// Arithmetic operations.
    pub flops: u64,
    /// Bytes read and written by kernels.
    pub bytes: u64,
    /// Estimated latency in seconds, kernels run one after another.
    pub latency_s: f64,
}

/// True for ops whose second input is a weight the backends read in its stored
/// precision: an `f16`/`bf16` constant widened by a `Cast` to f32 is read at 2
/// bytes per element and converted inside the kernel (see `src/lower/consts.rs`);
/// an `i8`/`i4` constant read through a `DequantizeLinear` at 1 or ½ byte per
/// element (the scales are not charged here: 4 bytes per column, or per column
/// and group of rows; `src/lower/quant.rs`).
pub fn reads_stored_weights(op: &Op) -> bool {
    matches!(op, Op::MatMul | Op::FusedMatMul { .. } | Op::Conv(_) | Op::FusedConv { .. })
}

/// `ty` with the element type of the stored weight it widens, if `stored` is a
/// reduced-precision float (the type the cost model charges a weight read at).
pub fn as_stored(ty: &TensorType, stored: DType) -> TensorType {
    TensorType::new(ty.shape.clone(), stored)
}

/// How a graph's bf16-operand products run (`rules/activations.rules`): a
/// `MatMul`/`FusedMatMul` whose input 0 is `cast f32 (cast bf16 x)` of a
/// non-constant `x` and whose input 1 is a cast to f32 of a `bf16` constant
/// computes on bf16 operands (`eqopt_kir::GemmCompute::Bf16`, charged at the
/// target's `bf16` peak). Rounding is idempotent, so such a product may read
/// `x` itself and round while packing: the rounding costs no kernel when every
/// reader of the rounded value is such a product. The lowering and the cost
/// model both decide from this.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bf16Products<'g> {
    /// Products computed on bf16 operands, by node name.
    pub products: BTreeSet<&'g str>,
    /// Casts no kernel runs for: every `cast bf16` of an activation (read only
    /// by casts back to f32, which the lowering checks), and the casts back
    /// whose every reader is in `products`, mapped to the unrounded `x`.
    pub fused_casts: BTreeMap<&'g str, &'g str>,
}

/// The bf16-operand products of `graph` (see [`Bf16Products`]).
pub fn bf16_products(graph: &crate::graph::Graph) -> Bf16Products<'_> {
    let consts: BTreeMap<&str, &crate::graph::Constant> = graph.constants.iter().map(|c| (c.name.as_str(), c)).collect();
    let nodes: BTreeMap<&str, &crate::graph::Node> = graph.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut readers: BTreeMap<&str, Vec<&crate::graph::Node>> = BTreeMap::new();
    for n in &graph.nodes {
        for i in &n.inputs {
            readers.entry(i.as_str()).or_default().push(n);
        }
    }
    let is_const = |name: &str| consts.contains_key(name);
    let node = |name: &str| nodes.get(name).copied();
    // cast bf16 of a non-constant f32 activation -> that activation.
    let narrowed = |name: &str| {
        let n = node(name)?;
        let x = n.inputs.first()?;
        let f32_activation = graph.type_of(x).is_some_and(|t| t.dtype == DType::F32) && !is_const(x);
        (n.op == (Op::Cast { to: DType::BF16 }) && f32_activation).then_some(x.as_str())
    };
    // cast f32 of such a cast -> the activation.
    let rounded = |name: &str| {
        let n = node(name)?;
        (n.op == (Op::Cast { to: DType::F32 })).then_some(())?;
        narrowed(n.inputs.first()?)
    };
    let bf16_weight = |name: &str| {
        let n = node(name)?;
        let c = consts.get(n.inputs.first()?.as_str())?;
        (n.op == (Op::Cast { to: DType::F32 }) && c.ty.dtype == DType::BF16).then_some(())
    };
    let mut out = Bf16Products::default();
    for n in &graph.nodes {
        if let Some(x) = narrowed(&n.name) {
            out.fused_casts.insert(&n.name, x);
        }
        let product = matches!(n.op, Op::MatMul | Op::FusedMatMul { .. })
            && n.inputs.len() >= 2
            && n.inputs[0] != n.inputs[1]
            && rounded(&n.inputs[0]).is_some()
            && bf16_weight(&n.inputs[1]).is_some();
        if product {
            out.products.insert(&n.name);
        }
    }
    for n in &graph.nodes {
        let Some(x) = rounded(&n.name) else { continue };
        let output = graph.outputs.iter().any(|o| o == &n.name);
        let all_products = readers
            .get(n.name.as_str())
            .is_none_or(|rs| rs.iter().all(|r| out.products.contains(r.name.as_str()) && r.inputs[1] != n.name));
        if all_products && !output {
            out.fused_casts.insert(&n.name, x);
        }
    }
    out
}

/// Roofline totals of a graph on `target`.
pub fn graph_totals(graph: &crate::graph::Graph, target: &HardwareProfile) -> Totals {
    let mut consts: BTreeMap<&str, bool> = BTreeMap::new();
    for c in &graph.constants {
        consts.insert(&c.name, true);
    }
    // Casts to f32 of f16/bf16 constants: the stored dtype of what they produce.
    let mut widened: BTreeMap<&str, DType> = BTreeMap::new();
    for n in &graph.nodes {
        if let (Op::Cast { to: DType::F32 }, [x]) = (&n.op, &n.inputs[..]) {
            if let Some(c) = graph.constants.iter().find(|c| &c.name == x && c.ty.dtype.is_reduced_float()) {
                widened.insert(&n.name, c.ty.dtype);
            }
        }
        if let (Op::Dequantize { .. }, [x, _]) = (&n.op, &n.inputs[..]) {
            if let Some(c) = graph.constants.iter().find(|c| &c.name == x && c.ty.dtype.is_quantized()) {
                widened.insert(&n.name, c.ty.dtype);
            }
        }
    }
    let bf16 = bf16_products(graph);
    let mut t = Totals::default();
    for n in &graph.nodes {
        if bf16.fused_casts.contains_key(n.name.as_str()) {
            continue;
        }
        let mut owned: Vec<TensorType> = n.inputs.iter().filter_map(|i| graph.type_of(i).cloned()).collect();
        if reads_stored_weights(&n.op) {
            if let (Some(w), Some(d)) = (owned.get_mut(1), n.inputs.get(1).and_then(|i| widened.get(i.as_str()))) {
                *w = as_stored(w, *d);
            }
        }
        let tys: Vec<&TensorType> = owned.iter().collect();
        let cs: Vec<bool> = n.inputs.iter().map(|i| consts.get(i.as_str()).copied().unwrap_or(false)).collect();
        let mut w = work(&n.op, &tys, &cs, &n.ty);
        if bf16.products.contains(n.name.as_str()) {
            w.dtype = DType::BF16;
        }
        if w.kind == ExecKind::Folded || (w.kind == ExecKind::View && cs.iter().all(|&c| c)) {
            consts.insert(&n.name, true);
        }
        if w.kind == ExecKind::View {
            continue;
        }
        if w.is_kernel() {
            t.ops += op_count(&n.op);
            t.kernels += 1;
        }
        t.flops = t.flops.saturating_add(w.flops);
        t.bytes = t.bytes.saturating_add(w.bytes_read).saturating_add(w.bytes_written);
        t.latency_s += target.kernel_time(&w);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transposes_of_unit_axes_are_free() {
        let t = |shape: &[usize]| TensorType::new(shape.to_vec(), DType::F32);
        let tr = |perm: &[usize]| Op::Transpose { perm: perm.to_vec() };
        // NHWC [N,1,1,C] to NCHW [N,C,1,1]: no byte moves.
        assert!(is_unit_axes_transpose(&tr(&[0, 3, 1, 2]), &t(&[1, 1, 1, 2048])));
        // A real NHWC -> NCHW transpose moves bytes.
        assert!(!is_unit_axes_transpose(&tr(&[0, 3, 1, 2]), &t(&[1, 7, 7, 2048])));
        // Batch 1 heads swap [1, S, H, D] -> [1, H, S, D] moves bytes; with one head it does not.
        assert!(!is_unit_axes_transpose(&tr(&[0, 2, 1, 3]), &t(&[1, 128, 12, 32])));
        assert!(is_unit_axes_transpose(&tr(&[0, 2, 1, 3]), &t(&[1, 128, 1, 32])));
        assert!(!is_unit_axes_transpose(&Op::MatMul, &t(&[2, 2])));
        let w = work(&tr(&[0, 3, 1, 2]), &[&t(&[1, 1, 1, 8])], &[false], &t(&[1, 8, 1, 1]));
        assert_eq!(w.kind, ExecKind::View);
    }

    #[test]
    fn a_conv_off_the_targets_native_layout_pays_the_conversion() {
        let p = ConvParams::default();
        let (x, wt, out) = (
            TensorType::new(vec![1, 64, 56, 56], DType::F32),
            TensorType::new(vec![64, 64, 1, 1], DType::F32),
            TensorType::new(vec![1, 64, 56, 56], DType::F32),
        );
        let nchw = work(&Op::Conv(p.clone()), &[&x, &wt], &[false, true], &out);
        assert_eq!(nchw.relayout_bytes, 2 * (x.size_bytes() + out.size_bytes()));
        let h100 = HardwareProfile::load("h100").unwrap();
        let cpu = HardwareProfile::load("cpu").unwrap();
        let mut plain = nchw;
        plain.conv_layout = None;
        assert!(h100.kernel_time(&nchw) > h100.kernel_time(&plain), "h100 charges NCHW");
        assert_eq!(cpu.kernel_time(&nchw), cpu.kernel_time(&plain), "cpu has no preference");
    }

    #[test]
    fn builtin_profiles_load_and_bad_names_are_reported() {
        for (name, _) in BUILTIN_TARGETS {
            assert_eq!(HardwareProfile::load(name).unwrap().name, *name);
        }
        let err = HardwareProfile::load("tpu9").unwrap_err().to_string();
        assert!(err.contains("not a built-in target (a100, cpu, h100)"), "{err}");
    }

    #[test]
    fn fused_kernel_moves_fewer_bytes_than_the_chain() {
        let cpu = HardwareProfile::load("cpu").unwrap();
        let t = TensorType::new(vec![1024, 1024], DType::F32);
        let add = work(&Op::Binary(crate::graph::op::BinaryOp::Add), &[&t, &t], &[false, false], &t);
        let relu = work(&Op::Unary(crate::graph::op::UnaryOp::Relu), &[&t], &[false], &t);
        let fused = work(
            &Op::FusedElementwise {
                expr: crate::ewexpr::EwExpr::parse("relu(add(x0, x1))").unwrap(),
            },
            &[&t, &t],
            &[false, false],
            &t,
        );
        assert_eq!(fused.bytes_read + fused.bytes_written, 3 * t.size_bytes());
        assert!(cpu.kernel_time(&fused) < cpu.kernel_time(&add) + cpu.kernel_time(&relu));
    }
}
