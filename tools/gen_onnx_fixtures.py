#!/usr/bin/env python3
"""Generate the ONNX importer's test fixtures in tests/onnx/ with the real `onnx` library.

Usage (from the repository root):
    $(scripts/pyenv.sh) tools/gen_onnx_fixtures.py            # (re)write tests/onnx/
    $(scripts/pyenv.sh) tools/gen_onnx_fixtures.py --out DIR  # write them somewhere else
    $(scripts/pyenv.sh) tools/gen_onnx_fixtures.py --check    # exit 1 if tests/onnx/ is stale

Needs only the pinned onnx, onnxruntime and numpy of scripts/requirements.txt (the
venv that scripts/pyenv.sh prints).

Layout written:
    ok/<case>.onnx           a model the importer must accept; passes
                             onnx.checker.check_model(full_check=True)
    ok/<case>.inputs.npz     seeded random inputs, keyed by graph input name
    ok/<case>.expected.npz   ONNX Runtime (CPUExecutionProvider) outputs, keyed by
                             graph output name
    ok/ext_data.bin          external initializer data of ok/ext_data.onnx
    bad/<case>.onnx          inputs the importer must reject with a clear error
    README.md                one line per case (generated from the docs below)

Determinism: every file is a pure function of this script and the pinned packages.
Random values come from numpy generators seeded with crc32("<case>/<tensor>"), models
are serialized with deterministic=True and carry no timestamps (producer_name
"eqopt-fixtures", no producer_version), and the .npz files are written by hand as
uncompressed zips with a fixed 1980-01-01 date, members in graph order. The reference
outputs are computed by ONNX Runtime with one thread and graph optimizations disabled;
the one exception is ok/lrn_size4_even, which ORT's CPU LRN refuses (even size), so its
outputs come from a numpy transcription of the spec formula (checked against ORT on the
odd-size case lrn_size5).
--check regenerates everything into a temporary directory and compares bytes; the only
leniency is for .expected.npz, whose values may differ in the last bits when ONNX
Runtime picks other SIMD kernels on another CPU: those are accepted when the models and
inputs are byte-identical and every value agrees to rtol 1e-4 / atol 1e-5 (a note is
printed). Files under ok/ or bad/ that the script does not produce also fail --check.
"""

from __future__ import annotations

import argparse
import io
import math
import shutil
import sys
import tempfile
import zipfile
import zlib
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "onnx"
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
# Ok cases
# --------------------------------------------------------------------------

OK: dict[str, tuple[int, str, Callable[[Case], None], dict]] = {}


def ok(name: str, opset: int, doc: str, **kw):
    def deco(fn):
        assert name not in OK, name
        OK[name] = (opset, doc, fn, kw)
        return fn
    return deco


# ---- elementwise -----------------------------------------------------------

UNARY = [
    # (op, input kind, attrs)
    ("Abs", "normal", {}),
    ("Neg", "normal", {}),
    ("Exp", "normal", {}),
    ("Log", "pos", {}),
    ("Sqrt", "pos", {}),
    ("Reciprocal", "away", {}),
    ("Relu", "normal", {}),
    ("Sigmoid", "normal", {}),
    ("Tanh", "normal", {}),
    ("Erf", "normal", {}),
    ("Identity", "normal", {}),
    ("LeakyRelu", "normal", {"alpha": 0.1}),
]


def _register_unary(op: str, kind: str, attrs: dict) -> None:
    name = {"LeakyRelu": "leaky_relu"}.get(op, op.lower())
    extra = f" (alpha {attrs['alpha']})" if "alpha" in attrs else ""
    domain = {"pos": " (positive values)", "away": " (values with abs(x) >= 0.5)"}.get(kind, "")

    @ok(name, 13, f"{op}{extra} on a [3,5,7] float input{domain}")
    def _(c: Case) -> None:
        x = c.input("x", [3, 5, 7], kind, scale=2.0 if kind == "normal" else 1.0)
        c.node(op, [x], "y", **attrs)
        c.output("y")


for _op, _kind, _attrs in UNARY:
    _register_unary(_op, _kind, _attrs)


BINARY = [
    # (op, kind of a, kind of b)
    ("Add", "normal", "normal"),
    ("Sub", "normal", "normal"),
    ("Mul", "normal", "normal"),
    ("Div", "normal", "away"),
    ("Pow", "pos", "unit"),
    ("Max", "normal", "normal"),
    ("Min", "normal", "normal"),
]


def _register_binary(op: str, ka: str, kb: str) -> None:
    note = {"Div": " (divisor abs(b) >= 0.5)", "Pow": " (positive base, exponent in [-2, 2])"}.get(op, "")

    @ok(op.lower(), 13, f"{op} of two [3,5,7] float inputs{note}")
    def _(c: Case) -> None:
        a = c.input("a", [3, 5, 7], ka)
        b = c.input("b", [3, 5, 7], kb, scale=2.0 if kb == "unit" else 1.0)
        c.node(op, [a, b], "y")
        c.output("y")


for _op, _ka, _kb in BINARY:
    _register_binary(_op, _ka, _kb)


@ok("max_3_inputs", 13, "variadic Max with three [3,5,7] inputs")
def _(c: Case) -> None:
    ins = [c.input(n, [3, 5, 7]) for n in ("a", "b", "d")]
    c.node("Max", ins, "y")
    c.output("y")


@ok("min_3_inputs", 13, "variadic Min with three [3,5,7] inputs")
def _(c: Case) -> None:
    ins = [c.input(n, [3, 5, 7]) for n in ("a", "b", "d")]
    c.node("Min", ins, "y")
    c.output("y")


@ok("mean_3_inputs", 13, "variadic Mean of [2,3,4] + [3,4] + [2,3,4]")
def _(c: Case) -> None:
    ins = [c.input("a", [2, 3, 4]), c.input("b", [3, 4]), c.input("d", [2, 3, 4])]
    c.node("Mean", ins, "y")
    c.output("y")


@ok("sum_3_inputs_broadcast", 13, "variadic Sum of [2,3,4] + [3,4] + [1] (multidirectional broadcast)")
def _(c: Case) -> None:
    a = c.input("a", [2, 3, 4])
    b = c.input("b", [3, 4])
    d = c.input("d", [1])
    c.node("Sum", [a, b, d], "y")
    c.output("y")


@ok("broadcast_add_trailing", 13, "Add [2,3,4] + [4] (rank-extending broadcast, [4] is an initializer)")
def _(c: Case) -> None:
    x = c.input("x", [2, 3, 4])
    b = c.weight("bias", [4], scale=1.0)
    c.node("Add", [x, b], "y")
    c.output("y")


@ok("broadcast_mul_both", 13, "Mul [2,1,4] * [3,1] -> [2,3,4] (both operands broadcast)")
def _(c: Case) -> None:
    a = c.input("a", [2, 1, 4])
    b = c.input("b", [3, 1])
    c.node("Mul", [a, b], "y")
    c.output("y")


# ---- Clip / Cast / Gelu ------------------------------------------------------

@ok("clip_opset7", 7, "Clip-6 form: min=-0.5 / max=0.8 as attributes")
def _(c: Case) -> None:
    x = c.input("x", [3, 5, 7])
    c.node("Clip", [x], "y", min=-0.5, max=0.8)
    c.output("y")


@ok("clip_opset11_min_omitted", 11, "Clip-11: min omitted via empty input name, max = scalar initializer 0.7")
def _(c: Case) -> None:
    x = c.input("x", [3, 5, 7])
    hi = c.init("clip_max", np.array(0.7, F32))
    c.node("Clip", [x, "", hi], "y")
    c.output("y")


@ok("clip_opset13", 13, "Clip-13 with min=0 / max=6 scalar initializers (ReLU6)")
def _(c: Case) -> None:
    x = c.input("x", [3, 5, 7], scale=4.0)
    lo = c.init("clip_min", np.array(0.0, F32))
    hi = c.init("clip_max", np.array(6.0, F32))
    c.node("Clip", [x, lo, hi], "y")
    c.output("y")


@ok("cast_float_int_roundtrip", 13, "Cast float32 -> int64 -> float32 and float32 -> int32 -> float32 (truncation toward zero)")
def _(c: Case) -> None:
    x = c.input("x", [3, 5, 7], scale=5.0)
    i64 = c.node("Cast", [x], "x_i64", to=TensorProto.INT64)
    c.node("Cast", [i64], "y_from_i64", to=TensorProto.FLOAT)
    i32 = c.node("Cast", [x], "x_i32", to=TensorProto.INT32)
    c.node("Cast", [i32], "y_from_i32", to=TensorProto.FLOAT)
    c.output("y_from_i64")
    c.output("y_from_i32")


@ok("cast_int64_input", 13, "int64 graph input (values in [-20, 20]) Cast to float32, times a float input")
def _(c: Case) -> None:
    ids = c.input("ids", [3, 5], dtype=I64, data=seeded(c.name, "ids").integers(-20, 21, (3, 5)))
    x = c.input("x", [3, 5])
    f = c.node("Cast", [ids], "ids_f", to=TensorProto.FLOAT)
    c.node("Mul", [f, x], "y")
    c.output("y")


@ok("cast_float16_roundtrip", 13, "Cast float32 -> float16 -> float32 (rounding to half precision)")
def _(c: Case) -> None:
    x = c.input("x", [3, 5, 7], scale=3.0)
    h = c.node("Cast", [x], "x_f16", to=TensorProto.FLOAT16)
    c.node("Cast", [h], "y", to=TensorProto.FLOAT)
    c.output("y")


@ok("gelu_opset20", 20, "Gelu-20 with approximate=\"none\" (erf form)")
def _(c: Case) -> None:
    x = c.input("x", [3, 5, 7], scale=2.0)
    c.node("Gelu", [x], "y", approximate="none")
    c.output("y")


# ---- MatMul / Gemm -------------------------------------------------------------

@ok("matmul_2d", 13, "MatMul [5,7] x [7,3] initializer")
def _(c: Case) -> None:
    x = c.input("x", [5, 7])
    c.node("MatMul", [x, c.weight("w", [7, 3])], "y")
    c.output("y")


@ok("matmul_3d_2d", 13, "batched MatMul [2,5,7] x [7,3] initializer (weight broadcast over batch)")
def _(c: Case) -> None:
    x = c.input("x", [2, 5, 7])
    c.node("MatMul", [x, c.weight("w", [7, 3])], "y")
    c.output("y")


@ok("matmul_4d_4d", 13, "MatMul [2,3,5,4] x [2,3,4,5], both dynamic (attention scores)")
def _(c: Case) -> None:
    q = c.input("q", [2, 3, 5, 4])
    k = c.input("k", [2, 3, 4, 5])
    c.node("MatMul", [q, k], "y")
    c.output("y")


@ok("gemm_opset7_bias_vector", 7, "Gemm-7 A[3,5] x B[5,4] + C[4] (defaults alpha=beta=1)")
def _(c: Case) -> None:
    a = c.input("a", [3, 5])
    c.node("Gemm", [a, c.weight("b", [5, 4]), c.weight("c", [4], scale=1.0)], "y")
    c.output("y")


@ok("gemm_opset7_transb_alpha_beta", 7, "Gemm-7 transB=1, alpha=0.5, beta=2, C as [M,N] = [3,4]")
def _(c: Case) -> None:
    a = c.input("a", [3, 5])
    c.node("Gemm", [a, c.weight("b", [4, 5]), c.weight("c", [3, 4], scale=1.0)], "y",
           transB=1, alpha=0.5, beta=2.0)
    c.output("y")


@ok("gemm_opset13_transa_bias_matrix", 13, "Gemm-13 transA=1 (A is [5,3]), alpha=1.5, C as [M,N] = [3,4]")
def _(c: Case) -> None:
    a = c.input("a", [5, 3])
    c.node("Gemm", [a, c.weight("b", [5, 4]), c.weight("c", [3, 4], scale=1.0)], "y", transA=1, alpha=1.5)
    c.output("y")


@ok("gemm_opset13_transa_transb", 13, "Gemm-13 transA=1 and transB=1, alpha=1.5, beta=0.25, C as [N]")
def _(c: Case) -> None:
    a = c.input("a", [5, 3])
    c.node("Gemm", [a, c.weight("b", [4, 5]), c.weight("c", [4], scale=1.0)], "y",
           transA=1, transB=1, alpha=1.5, beta=0.25)
    c.output("y")


@ok("gemm_opset13_no_c", 13, "Gemm-13 without C, both A[3,5] and B[5,4] dynamic inputs")
def _(c: Case) -> None:
    a = c.input("a", [3, 5])
    b = c.input("b", [5, 4])
    c.node("Gemm", [a, b], "y")
    c.output("y")


@ok("gemm_opset13_bias_column", 13, "Gemm-13 transB=1 with C as [M,1] = [3,1] (broadcast along N), beta=-1")
def _(c: Case) -> None:
    a = c.input("a", [3, 5])
    c.node("Gemm", [a, c.weight("b", [4, 5]), c.weight("c", [3, 1], scale=1.0)], "y", transB=1, beta=-1.0)
    c.output("y")


# ---- Conv ----------------------------------------------------------------------

@ok("conv_opset7_bias", 7, "Conv-1 3->5 channels, 3x3 kernel, pads 1, with bias, on [2,3,9,11]")
def _(c: Case) -> None:
    x = c.input("x", [2, 3, 9, 11])
    c.node("Conv", [x, c.weight("w", [5, 3, 3, 3]), c.weight("b", [5], scale=1.0)], "y",
           kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    c.output("y")


@ok("conv_opset11_no_bias", 11, "Conv-11 3->5 channels, 3x3 kernel, no pads, no bias")
def _(c: Case) -> None:
    x = c.input("x", [1, 3, 9, 11])
    c.node("Conv", [x, c.weight("w", [5, 3, 3, 3])], "y", kernel_shape=[3, 3])
    c.output("y")


@ok("conv_opset11_strides2_asym_pads", 11,
    "Conv-11 3x2 kernel, strides 2, asymmetric pads [0,1,2,0] (h_begin,w_begin,h_end,w_end), bias")
def _(c: Case) -> None:
    x = c.input("x", [1, 3, 9, 11])
    c.node("Conv", [x, c.weight("w", [5, 3, 3, 2]), c.weight("b", [5], scale=1.0)], "y",
           kernel_shape=[3, 2], strides=[2, 2], pads=[0, 1, 2, 0])
    c.output("y")


@ok("conv_opset7_dilations2", 7, "Conv-1 3x3 kernel with dilations 2 and pads 2 (same-size output)")
def _(c: Case) -> None:
    x = c.input("x", [1, 3, 9, 11])
    c.node("Conv", [x, c.weight("w", [5, 3, 3, 3]), c.weight("b", [5], scale=1.0)], "y",
           kernel_shape=[3, 3], dilations=[2, 2], pads=[2, 2, 2, 2])
    c.output("y")


@ok("conv_opset11_group2", 11, "grouped Conv-11 group=2, 6->10 channels, pads 1, bias")
def _(c: Case) -> None:
    x = c.input("x", [1, 6, 9, 11])
    c.node("Conv", [x, c.weight("w", [10, 3, 3, 3]), c.weight("b", [10], scale=1.0)], "y",
           kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=2)
    c.output("y")


@ok("conv_opset11_depthwise", 11, "depthwise Conv-11 group=channels=5, weight [5,1,3,3], pads 1, bias")
def _(c: Case) -> None:
    x = c.input("x", [1, 5, 9, 11])
    c.node("Conv", [x, c.weight("w", [5, 1, 3, 3]), c.weight("b", [5], scale=1.0)], "y",
           kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=5)
    c.output("y")


@ok("conv_opset11_same_upper", 11,
    "Conv-11 auto_pad SAME_UPPER, 4x4 kernel, strides 2 on 9x11 (pads 1 begin / 2 end in both dims)")
def _(c: Case) -> None:
    x = c.input("x", [1, 3, 9, 11])
    c.node("Conv", [x, c.weight("w", [5, 3, 4, 4]), c.weight("b", [5], scale=1.0)], "y",
           kernel_shape=[4, 4], strides=[2, 2], auto_pad="SAME_UPPER")
    c.output("y")


@ok("conv_opset7_valid", 7, "Conv-1 auto_pad VALID, strides [1,2], no bias")
def _(c: Case) -> None:
    x = c.input("x", [1, 3, 9, 11])
    c.node("Conv", [x, c.weight("w", [5, 3, 3, 3])], "y", kernel_shape=[3, 3], strides=[1, 2], auto_pad="VALID")
    c.output("y")


@ok("conv_opset11_no_kernel_shape", 11, "Conv-11 without kernel_shape (inferred from the [5,3,3,5] weight), pads 1, bias")
def _(c: Case) -> None:
    x = c.input("x", [1, 3, 9, 11])
    c.node("Conv", [x, c.weight("w", [5, 3, 3, 5]), c.weight("b", [5], scale=1.0)], "y", pads=[1, 1, 1, 1])
    c.output("y")


# ---- pooling -------------------------------------------------------------------

@ok("maxpool_opset8_pads_strides", 8, "MaxPool-8 3x3 kernel, strides 2, pads 1 on [1,5,9,11]")
def _(c: Case) -> None:
    x = c.input("x", [1, 5, 9, 11])
    c.node("MaxPool", [x], "y", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c.output("y")


@ok("maxpool_opset12_same_upper", 12, "MaxPool-12 2x2 kernel, strides 2, auto_pad SAME_UPPER on 9x11 (pad 0 begin / 1 end)")
def _(c: Case) -> None:
    x = c.input("x", [1, 5, 9, 11])
    c.node("MaxPool", [x], "y", kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_UPPER")
    c.output("y")


@ok("maxpool_opset12_asym_pads", 12, "MaxPool-12 3x3 kernel, strides 2, asymmetric pads [0,1,1,0] on all-negative inputs")
def _(c: Case) -> None:
    # all inputs negative so that a zero-padded (instead of -inf-padded) max is wrong
    x = c.input("x", [1, 5, 9, 11], data=-np.abs(c.rand("x", [1, 5, 9, 11])) - 0.1)
    c.node("MaxPool", [x], "y", kernel_shape=[3, 3], strides=[2, 2], pads=[0, 1, 1, 0])
    c.output("y")


@ok("avgpool_opset7_exclude_pad", 7, "AveragePool-7 3x3 kernel, strides 1, pads 1, count_include_pad=0")
def _(c: Case) -> None:
    x = c.input("x", [1, 5, 9, 11])
    c.node("AveragePool", [x], "y", kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=0)
    c.output("y")


@ok("avgpool_opset11_include_pad", 11, "AveragePool-11 3x3 kernel, strides 2, pads 1, count_include_pad=1")
def _(c: Case) -> None:
    x = c.input("x", [1, 5, 9, 11])
    c.node("AveragePool", [x], "y", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)
    c.output("y")


@ok("global_avgpool", 13, "GlobalAveragePool on [2,5,3,7] -> [2,5,1,1]")
def _(c: Case) -> None:
    x = c.input("x", [2, 5, 3, 7])
    c.node("GlobalAveragePool", [x], "y")
    c.output("y")


@ok("global_maxpool", 13, "GlobalMaxPool on [2,5,3,7] -> [2,5,1,1]")
def _(c: Case) -> None:
    x = c.input("x", [2, 5, 3, 7])
    c.node("GlobalMaxPool", [x], "y")
    c.output("y")


# ---- normalization -------------------------------------------------------------

def _bn(c: Case, **attrs) -> None:
    x = c.input("x", [2, 5, 3, 4])
    scale = c.init("scale", c.rand("scale", [5], "pos", 0.5))
    bias = c.weight("bias", [5], scale=1.0)
    mean = c.weight("mean", [5], scale=1.0)
    var = c.init("var", c.rand("var", [5], "pos", 0.5))
    c.node("BatchNormalization", [x, scale, bias, mean, var], "y", **attrs)
    c.output("y")


@ok("batchnorm_opset7_spatial", 7, "BatchNormalization-7 inference with spatial=1, epsilon=1e-3, momentum=0.9 attributes")
def _(c: Case) -> None:
    _bn(c, spatial=1, epsilon=1e-3, momentum=0.9)


@ok("batchnorm_opset9", 9, "BatchNormalization-9 inference (default epsilon 1e-5)")
def _(c: Case) -> None:
    _bn(c)


@ok("batchnorm_opset15", 15, "BatchNormalization-15 inference, epsilon=1e-4")
def _(c: Case) -> None:
    _bn(c, epsilon=1e-4)


def lrn_reference(x: np.ndarray, size: int, alpha: float, beta: float, bias: float) -> np.ndarray:
    """LRN exactly as the ONNX spec words it, in float64: channel c sums the squares of
    channels max(0, c - floor((size-1)/2)) ..= min(C-1, c + ceil((size-1)/2))."""
    x64 = x.astype(np.float64)
    sq = x64 * x64
    channels = x.shape[1]
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    square_sum = np.zeros_like(x64)
    for ch in range(channels):
        square_sum[:, ch] = sq[:, max(0, ch - lo): min(channels - 1, ch + hi) + 1].sum(axis=1)
    return (x64 / (bias + (alpha / size) * square_sum) ** beta).astype(x.dtype)


LRN_ATTRS = {"alpha": 0.02, "beta": 0.6, "bias": 1.5}


@ok("lrn_size5", 13, "LRN size=5, alpha=0.02, beta=0.6, bias=1.5 on [1,7,3,4]",
    crosscheck=lambda f: {"y": lrn_reference(f["x"], 5, **LRN_ATTRS)})
def _(c: Case) -> None:
    x = c.input("x", [1, 7, 3, 4], scale=2.0)
    c.node("LRN", [x], "y", size=5, **LRN_ATTRS)
    c.output("y")


@ok("lrn_size4_even", 13,
    "LRN with even size=4 (channels c-1 ..= c+2), alpha=0.02, beta=0.6, bias=1.5; expected.npz from the spec "
    "formula in numpy, not ORT (ORT's CPU LRN rejects even sizes)",
    reference=lambda f: {"y": lrn_reference(f["x"], 4, **LRN_ATTRS)})
def _(c: Case) -> None:
    x = c.input("x", [1, 7, 3, 4], scale=2.0)
    c.node("LRN", [x], "y", size=4, **LRN_ATTRS)
    c.output("y")


@ok("layernorm_opset17_axis_last", 17, "LayerNormalization-17 axis=-1 on [2,3,5], scale/bias [5], epsilon 1e-5")
def _(c: Case) -> None:
    x = c.input("x", [2, 3, 5], scale=2.0)
    g = c.init("gamma", c.rand("gamma", [5], "pos", 0.5))
    b = c.weight("beta", [5], scale=1.0)
    c.node("LayerNormalization", [x, g, b], "y", axis=-1, epsilon=1e-5)
    c.output("y")


@ok("layernorm_opset17_axis1", 17, "LayerNormalization-17 axis=1 on [2,3,5] (normalizes over [3,5]), scale/bias [3,5], default epsilon")
def _(c: Case) -> None:
    x = c.input("x", [2, 3, 5], scale=2.0)
    g = c.init("gamma", c.rand("gamma", [3, 5], "pos", 0.5))
    b = c.weight("beta", [3, 5], scale=1.0)
    c.node("LayerNormalization", [x, g, b], "y", axis=1)
    c.output("y")


# ---- Softmax -------------------------------------------------------------------

@ok("softmax_opset11_axis1_3d", 11, "Softmax-11 axis=1 on [2,3,4]: old coerce-to-2D semantics, normalizes over the 12 flattened elements of dims 1..")
def _(c: Case) -> None:
    x = c.input("x", [2, 3, 4], scale=2.0)
    c.node("Softmax", [x], "y", axis=1)
    c.output("y")


@ok("softmax_opset11_axis_last", 11, "Softmax-11 axis=-1 on [2,3,4] (same result under old and new semantics)")
def _(c: Case) -> None:
    x = c.input("x", [2, 3, 4], scale=2.0)
    c.node("Softmax", [x], "y", axis=-1)
    c.output("y")


@ok("softmax_opset13_axis1_3d", 13, "Softmax-13 axis=1 on [2,3,4]: new per-axis semantics (normalizes over the 3 elements of dim 1)")
def _(c: Case) -> None:
    x = c.input("x", [2, 3, 4], scale=2.0)
    c.node("Softmax", [x], "y", axis=1)
    c.output("y")


# ---- data movement -------------------------------------------------------------

@ok("concat_axis1", 13, "Concat axis=1 of [2,3,4] and [2,5,4]")
def _(c: Case) -> None:
    a = c.input("a", [2, 3, 4])
    b = c.input("b", [2, 5, 4])
    c.node("Concat", [a, b], "y", axis=1)
    c.output("y")


@ok("concat_neg_axis", 13, "Concat axis=-1 of three operands [2,3] input, [2,4] initializer, [2,1] input")
def _(c: Case) -> None:
    a = c.input("a", [2, 3])
    w = c.weight("w", [2, 4], scale=1.0)
    b = c.input("b", [2, 1])
    c.node("Concat", [a, w, b], "y", axis=-1)
    c.output("y")


for _axis in (0, 1, 2):
    def _register_flatten(axis: int) -> None:
        @ok(f"flatten_axis{axis}", 13, f"Flatten axis={axis} on [2,3,4,5]")
        def _(c: Case) -> None:
            x = c.input("x", [2, 3, 4, 5])
            c.node("Flatten", [x], "y", axis=axis)
            c.output("y")
    _register_flatten(_axis)


@ok("reshape_opset9_const_shape", 9, "Reshape-5 with shape [0,-1,5] from a Constant node: [2,3,4,5] -> [2,12,5]")
def _(c: Case) -> None:
    x = c.input("x", [2, 3, 4, 5])
    s = c.const("shape", np.array([0, -1, 5], I64))
    c.node("Reshape", [x, s], "y")
    c.output("y")


@ok("reshape_opset13_const_shape", 13, "Reshape-13 with shape [-1,0,4] from a Constant node: [2,3,4,5] -> [10,3,4]")
def _(c: Case) -> None:
    x = c.input("x", [2, 3, 4, 5])
    s = c.const("shape", np.array([-1, 0, 4], I64))
    c.node("Reshape", [x, s], "y")
    c.output("y")


@ok("transpose_perm", 13, "Transpose perm=[0,2,3,1] on [2,3,4,5] (NCHW -> NHWC)")
def _(c: Case) -> None:
    x = c.input("x", [2, 3, 4, 5])
    c.node("Transpose", [x], "y", perm=[0, 2, 3, 1])
    c.output("y")


@ok("transpose_default", 13, "Transpose without perm (reverses the dims) on [2,3,4]")
def _(c: Case) -> None:
    x = c.input("x", [2, 3, 4])
    c.node("Transpose", [x], "y")
    c.output("y")


@ok("squeeze_unsqueeze_opset11", 11, "Squeeze-11 axes=[1,-1] attr on [2,1,3,1] then Unsqueeze-11 axes=[0,-1] attr -> [1,2,3,1]")
def _(c: Case) -> None:
    x = c.input("x", [2, 1, 3, 1])
    s = c.node("Squeeze", [x], "squeezed", axes=[1, -1])
    c.node("Unsqueeze", [s], "y", axes=[0, -1])
    c.output("y")


@ok("squeeze_unsqueeze_opset13", 13,
    "Squeeze-13 axes input [1,3] then Unsqueeze-13 axes input [1] (y: [2,1,3]); Squeeze-13 without axes (y_all: [2,3])")
def _(c: Case) -> None:
    x = c.input("x", [2, 1, 3, 1])
    sa = c.init("squeeze_axes", np.array([1, 3], I64))
    ua = c.const("unsqueeze_axes", np.array([1], I64))
    s = c.node("Squeeze", [x, sa], "squeezed")
    c.node("Unsqueeze", [s, ua], "y")
    c.node("Squeeze", [x], "y_all")
    c.output("y")
    c.output("y_all")


@ok("split_opset11_attr", 11, "Split-11 axis=1 with split=[2,3,4] attribute on [2,9,3] -> 3 outputs")
def _(c: Case) -> None:
    x = c.input("x", [2, 9, 3])
    outs = c.node("Split", [x], ["y0", "y1", "y2"], axis=1, split=[2, 3, 4])
    for o in outs:
        c.output(o)


@ok("split_opset13_input", 13, "Split-13 axis=1 with split=[4,5] as an int64 initializer input on [2,9,3] -> 2 outputs")
def _(c: Case) -> None:
    x = c.input("x", [2, 9, 3])
    sp = c.init("split", np.array([4, 5], I64))
    outs = c.node("Split", [x, sp], ["y0", "y1"], axis=1)
    for o in outs:
        c.output(o)


@ok("split_opset13_equal", 13, "Split-13 axis=-1 without split input: [2,3,6] into 3 equal outputs")
def _(c: Case) -> None:
    x = c.input("x", [2, 3, 6])
    outs = c.node("Split", [x], ["y0", "y1", "y2"], axis=-1)
    for o in outs:
        c.output(o)


@ok("split_opset18_num_outputs", 18, "Split-18 num_outputs=3 on axis 1 of size 7: uneven chunks [3,3,1]")
def _(c: Case) -> None:
    x = c.input("x", [2, 7, 3])
    outs = c.node("Split", [x], ["y0", "y1", "y2"], axis=1, num_outputs=3)
    for o in outs:
        c.output(o)


@ok("slice_opset9_attrs", 9, "Slice-1 with starts=[1,2] ends=[4,5] axes=[0,2] attributes on [5,7,6]")
def _(c: Case) -> None:
    x = c.input("x", [5, 7, 6])
    c.node("Slice", [x], "y", starts=[1, 2], ends=[4, 5], axes=[0, 2])
    c.output("y")


@ok("slice_opset13_inputs", 13,
    "Slice-13 inputs starts=[-4,0,1] ends=[-1,INT64_MAX,6] steps=[1,2,2], axes omitted, on [5,7,6] -> [3,4,3]")
def _(c: Case) -> None:
    x = c.input("x", [5, 7, 6])
    st = c.init("starts", np.array([-4, 0, 1], I64))
    en = c.init("ends", np.array([-1, INT64_MAX, 6], I64))
    sp = c.init("steps", np.array([1, 2, 2], I64))
    c.node("Slice", [x, st, en, "", sp], "y")
    c.output("y")


@ok("gather_const_indices_axis0", 13, "Gather axis=0 of dynamic data [5,4] with constant int64 indices [3,0,-1] (negative index)")
def _(c: Case) -> None:
    x = c.input("x", [5, 4])
    idx = c.init("indices", np.array([3, 0, -1], I64))
    c.node("Gather", [x, idx], "y", axis=0)
    c.output("y")


@ok("gather_embedding", 13, "embedding lookup: Gather axis=0 of a [11,6] initializer table with dynamic int64 ids [2,3]")
def _(c: Case) -> None:
    ids = c.input("ids", [2, 3], dtype=I64, data=seeded(c.name, "ids").integers(0, 11, (2, 3)))
    table = c.weight("embedding", [11, 6], scale=1.0)
    c.node("Gather", [table, ids], "y", axis=0)
    c.output("y")


@ok("gather_axis1", 13, "Gather axis=1 of dynamic data [3,7,2] with constant int64 indices [[6,0],[2,2]] -> [3,2,2,2]")
def _(c: Case) -> None:
    x = c.input("x", [3, 7, 2])
    idx = c.init("indices", np.array([[6, 0], [2, 2]], I64))
    c.node("Gather", [x, idx], "y", axis=1)
    c.output("y")


@ok("dropout_opset7_ratio_attr", 7, "Dropout-7 ratio=0.3 attribute (inference: identity)")
def _(c: Case) -> None:
    x = c.input("x", [3, 5, 7])
    c.node("Dropout", [x], "y", ratio=0.3)
    c.output("y")


@ok("dropout_opset13_ratio_input", 13, "Dropout-13 ratio=0.3 as a scalar initializer input, no training_mode (inference: identity)")
def _(c: Case) -> None:
    x = c.input("x", [3, 5, 7])
    r = c.init("ratio", np.array(0.3, F32))
    c.node("Dropout", [x, r], "y")
    c.output("y")


# ---- reductions ----------------------------------------------------------------

@ok("reducesum_opset11_axes_attr", 11, "ReduceSum-11 axes=[1] attribute, keepdims=1 on [3,5,7]")
def _(c: Case) -> None:
    x = c.input("x", [3, 5, 7])
    c.node("ReduceSum", [x], "y", axes=[1], keepdims=1)
    c.output("y")


@ok("reducesum_opset13_axes_input", 13, "ReduceSum-13 axes=[0,2] as an int64 initializer input, keepdims=0 on [3,5,7]")
def _(c: Case) -> None:
    x = c.input("x", [3, 5, 7])
    ax = c.init("axes", np.array([0, 2], I64))
    c.node("ReduceSum", [x, ax], "y", keepdims=0)
    c.output("y")


@ok("reducesum_opset13_all", 13, "ReduceSum-13 without axes (reduces all), keepdims=0 -> rank-0 output")
def _(c: Case) -> None:
    x = c.input("x", [3, 5, 7])
    c.node("ReduceSum", [x], "y", keepdims=0)
    c.output("y")


@ok("reducemean_opset13_axes_attr", 13, "ReduceMean-13 axes=[-1] attribute, keepdims default (1) on [3,5,7]")
def _(c: Case) -> None:
    x = c.input("x", [3, 5, 7])
    c.node("ReduceMean", [x], "y", axes=[-1])
    c.output("y")


@ok("reducemean_opset18_axes_input", 18, "ReduceMean-18 axes=[1] as an int64 Constant input, keepdims=0 on [3,5,7]")
def _(c: Case) -> None:
    x = c.input("x", [3, 5, 7])
    ax = c.const("axes", np.array([1], I64))
    c.node("ReduceMean", [x, ax], "y", keepdims=0)
    c.output("y")


@ok("reducemax_opset13", 13, "ReduceMax-13 axes=[2] attribute, keepdims=1 on [3,5,7]")
def _(c: Case) -> None:
    x = c.input("x", [3, 5, 7])
    c.node("ReduceMax", [x], "y", axes=[2], keepdims=1)
    c.output("y")


# ---- shape arithmetic ----------------------------------------------------------

@ok("shape_flatten_pytorch", 13,
    "PyTorch flatten: Shape -> Gather(0, scalar index) -> Unsqueeze -> Concat with [-1] -> Reshape: [2,3,4,5] -> [2,60]")
def _(c: Case) -> None:
    x = c.input("x", [2, 3, 4, 5])
    shp = c.node("Shape", [x], "x_shape")
    zero = c.const("zero", np.array(0, I64))
    n = c.node("Gather", [shp, zero], "batch", axis=0)
    ax = c.const("unsqueeze_axes", np.array([0], I64))
    n1 = c.node("Unsqueeze", [n, ax], "batch_1d")
    minus1 = c.const("minus_one", np.array([-1], I64))
    target = c.node("Concat", [n1, minus1], "target_shape", axis=0)
    c.node("Reshape", [x, target], "y")
    c.output("y")


@ok("shape_start_end_opset15", 15,
    "Shape-15 start=1 end=-1 ([3,4]) concatenated with [-1] feeds Reshape: [2,3,4,5] -> [3,4,10]")
def _(c: Case) -> None:
    x = c.input("x", [2, 3, 4, 5])
    mid = c.node("Shape", [x], "mid_dims", start=1, end=-1)
    minus1 = c.const("minus_one", np.array([-1], I64))
    target = c.node("Concat", [mid, minus1], "target_shape", axis=0)
    c.node("Reshape", [x, target], "y")
    c.output("y")


@ok("size_scales_input", 13, "Size of the [2,3,4] input (24), cast to float, divides the input")
def _(c: Case) -> None:
    x = c.input("x", [2, 3, 4])
    n = c.node("Size", [x], "n")
    nf = c.node("Cast", [n], "n_float", to=TensorProto.FLOAT)
    c.node("Div", [x, nf], "y")
    c.output("y")


@ok("constant_of_shape_add", 13, "ConstantOfShape(value=1.5) of a Constant shape [2,3,4], added to the input")
def _(c: Case) -> None:
    x = c.input("x", [2, 3, 4])
    s = c.const("shape", np.array([2, 3, 4], I64))
    f = c.node("ConstantOfShape", [s], "filled", value=raw_tensor("value", np.array([1.5], F32)))
    c.node("Add", [x, f], "y")
    c.output("y")


@ok("constant_value_float_ints", 13,
    "Constant value_float=2.5 (scalar) multiplies x; Constant value_ints=[3,-1] is the shape of a Reshape")
def _(c: Case) -> None:
    x = c.input("x", [3, 2, 2])
    c.nodes.append(helper.make_node("Constant", [], ["k"], name="const_k", value_float=2.5))
    c.nodes.append(helper.make_node("Constant", [], ["shape"], name="const_shape", value_ints=[3, -1]))
    c.node("Mul", [x, "k"], "y_scaled")
    c.node("Reshape", [x, "shape"], "y_reshaped")
    c.output("y_scaled")
    c.output("y_reshaped")


# ---- small whole networks ------------------------------------------------------

@ok("mini_cnn", 13,
    "Conv -> BatchNorm -> Relu -> MaxPool -> Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm -> Softmax on [2,3,9,11]")
def _(c: Case) -> None:
    x = c.input("x", [2, 3, 9, 11])
    h = c.node("Conv", [x, c.weight("conv1_w", [5, 3, 3, 3]), c.weight("conv1_b", [5], scale=0.1)], "conv1",
               kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    h = c.node("BatchNormalization", [h, c.init("bn_scale", c.rand("bn_scale", [5], "pos", 0.5)),
                                      c.weight("bn_bias", [5], scale=0.1), c.weight("bn_mean", [5], scale=0.1),
                                      c.init("bn_var", c.rand("bn_var", [5], "pos", 0.5))], "bn1")
    h = c.node("Relu", [h], "relu1")
    h = c.node("MaxPool", [h], "pool1", kernel_shape=[2, 2], strides=[2, 2])
    h = c.node("Conv", [h, c.weight("conv2_w", [7, 5, 3, 3]), c.weight("conv2_b", [7], scale=0.1)], "conv2",
               kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    h = c.node("Relu", [h], "relu2")
    h = c.node("GlobalAveragePool", [h], "gap")
    h = c.node("Flatten", [h], "flat", axis=1)
    h = c.node("Gemm", [h, c.weight("fc_w", [4, 7]), c.weight("fc_b", [4], scale=0.1)], "logits", transB=1)
    c.node("Softmax", [h], "probs", axis=1)
    c.output("probs")


@ok("mini_transformer", 13,
    "one encoder block on [1,5,8]: Q/K/V MatMul+Add, Reshape/Transpose to 2 heads, scores / 2, Softmax, "
    "residual, decomposed LayerNorm (ReduceMean/Sub/Pow/Sqrt/Div), erf-GELU MLP (8->12->8)")
def _(c: Case) -> None:
    d, heads, hd, ff = 8, 2, 4, 12
    x = c.input("x", [1, 5, d])
    heads_shape = c.init("heads_shape", np.array([0, 0, heads, hd], I64))
    merge_shape = c.init("merge_shape", np.array([0, 0, d], I64))

    def proj(tag: str, inp: str, n_in: int, n_out: int) -> str:
        m = c.node("MatMul", [inp, c.weight(f"{tag}_w", [n_in, n_out], scale=1 / math.sqrt(n_in))], f"{tag}_mm")
        return c.node("Add", [m, c.weight(f"{tag}_b", [n_out], scale=0.1)], f"{tag}_out")

    q = c.node("Transpose", [c.node("Reshape", [proj("q", x, d, d), heads_shape], "q_heads")], "q_t", perm=[0, 2, 1, 3])
    k = c.node("Transpose", [c.node("Reshape", [proj("k", x, d, d), heads_shape], "k_heads")], "k_t", perm=[0, 2, 3, 1])
    v = c.node("Transpose", [c.node("Reshape", [proj("v", x, d, d), heads_shape], "v_heads")], "v_t", perm=[0, 2, 1, 3])
    s = c.node("MatMul", [q, k], "scores")
    s = c.node("Div", [s, c.init("sqrt_dk", np.array(math.sqrt(hd), F32))], "scores_scaled")
    p = c.node("Softmax", [s], "attn", axis=-1)
    a = c.node("MatMul", [p, v], "context")
    a = c.node("Transpose", [a], "context_t", perm=[0, 2, 1, 3])
    a = c.node("Reshape", [a, merge_shape], "context_merged")
    a = proj("o", a, d, d)
    h = c.node("Add", [x, a], "residual1")

    # decomposed LayerNorm, as older exporters write it
    mu = c.node("ReduceMean", [h], "ln_mean", axes=[-1])
    dev = c.node("Sub", [h, mu], "ln_dev")
    sq = c.node("Pow", [dev, c.init("two", np.array(2.0, F32))], "ln_sq")
    var = c.node("ReduceMean", [sq], "ln_var", axes=[-1])
    std = c.node("Sqrt", [c.node("Add", [var, c.init("ln_eps", np.array(1e-5, F32))], "ln_var_eps")], "ln_std")
    nrm = c.node("Div", [dev, std], "ln_norm")
    nrm = c.node("Mul", [nrm, c.init("ln_gamma", c.rand("ln_gamma", [d], "pos", 0.5))], "ln_scaled")
    ln = c.node("Add", [nrm, c.weight("ln_beta", [d], scale=0.1)], "ln_out")

    # erf GELU MLP
    f1 = proj("ff1", ln, d, ff)
    g = c.node("Div", [f1, c.init("sqrt2", np.array(math.sqrt(2.0), F32))], "gelu_div")
    g = c.node("Erf", [g], "gelu_erf")
    g = c.node("Add", [g, c.init("one", np.array(1.0, F32))], "gelu_add")
    g = c.node("Mul", [f1, g], "gelu_mul")
    g = c.node("Mul", [g, c.init("half", np.array(0.5, F32))], "gelu_out")
    f2 = proj("ff2", g, ff, d)
    c.node("Add", [ln, f2], "y")
    c.output("y")


# ---- encodings / model-level variants ------------------------------------------

@ok("ext_data", 13, "both initializers (w1 [16,20], w2 [20,16], 1280 bytes each) in the external file ext_data.bin: MatMul -> Relu -> MatMul",
    external="ext_data.bin")
def _(c: Case) -> None:
    x = c.input("x", [3, 16])
    h = c.node("MatMul", [x, c.weight("w1", [16, 20])], "h")
    h = c.node("Relu", [h], "h_relu")
    c.node("MatMul", [h, c.weight("w2", [20, 16])], "y")
    c.output("y")


@ok("typed_initializers", 13,
    "initializers in typed fields instead of raw_data: float_data (f32), double_data (f64, Cast), int32_data "
    "(i32, Cast), int64_data (Reshape shape), float16 bit patterns in int32_data (Cast); one raw f32 for contrast")
def _(c: Case) -> None:
    x = c.input("x", [3, 4])
    w32 = c.init("w_f32_typed", c.rand("w_f32_typed", [3, 4]), typed=True)
    w_raw = c.init("w_f32_raw", c.rand("w_f32_raw", [4]))
    w64 = c.init("w_f64_typed", c.rand("w_f64_typed", [4], dtype=np.float64), typed=True)
    i32 = c.init("w_i32_typed", np.array([[-3], [0], [7]], np.int32), typed=True)
    h16 = c.init("w_f16_typed", c.rand("w_f16_typed", [3, 4], dtype=np.float16), typed=True)
    shape = c.init("shape_i64_typed", np.array([4, 3], I64), typed=True)
    h = c.node("Mul", [x, w32], "mul_typed")
    h = c.node("Add", [h, w_raw], "add_raw")
    h = c.node("Mul", [h, c.node("Cast", [w64], "f64_as_f32", to=TensorProto.FLOAT)], "mul_f64")
    h = c.node("Add", [h, c.node("Cast", [i32], "i32_as_f32", to=TensorProto.FLOAT)], "add_i32")
    h = c.node("Add", [h, c.node("Cast", [h16], "f16_as_f32", to=TensorProto.FLOAT)], "add_f16")
    c.node("Reshape", [h, shape], "y")
    c.output("y")


@ok("float16_initializer", 13, "a float16 [5,7] initializer (raw_data) Cast to float32 and added to the input")
def _(c: Case) -> None:
    x = c.input("x", [5, 7])
    h = c.init("w_f16", c.rand("w_f16", [5, 7], dtype=np.float16))
    c.node("Add", [x, c.node("Cast", [h], "w_f32", to=TensorProto.FLOAT)], "y")
    c.output("y")


@ok("initializers_as_inputs_ir3", 9,
    "IR version 3 / opset 9, every initializer also listed as a graph input (old model zoo): Conv -> Relu -> "
    "GlobalAveragePool -> Flatten -> Gemm; inputs.npz holds only x", ir=3, inits_as_inputs=True)
def _(c: Case) -> None:
    x = c.input("x", [1, 3, 9, 11])
    h = c.node("Conv", [x, c.weight("conv_w", [5, 3, 3, 3]), c.weight("conv_b", [5], scale=0.1)], "conv",
               kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    h = c.node("Relu", [h], "relu")
    h = c.node("GlobalAveragePool", [h], "gap")
    h = c.node("Flatten", [h], "flat")
    c.node("Gemm", [h, c.weight("fc_w", [5, 4]), c.weight("fc_b", [4], scale=0.1)], "y")
    c.output("y")


@ok("opset21_simple", 21, "opset 21 (IR 10): Mul by an initializer, Relu, Transpose, Reshape with an initializer shape")
def _(c: Case) -> None:
    x = c.input("x", [3, 4, 5])
    h = c.node("Mul", [x, c.weight("w", [5], scale=1.0)], "scaled")
    h = c.node("Relu", [h], "relu")
    h = c.node("Transpose", [h], "tr", perm=[2, 0, 1])
    c.node("Reshape", [h, c.init("shape", np.array([5, -1], I64))], "y")
    c.output("y")


@ok("opset7_simple", 7, "opset 7: Add (broadcast [3,4,5] + [5] initializer), Mul, Sigmoid, Relu")
def _(c: Case) -> None:
    x = c.input("x", [3, 4, 5])
    z = c.input("z", [3, 4, 5])
    h = c.node("Add", [x, c.weight("b", [5], scale=1.0)], "add")
    h = c.node("Mul", [h, z], "mul")
    h = c.node("Sigmoid", [h], "sig")
    c.node("Relu", [c.node("Sub", [h, c.init("half", np.array([0.5], F32))], "centered")], "y")
    c.output("y")


@ok("symbolic_batch", 13,
    "input x declared [\"batch\",3,4] (dim_param); import with --input-shape x=2,3,4; MatMul [4,5] + bias -> Relu, "
    "output declared [\"batch\",3,5]")
def _(c: Case) -> None:
    x = c.input("x", [2, 3, 4], dims=["batch", 3, 4])
    h = c.node("MatMul", [x, c.weight("w", [4, 5])], "mm")
    h = c.node("Add", [h, c.weight("b", [5], scale=0.1)], "add")
    c.node("Relu", [h], "y")
    c.output("y", dims=["batch", 3, 5])


# --------------------------------------------------------------------------
# Running and writing ok cases
# --------------------------------------------------------------------------

def ort_session(model: bytes | str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def ort_run(model: bytes | str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    sess = ort_session(model)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def build_ok(name: str, out: Path) -> list[Path]:
    """Builds one ok case into out/ok/; returns the files written."""
    opset, doc, fn, kw = OK[name]
    c = Case(name, opset, doc, ir=kw.get("ir"))
    fn(c)
    extra_inputs = []
    if kw.get("inits_as_inputs"):
        extra_inputs = [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in c.inits]

    # `reference`: ORT cannot run this model; expected outputs come from numpy instead.
    reference = kw.get("reference")
    run = (lambda _model, feeds: reference(feeds)) if reference else ort_run

    # First pass without output shapes, to learn them from the reference.
    probe = run(serialize(c.model(extra_inputs=extra_inputs)), c.feeds)
    model = c.model({k: v.shape for k, v in probe.items()}, extra_inputs=extra_inputs)

    d = out / "ok"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.onnx"
    files = [path]
    if kw.get("external"):
        loc = kw["external"]
        assert not (d / loc).exists()
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=loc, size_threshold=0)
        files.append(d / loc)
        for t in onnx.load(str(path), load_external_data=False).graph.initializer:
            assert t.data_location == TensorProto.EXTERNAL, t.name
    else:
        path.write_bytes(serialize(model))

    onnx.checker.check_model(str(path), full_check=True)
    expected = run(str(path), c.feeds)
    if kw.get("crosscheck"):  # validates a numpy reference against ORT on a case ORT can run
        for k, v in kw["crosscheck"](c.feeds).items():
            assert np.allclose(v, expected[k], rtol=1e-5, atol=1e-6), f"{name}: numpy reference disagrees on {k}"
    for k, v in probe.items():
        assert np.array_equal(v, expected[k]), f"{name}: {k} changed between ORT runs"
    for k, v in expected.items():
        assert np.all(np.isfinite(v)) if v.dtype.kind == "f" else True, f"{name}: non-finite {k}"
    (d / f"{name}.inputs.npz").write_bytes(npz_bytes(c.feeds))
    (d / f"{name}.expected.npz").write_bytes(npz_bytes(expected))
    files += [d / f"{name}.inputs.npz", d / f"{name}.expected.npz"]
    return files


# --------------------------------------------------------------------------
# Bad cases
# --------------------------------------------------------------------------

BAD: dict[str, tuple[str, Callable[[], bytes]]] = {}


def bad(name: str, doc: str):
    def deco(fn):
        assert name not in BAD, name
        BAD[name] = (doc, fn)
        return fn
    return deco


def _relu_model(name: str, opset: int, ir: int | None = None) -> onnx.ModelProto:
    c = Case(name, opset, "trivial Relu", ir=ir)
    x = c.input("x", [2, 3])
    c.node("Relu", [x], "y")
    c.output("y", dims=[2, 3])
    return c.model()


@bad("truncated", "the first half of the bytes of a valid opset-13 Relu model")
def _() -> bytes:
    data = serialize(_relu_model("truncated", 13))
    return data[: len(data) // 2]


@bad("garbage", "64 bytes of 0xff: not a protobuf at all")
def _() -> bytes:
    return b"\xff" * 64


@bad("missing_external", "initializer w [8,8] stored externally in missing_external.bin, which does not exist")
def _() -> bytes:
    c = Case("missing_external", 13, "external data file is missing")
    x = c.input("x", [4, 8])
    t = TensorProto()
    t.name = "w"
    t.data_type = TensorProto.FLOAT
    t.dims.extend([8, 8])
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "missing_external.bin"), ("offset", "0"), ("length", str(8 * 8 * 4))):
        e = t.external_data.add()
        e.key, e.value = k, v
    c.inits.append(t)
    c.node("MatMul", [x, "w"], "y")
    c.output("y", dims=[4, 8])
    return serialize(c.model())


@bad("bad_initializer_length", "float initializer w with dims [3,4] (48 bytes) but 40 bytes of raw_data, added to x")
def _() -> bytes:
    c = Case("bad_initializer_length", 13, "raw_data length disagrees with dims")
    x = c.input("x", [3, 4])
    t = raw_tensor("w", np.arange(10, dtype=F32))
    del t.dims[:]
    t.dims.extend([3, 4])
    c.inits.append(t)
    c.node("Add", [x, "w"], "y")
    c.output("y", dims=[3, 4])
    return serialize(c.model())


@bad("unsupported_ops",
     "opset 13 graph mixing supported ops (Relu, Add) with five unsupported nodes: topk_a, topk_b (TopK), "
     "nonzero_a (NonZero), cumsum_a (CumSum), hardmax_a (Hardmax); all must be listed")
def _() -> bytes:
    c = Case("unsupported_ops", 13, "several unsupported ops")
    x = c.input("x", [2, 6])
    r = c.node("Relu", [x], "relu_out", name="relu_a")
    k3 = c.init("k3", np.array([3], I64))
    k2 = c.init("k2", np.array([2], I64))
    c.node("TopK", [r, k3], ["topk_a_values", "topk_a_indices"], name="topk_a", axis=-1)
    c.node("TopK", [x, k2], ["topk_b_values", "topk_b_indices"], name="topk_b", axis=-1)
    c.node("NonZero", [r], "nonzero_out", name="nonzero_a")
    cs = c.node("CumSum", [x, c.init("cumsum_axis", np.array(1, I64))], "cumsum_out", name="cumsum_a")
    hm = c.node("Hardmax", [x], "hardmax_out", name="hardmax_a", axis=-1)
    c.node("Add", [cs, hm], "y", name="add_a")
    c.output("topk_a_values", dims=[2, 3])
    c.output("topk_b_values", dims=[2, 2])
    c.output("nonzero_out", dtype=I64, dims=[2, "nnz"])
    c.output("y", dims=[2, 6])
    return serialize(c.model())


@bad("symbolic_dim", "input x declared [\"batch\",3,4] (dim_param \"batch\"); importing without --input-shape must name the dim")
def _() -> bytes:
    c = Case("symbolic_dim", 13, "symbolic batch dimension")
    x = c.input("x", [2, 3, 4], dims=["batch", 3, 4])
    c.node("Relu", [x], "y")
    c.output("y", dims=["batch", 3, 4])
    return serialize(c.model())


@bad("opset_too_old", "trivial Relu at opset 6 (IR 3); the importer supports opsets 7..21")
def _() -> bytes:
    return serialize(_relu_model("opset_too_old", 6, ir=3))


@bad("opset_too_new", "trivial Relu at opset 22 (IR 10); the importer supports opsets 7..21")
def _() -> bytes:
    return serialize(_relu_model("opset_too_new", 22))


@bad("unsupported_dtype", "uint8 graph input x [2,3] (Cast to float, then Relu)")
def _() -> bytes:
    c = Case("unsupported_dtype", 13, "uint8 input")
    x = c.input("x", [2, 3], dtype=np.uint8, data=np.zeros((2, 3), np.uint8))
    c.node("Relu", [c.node("Cast", [x], "x_f", to=TensorProto.FLOAT)], "y")
    c.output("y", dims=[2, 3])
    return serialize(c.model())


@bad("dynamic_reshape", "Reshape of x [2,6] whose int64 shape [2] is a graph input (not foldable)")
def _() -> bytes:
    c = Case("dynamic_reshape", 13, "Reshape with a runtime shape")
    x = c.input("x", [2, 6])
    s = c.input("shape", [2], dtype=I64, data=np.array([3, 4], I64))
    c.node("Reshape", [x, s], "y")
    c.output("y", dims=["r0", "r1"])
    return serialize(c.model())


@bad("training_dropout", "Dropout-13 with training_mode = Constant bool true (ratio 0.5): random at run time")
def _() -> bytes:
    c = Case("training_dropout", 13, "Dropout in training mode")
    x = c.input("x", [3, 4])
    r = c.const("ratio", np.array(0.5, F32))
    t = c.const("training_mode", np.array(True))
    c.node("Dropout", [x, r, t], "y")
    c.output("y", dims=[3, 4])
    return serialize(c.model())


@bad("dropout_mask_output", "Dropout-13 (inference) whose bool mask output is a graph output")
def _() -> bytes:
    c = Case("dropout_mask_output", 13, "Dropout mask used")
    x = c.input("x", [3, 4])
    c.node("Dropout", [x], ["y", "mask"])
    c.output("y", dims=[3, 4])
    c.output("mask", dtype=np.bool_, dims=[3, 4])
    return serialize(c.model())


def build_bad(name: str, out: Path) -> list[Path]:
    d = out / "bad"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.onnx"
    path.write_bytes(BAD[name][1]())
    return [path]


# --------------------------------------------------------------------------
# README
# --------------------------------------------------------------------------

def readme() -> str:
    lines = [
        "# ONNX importer fixtures",
        "",
        "Generated by `tools/gen_onnx_fixtures.py`; do not edit by hand. Regenerate with",
        "`$(scripts/pyenv.sh) tools/gen_onnx_fixtures.py`, verify with `--check`.",
        "",
        "- `ok/<case>.onnx` passes `onnx.checker.check_model(full_check=True)` and must import.",
        "- `ok/<case>.inputs.npz`: seeded inputs keyed by graph input name.",
        "- `ok/<case>.expected.npz`: ONNX Runtime 1.32 CPU outputs keyed by graph output name.",
        "- `ok/symbolic_batch.onnx` must be imported with `--input-shape x=2,3,4`.",
        "- `ok/lrn_size4_even.onnx` is the one ok model ONNX Runtime cannot load (its CPU LRN",
        "  rejects even sizes); its expected.npz comes from the spec formula in numpy.",
        "- `bad/<case>.onnx` must be rejected with a clear error.",
        "",
        "The .npz files are uncompressed zips of .npy (format 1.0, little-endian, C order).",
        "Models use IR version max(4, minimum for the opset) unless stated otherwise.",
        "",
        "## ok",
        "",
        "| case | opset | covers |",
        "| --- | --- | --- |",
    ]
    for name, (opset, doc, _fn, _kw) in OK.items():
        assert "|" not in doc, name  # would break the markdown table
        lines.append(f"| `{name}` | {opset} | {doc} |")
    lines += ["", "## bad", "", "| case | covers |", "| --- | --- |"]
    for name, (doc, _fn) in BAD.items():
        assert "|" not in doc, name
        lines.append(f"| `{name}` | {doc} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def write_all(out: Path) -> list[Path]:
    """Generates every file into `out` (which should be empty); returns them."""
    files = []
    for name in OK:
        try:
            files += build_ok(name, out)
        except Exception as e:  # name the case, keep the cause
            raise RuntimeError(f"ok case {name}: {e}") from e
    for name in BAD:
        files += build_bad(name, out)
    (out / "README.md").write_text(readme(), encoding="utf-8", newline="\n")
    files.append(out / "README.md")
    return files


def _close_enough(have: bytes, want: bytes) -> bool:
    """Same arrays (names, dtypes, shapes) with values equal up to kernel rounding."""
    try:
        a, b = load_npz(have), load_npz(want)
    except Exception:
        return False
    if list(a) != list(b):
        return False
    for k in a:
        if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape:
            return False
        if a[k].dtype.kind == "f":
            if not np.allclose(a[k], b[k], rtol=1e-4, atol=1e-5):
                return False
        elif not np.array_equal(a[k], b[k]):
            return False
    return True


def listing(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for sub in ("ok", "bad") if (root / sub).is_dir()
            for p in (root / sub).rglob("*") if p.is_file()}


def check(committed: Path) -> int:
    """Regenerates into a temporary directory and compares with `committed`."""
    stale: list[str] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        fresh_root = Path(tmp)
        fresh = write_all(fresh_root)
        rels = [p.relative_to(fresh_root).as_posix() for p in fresh]
        for rel in rels:
            want = (fresh_root / rel).read_bytes()
            have_path = committed / rel
            if not have_path.exists():
                stale.append(f"missing: {have_path}")
                continue
            have = have_path.read_bytes()
            if have == want:
                continue
            if rel.endswith(".expected.npz"):
                stem = rel[: -len(".expected.npz")]
                same_model = all(
                    (committed / f"{stem}{ext}").exists()
                    and (committed / f"{stem}{ext}").read_bytes() == (fresh_root / f"{stem}{ext}").read_bytes()
                    for ext in (".onnx", ".inputs.npz"))
                if same_model and _close_enough(have, want):
                    notes.append(rel)
                    continue
            stale.append(f"differs: {have_path}")
        for extra in sorted(listing(committed) - set(rels)):
            stale.append(f"not generated (stale?): {committed / extra}")
    for rel in notes:
        print(f"note: {rel} differs only by floating-point rounding (other CPU kernels?); accepted")
    if stale:
        for line in stale:
            print(line)
        print(f"{len(stale)} fixture file(s) out of date; run: $(scripts/pyenv.sh) tools/gen_onnx_fixtures.py")
        return 1
    print(f"ONNX fixtures up to date ({len(rels)} files: {len(OK)} ok cases, {len(BAD)} bad cases)")
    return 0


def write(out: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp)
        files = write_all(stage)
        for f in files:
            rel = f.relative_to(stage)
            dst = out / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dst)
        rels = {f.relative_to(stage).as_posix() for f in files}
    for extra in sorted(listing(out) - rels):
        print(f"warning: {out / extra} is not produced by this script (delete it if stale)")
    print(f"wrote {len(rels)} files to {out} ({len(OK)} ok cases, {len(BAD)} bad cases)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=FIXTURES, help="output directory (default: tests/onnx/)")
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temp dir and compare with --out; exit 1 naming the stale files")
    args = ap.parse_args(argv)
    if args.check:
        return check(args.out)
    return write(args.out)


if __name__ == "__main__":
    sys.exit(main())
