"""Ok cases for elementwise and math ops: unary and binary ops, variadic Max/Min/Mean/Sum,
broadcasting, Clip / Cast / Gelu, and MatMul / Gemm."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from .common import F32, I64, Case, ok, seeded


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


@ok("dequantize_int8_matmul", 21,
    "DequantizeLinear of an INT8 [8,6] initializer, per-column scales (axis=1), then MatMul [3,8] x [8,6]")
def _(c: Case) -> None:
    x = c.input("x", [3, 8])
    q = np.clip(np.round(c.rand("wq", [8, 6], scale=40.0)), -127, 127).astype(np.int8)
    s = (c.rand("ws", [6], "pos") * 0.01).astype(np.float32)
    w = c.node("DequantizeLinear", [c.init("wq", q), c.init("ws", s)], "w", axis=1)
    c.node("MatMul", [x, w], "y")
    c.output("y")


@ok("dequantize_int4_blocked_matmul", 21,
    "DequantizeLinear of an INT4 [8,6] initializer (int32_data), one scale per 4 rows (axis=0, block_size=4), "
    "then MatMul [3,8] x [8,6]")
def _(c: Case) -> None:
    x = c.input("x", [3, 8])
    q = np.clip(np.round(c.rand("wq", [8, 6], scale=3.0)), -8, 7).astype(np.int64)
    c.inits.append(helper.make_tensor("wq", TensorProto.INT4, [8, 6], q.reshape(-1).tolist()))
    s = (c.rand("ws", [2, 6], "pos") * 0.05).astype(np.float32)
    w = c.node("DequantizeLinear", ["wq", c.init("ws", s)], "w", axis=0, block_size=4)
    c.node("MatMul", [x, w], "y")
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
