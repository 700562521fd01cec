#!/usr/bin/env python3
"""Generate the example model graphs in examples/ (graph.json, eqopt-graph v1).

Usage:
    python3 tools/gen_examples.py            # (re)write examples/*.json
    python3 tools/gen_examples.py --out DIR  # write them somewhere else
    python3 tools/gen_examples.py --check    # exit 1 if examples/ is stale

Python 3.11 standard library only. The output is deterministic: weights are
declared as seeded random constants (no weights files), and each seed is
derived from the graph and constant name, so adding a constant never changes
the values of the others. The text layout follows eqopt's own writer
(src/jsonfmt.rs): two-space indent, one key per line, scalar lists inline.

The format is described in docs/graph-format.md.
"""

from __future__ import annotations

import argparse
import difflib
import math
import sys
import tempfile
import zlib
from pathlib import Path

FORMAT = "eqopt-graph"
VERSION = 1

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


# --------------------------------------------------------------------------
# JSON text in eqopt's layout
# --------------------------------------------------------------------------

def _num(v: float | int) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if not math.isfinite(v):
        raise ValueError(f"non-finite number {v!r} cannot be written to JSON")
    s = repr(v)
    # Python writes 1e-05 / 1e+16; serde_json writes 1e-5 / 1e16.
    if "e" in s:
        mant, exp = s.split("e")
        sign = "-" if exp.startswith("-") else ""
        s = f"{mant}e{sign}{exp.lstrip('+-').lstrip('0') or '0'}"
    return s


def _scalar(v) -> str:
    if isinstance(v, str):
        # ASCII names only in these examples; json-escape quotes and backslashes.
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if v is None:
        return "null"
    return _num(v)


def to_text(v, indent: int = 0) -> str:
    """Formats `v` like eqopt's writer: objects one key per line, scalar lists inline."""
    pad = "  " * indent
    if isinstance(v, dict):
        if not v:
            return "{}"
        items = [f'{pad}  {_scalar(k)}: {to_text(val, indent + 1)}' for k, val in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(v, list):
        if all(not isinstance(x, (list, dict)) for x in v):
            return "[" + ", ".join(_scalar(x) for x in v) + "]"
        items = [f"{pad}  {to_text(x, indent + 1)}" for x in v]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return _scalar(v)


# --------------------------------------------------------------------------
# A small graph builder
# --------------------------------------------------------------------------

def _round(x: float, digits: int = 6) -> float:
    """Rounds to `digits` significant digits so the files stay readable."""
    return float(f"{x:.{digits}g}")


class GraphBuilder:
    """Collects inputs, constants and nodes of one graph.json document."""

    def __init__(self, name: str):
        self.name = name
        self.inputs: list[dict] = []
        self.outputs: list[str] = []
        self.constants: list[dict] = []
        self.nodes: list[dict] = []
        self._names: set[str] = set()

    def _define(self, name: str) -> str:
        if name in self._names:
            raise ValueError(f"{self.name}: duplicate name {name!r}")
        self._names.add(name)
        return name

    def _seed(self, name: str) -> int:
        # Stable across Python versions and insertion order.
        return zlib.crc32(f"{self.name}/{name}".encode())

    # Tensors -------------------------------------------------------------

    def input(self, name: str, shape: list[int], dtype: str = "f32") -> str:
        self.inputs.append({"name": self._define(name), "shape": list(shape), "dtype": dtype})
        return name

    def output(self, name: str) -> None:
        if name not in self._names:
            raise ValueError(f"{self.name}: output {name!r} is not defined")
        self.outputs.append(name)

    def _constant(self, name: str, shape: list[int], dtype: str, key: str, init) -> str:
        self.constants.append({"name": self._define(name), "shape": list(shape), "dtype": dtype, key: init})
        return name

    def values(self, name: str, shape: list[int], values: list[float], dtype: str = "f32") -> str:
        if len(values) != math.prod(shape):
            raise ValueError(f"{name}: {len(values)} values for shape {shape}")
        return self._constant(name, shape, dtype, "values", list(values))

    def fill(self, name: str, shape: list[int], value: float, dtype: str = "f32") -> str:
        return self._constant(name, shape, dtype, "fill", value)

    def normal(self, name: str, shape: list[int], std: float, mean: float = 0.0, dtype: str = "f32") -> str:
        init = {"dist": "normal", "mean": _round(mean), "std": _round(std), "seed": self._seed(name)}
        return self._constant(name, shape, dtype, "random", init)

    def uniform(self, name: str, shape: list[int], low: float, high: float, dtype: str = "f32") -> str:
        init = {"dist": "uniform", "low": _round(low), "high": _round(high), "seed": self._seed(name)}
        return self._constant(name, shape, dtype, "random", init)

    # Nodes -----------------------------------------------------------------

    def node(self, op: str, name: str, inputs: list[str], **attrs) -> str:
        """Adds a node; its name is also its output tensor's name."""
        for i in inputs:
            if i not in self._names:
                raise ValueError(f"{self.name}: node {name!r} reads undefined {i!r}")
        n = {"name": self._define(name), "op": op, "inputs": list(inputs)}
        if attrs:
            n["attrs"] = attrs
        self.nodes.append(n)
        return name

    def document(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "constants": self.constants,
            "nodes": self.nodes,
        }

    def text(self) -> str:
        return to_text(self.document()) + "\n"


# --------------------------------------------------------------------------
# Layer helpers (weights at realistic scales)
# --------------------------------------------------------------------------

def he_std(fan_in: int) -> float:
    """He/Kaiming normal std for layers followed by ReLU."""
    return math.sqrt(2.0 / fan_in)


def lecun_std(fan_in: int) -> float:
    """1/sqrt(fan_in): unit-variance outputs for unit-variance inputs."""
    return 1.0 / math.sqrt(fan_in)


def bias_bound(fan_in: int) -> float:
    """PyTorch's default bias init range: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return 1.0 / math.sqrt(fan_in)


def linear(g: GraphBuilder, x: str, name: str, fan_in: int, fan_out: int, std: float, out: str | None = None) -> str:
    """x @ W + b as MatMul then Add (the ONNX export of nn.Linear / Gemm-free form)."""
    w = g.normal(f"{name}.weight", [fan_in, fan_out], std)
    b_bound = bias_bound(fan_in)
    b = g.uniform(f"{name}.bias", [fan_out], -b_bound, b_bound)
    mm = g.node("MatMul", f"{name}.matmul", [x, w])
    return g.node("Add", out or name, [mm, b])


def conv(g: GraphBuilder, x: str, name: str, cin: int, cout: int, k: int,
         stride: int = 1, pad: int = 0, bias: bool = True) -> str:
    """A 2-D convolution with He-initialized OIHW weights and an optional bias."""
    fan_in = cin * k * k
    inputs = [x, g.normal(f"{name}.weight", [cout, cin, k, k], he_std(fan_in))]
    if bias:
        b_bound = bias_bound(fan_in)
        inputs.append(g.uniform(f"{name}.bias", [cout], -b_bound, b_bound))
    return g.node("Conv", name, inputs, strides=[stride, stride], pads=[pad] * 4)


def batchnorm(g: GraphBuilder, x: str, name: str, c: int) -> str:
    """Inference BatchNormalization with trained-looking statistics."""
    scale = g.normal(f"{name}.scale", [c], 0.1, mean=1.0)
    bias = g.normal(f"{name}.bias", [c], 0.1)
    mean = g.normal(f"{name}.mean", [c], 0.1)
    var = g.uniform(f"{name}.var", [c], 0.5, 1.5)
    return g.node("BatchNormalization", name, [x, scale, bias, mean, var], epsilon=1e-5)


def layernorm(g: GraphBuilder, x: str, name: str, d: int, eps: float) -> str:
    scale = g.normal(f"{name}.scale", [d], 0.05, mean=1.0)
    bias = g.normal(f"{name}.bias", [d], 0.02)
    return g.node("LayerNormalization", name, [x, scale, bias], axis=-1, epsilon=eps)


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------

def mlp() -> GraphBuilder:
    """784-512-512-10 MLP with ReLU, an inference-mode Dropout and a Softmax."""
    g = GraphBuilder("mlp")
    x = g.input("x", [1, 784])
    h = linear(g, x, "fc1", 784, 512, he_std(784))
    h = g.node("Relu", "relu1", [h])
    h = g.node("Dropout", "dropout1", [h])
    h = linear(g, h, "fc2", 512, 512, he_std(512))
    h = g.node("Relu", "relu2", [h])
    logits = linear(g, h, "fc3", 512, 10, lecun_std(512), out="logits")
    g.output(g.node("Softmax", "probs", [logits], axis=-1))
    return g


def bert_layer() -> GraphBuilder:
    """One BERT-base encoder layer (post-LN), sequence 128, batch 1."""
    seq, hidden, heads, ffn = 128, 768, 12, 3072
    head_dim = hidden // heads
    g = GraphBuilder("bert_layer")
    x = g.input("hidden", [1, seq, hidden])
    mask = g.input("mask", [1, 1, 1, seq])

    def heads_of(name: str, perm: list[int]) -> str:
        p = linear(g, x, f"attn.{name}", hidden, hidden, lecun_std(hidden))
        r = g.node("Reshape", f"attn.{name}.reshape", [p], shape=[1, seq, heads, head_dim])
        return g.node("Transpose", f"attn.{name}.transpose", [r], perm=perm)

    q = heads_of("query", [0, 2, 1, 3])  # [1, 12, 128, 64]
    kt = heads_of("key", [0, 2, 3, 1])   # [1, 12, 64, 128]
    v = heads_of("value", [0, 2, 1, 3])  # [1, 12, 128, 64]
    scale = g.values("attn.scale", [], [1.0 / math.sqrt(head_dim)])
    s = g.node("MatMul", "attn.scores", [q, kt])
    s = g.node("Mul", "attn.scores.scaled", [s, scale])
    s = g.node("Add", "attn.scores.masked", [s, mask])
    p = g.node("Softmax", "attn.probs", [s], axis=-1)
    c = g.node("MatMul", "attn.context", [p, v])
    c = g.node("Transpose", "attn.context.transpose", [c], perm=[0, 2, 1, 3])
    c = g.node("Reshape", "attn.context.reshape", [c], shape=[1, seq, hidden])
    a = linear(g, c, "attn.output", hidden, hidden, lecun_std(hidden))
    a = g.node("Add", "attn.residual", [a, x])
    a = layernorm(g, a, "attn.layernorm", hidden, 1e-12)

    f = linear(g, a, "ffn.intermediate", hidden, ffn, lecun_std(hidden))
    f = g.node("Gelu", "ffn.gelu", [f])
    f = linear(g, f, "ffn.output", ffn, hidden, lecun_std(ffn))
    f = g.node("Add", "ffn.residual", [f, a])
    g.output(layernorm(g, f, "out", hidden, 1e-12))
    return g


def resnet_blocks() -> GraphBuilder:
    """Three 64-channel basic blocks, one stride-2 block to 128 channels, a classifier."""
    g = GraphBuilder("resnet_blocks")
    x = g.input("x", [1, 64, 56, 56])

    def basic_block(x: str, name: str, cin: int, cout: int, stride: int) -> str:
        h = conv(g, x, f"{name}.conv1", cin, cout, 3, stride=stride, pad=1, bias=False)
        h = batchnorm(g, h, f"{name}.bn1", cout)
        h = g.node("Relu", f"{name}.relu1", [h])
        h = conv(g, h, f"{name}.conv2", cout, cout, 3, pad=1, bias=False)
        h = batchnorm(g, h, f"{name}.bn2", cout)
        shortcut = x
        if stride != 1 or cin != cout:
            shortcut = conv(g, x, f"{name}.downsample.conv", cin, cout, 1, stride=stride, bias=False)
            shortcut = batchnorm(g, shortcut, f"{name}.downsample.bn", cout)
        h = g.node("Add", f"{name}.add", [h, shortcut])
        return g.node("Relu", f"{name}.relu", [h])

    for i in range(3):
        x = basic_block(x, f"layer1.{i}", 64, 64, 1)   # [1, 64, 56, 56]
    x = basic_block(x, "layer2.0", 64, 128, 2)         # [1, 128, 28, 28]
    x = g.node("GlobalAveragePool", "avgpool", [x])    # [1, 128, 1, 1]
    x = g.node("Flatten", "flatten", [x], axis=1)      # [1, 128]
    g.output(linear(g, x, "fc", 128, 10, lecun_std(128), out="logits"))
    return g


def inception_block() -> GraphBuilder:
    """GoogLeNet inception 3a on [1, 192, 28, 28], a smaller block with one Conv+BN, avg pool."""
    g = GraphBuilder("inception_block")
    x = g.input("x", [1, 192, 28, 28])

    def conv_relu(x: str, name: str, cin: int, cout: int, k: int, pad: int = 0) -> str:
        return g.node("Relu", f"{name}.relu", [conv(g, x, name, cin, cout, k, pad=pad)])

    def conv_bn_relu(x: str, name: str, cin: int, cout: int, k: int, pad: int = 0) -> str:
        h = conv(g, x, name, cin, cout, k, pad=pad, bias=False)
        h = batchnorm(g, h, f"{name}.bn", cout)
        return g.node("Relu", f"{name}.relu", [h])

    def block(x: str, name: str, cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int,
              cp: int, bn_on_3x3: bool = False) -> str:
        b1 = conv_relu(x, f"{name}.branch1", cin, c1, 1)
        b2 = conv_relu(x, f"{name}.branch2.reduce", cin, c3r, 1)
        conv3 = conv_bn_relu if bn_on_3x3 else conv_relu
        b2 = conv3(b2, f"{name}.branch2.conv", c3r, c3, 3, pad=1)
        b3 = conv_relu(x, f"{name}.branch3.reduce", cin, c5r, 1)
        b3 = conv_relu(b3, f"{name}.branch3.conv", c5r, c5, 5, pad=2)
        b4 = g.node("MaxPool", f"{name}.branch4.pool", [x], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
        b4 = conv_relu(b4, f"{name}.branch4.proj", cin, cp, 1)
        return g.node("Concat", f"{name}.concat", [b1, b2, b3, b4], axis=1)

    x = block(x, "inception3a", 192, 64, 96, 128, 16, 32, 32)                 # [1, 256, 28, 28]
    x = block(x, "inception3b", 256, 32, 48, 64, 8, 16, 16, bn_on_3x3=True)   # [1, 128, 28, 28]
    g.output(g.node("AveragePool", "pool", [x], kernel_shape=[2, 2], strides=[2, 2]))  # [1, 128, 14, 14]
    return g


def transpose_chain() -> GraphBuilder:
    """Transpose, its inverse, a no-op Reshape and an Identity before a MatMul."""
    g = GraphBuilder("transpose_chain")
    x = g.input("x", [1, 16, 32])
    h = g.node("Transpose", "t1", [x], perm=[2, 0, 1])             # [32, 1, 16]
    h = g.node("Transpose", "t2", [h], perm=[1, 2, 0])             # [1, 16, 32]
    h = g.node("Reshape", "same_shape", [h], shape=[0, -1, 32])    # [1, 16, 32]
    h = g.node("Identity", "identity", [h])
    w = g.normal("w", [32, 24], lecun_std(32))
    g.output(g.node("MatMul", "y", [h, w]))                        # [1, 16, 24]
    return g


MODELS = {
    "mlp.json": mlp,
    "bert_layer.json": bert_layer,
    "resnet_blocks.json": resnet_blocks,
    "inception_block.json": inception_block,
    "transpose_chain.json": transpose_chain,
}


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def write_all(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for file, build in MODELS.items():
        path = out / file
        path.write_text(build().text(), encoding="utf-8", newline="\n")
        written.append(path)
    return written


def check(examples: Path) -> int:
    """Regenerates into a temporary directory and compares with `examples`."""
    stale = 0
    with tempfile.TemporaryDirectory() as tmp:
        for fresh in write_all(Path(tmp)):
            committed = examples / fresh.name
            want = fresh.read_text(encoding="utf-8")
            if not committed.exists():
                print(f"missing: {committed}")
                stale += 1
                continue
            have = committed.read_text(encoding="utf-8")
            if have != want:
                stale += 1
                diff = list(difflib.unified_diff(
                    have.splitlines(keepends=True), want.splitlines(keepends=True),
                    fromfile=str(committed), tofile=f"regenerated/{fresh.name}"))
                sys.stdout.writelines(diff[:40])
                if len(diff) > 40:
                    print(f"... ({len(diff) - 40} more diff lines)")
    if stale:
        print(f"{stale} example file(s) out of date; run: python3 tools/gen_examples.py")
        return 1
    print(f"examples up to date ({len(MODELS)} files)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=EXAMPLES, help="output directory (default: examples/)")
    ap.add_argument("--check", action="store_true", help="regenerate into a temp dir and diff against --out; exit 1 if stale")
    args = ap.parse_args(argv)
    if args.check:
        return check(args.out)
    for path in write_all(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
