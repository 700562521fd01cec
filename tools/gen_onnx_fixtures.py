#!/usr/bin/env python3
"""Generate the ONNX importer's test fixtures in tests/onnx/ with the real `onnx` library.

Usage (from the repository root):
    $(scripts/pyenv.sh) tools/gen_onnx_fixtures.py            # (re)write tests/onnx/
    $(scripts/pyenv.sh) tools/gen_onnx_fixtures.py --out DIR  # write them somewhere else
    $(scripts/pyenv.sh) tools/gen_onnx_fixtures.py --check    # exit 1 if tests/onnx/ is stale

Needs only the pinned onnx, onnxruntime and numpy of scripts/requirements.txt (the
venv that scripts/pyenv.sh prints).

Layout written:
    ok/<case>.onnx           a model the importer must accept; passes
                             onnx.checker.check_model(full_check=True)
    ok/<case>.inputs.npz     seeded random inputs, keyed by graph input name
    ok/<case>.expected.npz   ONNX Runtime (CPUExecutionProvider) outputs, keyed by
                             graph output name
    ok/ext_data.bin          external initializer data of ok/ext_data.onnx
    bad/<case>.onnx          inputs the importer must reject with a clear error
    README.md                one line per case (generated from the docs below)

Determinism: every file is a pure function of this script and the pinned packages.
Random values come from numpy generators seeded with crc32("<case>/<tensor>"), models
are serialized with deterministic=True and carry no timestamps (producer_name
"eqopt-fixtures", no producer_version), and the .npz files are written by hand as
uncompressed zips with a fixed 1980-01-01 date, members in graph order. The reference
outputs are computed by ONNX Runtime with one thread and graph optimizations disabled;
the one exception is ok/lrn_size4_even, which ORT's CPU LRN refuses (even size), so its
outputs come from a numpy transcription of the spec formula (checked against ORT on the
odd-size case lrn_size5).
--check regenerates everything into a temporary directory and compares bytes; the only
leniency is for .expected.npz, whose values may differ in the last bits when ONNX
Runtime picks other SIMD kernels on another CPU: those are accepted when the models and
inputs are byte-identical and every value agrees to rtol 1e-4 / atol 1e-5 (a note is
printed). Files under ok/ or bad/ that the script does not produce also fail --check.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The fixture code lives in the onnx_fixtures package beside this script. Keep Python
# from writing __pycache__ into tools/ (git does not ignore it).
sys.dont_write_bytecode = True
TOOLS = Path(__file__).resolve().parent
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

from onnx_fixtures import check, write  # noqa: E402  (importing registers every case)

REPO = TOOLS.parent
FIXTURES = REPO / "tests" / "onnx"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=FIXTURES, help="output directory (default: tests/onnx/)")
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temp dir and compare with --out; exit 1 naming the stale files")
    args = ap.parse_args(argv)
    if args.check:
        return check(args.out)
    return write(args.out)


if __name__ == "__main__":
    sys.exit(main())
