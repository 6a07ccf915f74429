"""`mql` starts fast: importing the command line loads no web, database or analytics
library (each command imports what it uses when it runs). Checked on ``sys.modules`` of a
fresh interpreter, never by timing."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "duckdb",
    "pyarrow",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "jinja2",
    "yaml",
    "pydantic",
    "rich.progress",
    "mqlengine.wiring",
    "mqlengine.store",
    "mqlengine.facade",
)


def test_importing_the_cli_loads_no_heavy_module() -> None:
    code = "import json, sys, mqlengine.cli.app; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(done.stdout))
    heavy = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert not heavy, f"imported at start-up: {heavy}"
