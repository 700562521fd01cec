#!/usr/bin/env python3
"""The real-weights experiment of the accuracy budget, on MiniLM-L6.

Usage:
    .venv/bin/python scripts/approx_experiment.py [--budgets 1e-3,3e-3,1e-2,3e-2]
        [--eqopt target/release/eqopt] [--runs 10] [--out docs/approximate-minilm.md]

Real sentences, tokenized by the MiniLM package's own tokenizer (as the corpus
builder does), are split in two: CALIBRATION sentences are the input sets
`eqopt optimize --max-error E --calibration DIR` measures the error on, and
held-out EVALUATION sentences are what the table reports. For the exact graph
and each budget E the script:

* optimizes corpus/minilm/model.onnx (`-o` a graph.json, `--report`),
* runs the result on the CPU backend for every evaluation sentence
  (`eqopt run --inputs`) and compares its sentence embedding with the
  original f32 model's (ONNX Runtime): cosine similarity (reported as
  1 − cosine, worst and mean) and relative L2 error (worst),
* times it (`eqopt bench --threads 1`, median), back to back with the exact graph,
* reads the estimated/measured error from the report and the size of the
  weights file written beside the graph (`.safetensors`, f16 at 2 bytes),

and the same for light CNNs of the corpus with top-1 agreement on seeded
random images instead of cosines; writes a generated Markdown report (atomically). Needs the corpus
(`scripts/build_corpus.py`) and the venv of `scripts/pyenv.sh --corpus`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from corpus.minilm import load_tokenizer, minilm_files, tokenize  # noqa: E402

CALIBRATION = [
    "A man is eating food.",
    "The new movie is awesome.",
    "A woman is playing the violin.",
    "Two dogs are running through a field.",
]
EVALUATION = [
    "A man is eating a piece of bread.",
    "The cat sits outside.",
    "A man is playing guitar.",
    "The new movie is so great.",
    "A woman is reading a book in the park.",
    "Children are playing football on the beach.",
    "The stock market fell sharply on Monday.",
    "He drove the car to the station late at night.",
]
MODEL = ROOT / "corpus" / "minilm" / "model.onnx"
# Light CNNs of the corpus (seeded random weights): top-1 agreement with their
# own f32 outputs on seeded random images.
CNNS = ["squeezenet", "shufflenet", "resnet50"]
CNN_INPUTS = 16


# The calibrated profile of this machine (written by `eqopt calibrate` into a
# private config directory at the start), so extraction knows what bf16
# arithmetic is worth here.
ENV = dict(os.environ)


def eqopt(exe: str, *args: str) -> str:
    r = subprocess.run([exe, *args], capture_output=True, text=True, cwd=ROOT, env=ENV)
    if r.returncode != 0:
        raise SystemExit(f"eqopt {' '.join(args)} failed:\n{r.stderr}")
    return r.stdout


def save_npz(path: Path, feeds: dict) -> None:
    np.savez(path, **feeds)


def median_ms(exe: str, graph: Path, runs: int) -> float:
    out = eqopt(exe, "bench", str(graph), "--threads", "1", "--runs", str(runs), "--warmup", "3")
    m = re.search(r"median ([0-9.]+) ms", out)
    if not m:
        raise SystemExit(f"no median in eqopt bench output:\n{out}")
    return float(m.group(1))


def embeddings(exe: str, graph: Path, sets: list[Path], work: Path) -> list[np.ndarray]:
    out = []
    for k, s in enumerate(sets):
        dst = work / f"emb_{graph.stem}_{k}.npz"
        eqopt(exe, "run", str(graph), "--inputs", str(s), "-o", str(dst))
        out.append(np.load(dst)["sentence_embedding"][0].astype(np.float64))
    return out


def outputs(exe: str, graph: Path, seeds: range, work: Path) -> list[np.ndarray]:
    """The first output of `graph` on the CPU backend for each seeded random input."""
    out = []
    for seed in seeds:
        dst = work / f"out_{graph.stem}_{seed}.npz"
        eqopt(exe, "run", str(graph), "--random-inputs", str(seed), "-o", str(dst))
        z = np.load(dst)
        out.append(z[z.files[0]].reshape(-1).astype(np.float64))
    return out


def cnn_rows(exe: str, budgets: list[float], runs: int, work: Path) -> list[dict]:
    rows = []
    for name in CNNS:
        model = ROOT / "corpus" / name / "model.onnx"
        if not model.exists():
            print(f"[approx_experiment] {name}: not in the corpus, skipped", file=sys.stderr)
            continue
        seeds = range(100, 100 + CNN_INPUTS)
        want = outputs(exe, model, seeds, work)
        exact = work / f"{name}_exact.json"
        for budget in [0.0, *budgets]:
            graph = exact if budget == 0 else work / f"{name}_budget_{budget:g}.json"
            report = work / f"{graph.stem}.report.json"
            args = ["optimize", str(model), "-o", str(graph), "--report", str(report)]
            if budget > 0:
                args += ["--max-error", f"{budget:g}"]
            eqopt(exe, *args)
            b = json.loads(report.read_text()).get("budget") or {}
            got = outputs(exe, graph, seeds, work)
            agree = sum(int(np.argmax(g) == np.argmax(w)) for g, w in zip(got, want))
            rel = max(float(np.linalg.norm(g - w) / np.linalg.norm(w)) for g, w in zip(got, want))
            exact_ms = median_ms(exe, exact, runs)
            ms = exact_ms if budget == 0 else median_ms(exe, graph, runs)
            rows.append(
                {
                    "model": name,
                    "budget": budget,
                    "approx": len(b.get("approx", [])),
                    "measured": b.get("measured_error"),
                    "top1": f"{agree}/{len(want)}",
                    "rel_max": rel,
                    "weights": graph.with_suffix(".safetensors").stat().st_size,
                    "ms": ms,
                    "exact_ms": exact_ms,
                }
            )
            print(f"[approx_experiment] {name} budget {budget:g}: {rows[-1]}", file=sys.stderr)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budgets", default="1e-3,3e-3,1e-2,3e-2")
    ap.add_argument("--eqopt", default=str(ROOT / "target" / "release" / "eqopt"))
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "docs" / "approximate-minilm.md"))
    a = ap.parse_args(argv)
    budgets = [float(b) for b in a.budgets.split(",") if b]
    import onnxruntime as ort

    _, tok_path = minilm_files()
    tok = load_tokenizer(tok_path)
    sess = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ENV["EQOPT_CONFIG_DIR"] = str(work / "config")
        (work / "config" / "targets").mkdir(parents=True)
        eqopt(a.eqopt, "calibrate", "-o", str(work / "config" / "targets" / "cpu.json"))
        cal = work / "calibration"
        cal.mkdir()
        for i, s in enumerate(CALIBRATION):
            save_npz(cal / f"s{i}.npz", tokenize(tok, s))
        evals = []
        for i, s in enumerate(EVALUATION):
            p = work / f"eval{i}.npz"
            save_npz(p, tokenize(tok, s))
            evals.append(p)
        reference = [
            sess.run(["sentence_embedding"], dict(np.load(p)))[0][0].astype(np.float64) for p in evals
        ]
        rows = []
        exact_graph = work / "exact.json"
        points = [(0.0, "f32")] + [(b, act) for act in ("f32", "bf16") for b in budgets]
        for budget, act in points:
            graph = work / ("exact.json" if budget == 0 else f"budget_{budget:g}_{act}.json")
            report = work / f"{graph.stem}.report.json"
            args = ["optimize", str(MODEL), "-o", str(graph), "--report", str(report)]
            if budget > 0:
                args += ["--max-error", f"{budget:g}", "--calibration", str(cal), "--activations", act]
            eqopt(a.eqopt, *args)
            r = json.loads(report.read_text())
            b = r.get("budget")
            embs = embeddings(a.eqopt, graph, evals, work)
            cos = [float(e @ f / (np.linalg.norm(e) * np.linalg.norm(f))) for e, f in zip(embs, reference)]
            rel = [float(np.linalg.norm(e - f) / np.linalg.norm(f)) for e, f in zip(embs, reference)]
            exact_ms = median_ms(a.eqopt, exact_graph, a.runs)
            ms = exact_ms if budget == 0 else median_ms(a.eqopt, graph, a.runs)
            weights = graph.with_suffix(".safetensors").stat().st_size
            rows.append(
                {
                    "budget": budget,
                    "activations": act,
                    "approx": len((b or {}).get("approx", [])),
                    "estimated": (b or {}).get("estimated_error", 0.0),
                    "measured": (b or {}).get("measured_error"),
                    "cos_min": min(cos),
                    "cos_mean": sum(cos) / len(cos),
                    "rel_max": max(rel),
                    "ms": ms,
                    "exact_ms": exact_ms,
                    "weights": weights,
                }
            )
            print(f"[approx_experiment] budget {budget:g} ({act}): {rows[-1]}", file=sys.stderr)
        cnns = cnn_rows(a.eqopt, budgets, a.runs, work)
    now = datetime.datetime.now(datetime.timezone.utc)
    lines = [
        "# MiniLM-L6 under an accuracy budget: real sentences",
        "",
        "<!-- Generated by scripts/approx_experiment.py; do not edit by hand, rerun it. -->",
        "",
        f"Date: {now:%Y-%m-%d %H:%M} UTC  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (load average at the end: "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
        + ")  ",
        f"Calibration sentences (the budget is measured on them): {len(CALIBRATION)}; "
        f"held-out evaluation sentences (the columns below): {len(EVALUATION)}.  ",
        "Reference: the original f32 model in ONNX Runtime. Latency: `eqopt bench --threads 1`, "
        f"median of {a.runs}, each budget timed right after the exact graph (the ratio is the figure to read).",
        "",
        "Activations: `f32` is `--max-error E` alone (weights may be stored in lower precision); "
        "`bf16` adds `--activations bf16` (matrix products may round their activation to bfloat16 "
        "against bf16 weights, run by the AVX-512 BF16 GEMM). The target is this machine's "
        "calibrated profile (`eqopt calibrate`).",
        "",
        "| budget | activations | approximate nodes | estimated error | measured error (calibration) "
        "| 1 − cosine max / mean (held out) | rel. L2 max (held out) | weights file | latency (ms) | / exact |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        measured = "—" if r["measured"] is None else f"{r['measured']:.2e}"
        weights = f"{r['weights'] / 1e6:.1f} MB"
        budget = "exact" if r["budget"] == 0 else f"{r['budget']:g}"
        lines.append(
            f"| {budget} | {r['activations']} | {r['approx']} | {r['estimated']:.2e} | {measured} "
            f"| {1 - r['cos_min']:.2e} / {1 - r['cos_mean']:.2e} | {r['rel_max']:.2e} | {weights} | {r['ms']:.2f} "
            f"| {r['ms'] / r['exact_ms']:.3f} |"
        )
    lines += [
        "",
        f"## Light CNNs (seeded random weights): top-1 agreement on {CNN_INPUTS} seeded random images",
        "",
        "Reference: each model's own outputs on the CPU backend, unoptimized. The budget is measured on "
        "the default seeded input sets.",
        "",
        "| model | budget | approximate nodes | measured error | top-1 agreement | rel. L2 max | weights file "
        "| latency (ms) | / exact |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in cnns:
        measured = "—" if r["measured"] is None else f"{r['measured']:.2e}"
        budget = "exact" if r["budget"] == 0 else f"{r['budget']:g}"
        lines.append(
            f"| {r['model']} | {budget} | {r['approx']} | {measured} | {r['top1']} | {r['rel_max']:.2e} "
            f"| {r['weights'] / 1e6:.1f} MB | {r['ms']:.2f} | {r['ms'] / r['exact_ms']:.3f} |"
        )
    lines.append("")
    text = "\n".join(lines)
    out = Path(a.out)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
