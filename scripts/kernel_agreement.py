#!/usr/bin/env python3
"""Does the roofline cost model predict the CPU backend? Per kernel, over the corpus.

Usage:
    scripts/kernel_agreement.py [--models a,b,...] [--threads 1] [--runs 10]
        [--target cpu|PROFILE.json] [--eqopt target/release/eqopt]
        [--out docs/cost-model-agreement.md]

For every model of corpus/index.json: `eqopt bench MODEL --optimize --per-kernel
--json` (each kernel's median wall time over --runs runs, and its roofline time on
--target for that thread count). The report gives, over all kernels of the corpus
together and per model and per kernel kind: Spearman's rank correlation of
predicted and measured times, the median and spread of measured / predicted, and
the predicted and measured totals. `--target cpu` is the calibrated profile when
`eqopt calibrate` has written one (run it first on a quiet machine), else the
built-in guess. Needs only the standard library. Writes the Markdown atomically.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"


def ranks(xs: list[float]) -> list[float]:
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for o in order[i : j + 1]:
            r[o] = (i + j) / 2 + 1
        i = j + 1
    return r


def spearman(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    if n < 2:
        return float("nan")
    rx, ry = ranks(xs), ranks(ys)
    m = (n + 1) / 2
    sxy = sum((a - m) * (b - m) for a, b in zip(rx, ry))
    sxx = sum((a - m) ** 2 for a in rx)
    syy = sum((b - m) ** 2 for b in ry)
    return sxy / (sxx * syy) ** 0.5 if sxx and syy else float("nan")


def quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def summarize(kernels: list[dict]) -> tuple:
    pred = [k["predicted_s"] for k in kernels]
    meas = [k["measured_s"] for k in kernels]
    ratios = [m / p for m, p in zip(meas, pred)]
    return (
        len(kernels),
        spearman(pred, meas),
        quantile(ratios, 0.5),
        quantile(ratios, 0.1),
        quantile(ratios, 0.9),
        sum(pred) * 1e3,
        sum(meas) * 1e3,
    )


def row(label: str, s: tuple) -> str:
    n, rho, med, lo, hi, pred_ms, meas_ms = s
    return f"| {label} | {n} | {rho:.3f} | {med:.2f} | {lo:.2f} – {hi:.2f} | {pred_ms:.2f} | {meas_ms:.2f} |"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--target", default="cpu")
    ap.add_argument("--eqopt", default=str(ROOT / "target" / "release" / "eqopt"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "cost-model-agreement.md"))
    a = ap.parse_args()
    eqopt = Path(a.eqopt)
    if not eqopt.is_file():
        print(f"kernel_agreement: {eqopt} not found; build it with cargo build --release", file=sys.stderr)
        return 2
    index = json.loads((CORPUS / "index.json").read_text())
    wanted = [m for m in a.models.split(",") if m]
    start = time.time()
    per_model: list[tuple[str, list[dict] | str]] = []
    profile = {"name": a.target, "description": "?"}
    for entry in index["models"]:
        name = entry["name"]
        if wanted and name not in wanted:
            continue
        model = CORPUS / entry["dir"] / "model.onnx"
        print(f"[kernel_agreement] {name}", file=sys.stderr)
        cmd = [str(eqopt), "bench", str(model), "--optimize", "--per-kernel", "--json", "--target", a.target,
               "--threads", str(a.threads), "--runs", str(a.runs), "--warmup", "2"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            per_model.append((name, (out.stderr.strip() or out.stdout.strip()).splitlines()[-1][:200]))
            continue
        report = json.loads(out.stdout)
        profile = report["target"]
        per_model.append((name, report["per_kernel"]["kernels"]))
    all_kernels = [k for _, ks in per_model if isinstance(ks, list) for k in ks]
    if not all_kernels:
        print("kernel_agreement: no model ran", file=sys.stderr)
        return 1
    load = os.getloadavg()
    header = [
        "| kernels | n | rank correlation | median measured / predicted | 10th – 90th percentile | predicted total (ms) | measured total (ms) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines = [
        "# The roofline model against the CPU backend, kernel by kernel",
        "",
        "<!-- Generated by scripts/kernel_agreement.py; do not edit by hand, rerun it. -->",
        "",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC  ",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})  ",
        f"Profile: `--target {a.target}`: {profile['description']}  ",
        f"Method: `eqopt bench MODEL --optimize --per-kernel --json`, {a.threads} thread(s), "
        f"2 warm-ups, median of {a.runs} runs per kernel. Prediction: `max(FLOPs / peak, bytes / bandwidth) + overhead` "
        f"from each kernel's work as the kernel program states it (eqopt-kir `KernelWork`). Run time {time.time() - start:.0f} s.",
        "",
        "## All corpus kernels",
        "",
        *header,
        row("all", summarize(all_kernels)),
        "",
        "## By kernel kind",
        "",
        *header,
    ]
    for kind in sorted({k["kind"] for k in all_kernels}):
        lines.append(row(kind, summarize([k for k in all_kernels if k["kind"] == kind])))
    lines += ["", "## By model", "", *header]
    for name, ks in per_model:
        lines.append(row(name, summarize(ks)) if isinstance(ks, list) else f"| {name} | – | error: {ks} | | | | |")
    out = Path(a.out)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".kernel_agreement")
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
