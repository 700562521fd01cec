"""Running the cases and writing files: ONNX Runtime reference outputs, building each ok
and bad case, writing the whole fixture tree, and the --check / write modes."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from .common import BAD, OK, Case, load_npz, npz_bytes, serialize
from .readme import readme


def ort_session(model: bytes | str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def ort_run(model: bytes | str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    sess = ort_session(model)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def build_ok(name: str, out: Path) -> list[Path]:
    """Builds one ok case into out/ok/; returns the files written."""
    opset, doc, fn, kw = OK[name]
    c = Case(name, opset, doc, ir=kw.get("ir"))
    fn(c)
    extra_inputs = []
    if kw.get("inits_as_inputs"):
        extra_inputs = [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in c.inits]

    # `reference`: ORT cannot run this model; expected outputs come from numpy instead.
    reference = kw.get("reference")
    run = (lambda _model, feeds: reference(feeds)) if reference else ort_run

    # First pass without output shapes, to learn them from the reference.
    probe = run(serialize(c.model(extra_inputs=extra_inputs)), c.feeds)
    model = c.model({k: v.shape for k, v in probe.items()}, extra_inputs=extra_inputs)

    d = out / "ok"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.onnx"
    files = [path]
    if kw.get("external"):
        loc = kw["external"]
        assert not (d / loc).exists()
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=loc, size_threshold=0)
        files.append(d / loc)
        for t in onnx.load(str(path), load_external_data=False).graph.initializer:
            assert t.data_location == TensorProto.EXTERNAL, t.name
    else:
        path.write_bytes(serialize(model))

    onnx.checker.check_model(str(path), full_check=True)
    expected = run(str(path), c.feeds)
    if kw.get("crosscheck"):  # validates a numpy reference against ORT on a case ORT can run
        for k, v in kw["crosscheck"](c.feeds).items():
            assert np.allclose(v, expected[k], rtol=1e-5, atol=1e-6), f"{name}: numpy reference disagrees on {k}"
    for k, v in probe.items():
        assert np.array_equal(v, expected[k]), f"{name}: {k} changed between ORT runs"
    for k, v in expected.items():
        assert np.all(np.isfinite(v)) if v.dtype.kind == "f" else True, f"{name}: non-finite {k}"
    (d / f"{name}.inputs.npz").write_bytes(npz_bytes(c.feeds))
    (d / f"{name}.expected.npz").write_bytes(npz_bytes(expected))
    files += [d / f"{name}.inputs.npz", d / f"{name}.expected.npz"]
    return files


def build_bad(name: str, out: Path) -> list[Path]:
    d = out / "bad"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.onnx"
    path.write_bytes(BAD[name][1]())
    return [path]


def write_all(out: Path) -> list[Path]:
    """Generates every file into `out` (which should be empty); returns them."""
    files = []
    for name in OK:
        try:
            files += build_ok(name, out)
        except Exception as e:  # name the case, keep the cause
            raise RuntimeError(f"ok case {name}: {e}") from e
    for name in BAD:
        files += build_bad(name, out)
    (out / "README.md").write_text(readme(), encoding="utf-8", newline="\n")
    files.append(out / "README.md")
    return files


def _close_enough(have: bytes, want: bytes) -> bool:
    """Same arrays (names, dtypes, shapes) with values equal up to kernel rounding."""
    try:
        a, b = load_npz(have), load_npz(want)
    except Exception:
        return False
    if list(a) != list(b):
        return False
    for k in a:
        if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape:
            return False
        if a[k].dtype.kind == "f":
            if not np.allclose(a[k], b[k], rtol=1e-4, atol=1e-5):
                return False
        elif not np.array_equal(a[k], b[k]):
            return False
    return True


def listing(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for sub in ("ok", "bad") if (root / sub).is_dir()
            for p in (root / sub).rglob("*") if p.is_file()}


def check(committed: Path) -> int:
    """Regenerates into a temporary directory and compares with `committed`."""
    stale: list[str] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        fresh_root = Path(tmp)
        fresh = write_all(fresh_root)
        rels = [p.relative_to(fresh_root).as_posix() for p in fresh]
        for rel in rels:
            want = (fresh_root / rel).read_bytes()
            have_path = committed / rel
            if not have_path.exists():
                stale.append(f"missing: {have_path}")
                continue
            have = have_path.read_bytes()
            if have == want:
                continue
            if rel.endswith(".expected.npz"):
                stem = rel[: -len(".expected.npz")]
                same_model = all(
                    (committed / f"{stem}{ext}").exists()
                    and (committed / f"{stem}{ext}").read_bytes() == (fresh_root / f"{stem}{ext}").read_bytes()
                    for ext in (".onnx", ".inputs.npz"))
                if same_model and _close_enough(have, want):
                    notes.append(rel)
                    continue
            stale.append(f"differs: {have_path}")
        for extra in sorted(listing(committed) - set(rels)):
            stale.append(f"not generated (stale?): {committed / extra}")
    for rel in notes:
        print(f"note: {rel} differs only by floating-point rounding (other CPU kernels?); accepted")
    if stale:
        for line in stale:
            print(line)
        print(f"{len(stale)} fixture file(s) out of date; run: $(scripts/pyenv.sh) tools/gen_onnx_fixtures.py")
        return 1
    print(f"ONNX fixtures up to date ({len(rels)} files: {len(OK)} ok cases, {len(BAD)} bad cases)")
    return 0


def write(out: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp)
        files = write_all(stage)
        for f in files:
            rel = f.relative_to(stage)
            dst = out / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dst)
        rels = {f.relative_to(stage).as_posix() for f in files}
    for extra in sorted(listing(out) - rels):
        print(f"warning: {out / extra} is not produced by this script (delete it if stale)")
    print(f"wrote {len(rels)} files to {out} ({len(OK)} ok cases, {len(BAD)} bad cases)")
    return 0
