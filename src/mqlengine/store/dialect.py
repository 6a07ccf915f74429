"""The few statements that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, Boolean, Connection, Select, Table, bindparam, func, select, update
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
        _sqlite_insert(connection, table, rows, conflict_index=index)


def bulk_insert(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT many rows that all carry the same columns."""
    if not rows:
        return
    if connection.dialect.name == "sqlite":
        _sqlite_insert(connection, table, rows)
    else:
        connection.execute(table.insert(), rows)


def bulk_update(
    connection: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    *,
    key: str = "id",
    increment: tuple[str, ...] = (),
) -> None:
    """UPDATE many rows by ``key``; every row sets the same columns (its other keys), and
    each column in ``increment`` goes up by one."""
    if not rows:
        return
    names = [name for name in rows[0] if name != key]
    if connection.dialect.name != "sqlite":
        values: dict[str, Any] = {name: bindparam(f"b_{name}") for name in names}
        for name in increment:
            values[name] = table.c[name] + 1
        statement = update(table).where(table.c[key] == bindparam(f"b_{key}")).values(values)
        connection.execute(
            statement, [{f"b_{name}": value for name, value in row.items()} for row in rows]
        )
        return
    assignments = [f"{name} = ?" for name in names]
    assignments.extend(f"{name} = {name} + 1" for name in increment)
    sql = f"UPDATE {table.name} SET {', '.join(assignments)} WHERE {key} = ?"
    _sqlite_executemany(connection, sql, _sqlite_rows(table, (*names, key), rows))


# --- SQLite's bulk path -------------------------------------------------------------------
# Values are converted once per column kind and handed to the driver's executemany, without
# SQLAlchemy's per-row parameter processing (the biggest cost of loading events). Storage
# formats are exactly SQLAlchemy's own.


def _sqlite_insert(
    connection: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    *,
    conflict_index: list[str] | None = None,
) -> None:
    names = tuple(c.name for c in table.c if c.name in rows[0])
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"
    if conflict_index:
        sql += f" ON CONFLICT ({', '.join(conflict_index)}) DO NOTHING"
    _sqlite_executemany(connection, sql, _sqlite_rows(table, names, rows))


def _sqlite_executemany(connection: Connection, sql: str, params: list[tuple[Any, ...]]) -> None:
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, params)
    finally:
        cursor.close()


def _sqlite_rows(
    table: Table, names: tuple[str, ...], rows: list[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    make = _row_maker(table, names)
    return [make(row) for row in rows]


_ROW_MAKERS: dict[tuple[str, tuple[str, ...]], Callable[[Any], tuple[Any, ...]]] = {}


def _row_maker(table: Table, names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """``row -> (value, converted value, …)`` for one table and shape of rows, written out
    as one expression (a generic loop over the columns cost more than the driver's insert)."""
    key = (table.name, names)
    make = _ROW_MAKERS.get(key)
    if make is None:
        converters = _sqlite_converters(table, names)
        items = [
            f"row[{name!r}]" if convert is None else f"c{index}(row[{name!r}])"
            for index, (name, convert) in enumerate(zip(names, converters, strict=True))
        ]
        scope = {f"c{i}": convert for i, convert in enumerate(converters) if convert is not None}
        # only column names (as repr() literals) and the converters go into the code
        make = eval(f"lambda row: ({', '.join(items)},)", scope)
        _ROW_MAKERS[key] = make
    return make


def _sqlite_converters(table: Table, names: tuple[str, ...]) -> list[Any]:
    """Per column, what turns a Python value into SQLite's storage form exactly as
    SQLAlchemy's own types would (None: stored as is)."""
    from mqlengine.store.types import UTCDateTime

    converters: list[Any] = []
    for name in names:
        column_type = table.c[name].type
        if isinstance(column_type, UTCDateTime):
            converters.append(_sqlite_time)
        elif isinstance(column_type, JSON):
            converters.append(_json_or_null)
        elif isinstance(column_type, Boolean):
            converters.append(_sqlite_bool)
        else:
            converters.append(None)
    return converters


def _sqlite_bool(value: bool | None) -> int | None:
    return None if value is None else int(bool(value))


def _sqlite_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return _sqlite_time_text(value)


@lru_cache(maxsize=8192)
def _sqlite_time_text(value: datetime) -> str:
    """SQLAlchemy's SQLite storage form of a time (a batch repeats the same few times:
    its commit time, each event's time on the event, the person and the score)."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: times must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _json_or_null(value: Any) -> str | None:
    from mqlengine.store.db import _json_dumps

    return None if value is None else _json_dumps(value)


# --- SQLite's write-ahead log and change counter (the API's writer uses these) -----------


def sqlite_writer_setup(connection: Connection, *, durable: bool, wal_pages: int) -> None:
    """A SQLite writer connection: ``synchronous=FULL`` when commits must survive power
    loss, and its own WAL checkpoint threshold (in pages)."""
    raw = connection.connection.dbapi_connection
    assert raw is not None
    if durable:
        raw.execute("PRAGMA synchronous=FULL")
    raw.execute(f"PRAGMA wal_autocheckpoint={int(wal_pages)}")


def sqlite_checkpoint(connection: Connection) -> None:
    """A passive WAL checkpoint: copies what it can, never waits for readers or writers."""
    raw = connection.connection.dbapi_connection
    assert raw is not None
    raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def sqlite_data_version(connection: Connection) -> int:
    """SQLite's ``data_version``: changes exactly when another connection committed."""
    return int(connection.exec_driver_sql("PRAGMA data_version").scalar_one())


def _locks_rows(connection: Connection) -> bool:
    """Whether the database locks rows (SQLite locks the whole file: its writer already
    excludes every other writer, and it has no SELECT … FOR UPDATE)."""
    return connection.dialect.name == "postgresql"


def for_update(
    connection: Connection, query: Select[Any], *, skip_locked: bool = False
) -> Select[Any]:
    """``query`` with ``FOR UPDATE [SKIP LOCKED]`` where the database locks rows, as it is
    elsewhere: callers say what they lock and stay the same on every database."""
    if not _locks_rows(connection):
        return query
    return query.with_for_update(skip_locked=skip_locked)


def lock_rows(connection: Connection, query: Select[Any]) -> None:
    """Lock the rows ``query`` selects until the transaction (or savepoint) ends, where the
    database locks rows; nothing to do where its writer lock already serialises writers."""
    if _locks_rows(connection):
        connection.execute(query.with_for_update()).all()


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
