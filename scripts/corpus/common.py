"""Shared corpus machinery: the model list and constants, BuildError, atomic and
deterministic file writes (.npz with fixed zip dates, model.onnx, JSON), seeded
generators, ONNX Runtime runs and model checks, the `Built` record, and the per-model
meta.json / index.json writers."""

from __future__ import annotations

import collections
import io
import json
import os
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

LIGHT_MODELS = {
    "alexnet": "light_bvlc_alexnet.onnx",
    "densenet121": "light_densenet121.onnx",
    "inception_v1": "light_inception_v1.onnx",
    "inception_v2": "light_inception_v2.onnx",
    "resnet50": "light_resnet50.onnx",
    "shufflenet": "light_shufflenet.onnx",
    "squeezenet": "light_squeezenet.onnx",
    "vgg19": "light_vgg19.onnx",
    "zfnet512": "light_zfnet512.onnx",
}
ALL_MODELS = [*LIGHT_MODELS, "minilm"]
DEFAULT_SEED = 0
EXTERNAL_DATA_LIMIT = int(1.9e9)  # protobuf bytes above which weights go to model.onnx.data
NPZ_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can carry


class BuildError(Exception):
    """A model could not be built or failed one of its checks."""


# --------------------------------------------------------------------------------------
# Files: atomic, deterministic writes
# --------------------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it onto `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz archive like np.savez's, but with fixed zip dates (np.savez stamps the
    current time into every entry, so two runs would differ)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, arr in arrays.items():
            info = zipfile.ZipInfo(key + ".npy", date_time=NPZ_DATE)
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an .npz and check that np.load gives back the same keys (names may hold '/')
    and bit-identical arrays."""
    data = npz_bytes(arrays)
    with np.load(io.BytesIO(data), allow_pickle=False) as back:
        if sorted(back.files) != sorted(arrays):
            raise BuildError(f"{path.name}: np.load keys {back.files} != {list(arrays)}")
        for key, arr in arrays.items():
            got = back[key]
            if got.dtype != arr.dtype or got.shape != arr.shape or got.tobytes() != arr.tobytes():
                raise BuildError(f"{path.name}: array {key!r} does not round-trip")
    write_atomic(path, data)


def json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2) + "\n").encode()


def write_model(dir_: Path, model: onnx.ModelProto) -> None:
    """Write model.onnx (weights inside, or in model.onnx.data past the protobuf limit)."""
    if model.ByteSize() <= EXTERNAL_DATA_LIMIT:
        write_atomic(dir_ / "model.onnx", model.SerializeToString(deterministic=True))
        stale = dir_ / "model.onnx.data"
        if stale.exists():
            stale.unlink()
        return
    # Too big for one protobuf: save into a temporary folder, then move both files.
    with tempfile.TemporaryDirectory(dir=dir_) as tmp:
        onnx.save_model(
            model,
            os.path.join(tmp, "model.onnx"),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location="model.onnx.data",
            size_threshold=1024,
        )
        os.replace(os.path.join(tmp, "model.onnx.data"), dir_ / "model.onnx.data")
        os.replace(os.path.join(tmp, "model.onnx"), dir_ / "model.onnx")


# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------


def rng_for(seed: int, *parts: str) -> np.random.Generator:
    """A generator that depends only on the seed and the given names (not on call order),
    so building a subset of models or tensors gives the same values."""
    return np.random.default_rng([seed, *(zlib.crc32(p.encode()) for p in parts)])


def default_opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def value_infos(values, arrays: dict[str, np.ndarray]) -> list[dict]:
    return [
        {"name": v.name, "shape": list(arrays[v.name].shape), "dtype": str(arrays[v.name].dtype)}
        for v in values
    ]


def param_count(model: onnx.ModelProto) -> int:
    return sum(int(np.prod(t.dims, dtype=np.int64)) for t in model.graph.initializer)


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    return dict(sorted(collections.Counter(n.op_type for n in model.graph.node).items()))


def ort_session(model: onnx.ModelProto, options: ort.SessionOptions | None = None):
    return ort.InferenceSession(
        model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
    )


@dataclass
class OrtRun:
    outputs: dict[str, np.ndarray]
    session_s: float
    first_run_s: float
    warm_run_s: float


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> OrtRun:
    """ONNX Runtime (CPU, default options) on `feeds`, with timings. The outputs are
    those of the first run; a second run is timed warm and must agree bit for bit."""
    t0 = time.perf_counter()
    sess = ort_session(model)
    t1 = time.perf_counter()
    names = [o.name for o in sess.get_outputs()]
    first = sess.run(names, feeds)
    t2 = time.perf_counter()
    second = sess.run(names, feeds)
    t3 = time.perf_counter()
    for name, a, b in zip(names, first, second):
        if a.tobytes() != b.tobytes():
            raise BuildError(f"ONNX Runtime gave different values for {name!r} on two runs")
    return OrtRun(dict(zip(names, first)), t1 - t0, t2 - t1, t3 - t2)


def check_model(model: onnx.ModelProto) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise BuildError(f"onnx.checker rejected the model: {exc}") from exc


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


@dataclass
class Built:
    """A model ready to be written, plus what the report prints about it."""

    name: str
    model: onnx.ModelProto
    inputs: dict[str, np.ndarray]
    ort: OrtRun
    source: str
    seed: int
    summary: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------
# Output folder
# --------------------------------------------------------------------------------------


def meta_of(b: Built) -> dict:
    g = b.model.graph
    return {
        "name": b.name,
        "source": b.source,
        "opset": default_opset(b.model),
        "inputs": value_infos(g.input, b.inputs),
        "outputs": value_infos(g.output, b.ort.outputs),
        "nodes": len(g.node),
        "params": param_count(b.model),
        "op_counts": op_counts(b.model),
        "seed": b.seed,
    }


def write_built(out: Path, b: Built) -> dict[str, int]:
    d = out / b.name
    d.mkdir(parents=True, exist_ok=True)
    write_model(d, b.model)
    write_npz(d / "inputs.npz", b.inputs)
    write_npz(d / "expected.npz", b.ort.outputs)
    write_atomic(d / "meta.json", json_bytes(meta_of(b)))
    return {p.name: p.stat().st_size for p in sorted(d.iterdir()) if not p.name.startswith(".")}


def write_index(out: Path) -> list[str]:
    """index.json: every model folder of `out` with a meta.json, in the canonical order."""
    entries = []
    present = [n for n in ALL_MODELS if (out / n / "meta.json").exists()]
    extra = sorted(p.parent.name for p in out.glob("*/meta.json") if p.parent.name not in ALL_MODELS)
    for n in present + extra:
        meta = json.loads((out / n / "meta.json").read_text())
        entries.append(
            {
                "name": n,
                "dir": n,
                "opset": meta["opset"],
                "nodes": meta["nodes"],
                "params": meta["params"],
                "seed": meta["seed"],
                "source": meta["source"],
            }
        )
    write_atomic(out / "index.json", json_bytes({"models": entries}))
    return [e["name"] for e in entries]
