"""Shared bench plumbing: machine facts, a printed table, a JSON file under bench/results/."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def report(name: str, rows: Sequence[dict[str, Any]], *, notes: str = "") -> Path:
    """Print ``rows`` as a table and write them (with machine facts) to bench/results/NAME.json."""
    table = Table(title=f"bench: {name}")
    columns = list(rows[0]) if rows else ["result"]
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(f"{v:,.2f}" if isinstance(v, float) else str(v) for v in row.values()))
    console = Console()
    console.print(table)
    if notes:
        console.print(notes)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(
        json.dumps({"name": name, "machine": machine(), "rows": rows, "notes": notes}, indent=2)
    )
    return path
