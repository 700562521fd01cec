"""Ok cases for shape and layout ops: data movement (Concat, Flatten, Reshape, Transpose,
Squeeze/Unsqueeze, Split, Slice, Gather, Dropout), reductions and shape arithmetic."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from .common import F32, I64, INT64_MAX, Case, ok, raw_tensor, seeded


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
