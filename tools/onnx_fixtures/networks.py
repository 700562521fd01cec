"""Ok cases for small whole networks (mini CNN, mini transformer) and for model-level
encodings: external data, typed / float16 initializers, initializers as inputs (IR 3),
opset extremes and a symbolic batch dimension."""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto

from .common import F32, I64, Case, ok


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
