"""The few statements that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, func, select
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


class IdAllocator:
    """Hands out primary keys for rows a batch will insert in bulk later.

    SQLite: the batch holds the write lock (BEGIN IMMEDIATE), so ``max(id) + 1`` onwards is
    ours. PostgreSQL: ids come from the column's sequence, a block at a time.
    """

    BLOCK = 64

    def __init__(self, connection: Connection, table: Table, column: str = "id") -> None:
        self.connection = connection
        self.table = table
        self.column = column
        self._next: int | None = None
        self._block: list[int] = []

    def next(self) -> int:
        if self.connection.dialect.name == "postgresql":
            if not self._block:
                rows = self.connection.exec_driver_sql(
                    "SELECT nextval(pg_get_serial_sequence(%(table)s, %(column)s)) "
                    "FROM generate_series(1, %(n)s)",
                    {"table": self.table.name, "column": self.column, "n": self.BLOCK},
                )
                self._block = sorted(int(r[0]) for r in rows)[::-1]
            return self._block.pop()
        if self._next is None:
            current = self.connection.execute(
                select(func.max(self.table.c[self.column]))
            ).scalar_one_or_none()
            self._next = int(current or 0) + 1
        value = self._next
        self._next += 1
        return value
