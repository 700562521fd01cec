"""The nine light image classifiers of the `onnx` wheel's backend test data: stripped
weights materialized as seeded random initializers, graph clean-up to IR 4, per-layer
rescaling to unit output std, and the non-degenerate-output check."""

from __future__ import annotations

import collections
import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .common import LIGHT_MODELS, BuildError, Built, check_model, ort_session, rng_for, run_ort, softmax


# --------------------------------------------------------------------------------------
# The nine light image classifiers
# --------------------------------------------------------------------------------------

# Ops a stripped weight may pass through before reaching the op that uses it.
PASS_THROUGH = {"Reshape", "Unsqueeze", "Identity"}

# (consumer op, input slot) -> role of the parameter tensor in that slot.
ROLES = {
    ("Conv", 1): "conv_weight",
    ("Conv", 2): "conv_bias",
    ("Gemm", 1): "gemm_weight",
    ("Gemm", 2): "gemm_bias",
    ("BatchNormalization", 1): "bn_scale",
    ("BatchNormalization", 2): "bn_bias",
    ("BatchNormalization", 3): "bn_mean",
    ("BatchNormalization", 4): "bn_var",
    ("Mul", 1): "affine_scale",  # DenseNet / Inception v2: BN followed by Mul/Add
    ("Add", 1): "affine_bias",
}


def light_model_path(file_name: str) -> Path:
    path = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / file_name
    if not path.exists():
        raise BuildError(f"{path} not found: this onnx wheel ({onnx.__version__}) lacks it")
    return path


def onnx_reshape(shape: tuple[int, ...], target: np.ndarray) -> tuple[int, ...]:
    """The output shape of ONNX Reshape (0 copies the input dim, -1 is inferred)."""
    dims = [shape[i] if d == 0 else int(d) for i, d in enumerate(target)]
    return np.empty(shape, dtype=np.uint8).reshape(dims).shape


class GraphIndex:
    """Producers and consumers of each value of a graph, and its initializers."""

    def __init__(self, graph: onnx.GraphProto):
        self.inits = {t.name: t for t in graph.initializer}
        self.producer = {o: n for n in graph.node for o in n.output}
        self.consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = collections.defaultdict(list)
        for n in graph.node:
            for slot, name in enumerate(n.input):
                if name:
                    self.consumers[name].append((n, slot))
        self.graph_outputs = {o.name for o in graph.output}

    def init_array(self, name: str) -> np.ndarray:
        return numpy_helper.to_array(self.inits[name])

    def use_of(self, value: str, shape: tuple[int, ...]):
        """Follow `value` through pass-through ops to the op that uses it. Returns
        (op node, input slot, the shape that op sees) or None if not a single use."""
        while True:
            uses = self.consumers.get(value, [])
            if len(uses) != 1 or value in self.graph_outputs:
                return None
            node, slot = uses[0]
            if node.op_type not in PASS_THROUGH or slot != 0:
                return node, slot, shape
            if node.op_type == "Reshape":
                if node.input[1] not in self.inits:
                    return None
                shape = onnx_reshape(shape, self.init_array(node.input[1]))
            elif node.op_type == "Unsqueeze":
                axes = next(helper.get_attribute_value(a) for a in node.attribute if a.name == "axes")
                out_rank = len(shape) + len(axes)
                dims = list(shape)
                for ax in sorted(a % out_rank for a in axes):
                    dims.insert(ax, 1)
                shape = tuple(dims)
            value = node.output[0]

    def weight_source(self, value: str) -> str | None:
        """The initializer that `value` is (possibly through pass-through ops)."""
        while value not in self.inits:
            node = self.producer.get(value)
            if node is None or node.op_type not in PASS_THROUGH:
                return None
            value = node.input[0]
        return value


def attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def random_param(role: str, shape, consumer, view_shape, rng: np.random.Generator) -> np.ndarray:
    """Seeded float32 values for a stripped parameter, chosen by its role."""

    def normal(std: float) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(std)

    if role == "conv_weight":  # [C_out, C_in/group, kH, kW]
        fan_in = int(np.prod(view_shape[1:]))
        return normal(math.sqrt(2.0 / fan_in))
    if role == "gemm_weight":  # B: [N, K] with transB, else [K, N]
        fan_in = view_shape[1] if attr(consumer, "transB", 0) else view_shape[0]
        return normal(math.sqrt(2.0 / fan_in))
    if role in ("conv_bias", "gemm_bias"):
        return normal(0.01)
    if role in ("bn_scale", "affine_scale"):
        return np.float32(1.0) + normal(0.1)
    if role in ("bn_bias", "bn_mean", "affine_bias"):
        return normal(0.1)
    if role == "bn_var":
        return rng.uniform(0.5, 1.5, size=shape).astype(np.float32)
    return normal(0.01)  # role "other": small values, reported in the summary


def materialize_weights(model: onnx.ModelProto, name: str, seed: int, summary: list[str]) -> None:
    """Replace each weight-producing ConstantOfShape by a seeded random initializer."""
    graph = model.graph
    index = GraphIndex(graph)
    roles: collections.Counter[str] = collections.Counter()
    new_inits, removed_nodes = {}, []
    for node in graph.node:
        if node.op_type != "ConstantOfShape":
            continue
        if node.input[0] not in index.inits:
            raise BuildError(f"ConstantOfShape {node.output[0]!r}: shape is not an initializer")
        shape = tuple(int(d) for d in index.init_array(node.input[0]))
        value = attr(node, "value", None)
        fill = numpy_helper.to_array(value) if value is not None else np.zeros(1, np.float32)
        out = node.output[0]
        if fill.dtype != np.float32:
            arr, role = np.full(shape, fill.reshape(-1)[0], dtype=fill.dtype), "non_float_kept"
        else:
            use = index.use_of(out, shape)
            role = ROLES.get((use[0].op_type, use[1]), "other") if use else "other"
            consumer, view_shape = (use[0], use[2]) if use else (None, shape)
            arr = random_param(role, shape, consumer, view_shape, rng_for(seed, name, out))
        roles[role] += 1
        new_inits[out] = numpy_helper.from_array(arr, out)
        removed_nodes.append(node)
    for node in removed_nodes:
        graph.node.remove(node)
    graph.initializer.extend(new_inits.values())
    summary.append(
        f"replaced {len(removed_nodes)} ConstantOfShape by random initializers: "
        + ", ".join(f"{r} {c}" for r, c in sorted(roles.items()))
    )
    if roles.get("other"):
        summary.append(f"WARNING: {roles['other']} stripped tensors of unknown use got N(0, 0.01)")


def clean_graph(model: onnx.ModelProto, summary: list[str]) -> None:
    """Drop unused initializers, list initializers no more as inputs (IR 4), trim unused
    Dropout masks."""
    graph = model.graph
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    unused = [t for t in graph.initializer if t.name not in used]
    shape_consts = [t.name for t in unused if t.name.endswith("__SHAPE")]
    others = [t.name for t in unused if not t.name.endswith("__SHAPE")]
    for t in unused:
        graph.initializer.remove(t)
    summary.append(f"removed {len(shape_consts)} ConstantOfShape shape initializers")
    if others:
        summary.append(f"removed {len(others)} unused original initializers: {', '.join(others)}")

    init_names = {t.name for t in graph.initializer}
    data_inputs = [i for i in graph.input if i.name not in init_names and i.name in used]
    del graph.input[:]
    graph.input.extend(data_inputs)
    model.ir_version = 4  # from IR 4 on, initializers need not be graph inputs

    consumed = {i for n in graph.node for i in n.input}
    masks = {n.output[1] for n in graph.node if n.op_type == "Dropout" and len(n.output) > 1}
    mask_outputs = [o for o in graph.output if o.name in masks]
    for o in mask_outputs:
        graph.output.remove(o)
    trimmed = 0
    for n in graph.node:
        if n.op_type == "Dropout" and len(n.output) > 1 and n.output[1] not in consumed:
            del n.output[1:]
            trimmed += 1
    if mask_outputs:
        summary.append(f"Dropout: removed {len(mask_outputs)} mask graph outputs")
    if trimmed:
        summary.append(f"Dropout: trimmed {trimmed} unused mask outputs (optional output, never consumed)")


def calibrate(model: onnx.ModelProto, feeds: dict[str, np.ndarray], summary: list[str]) -> None:
    """Rescale each Conv/Gemm weight, in topological order, so that the op's output
    without its bias (W*x) has unit standard deviation on `feeds`."""
    index = GraphIndex(model.graph)
    targets = []  # (node, weight initializer, bias initializer or None)
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm"):
            weight = index.weight_source(node.input[1])
            if weight is None:
                raise BuildError(f"{node.op_type} {node.output[0]!r}: weight is not an initializer")
            bias = node.input[2] if len(node.input) > 2 and node.input[2] in index.inits else None
            targets.append((node, weight, bias))
    weights = {w: index.init_array(w) for _, w, _ in targets}

    # One session where the weights are inputs and every Conv/Gemm output is an output.
    calib = onnx.ModelProto()
    calib.CopyFrom(model)
    kept = [t for t in calib.graph.initializer if t.name not in weights]
    del calib.graph.initializer[:]
    calib.graph.initializer.extend(kept)
    for w, arr in weights.items():
        calib.graph.input.append(helper.make_tensor_value_info(w, TensorProto.FLOAT, arr.shape))
    outs = {o.name for o in calib.graph.output}
    for node, _, _ in targets:
        if node.output[0] not in outs:
            calib.graph.output.append(helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None))
    sess = ort_session(calib)

    factors, with_bias = [], []
    for node, weight, bias in targets:
        (y0,) = sess.run([node.output[0]], {**feeds, **weights})
        y0 = y0.astype(np.float64)
        y = y0
        if bias is not None:
            b = index.init_array(bias).astype(np.float64)
            if node.op_type == "Conv":
                y = y - b.reshape((1, -1) + (1,) * (y.ndim - 2))
            else:
                y = y - attr(node, "beta", 1.0) * b
        std = float(y.std())
        if not math.isfinite(std) or std == 0.0:
            raise BuildError(f"{node.op_type} {node.output[0]!r}: output std is {std}")
        factor = float(f"{1.0 / std:.3g}")  # rounded: stable against last-bit noise
        weights[weight] = (weights[weight] * np.float32(factor)).astype(np.float32)
        factors.append(factor)
        with_bias.append(float((factor * y + (y0 - y)).std()))  # y0 - y is the bias term

    for i, t in enumerate(model.graph.initializer):
        if t.name in weights:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(weights[t.name], t.name))
    summary.append(
        f"rescaled {len(factors)} Conv/Gemm weights to unit output std "
        f"(factors {min(factors):.3g} .. {max(factors):.3g}); output std with the biases "
        f"{min(with_bias):.2f} .. {max(with_bias):.2f}"
    )


def check_classifier_outputs(
    model: onnx.ModelProto, outputs: dict[str, np.ndarray], summary: list[str]
) -> None:
    """Outputs must be finite and, as probabilities (softmax applied when the graph has
    none), neither one-hot-like (max < 0.9) nor all equal."""
    producer = {o: n.op_type for n in model.graph.node for o in n.output}
    for name, y in outputs.items():
        if not np.all(np.isfinite(y)):
            raise BuildError(f"output {name!r} has non-finite values")
        flat = y.astype(np.float64).reshape(-1)
        probs = flat if producer.get(name) == "Softmax" else softmax(flat)
        what = "softmax" if producer.get(name) == "Softmax" else "softmax(logits)"
        top = np.sort(probs)[::-1][:5]
        summary.append(f"{name} {what} top-5: " + ", ".join(f"{p:.4f}" for p in top))
        if top[0] >= 0.9:
            raise BuildError(f"output {name!r} is degenerate: max probability {top[0]:.4f}")
        if probs.max() - probs.min() < 1e-7:
            raise BuildError(f"output {name!r} is degenerate: all probabilities equal")


def build_light(name: str, seed: int) -> Built:
    file_name = LIGHT_MODELS[name]
    model = onnx.load(str(light_model_path(file_name)))
    original = {t.name for t in model.graph.initializer}
    summary: list[str] = []
    materialize_weights(model, name, seed, summary)
    clean_graph(model, summary)
    kept = [t for t in model.graph.initializer if t.name in original]
    n_float = sum(1 for t in kept if t.data_type == TensorProto.FLOAT)
    summary.append(
        f"kept {len(kept)} original initializers ({n_float} float, trained values); "
        f"{len(model.graph.initializer)} initializers in all"
    )
    check_model(model)

    feeds = {}
    for inp in model.graph.input:
        dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
        if inp.type.tensor_type.elem_type != TensorProto.FLOAT or not all(d > 0 for d in dims):
            raise BuildError(f"input {inp.name!r}: expected a float tensor of fixed shape")
        feeds[inp.name] = rng_for(seed, name, "input", inp.name).standard_normal(dims, dtype=np.float32)

    calibrate(model, feeds, summary)
    check_model(model)
    run = run_ort(model, feeds)
    check_classifier_outputs(model, run.outputs, summary)
    source = (
        f"onnx=={onnx.__version__} wheel: onnx/backend/test/data/light/{file_name}; stripped weights "
        "replaced by seeded random values (He-normal Conv/Gemm weights rescaled to unit output std, "
        "N(0,0.01) biases, BatchNormalization near identity), IR version 4"
    )
    return Built(name, model, feeds, run, source, seed, summary)
