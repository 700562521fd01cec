#!/usr/bin/env bash
# Creates (once) the project's Python environment in ./.venv with the pinned tools of
# scripts/requirements.txt plus the extra requirement files the flags select, then prints
# the path of its python. Idempotent: a stamp records the hash of each requirement file
# installed, so a later call asking for the same files or fewer installs nothing.
#
#   scripts/pyenv.sh                    # onnx + onnxruntime + numpy (what the tests need)
#   scripts/pyenv.sh --corpus           # also MiniLM's weights and tokenizer (scripts/build_corpus.py)
#   scripts/pyenv.sh --peers            # also onnxsim (scripts/rules_effect.py)
#   scripts/pyenv.sh --ptxas            # also NVIDIA's ptxas (the PTX backend's tests)
#   scripts/pyenv.sh --corpus --peers   # flags combine
#
# Exit status 3 means no usable python3 was found (tests then skip and say why); 2 a bad flag.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${EQOPT_VENV:-$root/.venv}"
reqs=("$root/scripts/requirements.txt")
for arg in "$@"; do
    case "$arg" in
        --corpus) reqs+=("$root/scripts/requirements-corpus.txt") ;;
        --peers) reqs+=("$root/scripts/requirements-peers.txt") ;;
        --ptxas) reqs+=("$root/scripts/requirements-ptxas.txt") ;;
        *)
            echo "pyenv.sh: unknown argument '$arg' (expected any of --corpus, --peers, --ptxas)" >&2
            exit 2
            ;;
    esac
done
py="${PYTHON:-python3}"
if ! command -v "$py" >/dev/null 2>&1; then
    echo "pyenv.sh: no $py on PATH" >&2
    exit 3
fi
stamp="$venv/.eqopt-stamp"
# One stamp line per requirement file: "<sha256 of its content>  <file name>".
stamp_line() { printf '%s  %s\n' "$(sha256sum <"$1" | cut -d' ' -f1)" "$(basename "$1")"; }
# Sets `missing` to the selected requirement files whose current content is not stamped.
find_missing() {
    missing=()
    local r
    for r in "${reqs[@]}"; do
        if [[ ! -x "$venv/bin/python" || ! -f "$stamp" ]] || ! grep -qxF "$(stamp_line "$r")" "$stamp"; then
            missing+=("$r")
        fi
    done
}
find_missing
if ((${#missing[@]} == 0)); then
    echo "$venv/bin/python"
    exit 0
fi
# Another installer may be running (parallel tests): serialize on a lock.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
find_missing
if ((${#missing[@]} == 0)); then
    echo "$venv/bin/python"
    exit 0
fi
[[ -x "$venv/bin/python" ]] || "$py" -m venv "$venv" >&2
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
for r in "${missing[@]}"; do
    # Lines after a "--no-deps" line are installed without their dependencies.
    "${pip[@]}" -r <(sed '/^--no-deps/,$d' "$r") >&2
    if grep -q '^--no-deps' "$r"; then
        "${pip[@]}" --no-deps -r <(sed '1,/^--no-deps/d' "$r") >&2
    fi
    # Replace this file's stamp line (an older hash of it, if any), keeping the others'.
    line="$(stamp_line "$r")"
    # (Lines of the older single-hash format, without a name, are dropped.)
    touch "$stamp"
    { awk -v n="$(basename "$r")" 'NF == 2 && $2 != n' "$stamp"; echo "$line"; } >"$stamp.tmp"
    mv "$stamp.tmp" "$stamp"
done
echo "$venv/bin/python"
