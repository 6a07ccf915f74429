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
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import duckdb

from bench.common import report
from mqlengine.batch.duckdb_engine import DuckDBEngine
from mqlengine.batch.rescore import FileSource, StoreSource, full_rescore, rescore_all
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


def load_store(database_path: Path, persons_path: Path, events_path: Path | None) -> None:
    """The generated persons (and events, when given) into a migrated SQLite store."""
    stamp = (AS_OF - timedelta(days=200)).replace(tzinfo=None).isoformat(sep=" ")
    with duckdb.connect() as source:
        people = source.sql(f"SELECT person_id, profile, stage FROM '{persons_path}'")
        rows = people.fetchall()
        store = sqlite3.connect(database_path)
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
        persons_path, events_path = generate(big, args.persons, args.events_per_person)
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
        load_store(big / "mql.db", persons_path, None)
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
                        + str(
                            full_rescore(
                                wiring.db,
                                definition,
                                engine=DuckDBEngine(),
                                now=moment,
                                as_of=moment,
                                source=source,
                                chunk_persons=args.chunk,
                                write_persons=20_000,
                            ).seconds
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
