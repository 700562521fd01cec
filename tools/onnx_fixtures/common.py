"""Shared fixture machinery: constants, the deterministic .npz writer, the `Case` graph
builder and model serialization, and the OK / BAD case registries (filled, in
registration order, by the case modules of this package)."""

from __future__ import annotations

import io
import math
import zipfile
import zlib
from collections import Counter
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper

PRODUCER = "eqopt-fixtures"
INT64_MAX = 9223372036854775807

F32 = np.float32
I64 = np.int64


# --------------------------------------------------------------------------
# Deterministic .npz
# --------------------------------------------------------------------------

def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An uncompressed .npz (zip of .npy) with fixed dates, members in insertion order."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for key, arr in arrays.items():
            npy = io.BytesIO()
            np.lib.format.write_array(npy, np.asarray(arr, order="C"), version=(1, 0), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            z.writestr(info, npy.getvalue())
    return buf.getvalue()


def load_npz(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# --------------------------------------------------------------------------
# Graph builder
# --------------------------------------------------------------------------

def elem_type(dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def raw_tensor(name: str, arr: np.ndarray) -> TensorProto:
    """TensorProto with the data in raw_data (little-endian), as exporters write it."""
    arr = np.asarray(arr, order="C")
    t = TensorProto()
    t.name = name
    t.data_type = elem_type(arr.dtype)
    t.dims.extend(arr.shape)
    t.raw_data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
    return t


def typed_tensor(name: str, arr: np.ndarray) -> TensorProto:
    """TensorProto with the data in its typed repeated field instead of raw_data:
    float32 -> float_data, float64 -> double_data, int64 -> int64_data,
    int32 -> int32_data, float16 -> int32_data (the uint16 bit pattern of each value)."""
    arr = np.asarray(arr, order="C")
    t = TensorProto()
    t.name = name
    t.data_type = elem_type(arr.dtype)
    t.dims.extend(arr.shape)
    flat = arr.reshape(-1)
    if arr.dtype == np.float32:
        t.float_data.extend(flat.tolist())
    elif arr.dtype == np.float64:
        t.double_data.extend(flat.tolist())
    elif arr.dtype == np.int64:
        t.int64_data.extend(flat.tolist())
    elif arr.dtype == np.int32:
        t.int32_data.extend(flat.tolist())
    elif arr.dtype == np.float16:
        t.int32_data.extend(flat.view(np.uint16).astype(np.int32).tolist())
    else:
        raise TypeError(f"no typed field for {arr.dtype}")
    return t


def seeded(case: str, tensor: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{case}/{tensor}".encode()))


class Case:
    """One model under construction. Tensor and node names are [a-z0-9_]."""

    def __init__(self, name: str, opset: int, doc: str, ir: int | None = None):
        self.name = name
        self.opset = opset
        self.doc = doc
        self.ir = ir
        self.nodes: list[onnx.NodeProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[tuple[str, int, list | None]] = []
        self.inits: list[TensorProto] = []
        self.feeds: dict[str, np.ndarray] = {}
        self.counts: Counter[str] = Counter()

    # -- values ------------------------------------------------------------
    def rand(self, tensor: str, shape, kind: str = "normal", scale: float = 1.0, dtype=F32) -> np.ndarray:
        rng = seeded(self.name, tensor)
        shape = tuple(shape)
        if kind == "normal":
            v = rng.standard_normal(shape) * scale
        elif kind == "pos":  # strictly positive, for Log / Sqrt / Pow bases / variances
            v = rng.uniform(0.1, 4.0, shape) * scale
        elif kind == "away":  # |v| in [0.5, 2], random sign: safe divisors
            v = rng.uniform(0.5, 2.0, shape) * np.where(rng.random(shape) < 0.5, -1.0, 1.0) * scale
        elif kind == "unit":  # uniform in [-1, 1]
            v = rng.uniform(-1.0, 1.0, shape) * scale
        else:
            raise ValueError(kind)
        return np.asarray(v).astype(dtype)

    def input(self, name: str, shape, kind: str = "normal", scale: float = 1.0, dtype=F32,
              data: np.ndarray | None = None, dims: list | None = None) -> str:
        """A graph input; `data` (or seeded random values) goes into inputs.npz.
        `dims` overrides the declared shape (e.g. a symbolic "batch")."""
        if data is None:
            data = self.rand(name, shape, kind, scale, dtype)
        data = np.asarray(data, dtype=dtype)
        assert data.shape == tuple(shape), (name, data.shape, shape)
        self.feeds[name] = data
        self.inputs.append(helper.make_tensor_value_info(name, elem_type(dtype), dims if dims is not None else list(shape)))
        return name

    def init(self, name: str, arr: np.ndarray, typed: bool = False) -> str:
        arr = np.asarray(arr)
        self.inits.append(typed_tensor(name, arr) if typed else raw_tensor(name, arr))
        return name

    def weight(self, name: str, shape, kind: str = "normal", scale: float | None = None) -> str:
        if scale is None:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else int(shape[0])
            scale = 1.0 / math.sqrt(max(fan_in, 1))
        return self.init(name, self.rand(name, shape, kind, scale))

    def const(self, name: str, arr: np.ndarray) -> str:
        """A Constant node (value = raw tensor) producing `name`."""
        arr = np.asarray(arr)
        self.nodes.append(helper.make_node("Constant", [], [name], name=f"const_{name}",
                                           value=raw_tensor(f"{name}_value", arr)))
        return name

    # -- nodes -------------------------------------------------------------
    def node(self, op: str, inputs: list[str], out: str | list[str] | int | None = None,
             name: str | None = None, **attrs) -> str | list[str]:
        """Appends a node. `out`: output name(s), or a count of auto-named outputs."""
        k = self.counts[op]
        self.counts[op] += 1
        base = name or f"{op.lower()}_{k}"
        if out is None:
            outs = [base]
        elif isinstance(out, int):
            outs = [f"{base}_{i}" for i in range(out)]
        elif isinstance(out, str):
            outs = [out]
        else:
            outs = list(out)
        self.nodes.append(helper.make_node(op, inputs, outs, name=base, **attrs))
        return outs[0] if isinstance(out, (str, type(None))) else outs

    def output(self, name: str, dtype=F32, dims: list | None = None) -> None:
        """A graph output; its shape is taken from ONNX Runtime unless `dims` is given."""
        self.outputs.append((name, elem_type(dtype), dims))

    # -- model -------------------------------------------------------------
    def model(self, shapes: dict[str, tuple] | None = None, extra_inputs=()) -> onnx.ModelProto:
        outs = []
        for name, et, dims in self.outputs:
            if dims is None and shapes is not None:
                dims = list(shapes[name])
            outs.append(helper.make_tensor_value_info(name, et, dims))
        graph = helper.make_graph(self.nodes, self.name, self.inputs + list(extra_inputs), outs,
                                  initializer=self.inits, doc_string=self.doc)
        opset = [helper.make_opsetid("", self.opset)]
        ir = self.ir
        if ir is None:
            # IR 3 forces initializers into the graph inputs; only the case that tests
            # exactly that uses IR 3 (see initializers_as_inputs_ir3).
            ir = max(helper.find_min_ir_version_for(opset), 4)
        return helper.make_model(graph, opset_imports=opset, ir_version=ir, producer_name=PRODUCER)


def serialize(m: onnx.ModelProto) -> bytes:
    return m.SerializeToString(deterministic=True)


# --------------------------------------------------------------------------
# Ok case registry
# --------------------------------------------------------------------------

OK: dict[str, tuple[int, str, Callable[[Case], None], dict]] = {}


def ok(name: str, opset: int, doc: str, **kw):
    def deco(fn):
        assert name not in OK, name
        OK[name] = (opset, doc, fn, kw)
        return fn
    return deco


# --------------------------------------------------------------------------
# Bad case registry
# --------------------------------------------------------------------------

BAD: dict[str, tuple[str, Callable[[], bytes]]] = {}


def bad(name: str, doc: str):
    def deco(fn):
        assert name not in BAD, name
        BAD[name] = (doc, fn)
        return fn
    return deco
