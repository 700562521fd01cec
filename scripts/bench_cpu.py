#!/usr/bin/env python3
"""Time eqopt's CPU backend against ONNX Runtime on the corpus, in the same run.

Usage:
    $(scripts/pyenv.sh --peers) scripts/bench_cpu.py [--models a,b,...] [--threads 1,2]
        [--runs 20] [--rounds 3] [--eqopt target/release/eqopt] [--out docs/cpu-backend-bench.md]

Every model of corpus/index.json is optimized once (`eqopt optimize MODEL -o
graph.json`, target cpu, into a temporary directory). Then, for every thread
count, --rounds rounds of, back to back: ONNX Runtime (ORT_ENABLE_ALL,
intra-op threads = T, 3 warm-ups, then --runs timed runs), `eqopt bench
graph.json --threads T --runs N --warmup 3`, and `eqopt bench MODEL` (the
unoptimized graph through the same backend, so the optimizer's own gain
shows). Each reports the median of its runs; the table gives the median over
the rounds of each, the median over the rounds of each round's ratio eqopt /
ORT (below 1 is faster) with its smallest and largest, and unoptimized /
optimized. The machine is shared and noisy, which is why each round times the
peers back to back and the spread of the per-round ratios is shown. Writes a
generated Markdown report atomically. A failing model is recorded, not fatal.
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
WARMUP = 3


def ort_median(model: Path, threads: int, runs: int, feeds: dict) -> float:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    for _ in range(WARMUP):
        sess.run(None, feeds)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2] * 1e3


def ort_feeds(model: Path) -> dict:
    import numpy as np

    inputs = model.parent / "inputs.npz"
    with np.load(inputs) as z:
        return {k: z[k] for k in z.files}


def eqopt_median(eqopt: Path, model: Path, threads: int, runs: int) -> tuple[float, int]:
    cmd = [str(eqopt), "bench", str(model), "--threads", str(threads), "--runs", str(runs), "--warmup", str(WARMUP)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip() or out.stdout.strip())
    median = float(re.search(r"median ([0-9.]+) ms", out.stdout).group(1))
    kernels = int(re.search(r": (\d+) kernels", out.stdout).group(1))
    return median, kernels


def optimize(eqopt: Path, model: Path, out_dir: Path) -> Path:
    graph = out_dir / f"{model.parent.name}.json"
    cmd = [str(eqopt), "optimize", str(model), "-o", str(graph), "-q"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip() or out.stdout.strip())
    return graph


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--eqopt", default=str(ROOT / "target" / "release" / "eqopt"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "cpu-backend-bench.md"))
    a = ap.parse_args()
    eqopt = Path(a.eqopt)
    if not eqopt.is_file():
        print(f"bench_cpu: {eqopt} not found; build it with cargo build --release", file=sys.stderr)
        return 2
    index = json.loads((CORPUS / "index.json").read_text())
    wanted = [m for m in a.models.split(",") if m]
    threads = [int(t) for t in a.threads.split(",")]
    rounds = max(1, a.rounds)
    rows = []
    start = time.time()
    tmp_dir = tempfile.TemporaryDirectory(prefix="bench_cpu")
    for entry in index["models"]:
        name = entry["name"]
        if wanted and name not in wanted:
            continue
        model = CORPUS / entry["dir"] / "model.onnx"
        try:
            graph = optimize(eqopt, model, Path(tmp_dir.name))
        except Exception as e:
            for t in threads:
                rows.append((name, t, None, None, None, None, None, None, str(e).splitlines()[-1][:200]))
            continue
        for t in threads:
            print(f"[bench_cpu] {name} {t} thread(s)", file=sys.stderr)
            try:
                ort_ms, eq_ms, raw_ms = [], [], []
                for _ in range(rounds):
                    ort_ms.append(ort_median(model, t, a.runs, ort_feeds(model)))
                    ms, kernels = eqopt_median(eqopt, graph, t, a.runs)
                    eq_ms.append(ms)
                    ms, raw_kernels = eqopt_median(eqopt, model, t, a.runs)
                    raw_ms.append(ms)
                ratios = [e / o for e, o in zip(eq_ms, ort_ms)]
                rows.append((name, t, kernels, median(eq_ms), raw_kernels, median(raw_ms), median(ort_ms), ratios, None))
            except Exception as e:  # one model's failure is reported, not fatal
                rows.append((name, t, None, None, None, None, None, None, str(e).splitlines()[-1][:200]))
    tmp_dir.cleanup()
    import onnxruntime as ort

    load = os.getloadavg()
    lines = [
        "# CPU backend against ONNX Runtime",
        "",
        "<!-- Generated by scripts/bench_cpu.py; do not edit by hand, rerun it. -->",
        "",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC  ",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})  ",
        f"Tools: onnxruntime {ort.__version__} (ORT_ENABLE_ALL), eqopt `optimize` (target cpu) then `bench`  ",
        f"Method: per model and thread count, {rounds} rounds of ONNX Runtime, eqopt optimized, eqopt unoptimized, back to back; {WARMUP} warm-ups and {a.runs} timed runs each, the median per run; the table gives the median over the rounds, and the per-round eqopt / ORT ratios' median and range. Run time {time.time() - start:.0f} s.",
        "",
        "| model | threads | eqopt kernels | eqopt median (ms) | unoptimized: kernels, median (ms) | ORT median (ms) | eqopt / ORT | ratio range | optimizer's gain |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, t, kernels, eq_ms, raw_kernels, raw_ms, ort_ms, ratios, err in rows:
        if err:
            lines.append(f"| {name} | {t} | – | error: {err} | – | – | – | – | – |")
        else:
            lines.append(
                f"| {name} | {t} | {kernels} | {eq_ms:.2f} | {raw_kernels}, {raw_ms:.2f} | {ort_ms:.2f} | {median(ratios):.2f} | {min(ratios):.2f}–{max(ratios):.2f} | {raw_ms / eq_ms:.2f}x |"
            )
    out = Path(a.out)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".bench_cpu")
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
