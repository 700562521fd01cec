#!/usr/bin/env bash
# Prints the markdown table of docs/ptx-backend.md, "Roofline estimates": for every
# corpus model, as given and optimized for the profile, the PTX launches and the
# summed per-launch roofline estimate that `eqopt compile --backend ptx` reports.
#   scripts/ptx_estimates.sh [PROFILE]     (default h100; needs corpus/ and a release build)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
profile="${1:-h100}"
eqopt="$root/target/release/eqopt"
[[ -x "$eqopt" ]] || cargo build --release --manifest-path "$root/Cargo.toml" >&2
echo "| model | launches as given | estimate as given (us) | launches optimized | estimate optimized (us) |"
echo "|---|---:|---:|---:|---:|"
models=$(python3 -c "import json,sys; print(' '.join(m['dir'] for m in json.load(open(sys.argv[1]))['models']))" "$root/corpus/index.json")
for m in $models; do
    row="| $m"
    for opt in "" "--optimize"; do
        out=$("$eqopt" compile "$root/corpus/$m/model.onnx" --backend ptx --target "$profile" $opt)
        launches=$(awk '/kernels for/{print $2}' <<<"$out")
        us=$(awk '/roofline estimate/{for (i = 1; i <= NF; i++) if ($i == "us") print $(i-1)}' <<<"$out")
        row="$row | $launches | $us"
    done
    echo "$row |"
done
