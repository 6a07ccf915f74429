"""The few statements that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Float,
    Select,
    Table,
    func,
    select,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError


def insert_ignoring_conflicts(
    connection: Connection, table: Table, rows: list[dict[str, Any]], index: list[str]
) -> None:
    """INSERT … ON CONFLICT (index) DO NOTHING — duplicates are no-ops, never errors."""
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        # in key order, as every writer inserts: two writers storing the same messages
        # (a retried delivery to two server processes) wait instead of deadlocking
        rows = sorted(rows, key=lambda row: tuple(row[name] for name in index))
        _pg_insert(connection, table, rows, conflict_index=index)
    else:
        _sqlite_insert(connection, table, rows, conflict_index=index)


def bulk_insert(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT many rows that all carry the same columns."""
    if not rows:
        return
    if connection.dialect.name == "sqlite":
        _sqlite_insert(connection, table, rows)
    else:
        _pg_insert(connection, table, rows)


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
        _pg_update(connection, table, rows, key, names, increment)
        return
    assignments = [f"{name} = ?" for name in names]
    assignments.extend(f"{name} = {name} + 1" for name in increment)
    sql = f"UPDATE {table.name} SET {', '.join(assignments)} WHERE {key} = ?"
    _sqlite_executemany(connection, sql, _sqlite_rows(table, (*names, key), rows))


# --- PostgreSQL's bulk path ---------------------------------------------------------------
# One statement per batch, whatever its size: the rows go over as one array per column and
# ``unnest`` turns them back into rows. Before, each row was its own INSERT or UPDATE (a
# pipelined executemany): a batch of 400 events cost ~7 statements × ~300 rows of parsing,
# planning and executing on the server, ~170 ms of a batch's time on this machine. The SQL
# text depends only on the table and the columns, so the driver prepares it once. The
# arrays travel in PostgreSQL's binary format (``%b``): in the text format the driver quotes
# every element in Python (regular expressions), which took a third of the writer's time.


def _pg_insert(
    connection: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    *,
    conflict_index: list[str] | None = None,
) -> None:
    names = tuple(c.name for c in table.c if c.name in rows[0])
    arrays, params = _pg_arrays(connection, table, names, rows)
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM unnest({arrays})"
    if conflict_index:
        sql += f" ON CONFLICT ({', '.join(conflict_index)}) DO NOTHING"
    connection.exec_driver_sql(sql, params)


def _pg_update(
    connection: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    key: str,
    names: list[str],
    increment: tuple[str, ...],
) -> None:
    # one row per key (the last wins, as with one UPDATE per row), in key order
    by_key = {row[key]: row for row in rows}
    ordered = [by_key[k] for k in sorted(by_key)]
    columns = (key, *names)
    arrays, params = _pg_arrays(connection, table, columns, ordered)
    assignments = [f"{name} = v.{name}" for name in names]
    assignments.extend(f"{name} = t.{name} + 1" for name in increment)
    sql = (
        f"UPDATE {table.name} AS t SET {', '.join(assignments)} "
        f"FROM unnest({arrays}) AS v({', '.join(columns)}) WHERE t.{key} = v.{key}"
    )
    connection.exec_driver_sql(sql, params)


_PG_COLUMNS: dict[tuple[str, tuple[str, ...]], tuple[str, list[Any]]] = {}


def _pg_arrays(
    connection: Connection, table: Table, names: tuple[str, ...], rows: list[dict[str, Any]]
) -> tuple[str, tuple[list[Any], ...]]:
    """``CAST(%s AS type[]), …`` for these columns, and one list of values per column,
    each value converted as SQLAlchemy's own type would (JSON as text, times in UTC)."""
    found = _PG_COLUMNS.get((table.name, names))
    if found is None:
        dialect = connection.dialect
        casts: list[str] = []
        converters: list[Any] = []
        for name in names:
            column_type = table.c[name].type
            type_sql = column_type.compile(dialect=dialect)
            casts.append(f"CAST(%b AS {type_sql}[])")
            if type_sql.upper().startswith("JSON"):
                converters.append(_json_or_null)
            elif isinstance(column_type, Float):
                converters.append(float)  # one element type per array: 0 and 0.5 alike
            else:
                converters.append(column_type.bind_processor(dialect))
        found = _PG_COLUMNS[(table.name, names)] = (", ".join(casts), converters)
    arrays, converters = found
    params = tuple(
        [row[name] for row in rows]
        if convert is None
        else [None if row[name] is None else convert(row[name]) for row in rows]
        for name, convert in zip(names, converters, strict=True)
    )
    return arrays, params


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


# --- what a long-running writer asks of its store ----------------------------------------


class WriterSupport:
    """What the ingest writer needs from the database behind it, whatever that is: set
    up its connection, keep house in the background while it runs, and let occasional
    writers of the same database go first. This base is PostgreSQL's: nothing to set up
    (the server syncs and checkpoints by itself) and no turns to give (row locks, not one
    lock for the whole database). SQLite's lives in :mod:`mqlengine.store.sqlite`."""

    def prepare(self, connection: Connection) -> None:
        """Called once on the writer's own connection, before its first transaction."""

    def start_housekeeping(self) -> None:
        """Background work while the writer runs (SQLite: WAL checkpoints)."""

    def stop_housekeeping(self) -> None:
        """Finish the background work (after the writer's last commit)."""

    def give_way(self) -> bool:
        """Before each of the busy writer's transactions: wait while other writers want
        the database. True when it waited."""
        return False

    def release_memory(self, connection: Connection) -> None:
        """The writer is idle: let its connection give back what it caches (SQLite: its
        page cache, up to 64 MB; nothing on PostgreSQL, where the server holds it)."""


_CONFLICT_WORDS = ("deadlock", "could not serialize", "database is locked", "lock timeout")
_UNIQUE_WORDS = ("unique constraint", "duplicate key")
_RETRYABLE_STATES = frozenset({"23505", "40001", "40P01", "55P03"})


def is_conflict(error: DBAPIError) -> bool:
    """Whether a failed transaction lost a race with another writer, so that running it
    again is right: a unique key another writer committed first, a deadlock or a
    serialization failure (PostgreSQL), the database lock (SQLite). Other errors,
    including other integrity violations, are real errors."""
    state = getattr(error.orig, "sqlstate", None)
    if state is not None:
        return state in _RETRYABLE_STATES
    text = str(error.orig).lower()
    if isinstance(error, IntegrityError):
        return any(word in text for word in _UNIQUE_WORDS)
    if isinstance(error, OperationalError):
        return any(word in text for word in _CONFLICT_WORDS)
    return False


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
    ours. PostgreSQL: ids come from the column's sequence, a block at a time: the first as
    big as ``expected`` (the caller's estimate of how many it will take), each further one
    twice the last, so a batch of many new rows costs one or two round trips, not one per
    64 rows. Ids a batch does not use are a gap in the sequence, nothing else.
    """

    BLOCK = 64
    MAX_BLOCK = 4096

    def __init__(
        self, connection: Connection, table: Table, column: str = "id", *, expected: int = 0
    ) -> None:
        self.connection = connection
        self.table = table
        self.column = column
        self._next: int | None = None
        self._block: list[int] = []
        self._size = min(max(self.BLOCK, expected), self.MAX_BLOCK)

    def next(self) -> int:
        if self.connection.dialect.name == "postgresql":
            if not self._block:
                rows = self.connection.exec_driver_sql(
                    "SELECT nextval(pg_get_serial_sequence(%(table)s, %(column)s)) "
                    "FROM generate_series(1, %(n)s)",
                    {"table": self.table.name, "column": self.column, "n": self._size},
                )
                self._block = sorted(int(r[0]) for r in rows)[::-1]
                self._size = min(self._size * 2, self.MAX_BLOCK)
            return self._block.pop()
        if self._next is None:
            current = self.connection.execute(
                select(func.max(self.table.c[self.column]))
            ).scalar_one_or_none()
            self._next = int(current or 0) + 1
        value = self._next
        self._next += 1
        return value
