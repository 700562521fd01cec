"""Ok cases for neural-network ops: Conv, pooling, normalization (BatchNormalization,
LRN with its numpy reference, LayerNormalization) and Softmax."""

from __future__ import annotations

import numpy as np

from .common import Case, ok


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
