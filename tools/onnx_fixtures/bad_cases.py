"""Bad cases: models (or bytes) the importer must reject with a clear error."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto

from .common import F32, I64, Case, bad, raw_tensor, serialize


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
