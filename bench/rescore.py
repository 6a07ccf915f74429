"""Full rescore throughput: `mql score` on DuckDB against the old online path.

Generates a synthetic base with DuckDB (vectorised, not through the demo): persons
straight into a SQLite store and Parquet, events into Parquet (and into the store too
for the small old-path comparison). Then times:

- ``duckdb, parquet``: a full rescore on DuckDB reading the Parquet exports a chunk of
  persons at a time, writing scores, snapshots and stage changes back to SQLite — twice:
  the first run (every person's first score: a snapshot each), and a nightly rerun a day
  later (snapshots only where the total moved by half a point);
- at ``--old-persons`` (default 5,000) with the events in the store: the old online path
  (``rescore_all``), and the DuckDB rescore reading from the store.

CPU seconds (this process; DuckDB's threads included) are reported next to wall time;
peak RSS is the process's maximum. Sizes: ``--persons`` (default 1,000,000) and
``--events-per-person`` (default 50), or $MQL_BENCH_PERSONS / $MQL_BENCH_EVENTS_PER_PERSON.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import duckdb

from bench.common import report
from mqlengine.batch.duckdb_engine import DuckDBEngine
from mqlengine.batch.rescore import (
    FileSource,
    RunReport,
    StoreSource,
    full_rescore,
    rescore_all,
)
from mqlengine.domain.rules import Definition
from mqlengine.settings import Settings
from mqlengine.wiring import Wiring

AS_OF = datetime(2026, 11, 20, 12, tzinfo=UTC)
EVENT_NAMES = [
    "Page Viewed",
    "Page Viewed",
    "Page Viewed",
    "Email Link Clicked",
    "Content Downloaded",
    "Webinar Attended",
    "Demo Requested",
    "Trial Started",
    "Email Opened",
    "Signed In",
]
PATHS = ["/pricing", "/blog/scoring", "/careers", "/docs/api", "/", "/pricing/teams"]


def _list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def generate(folder: Path, persons: int, per_person: int) -> tuple[Path, Path]:
    """Persons and events as Parquet in the engines' schemas, sorted by person."""
    persons_path, events_path = folder / "persons.parquet", folder / "events.parquet"
    start_us = int((AS_OF - timedelta(days=180)).timestamp() * 1_000_000)
    span_us = 180 * 86_400 * 1_000_000
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        connection.execute("CREATE MACRO h(x, n) AS CAST(hash(x) % n AS BIGINT)")
        connection.execute(
            f"""
COPY (
  SELECT i AS person_id,
    '{{"email": "p' || i || '@' || (['acme.com','gmail.com','initech.io','globex.de'])[1 + i % 4]
    || '", "seniority": "' || (['vp','director','manager','individual','c_level'])[1 + h(i, 5)]
    || '", "department": "'
    || (['marketing','sales','engineering','revenue_operations'])[1 + h(i + 1, 4)]
    || '", "country": "' || (['US','DE','GB','BR','FR','IN'])[1 + h(i + 2, 6)]
    || '", "email_flags": [' || CASE WHEN i % 4 = 1 THEN '"free_mail"' ELSE '' END
    || '], "company": {{"employees": ' || h(i + 3, 20000)
    || ', "industry": "' || (['software','fintech','retail','ecommerce'])[1 + h(i + 4, 4)]
    || '"}}, "consent_marketing": true}}' AS profile,
    CASE WHEN i % 20 = 0 THEN 'mql' ELSE 'lead' END AS stage,
    CAST(NULL AS TIMESTAMPTZ) AS recycled_at
  FROM range(1, {persons + 1}) t(i)
) TO '{persons_path}' (FORMAT parquet)
"""
        )
        connection.execute(
            f"""
COPY (
  SELECT CAST(i // {per_person} + 1 AS BIGINT) AS person_id,
    'e' || i AS event_id,
    {_list(EVENT_NAMES)}[1 + h(i, {len(EVENT_NAMES)})] AS name,
    make_timestamptz(CAST({start_us} + h(i + 7, {span_us}) AS BIGINT)) AS "timestamp",
    '{{"path": "' || {_list(PATHS)}[1 + h(i + 9, {len(PATHS)})] || '"}}' AS properties
  FROM range(0, {persons * per_person}) t(i)
) TO '{events_path}' (FORMAT parquet)
"""
        )
    return persons_path, events_path


def settle_stages(folder: Path, definition: Definition, *, chunk: int) -> None:
    """Stages as the lifecycle left them a day before ``AS_OF`` (MQL where the card
    qualified then, else lead), so a rescore moves only the persons whose verdict changed
    since, as in a store kept current by ingest; scored with DuckDB, a chunk at a time."""
    persons_path, events_path = folder / "persons.parquet", folder / "events.parquet"
    settled = folder / "persons-settled.parquet"
    engine = DuckDBEngine()
    with engine.connect() as connection:
        connection.execute("CREATE TABLE mql_ids (person_id BIGINT)")
        high = connection.execute(f"SELECT max(person_id) FROM '{persons_path}'").fetchone()
        assert high is not None
        for low in range(0, int(high[0]) + 1, chunk):
            where = f"person_id > {low} AND person_id <= {low + chunk}"
            connection.execute(
                f"CREATE OR REPLACE VIEW p AS SELECT * FROM '{persons_path}' WHERE {where}"
            )
            connection.execute(
                f"CREATE OR REPLACE VIEW e AS SELECT * FROM '{events_path}' WHERE {where}"
            )
            cards = engine.score_sql(
                connection, definition, AS_OF - timedelta(days=1), persons="p", events="e"
            )
            connection.register("cards", cards.select(["person_id", "qualifies"]))
            connection.execute("INSERT INTO mql_ids SELECT person_id FROM cards WHERE qualifies")
            connection.unregister("cards")
        connection.execute(
            f"""COPY (SELECT person_id, profile,
                  CASE WHEN person_id IN (SELECT person_id FROM mql_ids) THEN 'mql' ELSE 'lead'
                  END AS stage, recycled_at
                FROM '{persons_path}' ORDER BY person_id) TO '{settled}' (FORMAT parquet)"""
        )
    settled.replace(persons_path)


def load_store(database_path: Path, persons_path: Path, events_path: Path | None) -> None:
    """The generated persons (and events, when given) into a migrated SQLite store."""
    stamp = (AS_OF - timedelta(days=200)).replace(tzinfo=None).isoformat(sep=" ")
    with duckdb.connect() as source:
        people = source.sql(f"SELECT person_id, profile, stage FROM '{persons_path}'")
        rows = people.fetchall()
        store = sqlite3.connect(database_path)
        store.execute("PRAGMA cache_size = -1000000")  # loading only: 1 GB of page cache
        store.executemany(
            "INSERT INTO persons (id, traits, profile, flags, first_seen_at, last_seen_at,"
            " stage, stage_changed_at, fit_score, intent_score, total_score, row_version,"
            " created_at, updated_at) VALUES (?, '{}', ?, '[]', ?, ?, ?, ?, 0, 0, 0, 1, ?, ?)",
            (
                (pid, profile, stamp, stamp, stage, stamp, stamp, stamp)
                for pid, profile, stage in rows
            ),
        )
        if events_path is not None:
            result = source.execute(
                f"SELECT event_id, person_id, name, strftime(timezone('UTC', \"timestamp\"),"
                f" '%Y-%m-%d %H:%M:%S.%f'), properties FROM '{events_path}'"
            )
            while batch := result.fetchmany(100_000):
                store.executemany(
                    "INSERT INTO events (message_id, person_id, type, name, properties, context,"
                    " timestamp, received_at) VALUES (?, ?, 'track', ?, ?, '{}', ?, ?)",
                    ((e, p, n, props, ts, ts) for e, p, n, ts, props in batch),
                )
        store.commit()
        store.close()


def _phases(report: RunReport) -> str:
    seconds = ", ".join(f"{name} {value:.1f} s" for name, value in report.seconds.items())
    return f"{seconds}; {report.stage_changes:,} stage changes"


def _measure(label: str, persons: int, events: int, run: Any) -> dict[str, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "pass": label,
        "persons": persons,
        "events": events,
        "wall s": round(wall, 2),
        "cpu s": round(cpu, 2),
        "persons/s": round(persons / wall),
        "events/s": round(events / wall),
        "cpu µs/person": round(cpu / persons * 1e6, 1),
        "peak RSS MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rescore")
    parser.add_argument(
        "--persons", type=int, default=int(os.environ.get("MQL_BENCH_PERSONS", 1_000_000))
    )
    parser.add_argument(
        "--events-per-person",
        type=int,
        default=int(os.environ.get("MQL_BENCH_EVENTS_PER_PERSON", 50)),
    )
    parser.add_argument("--old-persons", type=int, default=5_000)
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--write", type=int, default=20_000, help="persons per transaction")
    args = parser.parse_args(argv if argv is not None else [])
    rows: list[dict[str, Any]] = []
    notes: list[str] = [f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        template = files("mqlengine.definition") / "templates" / "mql.yaml"
        (folder / "mql.yaml").write_text(template.read_text())
        # the big one: Parquet in, SQLite out
        big = folder / "big"
        big.mkdir()
        started = time.perf_counter()
        # in a child process, so the peak RSS below is the rescores' own
        with ProcessPoolExecutor(1) as pool:
            persons_path, events_path = pool.submit(
                generate, big, args.persons, args.events_per_person
            ).result()
        seconds = time.perf_counter() - started
        total_events = args.persons * args.events_per_person
        notes.append(
            f"generated {args.persons:,} persons / {total_events:,} events in {seconds:.1f} s"
        )
        wiring = Wiring(
            Settings(
                database_url=f"sqlite:///{big / 'mql.db'}", definition_path=folder / "mql.yaml"
            )
        )
        definition = wiring.definition().definition
        wiring.db.engine.dispose()
        started = time.perf_counter()
        with ProcessPoolExecutor(1) as pool:
            pool.submit(settle_stages, big, definition, chunk=args.chunk).result()
        notes.append(f"stages settled in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        with ProcessPoolExecutor(1) as pool:
            pool.submit(load_store, big / "mql.db", persons_path, None).result()
        notes.append(f"persons loaded into SQLite in {time.perf_counter() - started:.1f} s")
        source = FileSource(events_path, persons_path)
        n_events = args.persons * args.events_per_person
        for label, moment in (("first", AS_OF), ("nightly", AS_OF + timedelta(days=1))):
            rows.append(
                _measure(
                    f"duckdb, parquet → sqlite ({label})",
                    args.persons,
                    n_events,
                    lambda moment=moment, label=label: notes.append(
                        f"{label}: "
                        + _phases(
                            full_rescore(
                                wiring.db,
                                definition,
                                engine=DuckDBEngine(),
                                now=moment,
                                as_of=moment,
                                source=source,
                                chunk_persons=args.chunk,
                                write_persons=args.write,
                            )
                        )
                    ),
                )
            )
        # the old path at a size it can do, events in the store
        small = folder / "small"
        small.mkdir()
        persons_path, events_path = generate(small, args.old_persons, args.events_per_person)
        wiring = Wiring(
            Settings(
                database_url=f"sqlite:///{small / 'mql.db'}", definition_path=folder / "mql.yaml"
            )
        )
        wiring.db.engine.dispose()
        load_store(small / "mql.db", persons_path, events_path)
        n_small = args.old_persons * args.events_per_person
        rows.append(
            _measure(
                "old path (online, per person), sqlite",
                args.old_persons,
                n_small,
                lambda: rescore_all(wiring.db, definition, now=AS_OF),
            )
        )
        rows.append(
            _measure(
                "duckdb, sqlite → sqlite",
                args.old_persons,
                n_small,
                lambda: full_rescore(
                    wiring.db,
                    definition,
                    engine=DuckDBEngine(),
                    now=AS_OF + timedelta(days=1),
                    source=StoreSource(wiring.db),
                ),
            )
        )
    notes.append(f"load average after: {os.getloadavg()[0]:.1f}")
    report("rescore", rows, notes="; ".join(notes))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
