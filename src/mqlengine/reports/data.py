"""The reports' data: the store's funnel columns in an in-memory DuckDB database.

With a columnar copy of the store (:mod:`mqlengine.store.columnar`; beside a SQLite file,
or at ``MQL_COLUMNAR_PATH``), the copy is refreshed incrementally, the derived ``entries``
and ``leads`` are kept in it (again only for the persons that changed), and the report
tables are read from it. Without one, the paragraph below applies.

DuckDB's sqlite/postgres scanners cannot be downloaded here, so the columns the metrics read
are fetched with SQLAlchemy (no type processing), handed over as Arrow tables and copied
into DuckDB, where one pass derives ``entries``: one row per MQL entry with every outcome
that followed it (the cohort-correct unit of the funnel). Every report is then a filtered
aggregate over ``entries`` and ``leads``, never a Python loop over persons.

Tables of the handoff room (touches, SLA clocks, owners) are read when they exist and left
empty when they don't, so the reports degrade to what the store can tell.
The benchmark builds the same tables from Parquet (:meth:`ReportData.from_tables`).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb
import orjson
import pyarrow as pa
from sqlalchemy import (
    Connection,
    MetaData,
    String,
    Table,
    func,
    inspect,
    select,
    type_coerce,
)
from sqlalchemy.sql.elements import ColumnElement

from mqlengine.domain.funnel import IMPORT_ACTORS, NON_SALES_ACTORS
from mqlengine.store.columnar import (
    ColumnarCopy,
    RefreshStats,
    optional_table,
    pick_column,
    reading,
)
from mqlengine.store.columnar_config import columnar_path
from mqlengine.store.db import Database
from mqlengine.store.tables import events, persons, stage_history
from mqlengine.store.tables_reports import spend

# Canonical columns of each DuckDB table: name → DuckDB type.
PERSON_COLUMNS = {
    "id": "BIGINT",
    "email": "VARCHAR",
    "channel": "VARCHAR",
    "source": "VARCHAR",
    "campaign": "VARCHAR",
    "first_seen_at": "TIMESTAMPTZ",
    "stage": "VARCHAR",
    "stage_changed_at": "TIMESTAMPTZ",
    "mql_type": "VARCHAR",
    "total_score": "DOUBLE",
    "owner": "VARCHAR",
    "team": "VARCHAR",
}
HISTORY_COLUMNS = {
    "id": "BIGINT",
    "person_id": "BIGINT",
    "from_stage": "VARCHAR",
    "to_stage": "VARCHAR",
    "changed_at": "TIMESTAMPTZ",
    "reason": "VARCHAR",
    "actor": "VARCHAR",
    "action": "VARCHAR",
    "definition_version": "VARCHAR",
    "mql_type": "VARCHAR",
    "reactivated": "BOOLEAN",
    "amount": "DOUBLE",
}
CARD_COLUMNS = {"history_id": "BIGINT", "score_card": "VARCHAR"}
RULE_COLUMNS = {"history_id": "BIGINT", "rule": "VARCHAR", "points": "DOUBLE"}
TOUCH_COLUMNS = {"person_id": "BIGINT", "touched_at": "TIMESTAMPTZ", "rep": "VARCHAR"}
SLA_COLUMNS = {
    "person_id": "BIGINT",
    "started_at": "TIMESTAMPTZ",
    "due_at": "TIMESTAMPTZ",
    "rep": "VARCHAR",
    "team": "VARCHAR",
}
SPEND_COLUMNS = {
    "channel": "VARCHAR",
    "campaign": "VARCHAR",
    "month": "DATE",
    "amount": "DOUBLE",
    "currency": "VARCHAR",
}
EVENTS_DAILY_COLUMNS = {"day": "DATE", "events": "BIGINT"}

SCHEMAS: dict[str, dict[str, str]] = {
    "persons": PERSON_COLUMNS,
    "history": HISTORY_COLUMNS,
    "mql_rules": RULE_COLUMNS,
    "touches": TOUCH_COLUMNS,
    "sla_clocks": SLA_COLUMNS,
    "spend": SPEND_COLUMNS,
    "events_daily": EVENTS_DAILY_COLUMNS,
}

# Stages at or beyond each funnel step: reaching a later stage counts as passing the step.
SAL_OR_LATER = ("sal", "sql", "opportunity", "customer")
SQL_OR_LATER = ("sql", "opportunity", "customer")
OPP_OR_LATER = ("opportunity", "customer")

_NOT_SALES = ", ".join(f"'{actor}'" for actor in NON_SALES_ACTORS)
_IMPORTERS = ", ".join(f"'{actor}'" for actor in IMPORT_ACTORS)

# One row per MQL entry with what followed it until the person's next MQL entry.
# Recycled, rejected, disqualified and lost are the sales actions of those names (lost is not
# recycled, though both move the lead to nurture). Touches and the first sales action count
# only rows of real sales actors: scoring and imported history are no touch.
ENTRIES_SELECT = f"""
WITH m AS (
    SELECT h.id AS entry_id, h.person_id, h.changed_at AS mql_at,
           coalesce(h.mql_type, 'unknown') AS mql_type,
           coalesce(h.definition_version, 'unknown') AS definition_version,
           coalesce(h.reactivated, false) AS reactivated,
           -- an MQL written by an import: its handoff (touches, SLA) was never recorded
           coalesce(h.actor IN ({_IMPORTERS}), false) AS imported,
           lead(h.changed_at) OVER (PARTITION BY h.person_id ORDER BY h.changed_at, h.id)
               AS next_mql_at,
           lag(h.changed_at) OVER (PARTITION BY h.person_id ORDER BY h.changed_at, h.id)
               AS previous_mql_at
    FROM history h WHERE h.to_stage = 'mql' {{persons}}
),
o AS (
    SELECT m.entry_id,
        min(h.changed_at) FILTER (h.to_stage IN ('sal','sql','opportunity','customer')) AS sal_at,
        min(h.changed_at) FILTER (h.to_stage IN ('sql','opportunity','customer')) AS sql_at,
        min(h.changed_at) FILTER (h.to_stage = 'sql') AS sql_stage_at,
        min(h.changed_at) FILTER (h.to_stage IN ('opportunity','customer')) AS opp_at,
        min(h.changed_at) FILTER (h.to_stage = 'customer') AS won_at,
        min(h.changed_at) FILTER (h.action = 'lost') AS lost_at,
        min(h.changed_at) FILTER (h.action = 'reject') AS rejected_at,
        min(h.changed_at) FILTER (h.action = 'recycle') AS recycled_at,
        min(h.changed_at) FILTER (h.action = 'disqualify') AS disqualified_at,
        min(h.changed_at) FILTER (h.to_stage = 'lead' AND h.from_stage = 'mql') AS demoted_at,
        min(h.changed_at) FILTER (h.actor NOT IN ({_NOT_SALES}) AND h.action IS NOT NULL)
            AS first_action_at,
        arg_min(h.reason, h.changed_at) FILTER (h.action IN ('reject','disqualify','recycle'))
            AS verdict_reason,
        max(h.amount) FILTER (h.to_stage = 'opportunity') AS pipeline_amount,
        max(h.amount) FILTER (h.to_stage = 'customer') AS revenue_amount
    FROM m JOIN history h
      ON h.person_id = m.person_id AND h.id <> m.entry_id
     AND h.changed_at >= m.mql_at
     AND (m.next_mql_at IS NULL OR h.changed_at < m.next_mql_at)
    GROUP BY m.entry_id
),
w AS (
    -- a win dated before this MQL (and after the previous one): not a win of this MQL
    SELECT m.entry_id, max(h.changed_at) AS won_before_at
    FROM m JOIN history h
      ON h.person_id = m.person_id AND h.to_stage = 'customer' AND h.changed_at < m.mql_at
     AND (m.previous_mql_at IS NULL OR h.changed_at >= m.previous_mql_at)
    GROUP BY m.entry_id
),
t AS (
    SELECT m.entry_id, min(t.touched_at) AS touched_at
    FROM m JOIN touches t
      ON t.person_id = m.person_id AND t.touched_at >= m.mql_at
     AND (m.next_mql_at IS NULL OR t.touched_at < m.next_mql_at)
     AND (t.rep IS NULL OR t.rep NOT IN ({_NOT_SALES}))
    GROUP BY m.entry_id
),
c AS (
    SELECT m.entry_id, min(c.due_at) AS due_at,
           -- the latest assignment of the episode owns it now
           last(c.rep ORDER BY c.started_at) AS rep, last(c.team ORDER BY c.started_at) AS team
    FROM m JOIN sla_clocks c
      ON c.person_id = m.person_id AND c.started_at >= m.mql_at
     AND (m.next_mql_at IS NULL OR c.started_at < m.next_mql_at)
    GROUP BY m.entry_id
)
SELECT m.*, p.channel, p.source, p.campaign, coalesce(c.rep, p.owner) AS owner,
       coalesce(c.team, p.team) AS team, p.first_seen_at,
       o.sal_at, o.sql_at, o.sql_stage_at, o.opp_at, o.won_at, o.lost_at, o.rejected_at,
       o.recycled_at, o.disqualified_at, o.demoted_at, o.verdict_reason,
       o.pipeline_amount, o.revenue_amount, w.won_before_at,
       -- any sales action on the lead implies it was touched
       least(t.touched_at, o.first_action_at) AS first_touch_at,
       -- a verdict: accepted (or further), rejected, recycled or disqualified
       least(o.sal_at, o.rejected_at, o.disqualified_at, o.recycled_at) AS decided_at,
       c.due_at
FROM m
JOIN persons p ON p.id = m.person_id
LEFT JOIN o USING (entry_id)
LEFT JOIN w USING (entry_id)
LEFT JOIN t USING (entry_id)
LEFT JOIN c USING (entry_id)
"""
ENTRIES_SQL = "CREATE OR REPLACE TABLE entries AS " + ENTRIES_SELECT.format(persons="")

LEADS_SELECT = """
SELECT p.*, f.first_mql_at
FROM persons p
LEFT JOIN (
    SELECT person_id, min(mql_at) AS first_mql_at FROM entries {persons} GROUP BY person_id
) f
  ON f.person_id = p.id
"""
LEADS_SQL = "CREATE OR REPLACE TABLE leads AS " + LEADS_SELECT.format(persons="")

RULES_FROM_CARDS_SQL = """
CREATE OR REPLACE TABLE mql_rules AS
SELECT history_id, c.rule::VARCHAR AS rule, c.points::DOUBLE AS points
FROM (
    SELECT history_id,
           unnest(from_json(json_extract(score_card, '$.contributions'),
                            '[{"rule": "VARCHAR", "points": "DOUBLE"}]')) AS c
    FROM cards WHERE score_card IS NOT NULL
)
"""


@dataclass
class ReportData:
    """An in-memory DuckDB database holding the report tables (thread-safe via cursors)."""

    connection: duckdb.DuckDBPyConnection
    features: dict[str, bool] = field(default_factory=dict)
    load_seconds: float = 0.0
    fingerprint: tuple[Any, ...] = ()

    @property
    def empty(self) -> bool:
        """Not known to be empty: every query runs (see :mod:`mqlengine.reports.source`)."""
        return False

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self.connection.cursor()

    @classmethod
    def from_tables(
        cls, tables: Mapping[str, Any], *, features: Mapping[str, bool] | None = None
    ) -> ReportData:
        """Build from Arrow tables, DuckDB relations or SQL (``"SELECT …"`` strings) per
        canonical table name; missing tables are created empty."""
        started = time.perf_counter()
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")
        for name, schema in SCHEMAS.items():
            if name == "mql_rules" and "mql_rules" not in tables and "cards" in tables:
                continue
            _create(con, name, schema, tables.get(name))
        if "mql_rules" not in tables and "cards" in tables:
            _create(con, "cards", CARD_COLUMNS, tables["cards"])
            con.execute(RULES_FROM_CARDS_SQL)
            con.execute("DROP TABLE cards")
        con.execute(ENTRIES_SQL)
        con.execute(LEADS_SQL)
        found = _features(con, features)
        return cls(con, found, time.perf_counter() - started)

    @classmethod
    def from_columnar(cls, connection: duckdb.DuckDBPyConnection) -> ReportData:
        """Copy the report tables (with the derived ``entries`` and ``leads``) out of the
        store's columnar copy into memory: the file is read under its shared lock only for
        this copy, so a cached ``ReportData`` never holds up the next refresh."""
        started = time.perf_counter()
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")
        for name in (*SCHEMAS, "entries", "leads"):
            columns = SCHEMAS.get(name)
            select_list = ", ".join(columns) if columns else "*"
            table = connection.sql(f"SELECT {select_list} FROM {name}").to_arrow_table()
            con.register("_part", table)
            try:
                con.execute(f"CREATE TABLE {name} AS SELECT * FROM _part")
            finally:
                con.unregister("_part")
        found = _features(con, None)
        return cls(con, found, time.perf_counter() - started)


def _features(
    con: duckdb.DuckDBPyConnection, features: Mapping[str, bool] | None
) -> dict[str, bool]:
    found = dict(features or {})
    for name in ("touches", "sla_clocks", "spend"):
        found.setdefault(name, _has_rows(con, name))
    # touches by sales (recorded touches, or any sales action on an MQL)
    found.setdefault("sales_touches", _scalar(con, "SELECT count(first_touch_at) FROM entries") > 0)
    # does the data know an SQL stage apart from the opportunity?
    found.setdefault(
        "sql_stage", _scalar(con, "SELECT count(*) FROM history WHERE to_stage = 'sql'") > 0
    )
    found.setdefault("owners", _scalar(con, "SELECT count(owner) FROM entries") > 0)
    return found


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = con.execute(sql).fetchone()
    return row[0] if row else None


def _has_rows(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(_scalar(con, f"SELECT count(*) > 0 FROM {table}"))


def _create(
    con: duckdb.DuckDBPyConnection, name: str, schema: Mapping[str, str], source: Any
) -> None:
    """Create ``name`` with the canonical columns cast from ``source`` (NULL when absent)."""
    if source is None or (isinstance(source, pa.Table) and source.num_columns == 0):
        columns = ", ".join(f"{c} {t}" for c, t in schema.items())
        con.execute(f"CREATE OR REPLACE TABLE {name} ({columns})")
        return
    if isinstance(source, str):
        relation = con.sql(source)
    elif isinstance(source, pa.Table):
        relation = con.from_arrow(source)
    else:
        relation = source
    present = set(relation.columns)
    casts = []
    for column, kind in schema.items():
        if column not in present:
            casts.append(f"CAST(NULL AS {kind}) AS {column}")
        elif kind == "TIMESTAMPTZ":
            # SQLite hands over naive UTC text, PostgreSQL aware datetimes: both → UTC.
            casts.append(f"CAST(CAST({column} AS VARCHAR) AS TIMESTAMPTZ) AS {column}")
        else:
            casts.append(f"CAST({column} AS {kind}) AS {column}")
    view = f"_src_{name}"
    con.register(view, relation)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT {', '.join(casts)} FROM {view}")
    finally:
        con.unregister(view)


# --------------------------------------------------------------------------- store → Arrow


def _arrow(connection: Connection, query: Any) -> pa.Table:
    result = connection.execute(query)
    names = list(result.keys())
    rows = result.fetchall()
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    arrays = []
    for values in columns:
        sample = next((v for v in values if v is not None), None)
        if isinstance(sample, dict | list):
            arrays.append(
                pa.array([None if v is None else orjson.dumps(v).decode() for v in values])
            )
        else:
            arrays.append(pa.array(list(values)))
    return pa.Table.from_arrays(arrays, names=names)


def _raw(column: Any, name: str | None = None) -> ColumnElement[Any]:
    """The column without SQLAlchemy's per-row result processing (times stay as the
    driver returns them; DuckDB parses them)."""
    return type_coerce(column, String).label(name or column.name)


def load_tables(connection: Connection) -> dict[str, pa.Table]:
    """Fetch the funnel columns from the store as Arrow tables."""
    tables: dict[str, pa.Table] = {}
    # Reflected, so columns other rooms add (owner, team, first touch) are visible too.
    p = optional_table(connection, "persons")
    if p is None:
        p = persons
    owner = pick_column(p, "owner", "owner_id", "owner_rep", "assigned_to", "rep")
    team = pick_column(p, "team", "team_id", "queue")
    columns: list[ColumnElement[Any]] = [
        p.c.id,
        p.c.email,
        p.c.channel,
        p.c.source,
        p.c.campaign,
        _raw(p.c.first_seen_at),
        p.c.stage,
        _raw(p.c.stage_changed_at),
        p.c.mql_type,
        p.c.total_score,
    ]
    if owner is not None:
        columns.append(type_coerce(owner, String).label("owner"))
    if team is not None:
        columns.append(type_coerce(team, String).label("team"))
    tables["persons"] = _arrow(connection, select(*columns).where(p.c.merged_into.is_(None)))
    h = stage_history
    tables["history"] = _arrow(
        connection,
        select(
            h.c.id,
            h.c.person_id,
            h.c.from_stage,
            h.c.to_stage,
            _raw(h.c.changed_at),
            h.c.reason,
            h.c.actor,
            h.c.action,
            h.c.definition_version,
            h.c.mql_type,
            h.c.reactivated,
            h.c.amount,
        ),
    )
    tables["cards"] = _arrow(
        connection,
        select(
            h.c.id.label("history_id"), type_coerce(h.c.score_card, String).label("score_card")
        ).where(h.c.to_stage == "mql", h.c.score_card.is_not(None)),
    )
    tables["spend"] = _arrow(
        connection,
        select(
            spend.c.channel,
            spend.c.campaign,
            _raw(spend.c.month),
            spend.c.amount,
            spend.c.currency,
        ),
    )
    day = func.date(events.c.timestamp)
    tables["events_daily"] = _arrow(
        connection,
        select(type_coerce(day, String).label("day"), func.count().label("events")).group_by(day),
    )
    touches = _touches(connection, p)
    if touches is not None:
        tables["touches"] = touches
    clocks = _sla_clocks(connection)
    if clocks is not None:
        tables["sla_clocks"] = clocks
    return tables


def _touches(connection: Connection, person_table: Table) -> pa.Table | None:
    """Sales touches: the handoff's ``touches`` table, else a ``first_touch_at`` column on
    assignments or persons."""
    table = optional_table(connection, "touches")
    if table is not None and "person_id" in table.c:
        at = pick_column(table, "touched_at", "at", "occurred_at", "created_at")
        rep = pick_column(table, "actor", "rep", "rep_id", "owner")
        if at is not None:
            cols = [table.c.person_id, _raw(at, "touched_at")]
            if rep is not None:
                cols.append(type_coerce(rep, String).label("rep"))
            return _arrow(connection, select(*cols))
    assignments = optional_table(connection, "assignments")
    for candidate, person in (
        (assignments, "person_id"),
        (person_table, "id"),
    ):
        if candidate is None or person not in candidate.c:
            continue
        column = pick_column(candidate, "first_touch_at", "first_touched_at")
        if column is None:
            continue
        return _arrow(
            connection,
            select(candidate.c[person].label("person_id"), _raw(column, "touched_at")).where(
                column.is_not(None)
            ),
        )
    return None


def _sla_clocks(connection: Connection) -> pa.Table | None:
    """SLA deadline and owner per MQL episode from the handoff's ``assignments``."""
    table = optional_table(connection, "assignments")
    if table is None or "person_id" not in table.c:
        return None
    started = pick_column(table, "mql_at", "assigned_at", "created_at", "started_at")
    if started is None:
        return None
    cols: list[ColumnElement[Any]] = [table.c.person_id, _raw(started, "started_at")]
    due = pick_column(table, "sla_due_at", "due_at", "first_touch_due_at")
    if due is not None:
        cols.append(_raw(due, "due_at"))
    team = pick_column(table, "team", "team_id", "queue")
    if team is not None:
        cols.append(type_coerce(team, String).label("team"))
    rep = pick_column(table, "rep_id", "rep", "owner")
    reps = optional_table(connection, "reps")
    source: Any = table
    if rep is not None and rep.name == "rep_id" and reps is not None and "id" in reps.c:
        label = pick_column(reps, "key", "name")
        cols.append(type_coerce(label if label is not None else reps.c.id, String).label("rep"))
        source = table.outerjoin(reps, reps.c.id == rep)
    elif rep is not None:
        cols.append(type_coerce(rep, String).label("rep"))
    return _arrow(connection, select(*cols).select_from(source))


def _fingerprint(connection: Connection) -> tuple[Any, ...]:
    """Cheap change detection: append-only tables by their newest id (an index lookup, no
    count over millions of events), persons by their newest update, spend by its newest
    import; the handoff's tables by their newest id."""
    parts: list[Any] = [
        connection.execute(select(func.max(stage_history.c.id))).scalar(),
        connection.execute(select(func.max(events.c.id))).scalar(),
        connection.execute(select(func.max(persons.c.updated_at), func.count())).one(),
        connection.execute(select(func.max(spend.c.imported_at), func.count())).one(),
    ]
    inspector = inspect(connection)
    for name in ("touches", "assignments"):
        if inspector.has_table(name):
            table = Table(name, MetaData(), autoload_with=connection)
            if "id" in table.c:
                parts.append(connection.execute(select(func.max(table.c.id))).scalar())
            if "first_touch_at" in table.c:
                parts.append(connection.execute(select(func.max(table.c.first_touch_at))).scalar())
    return tuple(str(p) for p in parts)


class _Cache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: dict[str, ReportData] = {}


_CACHE = _Cache()


def derive_report_tables(con: duckdb.DuckDBPyConnection, full: bool) -> None:
    """The reports' derived tables in the columnar copy: ``entries`` and ``leads`` for
    everyone (``full``), or again for the persons in ``_pending`` only (a person's entries
    depend on nothing but its own rows)."""
    if full:
        con.execute(ENTRIES_SQL)
        con.execute(LEADS_SQL)
        return
    chosen = "AND h.person_id IN (SELECT person_id FROM _pending)"
    con.execute("DELETE FROM entries WHERE person_id IN (SELECT person_id FROM _pending)")
    con.execute("INSERT INTO entries " + ENTRIES_SELECT.format(persons=chosen))
    con.execute("DELETE FROM leads WHERE id IN (SELECT person_id FROM _pending)")
    leads = LEADS_SELECT.format(persons="WHERE person_id IN (SELECT person_id FROM _pending)")
    con.execute(
        f"INSERT INTO leads SELECT * FROM ({leads}) WHERE id IN (SELECT person_id FROM _pending)"
    )


# The derived tables' version: a change of their SQL rebuilds them in every copy.
DERIVED_VERSION = hashlib.sha256((ENTRIES_SELECT + LEADS_SELECT).encode()).hexdigest()[:16]


def refresh_columnar(database: Database, *, rebuild: bool = False) -> RefreshStats | None:
    """Bring the store's columnar copy (and the reports' tables in it) up to date; None
    when the store has no copy."""
    path = columnar_path(database)
    if path is None:
        return None
    return ColumnarCopy(database, path).refresh(
        rebuild=rebuild, derive=derive_report_tables, derive_version=DERIVED_VERSION
    )


def report_data(
    database: Database, *, refresh: bool = False, columnar: bool | None = None
) -> ReportData:
    """The report tables for this database, rebuilt only when the store changed.

    With a columnar copy (beside a SQLite file, or ``MQL_COLUMNAR_PATH``) the copy is
    refreshed incrementally and the tables are read from it; otherwise (or with
    ``columnar=False``) they are copied from the store."""
    path = columnar_path(database) if columnar is not False else None
    if path is not None:
        stats = ColumnarCopy(database, path).refresh(
            rebuild=refresh,
            derive=derive_report_tables,
            derive_version=DERIVED_VERSION,
            check=None,
        )
        fingerprint = ("columnar", str(path), stats.generation)
        with _CACHE.lock:
            cached = _CACHE.entries.get(database.url)
            if cached is not None and cached.fingerprint == fingerprint:
                return cached
        with reading(path) as connection:
            data = ReportData.from_columnar(connection)
        data.fingerprint = fingerprint
        data.load_seconds += stats.seconds
        with _CACHE.lock:
            _CACHE.entries[database.url] = data
        return data
    with database.read() as connection:
        fingerprint = _fingerprint(connection)
        with _CACHE.lock:
            cached = _CACHE.entries.get(database.url)
            if cached is not None and cached.fingerprint == fingerprint and not refresh:
                return cached
        started = time.perf_counter()
        tables = load_tables(connection)
    data = ReportData.from_tables(tables)
    data.fingerprint = fingerprint
    data.load_seconds = time.perf_counter() - started
    with _CACHE.lock:
        _CACHE.entries[database.url] = data
    return data


@contextlib.contextmanager
def open_report_data(database: Database, *, refresh: bool = False) -> Iterator[ReportData]:
    """The report tables for one use (a command that runs a report and ends).

    With a columnar copy, the copy is refreshed and then queried where it lies, under its
    shared lock until the block ends (a refresh elsewhere waits): nothing is copied into
    memory. Without one, the same as :func:`report_data`. A long-lived process that answers
    many reports (the API, the dashboard) uses :func:`report_data`, whose copy in memory
    holds no lock between requests."""
    path = columnar_path(database)
    if path is None:
        yield report_data(database, refresh=refresh)
        return
    stats = ColumnarCopy(database, path).refresh(
        rebuild=refresh,
        derive=derive_report_tables,
        derive_version=DERIVED_VERSION,
        check=None,
    )
    with reading(path) as connection:
        data = ReportData(connection, _features(connection, None), stats.seconds)
        data.fingerprint = ("columnar", str(path), stats.generation)
        yield data


def clear_cache() -> None:
    with _CACHE.lock:
        _CACHE.entries.clear()
