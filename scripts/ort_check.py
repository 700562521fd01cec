#!/usr/bin/env python3
"""Checks ONNX models with the real ONNX tooling: the `onnx` checker and ONNX Runtime.

Usage:  $(scripts/pyenv.sh) scripts/ort_check.py CASE_DIR [CASE_DIR ...]

Each CASE_DIR holds `model.onnx`, `inputs.npz` (one array per graph input, keyed by
input name) and `expected.npz` (the outputs eqopt's reference interpreter computed,
keyed by output name). For each case this script
  1. runs onnx.checker.check_model(full_check=True) (full type and shape inference),
  2. runs the model with ONNX Runtime (CPUExecutionProvider, 1 thread),
  3. compares every output with the expected one: same shape, dtype kind, and a
     normwise relative error ||ort - expected|| / max(||expected||, tiny) below --rtol
     (NaN/inf positions must agree).
With --no-graph-optimizations, ONNX Runtime runs the graph as written
(ORT_DISABLE_ALL): its default optimizations rewrite DequantizeLinear -> MatMul
into a fused kernel that also quantizes the activations.
It prints one JSON object per case on stdout:
  {"case": DIR, "ok": bool, "outputs": {name: rel_error}, "error": str|null}
and exits 1 if any case failed.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort


def rel_error(got: np.ndarray, want: np.ndarray) -> float:
    if got.shape != want.shape:
        raise ValueError(f"shape {got.shape} != expected {want.shape}")
    g = got.astype(np.float64)
    w = want.astype(np.float64)
    finite = np.isfinite(w)
    if not np.array_equal(finite, np.isfinite(g)):
        raise ValueError("NaN/inf positions differ")
    if not np.array_equal(g[~finite], w[~finite], equal_nan=True):
        raise ValueError("non-finite values differ")
    diff = np.linalg.norm((g - w)[finite])
    scale = max(np.linalg.norm(w[finite]), 1e-30)
    return float(diff / scale)


def check_case(case: Path, rtol: float, optimize: bool = True) -> dict:
    out = {"case": str(case), "ok": False, "outputs": {}, "error": None}
    try:
        model = onnx.load(str(case / "model.onnx"))
        onnx.checker.check_model(model, full_check=True)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        if not optimize:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(str(case / "model.onnx"), opts, providers=["CPUExecutionProvider"])
        with np.load(case / "inputs.npz") as f:
            feeds = {k: f[k] for k in f.files}
        with np.load(case / "expected.npz") as f:
            expected = {k: f[k] for k in f.files}
        names = [o.name for o in sess.get_outputs()]
        missing = sorted(set(expected) - set(names))
        if missing:
            raise ValueError(f"ONNX Runtime gives no output named {missing}")
        results = dict(zip(names, sess.run(None, feeds)))
        worst = 0.0
        for name, want in expected.items():
            got = results[name]
            if got.dtype.kind != want.dtype.kind:
                raise ValueError(f"output {name}: dtype {got.dtype} != expected {want.dtype}")
            e = rel_error(got, want)
            out["outputs"][name] = e
            worst = max(worst, e)
        if worst > rtol:
            raise ValueError(f"relative error {worst:.3g} exceeds {rtol:g}")
        out["ok"] = True
    except Exception as e:  # noqa: BLE001 - every failure is reported per case
        out["error"] = f"{type(e).__name__}: {e}"
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cases", nargs="+", type=Path)
    p.add_argument("--rtol", type=float, default=1e-4)
    p.add_argument("--no-graph-optimizations", action="store_true")
    args = p.parse_args()
    failed = 0
    for case in args.cases:
        r = check_case(case, args.rtol, not args.no_graph_optimizations)
        failed += not r["ok"]
        print(json.dumps(r), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
