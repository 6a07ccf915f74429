"""The few statements that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Connection, Table, func, select
from sqlalchemy.dialects import postgresql


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
        _sqlite_insert_ignoring(connection, table, rows, index)


def _sqlite_insert_ignoring(
    connection: Connection, table: Table, rows: list[dict[str, Any]], index: list[str]
) -> None:
    """The bulk path for SQLite: values are converted once per column kind and handed to
    the driver's executemany, without SQLAlchemy's per-row parameter processing (the
    biggest cost of loading events). Storage formats are exactly SQLAlchemy's own."""
    from mqlengine.store.types import UTCDateTime

    names = [c.name for c in table.c if c.name in rows[0]]
    converters: list[Any] = []
    for name in names:
        column_type = table.c[name].type
        if isinstance(column_type, UTCDateTime):
            converters.append(_sqlite_time)
        elif isinstance(column_type, JSON):
            converters.append(_json_or_null)
        else:
            converters.append(None)
    params = [
        tuple(
            row[name] if convert is None else convert(row[name])
            for name, convert in zip(names, converters, strict=True)
        )
        for row in rows
    ]
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) "
        f"VALUES ({', '.join('?' for _ in names)}) "
        f"ON CONFLICT ({', '.join(index)}) DO NOTHING"
    )
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, params)
    finally:
        cursor.close()


def _sqlite_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: times must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _json_or_null(value: Any) -> str | None:
    from mqlengine.store.db import _json_dumps

    return None if value is None else _json_dumps(value)


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
