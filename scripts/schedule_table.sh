#!/usr/bin/env bash
# Prints the markdown table of docs/toolchain.md: every corpus model, optimized
# for the platform's fastest device, scheduled on the three built-in platforms
# with `eqopt estimate --json`: T_est, throughput P, the speedup S over one
# stream on the best single device, and S(n) over the identical GPUs.
#   scripts/schedule_table.sh      (needs corpus/ and a release build)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
eqopt="$root/target/release/eqopt"
[[ -x "$eqopt" ]] || cargo build --release --manifest-path "$root/Cargo.toml" >&2
models=$(python3 -c "import json,sys; print(' '.join(m['dir'] for m in json.load(open(sys.argv[1]))['models']))" "$root/corpus/index.json")
echo "| model | platform | optimized for | kernels | T_est (us) | P (TFLOP/s) | T_single (us), device | S | S(n), n = 1..4 |"
echo "|---|---|---|---:|---:|---:|---|---:|---|"
for m in $models; do
    for platform in cpu cpu-h100 4xh100-nvlink; do
        target=h100
        [[ "$platform" == cpu ]] && target=cpu
        "$eqopt" estimate "$root/corpus/$m/model.onnx" --platform "$platform" --optimize-for "$target" --json |
            python3 -c '
import json, sys
e = json.load(sys.stdin)["estimate"]
s = " ".join("%.2f" % p["speedup"] for p in e["scale_out"]) or "-"
print("| %s | %s | %s | %d | %.1f | %.3f | %.1f, %s | %.2f | %s |" % (sys.argv[1], e["platform"], sys.argv[2], e["tasks"],
      e["t_est"] * 1e6, e["throughput"] / 1e12, e["t_single"] * 1e6, e["single_device"], e["speedup"], s))
' "$m" "$target"
    done
done
