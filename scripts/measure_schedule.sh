#!/usr/bin/env bash
# Prints the "Against measurement" table of docs/toolchain.md: the branchy models
# scheduled on the `cpu` platform (two streams of one core) with this machine's
# calibrated profile, run by the CPU backend with the streams as worker groups,
# measured S against predicted S, and the per-kernel agreement.
#   scripts/measure_schedule.sh [RUNS]     (default 20; needs corpus/ and a release build)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
runs="${1:-20}"
eqopt="$root/target/release/eqopt"
[[ -x "$eqopt" ]] || cargo build --release --manifest-path "$root/Cargo.toml" >&2
cfg="$(mktemp -d)"
trap 'rm -rf "$cfg"' EXIT
mkdir -p "$cfg/targets"
EQOPT_CONFIG_DIR="$cfg" "$eqopt" calibrate -o "$cfg/targets/cpu.json" >&2
echo "| model | kernels | streams | T_single predicted / measured (ms) | T_multi predicted / measured (ms) | S predicted | S measured | kernel rank correlation | median measured / predicted |"
echo "|---|---:|---:|---|---|---:|---:|---:|---:|"
for m in "$root/examples/inception_block.json" "$root/corpus/inception_v1/model.onnx" "$root/corpus/inception_v2/model.onnx" "$root/corpus/densenet121/model.onnx"; do
    out="$cfg/schedule.json"
    EQOPT_CONFIG_DIR="$cfg" "$eqopt" schedule "$m" --platform cpu --optimize-for cpu --measure --runs "$runs" -o "$out" >/dev/null
    python3 - "$out" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
m = v["measured"]
print("| %s | %d | %d | %.2f / %.2f | %.2f / %.2f | %.2f | %.2f | %.2f | %.2f |" % (
    v["graph"], v["estimate"]["tasks"], m["streams"],
    m["t_single_predicted"] * 1e3, m["t_single_measured"] * 1e3,
    m["t_multi_predicted"] * 1e3, m["t_multi_measured"] * 1e3,
    m["s_predicted"], m["s_measured"], m["kernel_spearman"], m["kernel_median_ratio"]))
PY
done
