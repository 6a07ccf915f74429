"""The few statements that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_ignoring_conflicts(
    connection: Connection, table: Table, rows: list[dict[str, Any]], index: list[str]
) -> None:
    """INSERT … ON CONFLICT (index) DO NOTHING — duplicates are no-ops, never errors."""
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        pg_stmt = postgresql.insert(table).on_conflict_do_nothing(index_elements=index)
        connection.execute(pg_stmt, rows)
    else:
        lite_stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=index)
        connection.execute(lite_stmt, rows)


def lock_rows_clause(connection: Connection) -> bool:
    """Whether SELECT … FOR UPDATE is meaningful (SQLite locks the whole file instead)."""
    return connection.dialect.name == "postgresql"
