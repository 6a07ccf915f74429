"""A columnar copy of the store, kept current: a DuckDB file beside the row store.

Reports and batch engines read millions of rows by column; the row store (SQLite,
PostgreSQL) answers that slowly, and copying its tables into DuckDB on every call costs
seconds. This module keeps one copy in a DuckDB file (``mql.db`` → ``mql.columnar.duckdb``;
for PostgreSQL the path in ``MQL_COLUMNAR_PATH``) and brings it up to date incrementally:

- **append-only tables by id watermark**: new events, stage changes, score snapshots,
  touches, assignments, merges, persons and erasures are found by ``id >`` the newest id the
  copy has seen (an index range on every table). On PostgreSQL, ids are handed out before
  commit, so a lower id can commit after a higher one: each refresh looks back
  :data:`PG_LOOKBACK` ids and skips what it already holds.
- **persons rows change**: every person named by a new row of those tables (an event, a
  stage change, a score snapshot, a touch, an assignment, a merge or its undoing) is
  *dirty*: its person row, stage history (with the rules of its MQL score cards), touches
  and assignments are read again and replace what the copy held. Events never change except
  their person (merges and unmerges move them): the events of the persons of a merge are
  read again. As a safety net for updates that leave no such trace (a CRM history import
  moving a first-seen date), the copy compares the persons' ``count`` and
  ``sum(row_version)`` with the store's and, when they differ, finds the changed rows by
  ``(id, row_version)``. That check reads every person row, so a report runs it only when
  the last one is :data:`CHECK_EVERY` seconds old; ``mql db columnar`` always runs it.
- **deletions**: an erasure leaves a row in ``erasures``; a new one makes the refresh
  compare person ids with the store and delete, from every table of the copy, the rows of
  persons the store no longer has.
- **derived tables**: a caller (the reports) may keep tables derived per person in the same
  file; every refresh adds its dirty persons to ``pending``, which the caller's ``derive``
  step consumes (all of it, or everything when its version changed).

A refresh runs in one DuckDB transaction under an exclusive lock file
(``<copy>.lock``); readers take the lock shared while they open and read the file, so a
refresh never sees a reader half-way and a reader never sees a half-applied refresh. A
copy of another shape (:data:`VERSION`) or of another store is rebuilt from scratch, as is
any copy on ``mql db columnar --rebuild``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import Connection, MetaData, Table, Text, cast, func, inspect, select
from sqlalchemy.sql.elements import ColumnElement

from mqlengine.errors import ConfigError, UnavailableError
from mqlengine.store import repo
from mqlengine.store.columnar_config import columnar_path as columnar_path  # re-exported
from mqlengine.store.db import Database
from mqlengine.store.tables import events, merges, persons, score_snapshots, stage_history
from mqlengine.store.tables_handoff import assignments, reps, touches
from mqlengine.store.tables_privacy import erasures
from mqlengine.store.tables_reports import spend

try:  # POSIX advisory locks; elsewhere DuckDB's own file lock is the only guard
    import fcntl
except ImportError:  # pragma: no cover - not on Linux
    fcntl = None  # type: ignore[assignment]

VERSION = "1"
"""The copy's shape; a copy of another version is rebuilt (after a migration changes it)."""

PG_LOOKBACK = 20_000
"""Ids a PostgreSQL refresh reads again below its watermark (ids of transactions that were
still open at the last refresh commit later)."""

FULL_FRACTION = 0.2
"""Past this share of dirty persons, the per-person tables are read whole, not by id."""

CHECK_EVERY = 300.0
"""Seconds a refresh for a report trusts the last full check of person row versions (a
scan of every person); an explicit refresh (``mql db columnar``) always checks."""

CHUNK = 500
FETCH = 100_000
LOCK_TIMEOUT = 60.0

TS = "TIMESTAMPTZ"

# The copy's tables: name → columns (DuckDB types).
PERSONS = {
    "id": "BIGINT",
    "email": "VARCHAR",
    "channel": "VARCHAR",
    "source": "VARCHAR",
    "campaign": "VARCHAR",
    "first_seen_at": TS,
    "stage": "VARCHAR",
    "stage_changed_at": TS,
    "mql_type": "VARCHAR",
    "total_score": "DOUBLE",
    "owner": "VARCHAR",
    "team": "VARCHAR",
}
TABLES: dict[str, dict[str, str]] = {
    # live persons: what the reports read …
    "persons": PERSONS,
    # … and what the batch engines read
    "profiles": {"person_id": "BIGINT", "profile": "VARCHAR", "recycled_at": TS},
    # every person (merged ones too) with its row version: the change check
    "person_versions": {"id": "BIGINT", "row_version": "BIGINT", "live": "BOOLEAN"},
    "history": {
        "id": "BIGINT",
        "person_id": "BIGINT",
        "from_stage": "VARCHAR",
        "to_stage": "VARCHAR",
        "changed_at": TS,
        "reason": "VARCHAR",
        "actor": "VARCHAR",
        "action": "VARCHAR",
        "definition_version": "VARCHAR",
        "mql_type": "VARCHAR",
        "reactivated": "BOOLEAN",
        "amount": "DOUBLE",
    },
    "mql_rules": {
        "history_id": "BIGINT",
        "person_id": "BIGINT",
        "rule": "VARCHAR",
        "points": "DOUBLE",
    },
    "touches": {"id": "BIGINT", "person_id": "BIGINT", "touched_at": TS, "rep": "VARCHAR"},
    "assignments": {
        "id": "BIGINT",
        "person_id": "BIGINT",
        "started_at": TS,
        "due_at": TS,
        "team": "VARCHAR",
        "rep_id": "BIGINT",
    },
    "reps": {"id": "BIGINT", "key": "VARCHAR"},
    "spend": {
        "channel": "VARCHAR",
        "campaign": "VARCHAR",
        "month": "DATE",
        "amount": "DOUBLE",
        "currency": "VARCHAR",
    },
    "events": {
        "id": "BIGINT",
        "person_id": "BIGINT",
        "message_id": "VARCHAR",
        "type": "VARCHAR",
        "name": "VARCHAR",
        "timestamp": TS,
        "properties": "VARCHAR",
        "consent_withdrawn": "BOOLEAN",
    },
    "events_daily": {"day": "DATE", "events": "BIGINT"},
    "pending": {"person_id": "BIGINT"},
    "merges_undone": {"id": "BIGINT"},
    "meta": {"key": "VARCHAR", "value": "VARCHAR"},
}
PER_PERSON = ("history", "mql_rules", "touches", "assignments")

SLA_CLOCKS_VIEW = """
CREATE OR REPLACE VIEW sla_clocks AS
SELECT a.person_id, a.started_at, a.due_at, r.key AS rep, a.team
FROM assignments a LEFT JOIN reps r ON r.id = a.rep_id
"""

RULES_FROM_CARDS = """
INSERT INTO mql_rules
SELECT history_id, person_id, c.rule::VARCHAR, c.points::DOUBLE
FROM (
    SELECT history_id, person_id,
           unnest(from_json(json_extract(score_card, '$.contributions'),
                            '[{"rule": "VARCHAR", "points": "DOUBLE"}]')) AS c
    FROM _cards WHERE score_card IS NOT NULL
)
"""

# watermark name → (table, id column)
MARKS: dict[str, Any] = {
    "events": events,
    "history": stage_history,
    "snapshots": score_snapshots,
    "touches": touches,
    "assignments": assignments,
    "merges": merges,
    "persons": persons,
    "erasures": erasures,
}


Derive = Callable[[duckdb.DuckDBPyConnection, bool], None]
"""A caller's derived tables: ``derive(connection, full)`` — rebuild them all (``full``) or
only for the person ids in the table ``pending`` (then emptied by the copy)."""


@dataclass
class RefreshStats:
    """What one refresh did."""

    rebuilt: bool = False
    new_events: int = 0
    dirty_persons: int = 0
    moved_persons: int = 0
    erased_persons: int = 0
    unexplained: int = 0
    checked: bool = False
    full_reload: bool = False
    derived: str = ""
    small_tables: bool = False
    marks_moved: bool = False
    generation: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(
            self.rebuilt
            or self.new_events
            or self.dirty_persons
            or self.erased_persons
            or self.small_tables
            or self.marks_moved
            or self.derived
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "rebuilt": self.rebuilt,
            "new_events": self.new_events,
            "dirty_persons": self.dirty_persons,
            "moved_persons": self.moved_persons,
            "erased_persons": self.erased_persons,
            "unexplained_changes": self.unexplained,
            "checked": self.checked,
            "full_reload": self.full_reload,
            "derived": self.derived,
            "generation": self.generation,
            "seconds": round(self.seconds, 3),
        }


# --------------------------------------------------------------------------- where it lives

# --------------------------------------------------------------------------- locking


@contextlib.contextmanager
def _locked(path: Path, *, exclusive: bool, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise UnavailableError(
                        f"columnar copy {path}: still locked by another process after "
                        f"{timeout:.0f} s"
                    ) from None
                time.sleep(0.02)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _connect(path: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open the file; DuckDB's own lock may still be held for a moment by a process that
    released ours (it closes right after): try again briefly."""
    deadline = time.monotonic() + 10.0
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            con.execute("SET TimeZone = 'UTC'")
            return con
        except duckdb.IOException as error:
            if "lock" not in str(error).lower():
                raise
            if time.monotonic() > deadline:
                raise UnavailableError(f"columnar copy {path}: {error}") from None
            time.sleep(0.05)


@contextlib.contextmanager
def reading(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The copy opened read-only, under the shared lock (a refresh waits until done)."""
    with _locked(path, exclusive=False):
        con = _connect(path, read_only=True)
        try:
            yield con
        finally:
            con.close()


# --------------------------------------------------------------------------- store → Arrow


def _text(column: Any, name: str | None = None) -> ColumnElement[Any]:
    """A column as text in SQL: JSON stays JSON text, times stay as the store writes them
    (naive UTC on SQLite, with an offset on PostgreSQL); DuckDB parses them."""
    return cast(column, Text).label(name or column.name)


def _fetch(connection: Connection, query: Any) -> Iterator[pa.Table]:
    """The query's rows in Arrow tables of at most :data:`FETCH` rows (no type processing)."""
    result = connection.execute(query)
    names = list(result.keys())
    while rows := result.fetchmany(FETCH):
        columns = list(zip(*rows, strict=True))
        yield pa.Table.from_arrays([pa.array(list(c)) for c in columns], names=names)


def _insert(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> int:
    """Append an Arrow table to the copy's ``name``, each column cast to its type."""
    if table.num_rows == 0:
        return 0
    schema = TABLES[name]
    present = set(table.column_names)
    casts = []
    for column, kind in schema.items():
        if column not in present:
            casts.append(f"CAST(NULL AS {kind})")
        elif kind == TS:
            casts.append(f"CAST(CAST({column} AS VARCHAR) AS TIMESTAMPTZ)")
        else:
            casts.append(f"CAST({column} AS {kind})")
    con.register("_incoming", table)
    try:
        con.execute(f"INSERT INTO {name} SELECT {', '.join(casts)} FROM _incoming")
    finally:
        con.unregister("_incoming")
    return int(table.num_rows)


def _load(con: duckdb.DuckDBPyConnection, name: str, tables: Iterable[pa.Table]) -> int:
    return sum(_insert(con, name, t) for t in tables)


def _ids(con: duckdb.DuckDBPyConnection, name: str, ids: Iterable[int]) -> None:
    """A temporary one-column table of person ids."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} (person_id BIGINT)")
    values = sorted(set(ids))
    if values:
        con.register("_idlist", pa.table({"person_id": pa.array(values, pa.int64())}))
        try:
            con.execute(f"INSERT INTO {name} SELECT person_id FROM _idlist")
        finally:
            con.unregister("_idlist")


def optional_table(connection: Connection, name: str) -> Table | None:
    """The table ``name`` as the database has it (reflected), or None when it is absent."""
    if not inspect(connection).has_table(name):
        return None
    return Table(name, MetaData(), autoload_with=connection)


def pick_column(table: Table, *candidates: str) -> Any:
    """The first of ``candidates`` the table has, or None."""
    for name in candidates:
        if name in table.c:
            return table.c[name]
    return None


class _Queries:
    """The store's reads, built once per refresh (persons reflected: columns other rooms
    add, such as an owner, are picked up)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._persons_columns: list[ColumnElement[Any]] | None = None

    @property
    def persons_columns(self) -> list[ColumnElement[Any]]:
        """Reflected when first needed (a refresh that reloads no person skips it)."""
        if self._persons_columns is None:
            self._reflect(self.connection)
        assert self._persons_columns is not None
        return self._persons_columns

    def _reflect(self, connection: Connection) -> None:
        p = optional_table(connection, "persons")
        p = persons if p is None else p
        owner = pick_column(p, "owner", "owner_id", "owner_rep", "assigned_to", "rep")
        team = pick_column(p, "team", "team_id", "queue")
        self._persons_columns = [
            p.c.id,
            p.c.email,
            p.c.channel,
            p.c.source,
            p.c.campaign,
            _text(p.c.first_seen_at),
            p.c.stage,
            _text(p.c.stage_changed_at),
            p.c.mql_type,
            p.c.total_score,
            (cast(owner, Text) if owner is not None else cast(None, Text)).label("owner"),
            (cast(team, Text) if team is not None else cast(None, Text)).label("team"),
            p.c.merged_into,
            p.c.row_version,
            _text(p.c.profile),
            _text(p.c.recycled_at),
        ]
        self.person_table = p

    def persons(self, ids: Sequence[int] | None) -> Any:
        columns = self.persons_columns
        query = select(*columns)
        if ids is not None:
            query = query.where(self.person_table.c.id.in_(ids))
        return query

    @staticmethod
    def history(ids: Sequence[int] | None) -> Any:
        h = stage_history
        query = select(
            h.c.id,
            h.c.person_id,
            h.c.from_stage,
            h.c.to_stage,
            _text(h.c.changed_at),
            h.c.reason,
            h.c.actor,
            h.c.action,
            h.c.definition_version,
            h.c.mql_type,
            h.c.reactivated,
            h.c.amount,
        )
        return query if ids is None else query.where(h.c.person_id.in_(ids))

    @staticmethod
    def cards(ids: Sequence[int] | None) -> Any:
        h = stage_history
        query = select(
            h.c.id.label("history_id"), h.c.person_id, _text(h.c.score_card, "score_card")
        ).where(h.c.to_stage == "mql", h.c.score_card.is_not(None))
        return query if ids is None else query.where(h.c.person_id.in_(ids))

    @staticmethod
    def touches(ids: Sequence[int] | None) -> Any:
        t = touches
        query = select(t.c.id, t.c.person_id, _text(t.c.touched_at), t.c.actor.label("rep"))
        return query if ids is None else query.where(t.c.person_id.in_(ids))

    @staticmethod
    def assignments(ids: Sequence[int] | None) -> Any:
        a = assignments
        query = select(
            a.c.id,
            a.c.person_id,
            _text(a.c.mql_at, "started_at"),
            _text(a.c.sla_due_at, "due_at"),
            a.c.team,
            a.c.rep_id,
        )
        return query if ids is None else query.where(a.c.person_id.in_(ids))

    @staticmethod
    def events(*, above: int | None = None, ids: Sequence[int] | None = None) -> Any:
        e = events
        query = select(
            e.c.id,
            e.c.person_id,
            e.c.message_id,
            e.c.type,
            e.c.name,
            _text(e.c.timestamp),
            _text(e.c.properties),
            e.c.consent_withdrawn,
        )
        if above is not None:
            query = query.where(e.c.id > above)
        if ids is not None:
            query = query.where(e.c.person_id.in_(ids))
        return query.order_by(e.c.id)


# --------------------------------------------------------------------------- the copy


def _meta(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    try:
        return {k: v for k, v in con.execute("SELECT key, value FROM meta").fetchall()}
    except duckdb.CatalogException:
        return {}


def _set_meta(con: duckdb.DuckDBPyConnection, values: dict[str, Any]) -> None:
    for key, value in values.items():
        con.execute("DELETE FROM meta WHERE key = ?", [key])
        con.execute("INSERT INTO meta VALUES (?, ?)", [key, str(value)])


def _create_tables(con: duckdb.DuckDBPyConnection) -> None:
    for name in [
        r[0]
        for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    ]:
        con.execute(f'DROP VIEW IF EXISTS "{name}"')
    for name in [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]:
        con.execute(f'DROP TABLE IF EXISTS "{name}"')
    for name, schema in TABLES.items():
        columns = ", ".join(f'"{c}" {t}' for c, t in schema.items())
        con.execute(f"CREATE TABLE {name} ({columns})")
    con.execute(SLA_CLOCKS_VIEW)


def _store_identity(database: Database) -> str:
    from mqlengine.store.admin import safe_url

    return safe_url(database.url)


class ColumnarCopy:
    """The copy of one store in one DuckDB file."""

    def __init__(self, database: Database, path: Path) -> None:
        self.database = database
        self.path = path
        self.lookback = 0 if database.is_sqlite else PG_LOOKBACK

    # -- reading ---------------------------------------------------------------------
    def reading(self) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        return reading(self.path)

    # -- refreshing ------------------------------------------------------------------
    def refresh(
        self,
        *,
        rebuild: bool = False,
        derive: Derive | None = None,
        derive_version: str = "",
        check: bool | None = True,
        lock_timeout: float = LOCK_TIMEOUT,
    ) -> RefreshStats:
        """Bring the copy up to date (from scratch with ``rebuild``, or when its version or
        store differs), then run ``derive`` for the persons changed since it last ran.

        ``check``: compare every person's row version with the store's (True), not
        (False), or only when the last comparison is :data:`CHECK_EVERY` seconds old
        (None). ``lock_timeout``: how long to wait for readers to let go."""
        started = time.perf_counter()
        stats = RefreshStats()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(self.path, exclusive=True, timeout=lock_timeout):
            con = self._open_for_writing()
            try:
                meta = _meta(con)
                if (
                    rebuild
                    or meta.get("version") != VERSION
                    or meta.get("store") != _store_identity(self.database)
                ):
                    stats.rebuilt = True
                generation = meta.get("generation", "0")
                if check is None:
                    last = float(meta.get("checked_at", "0") or 0)
                    check = not 0 <= time.time() - last < CHECK_EVERY
                stats.checked = check or stats.rebuilt
                con.execute("BEGIN TRANSACTION")
                try:
                    if stats.rebuilt:
                        _create_tables(con)
                        meta = {}
                    self._apply(con, meta, stats)
                    meta = _meta(con)
                    meta["generation"] = generation
                    if derive is not None:
                        full = stats.rebuilt or meta.get("derived") != derive_version
                        if full or _scalar(con, "SELECT count(*) FROM pending"):
                            if not full:
                                con.execute(
                                    "CREATE OR REPLACE TEMP TABLE _pending AS "
                                    "SELECT DISTINCT person_id FROM pending"
                                )
                                count = _scalar(con, "SELECT count(*) FROM _pending")
                                live = _scalar(con, "SELECT count(*) FROM persons") or 0
                                full = count > max(50_000, FULL_FRACTION * live)
                            derive(con, full)
                            stats.derived = "full" if full else "incremental"
                            con.execute("DELETE FROM pending")
                            _set_meta(con, {"derived": derive_version})
                    stats.generation = int(meta.get("generation", "0"))
                    if stats.checked:
                        _set_meta(con, {"checked_at": time.time()})
                    if stats.changed:
                        stats.generation += 1
                        _set_meta(con, {"generation": stats.generation})
                    if stats.changed or stats.checked:
                        con.execute("COMMIT")
                    else:  # nothing new: leave the file untouched
                        con.execute("ROLLBACK")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                if stats.rebuilt or stats.erased_persons:
                    # deleted rows are not left in the file's free blocks longer than needed
                    con.execute("CHECKPOINT")
            finally:
                con.close()
        stats.seconds = time.perf_counter() - started
        return stats

    def _open_for_writing(self) -> duckdb.DuckDBPyConnection:
        try:
            return _connect(self.path, read_only=False)
        except duckdb.Error:
            # not a DuckDB file we can open (corrupted, or another format): start over
            self.path.unlink(missing_ok=True)
            self.path.with_name(self.path.name + ".wal").unlink(missing_ok=True)
            return _connect(self.path, read_only=False)

    def _apply(
        self, con: duckdb.DuckDBPyConnection, meta: dict[str, str], stats: RefreshStats
    ) -> None:
        with self.database.read() as sc:
            if not self.database.is_sqlite:
                sc.execution_options(isolation_level="REPEATABLE READ")
            marks = {
                name: int(sc.execute(select(func.max(t.c.id))).scalar() or 0)
                for name, t in MARKS.items()
            }
            queries = _Queries(sc)
            if stats.rebuilt:
                self._full(con, sc, queries, marks, stats)
            else:
                self._incremental(con, sc, queries, meta, marks, stats)
            stats.small_tables = self._small_tables(con, sc)
        stats.marks_moved = any(str(v) != meta.get(f"mark_{k}") for k, v in marks.items())
        _set_meta(
            con,
            {
                "version": VERSION,
                "store": _store_identity(self.database),
                **{f"mark_{k}": v for k, v in marks.items()},
            },
        )

    def _full(
        self,
        con: duckdb.DuckDBPyConnection,
        sc: Connection,
        queries: _Queries,
        marks: dict[str, int],
        stats: RefreshStats,
    ) -> None:
        self._reload_per_person(con, sc, queries, None)
        stats.new_events = _load(con, "events", _fetch(sc, queries.events()))
        con.execute(
            "INSERT INTO events_daily "
            "SELECT CAST(timestamp AS DATE), count(*) FROM events GROUP BY 1"
        )
        _load(
            con,
            "merges_undone",
            _fetch(sc, select(merges.c.id).where(merges.c.undone_at.is_not(None))),
        )
        stats.dirty_persons = _scalar(con, "SELECT count(*) FROM person_versions")
        stats.full_reload = True

    def _reload_per_person(
        self,
        con: duckdb.DuckDBPyConnection,
        sc: Connection,
        queries: _Queries,
        ids: Sequence[int] | None,
    ) -> None:
        """Replace the per-person rows (persons, profiles, versions, history, rules, touches,
        assignments) of ``ids`` (None: of everyone) with what the store holds now."""
        if ids is None:
            for name in ("persons", "profiles", "person_versions", *PER_PERSON):
                con.execute(f"DELETE FROM {name}")
            parts: Iterable[Sequence[int] | None] = [None]
        else:
            _ids(con, "_reload", ids)
            con.execute("DELETE FROM persons WHERE id IN (SELECT person_id FROM _reload)")
            con.execute("DELETE FROM person_versions WHERE id IN (SELECT person_id FROM _reload)")
            for name in ("profiles", *PER_PERSON):
                con.execute(
                    f"DELETE FROM {name} WHERE person_id IN (SELECT person_id FROM _reload)"
                )
            parts = repo.chunks(sorted(ids), CHUNK)
        for part in parts:
            for table in _fetch(sc, queries.persons(part)):
                con.register("_p", table)
                try:
                    con.execute(
                        "INSERT INTO person_versions SELECT CAST(id AS BIGINT), "
                        "CAST(row_version AS BIGINT), merged_into IS NULL FROM _p"
                    )
                finally:
                    con.unregister("_p")
                live = table.filter(table["merged_into"].is_null())
                _insert(con, "persons", live)
                _insert(
                    con,
                    "profiles",
                    live.select(["id", "profile", "recycled_at"]).rename_columns(
                        ["person_id", "profile", "recycled_at"]
                    ),
                )
            _load(con, "history", _fetch(sc, queries.history(part)))
            for table in _fetch(sc, queries.cards(part)):
                con.register("_cards", table)
                try:
                    con.execute(RULES_FROM_CARDS)
                finally:
                    con.unregister("_cards")
            _load(con, "touches", _fetch(sc, queries.touches(part)))
            _load(con, "assignments", _fetch(sc, queries.assignments(part)))

    def _incremental(
        self,
        con: duckdb.DuckDBPyConnection,
        sc: Connection,
        queries: _Queries,
        meta: dict[str, str],
        marks: dict[str, int],
        stats: RefreshStats,
    ) -> None:
        def since(name: str) -> int:
            return max(int(meta.get(f"mark_{name}", "0")) - self.lookback, 0)

        dirty: set[int] = set()
        moved: set[int] = set()
        # new events (and the persons they name)
        con.execute("CREATE OR REPLACE TEMP TABLE _fresh AS SELECT * FROM events LIMIT 0")
        for table in _fetch(sc, queries.events(above=since("events"))):
            con.register("_new", table)
            try:
                con.execute(
                    "INSERT INTO _fresh SELECT CAST(id AS BIGINT), CAST(person_id AS BIGINT), "
                    "message_id, type, name, CAST(CAST(timestamp AS VARCHAR) AS TIMESTAMPTZ), "
                    "properties, CAST(consent_withdrawn AS BOOLEAN) FROM _new"
                )
            finally:
                con.unregister("_new")
        low = since("events")
        con.execute(f"DELETE FROM _fresh WHERE id IN (SELECT id FROM events WHERE id > {low})")
        dirty.update(r[0] for r in con.execute("SELECT DISTINCT person_id FROM _fresh").fetchall())
        # persons named by new rows of the other logs
        for name, column in (
            ("history", stage_history.c.person_id),
            ("snapshots", score_snapshots.c.person_id),
            ("touches", touches.c.person_id),
            ("assignments", assignments.c.person_id),
            ("persons", persons.c.id),
        ):
            table = column.table
            # no DISTINCT (the set dedupes): with it SQLite walks the whole person index
            # instead of the id range (0.15 s on 1.4 M stage changes, for nothing new)
            query = select(column).where(table.c.id > since(name))
            dirty.update(r[0] for r in sc.execute(query))
        # merges and their undoing move events between persons
        for row in sc.execute(
            select(merges.c.survivor_id, merges.c.merged_id).where(merges.c.id > since("merges"))
        ):
            moved.update((row.survivor_id, row.merged_id))
        known_undone = {r[0] for r in con.execute("SELECT id FROM merges_undone").fetchall()}
        for undone in sc.execute(
            select(merges.c.id, merges.c.survivor_id, merges.c.merged_id).where(
                merges.c.undone_at.is_not(None)
            )
        ):
            if undone.id not in known_undone:
                moved.update((undone.survivor_id, undone.merged_id))
                con.execute("INSERT INTO merges_undone VALUES (?)", [undone.id])
        for person_id in list(moved):
            # an erased person has no live holder: the erasure check below handles it
            with contextlib.suppress(Exception):
                moved.add(repo.live_person_id(sc, person_id))
        dirty |= moved
        # erasures: persons the store no longer has
        erased: set[int] = set()
        if marks["erasures"] > int(meta.get("mark_erasures", "0")):
            erased = self._erased(con, sc)
        dirty -= erased
        # the safety net: changed person rows nothing above explains
        unexplained = self._unexplained(con, sc, dirty) if stats.checked else set()
        stats.unexplained = len(unexplained)
        dirty |= unexplained
        stats.dirty_persons = len(dirty)
        stats.moved_persons = len(moved)
        stats.erased_persons = len(erased)
        live = _scalar(con, "SELECT count(*) FROM person_versions") or 0
        if len(dirty) > max(50_000, FULL_FRACTION * live):
            stats.full_reload = True
            self._reload_per_person(con, sc, queries, None)
        elif dirty:
            self._reload_per_person(con, sc, queries, sorted(dirty))
        # events: the new ones, and every event of the persons a merge moved events between
        _ids(con, "_moved", moved)
        if moved:  # (a scan of every event otherwise, for nothing)
            con.execute("DELETE FROM events WHERE person_id IN (SELECT person_id FROM _moved)")
        con.execute(
            "INSERT INTO events SELECT * FROM _fresh "
            "WHERE person_id NOT IN (SELECT person_id FROM _moved)"
        )
        for part in repo.chunks(sorted(moved), CHUNK):
            _load(con, "events", _fetch(sc, queries.events(ids=part)))
        stats.new_events = _scalar(con, "SELECT count(*) FROM _fresh") or 0
        if stats.new_events:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _daily AS SELECT day, sum(n) AS events FROM ("
                "SELECT day, events AS n FROM events_daily UNION ALL "
                "SELECT CAST(timestamp AS DATE), count(*) FROM _fresh GROUP BY 1) GROUP BY day"
            )
            con.execute("DELETE FROM events_daily")
            con.execute("INSERT INTO events_daily SELECT day, events FROM _daily")
        _ids(con, "_dirty", dirty | erased)
        con.execute("INSERT INTO pending SELECT person_id FROM _dirty")

    def _erased(self, con: duckdb.DuckDBPyConnection, sc: Connection) -> set[int]:
        """Delete from every table the persons the store no longer has; returns their ids."""
        con.execute("CREATE OR REPLACE TEMP TABLE _store_ids (id BIGINT)")
        _load_ids = _fetch(sc, select(persons.c.id))
        for table in _load_ids:
            con.register("_sid", table)
            try:
                con.execute("INSERT INTO _store_ids SELECT CAST(id AS BIGINT) FROM _sid")
            finally:
                con.unregister("_sid")
        gone: set[int] = set()
        for name, column in (
            ("person_versions", "id"),
            ("events", "person_id"),
            *((t, "person_id") for t in PER_PERSON),
        ):
            gone.update(
                r[0]
                for r in con.execute(
                    f"SELECT DISTINCT {column} FROM {name} "
                    f"WHERE {column} NOT IN (SELECT id FROM _store_ids)"
                ).fetchall()
            )
        if gone:
            _ids(con, "_gone", gone)
            con.execute("DELETE FROM persons WHERE id IN (SELECT person_id FROM _gone)")
            con.execute("DELETE FROM person_versions WHERE id IN (SELECT person_id FROM _gone)")
            for name in ("profiles", "events", *PER_PERSON):
                con.execute(f"DELETE FROM {name} WHERE person_id IN (SELECT person_id FROM _gone)")
            con.execute("DELETE FROM events_daily")
            con.execute(
                "INSERT INTO events_daily SELECT CAST(timestamp AS DATE), count(*) "
                "FROM events GROUP BY 1"
            )
        return gone

    def _unexplained(
        self, con: duckdb.DuckDBPyConnection, sc: Connection, dirty: set[int]
    ) -> set[int]:
        """Persons whose row version changed without a trace in the logs: compare the
        store's count and sum of row versions with the copy's (dirty persons' own rows
        read now); only when they differ, compare every ``(id, row_version)``."""
        count, total = sc.execute(
            select(func.count(), func.coalesce(func.sum(persons.c.row_version), 0))
        ).one()
        _ids(con, "_check", dirty)
        row = con.execute(
            "SELECT count(*), coalesce(sum(row_version), 0) FROM person_versions "
            "WHERE id NOT IN (SELECT person_id FROM _check)"
        ).fetchone()
        assert row is not None
        kept_count, kept_sum = row
        fresh_count, fresh_sum = 0, 0
        for part in repo.chunks(sorted(dirty), CHUNK):
            c, s = sc.execute(
                select(func.count(), func.coalesce(func.sum(persons.c.row_version), 0)).where(
                    persons.c.id.in_(part)
                )
            ).one()
            fresh_count += int(c)
            fresh_sum += int(s)
        if kept_count + fresh_count == int(count) and kept_sum + fresh_sum == int(total):
            return set()
        con.execute("CREATE OR REPLACE TEMP TABLE _versions (id BIGINT, row_version BIGINT)")
        for table in _fetch(sc, select(persons.c.id, persons.c.row_version)):
            con.register("_v", table)
            try:
                con.execute(
                    "INSERT INTO _versions SELECT CAST(id AS BIGINT), "
                    "CAST(row_version AS BIGINT) FROM _v"
                )
            finally:
                con.unregister("_v")
        changed = con.execute(
            "SELECT coalesce(s.id, c.id) FROM _versions s FULL JOIN person_versions c "
            "ON s.id = c.id WHERE s.row_version IS DISTINCT FROM c.row_version"
        ).fetchall()
        return {int(r[0]) for r in changed} - dirty

    def _small_tables(self, con: duckdb.DuckDBPyConnection, sc: Connection) -> bool:
        """Reps and spend: small, read whole; replaced only when they changed."""
        spend_query = select(
            spend.c.channel,
            spend.c.campaign,
            _text(spend.c.month),
            spend.c.amount,
            spend.c.currency,
        )
        reps_query = select(reps.c.id, reps.c.key)
        changed = False
        for name, query in (("spend", spend_query), ("reps", reps_query)):
            tables = list(_fetch(sc, query))
            con.execute(f"CREATE OR REPLACE TEMP TABLE _small AS SELECT * FROM {name} LIMIT 0")
            for table in tables:
                con.register("_s", table)
                try:
                    con.execute(f"INSERT INTO _small SELECT * FROM ({_casting(name, '_s')})")
                finally:
                    con.unregister("_s")
            differ = _scalar(
                con,
                f"SELECT (SELECT count(*) FROM "
                f"(SELECT * FROM _small EXCEPT ALL SELECT * FROM {name})) + "
                f"(SELECT count(*) FROM (SELECT * FROM {name} EXCEPT ALL SELECT * FROM _small))",
            )
            if differ:
                changed = True
                con.execute(f"DELETE FROM {name}")
                con.execute(f"INSERT INTO {name} SELECT * FROM _small")
        return changed


def _casting(name: str, source: str) -> str:
    casts = []
    for column, kind in TABLES[name].items():
        if kind == TS:
            casts.append(f"CAST(CAST({column} AS VARCHAR) AS TIMESTAMPTZ) AS {column}")
        else:
            casts.append(f"CAST({column} AS {kind}) AS {column}")
    return f"SELECT {', '.join(casts)} FROM {source}"


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = con.execute(sql).fetchone()
    return row[0] if row else None


def copy_for(database: Database) -> ColumnarCopy:
    """The store's copy; a :class:`ConfigError` when it has none configured."""
    path = columnar_path(database)
    if path is None:
        raise ConfigError(
            "this store has no columnar copy: set MQL_COLUMNAR_PATH (PostgreSQL, or to move it)"
        )
    return ColumnarCopy(database, path)
