"""Where a store's columnar copy lives (``MQL_COLUMNAR_PATH``), apart from the copy itself:
the composition root configures it on every command, and a command that never reads the
copy must not pay for DuckDB and Arrow (:mod:`mqlengine.store.columnar`) to do so."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mqlengine.store.db import Database

_CONFIGURED: dict[str, str | None] = {}
_CONFIG_LOCK = threading.Lock()


def configure(database_url: str, setting: str | None) -> None:
    """Where the copy of ``database_url`` lives (``MQL_COLUMNAR_PATH``): a path, ``off``, or
    None for the default (beside a SQLite file; none for PostgreSQL)."""
    from mqlengine.store.db import normalize_url

    with _CONFIG_LOCK:
        _CONFIGURED[normalize_url(database_url)] = setting


def columnar_path(database: Database) -> Path | None:
    """The copy's file for this store, or None when it has none (an in-memory SQLite
    database, PostgreSQL without ``MQL_COLUMNAR_PATH``, or the setting ``off``)."""
    from sqlalchemy.engine import make_url

    with _CONFIG_LOCK:
        setting = _CONFIGURED.get(database.url)
    if setting is not None and setting.strip():
        value = setting.strip()
        if value.lower() == "off":
            return None
        return Path(value).expanduser()
    if database.dialect != "sqlite":
        return None
    name = make_url(database.url).database or ""
    if name in ("", ":memory:") or name.startswith("file:"):
        return None
    store = Path(name)
    return store.with_name(f"{store.stem}.columnar.duckdb")
