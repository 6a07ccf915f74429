"""What the tests (and the benchmarks) share: a server on a free port, clocks, paths.

Importable as ``support`` because ``tests/`` is on the import path: pytest puts it there
for ``tests/conftest.py``, and the benchmarks' package adds it.
"""
