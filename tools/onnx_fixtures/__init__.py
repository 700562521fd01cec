"""ONNX importer fixture generator (the package behind tools/gen_onnx_fixtures.py).

Importing the package registers every case: the case modules below are imported in
this fixed order, which is the order of the ok/bad tables in tests/onnx/README.md and of
the files written, so do not reorder them.
"""

from __future__ import annotations

from . import elementwise, nn, layout, networks, bad_cases  # noqa: F401  (registers cases, in order)
from .common import BAD, OK
from .generate import check, write, write_all

__all__ = ["BAD", "OK", "check", "write", "write_all"]
