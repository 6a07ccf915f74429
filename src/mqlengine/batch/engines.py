"""Batch engines by name: ``python`` (the reference), ``duckdb``, ``spark``."""

from __future__ import annotations

import importlib

from mqlengine.batch.engine import BatchEngine, PythonEngine
from mqlengine.errors import ValidationError

ENGINES = ("python", "duckdb", "spark")


def engine_by_name(name: str) -> BatchEngine:
    """The engine called ``name``; a clear error for an unknown or unavailable one."""
    if name == "python":
        return PythonEngine()
    if name == "duckdb":
        from mqlengine.batch.duckdb_engine import DuckDBEngine

        return DuckDBEngine()
    if name == "spark":
        try:
            module = importlib.import_module("mqlengine.batch.spark_engine")
        except ModuleNotFoundError as error:
            raise ValidationError(
                f"the spark engine is not available ({error}); use python or duckdb"
            ) from None
        engine: BatchEngine = module.SparkEngine()
        return engine
    raise ValidationError(f"unknown batch engine '{name}' (use one of: {', '.join(ENGINES)})")
