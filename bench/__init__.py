"""Benchmarks: run on demand (`make bench` or `python -m bench [NAME …]`), never in tests.

They start servers with the tests' harness (``tests/support``), so ``tests/`` joins the
import path here, as pytest puts it there for the tests.
"""

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parents[1] / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)
