#!/usr/bin/env bash
# Regenerates the experiment results, tables and plots under docs/experiments/
# from the sample experiment files in experiments/ (docs/experiments.md).
#
#   scripts/experiments.sh            # every experiments/*.toml, from scratch
#   scripts/experiments.sh corpus     # one of them
#   RESUME=1 scripts/experiments.sh   # continue an interrupted regeneration
#
# Needs the model corpus (scripts/pyenv.sh --corpus; .venv/bin/python
# scripts/build_corpus.py --out corpus). Runs one combination at a time so the
# measured latencies are not contended; about 30 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
eqopt=target/release/eqopt
if [ ! -f corpus/index.json ]; then
    echo "error: corpus/ is missing: run scripts/pyenv.sh --corpus and .venv/bin/python scripts/build_corpus.py --out corpus" >&2
    exit 1
fi
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for f in experiments/*.toml; do names+=("$(basename "$f" .toml)"); done
fi
for name in "${names[@]}"; do
    out=docs/experiments/$name
    if [ -n "${RESUME:-}" ] && [ -d "$out.partial" ]; then
        "$eqopt" experiment "experiments/$name.toml" --out "$out.partial" --resume
    else
        rm -rf "$out.partial"
        "$eqopt" experiment "experiments/$name.toml" --out "$out.partial"
    fi
    # The finished results replace the old ones in one rename.
    rm -rf "$out.old"
    if [ -d "$out" ]; then mv "$out" "$out.old"; fi
    mv "$out.partial" "$out"
    rm -rf "$out.old"
done
