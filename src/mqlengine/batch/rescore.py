"""Rescore every person (after a definition change, or nightly so decay takes effect).

:func:`rescore_all` runs the online path person by person (ingest's tools use it);
:func:`full_rescore` is ``mql score``: a batch engine scores chunks of persons, the
results are written back in short transactions, and a run record with a cursor lets a
killed run resume where it stopped."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

import pyarrow as pa
from sqlalchemy import RowMapping, Text, cast, false, func, insert, select, update

from mqlengine.batch.engine import EVENTS_SCHEMA, PERSONS_SCHEMA, BatchEngine, BatchInput
from mqlengine.batch.writeback import write_slice
from mqlengine.domain.rules import Definition
from mqlengine.errors import ConflictError, NotFoundError
from mqlengine.ingest.qualify import EventCache
from mqlengine.services.qualify import rescore
from mqlengine.store.db import Database
from mqlengine.store.repo import SCORED_TYPES
from mqlengine.store.tables import events, persons
from mqlengine.store.tables_batch import rescore_runs

CHUNK = 1000


@dataclass
class RescoreReport:
    persons: int = 0
    mqls_entered: int = 0
    mqls_left: int = 0


def rescore_all(
    database: Database,
    definition: Definition,
    *,
    now: datetime,
    as_of: datetime | None = None,
    progress: Callable[[int], None] | None = None,
    cache: EventCache | None = None,
    stages: tuple[str, ...] | None = None,
) -> RescoreReport:
    """Rescore live persons (optionally only those in ``stages``), in chunked transactions."""
    report = RescoreReport()
    with database.read() as connection:
        query = select(persons.c.id).where(persons.c.merged_into.is_(None))
        if stages:
            query = query.where(persons.c.stage.in_(stages))
        ids = [r.id for r in connection.execute(query.order_by(persons.c.id))]
    moment = as_of or now
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        with database.begin() as connection:
            outcomes = rescore(
                connection,
                definition,
                part,
                now=now,
                as_of=dict.fromkeys(part, moment),
                cache=cache,
            )
        report.persons += len(outcomes)
        for outcome in outcomes:
            if outcome.change is not None:
                if outcome.change.to_stage.value == "mql":
                    report.mqls_entered += 1
                elif outcome.change.from_stage.value == "mql":
                    report.mqls_left += 1
        if progress:
            progress(len(part))
    return report


# --- explicit, batched, resumable full rescores with a batch engine ------------------------


class ChunkSource(Protocol):
    """Where a full rescore reads its input, a chunk of persons at a time."""

    def read(self, *, after: int, limit: int, until: datetime) -> BatchInput:
        """Live persons with ids above ``after`` (the first ``limit``, by id) and their
        scored events up to ``until``."""
        ...


class StoreSource:
    """Persons and events read from the store, a chunk of persons at a time (the JSON
    columns as text, never decoded in Python)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def read(self, *, after: int, limit: int, until: datetime) -> BatchInput:
        with self.database.read() as connection:
            people = connection.execute(
                select(
                    persons.c.id,
                    cast(persons.c.profile, Text).label("profile"),
                    persons.c.stage,
                    persons.c.recycled_at,
                )
                .where(persons.c.merged_into.is_(None), persons.c.id > after)
                .order_by(persons.c.id)
                .limit(limit)
            ).all()
            person_table = pa.Table.from_pydict(
                {
                    "person_id": [r.id for r in people],
                    "profile": [r.profile or "{}" for r in people],
                    "stage": [r.stage for r in people],
                    "recycled_at": [r.recycled_at for r in people],
                },
                schema=PERSONS_SCHEMA,
            )
            if not people:
                return BatchInput(person_table, EVENTS_SCHEMA.empty_table())
            found = connection.execute(
                select(
                    events.c.person_id,
                    events.c.message_id,
                    events.c.name,
                    events.c.timestamp,
                    cast(events.c.properties, Text).label("properties"),
                ).where(
                    events.c.person_id.between(people[0].id, people[-1].id),
                    events.c.type.in_(SCORED_TYPES),
                    events.c.consent_withdrawn == false(),
                    events.c.timestamp <= until,
                )
            ).all()
        event_table = pa.Table.from_pydict(
            {
                "person_id": [r.person_id for r in found],
                "event_id": [r.message_id for r in found],
                "name": [r.name for r in found],
                "timestamp": [r.timestamp for r in found],
                "properties": [r.properties or "{}" for r in found],
            },
            schema=EVENTS_SCHEMA,
        )
        return BatchInput(person_table, event_table)


class FileSource:
    """Persons and events from Parquet exports in the engines' schemas (sorted by person
    for fast chunk reads), read a chunk at a time through DuckDB."""

    def __init__(self, events_path: Path, persons_path: Path) -> None:
        for path in (events_path, persons_path):
            if not path.exists():
                raise NotFoundError(f"{path}: no such file")
        self.events_path = events_path
        self.persons_path = persons_path

    def read(self, *, after: int, limit: int, until: datetime) -> BatchInput:
        import duckdb

        with duckdb.connect() as connection:
            connection.execute("SET TimeZone = 'UTC'")
            people = connection.sql(
                "SELECT person_id, profile, stage, recycled_at FROM read_parquet($path)"
                " WHERE person_id > $after ORDER BY person_id LIMIT $limit",
                params={"path": str(self.persons_path), "after": after, "limit": limit},
            ).to_arrow_table()
            if people.num_rows == 0:
                return BatchInput(people.cast(PERSONS_SCHEMA), EVENTS_SCHEMA.empty_table())
            ids = people.column("person_id")
            found = connection.sql(
                "SELECT person_id, event_id, name, timestamp, properties FROM read_parquet($path)"
                " WHERE person_id BETWEEN $low AND $high AND timestamp <= $until",
                params={
                    "path": str(self.events_path),
                    "low": ids[0].as_py(),
                    "high": ids[-1].as_py(),
                    "until": until,
                },
            ).to_arrow_table()
        return BatchInput(people.cast(PERSONS_SCHEMA), found.cast(EVENTS_SCHEMA))


@dataclass
class RunReport:
    run_id: int
    as_of: datetime
    engine: str
    resumed_from: int = 0  # persons already done when this process took the run over
    persons: int = 0
    stage_changes: int = 0
    mqls_entered: int = 0
    mqls_left: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def unfinished_run(database: Database) -> RowMapping | None:
    with database.read() as connection:
        return (
            connection.execute(
                select(rescore_runs)
                .where(rescore_runs.c.status == "running")
                .order_by(rescore_runs.c.id.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )


def _describe(run: RowMapping) -> str:
    return (
        f"rescore run {run['id']} ({run['engine']}, as of {run['as_of'].isoformat()}, started "
        f"{run['started_at'].isoformat()}) stopped after {run['persons_done']} of "
        f"{run['persons_total']} persons"
    )


def _needs_online_path(database: Database, definition: Definition) -> bool:
    """Whether this definition's decisions read a live model's likelihood, which the batch
    engines do not compute: then every person is written through the online path."""
    from mqlengine.domain.scoring import Scorer
    from mqlengine.predict.registry import live_version

    if not Scorer(definition).reads_likelihood:
        return False
    with database.read() as connection:
        return live_version(connection) is not None


def full_rescore(
    database: Database,
    definition: Definition,
    *,
    engine: BatchEngine,
    now: datetime,
    as_of: datetime | None = None,
    notify: bool = False,
    resume: bool = False,
    restart: bool = False,
    source: ChunkSource | None = None,
    chunk_persons: int = 20_000,
    write_persons: int = 10_000,
    progress: Callable[[int, int], None] | None = None,
) -> RunReport:
    """Score every live person with ``engine`` and write the results back in short
    transactions, recording the run and how far it got, so a run killed at any point is
    continued with ``resume``. An unfinished run makes a new one refuse to start (unless
    ``restart``, which abandons it). ``progress(done, total)`` after each slice."""
    source = source or StoreSource(database)
    online = _needs_online_path(database, definition)
    found = unfinished_run(database)
    if found is not None and not (resume or restart):
        raise ConflictError(
            f"{_describe(found)}: continue it with `mql score --resume` "
            "or abandon it with `mql score --restart`"
        )
    if resume and found is None:
        raise NotFoundError("no unfinished rescore run to resume")
    if found is not None and restart and not resume:
        with database.begin() as connection:
            connection.execute(
                update(rescore_runs)
                .where(rescore_runs.c.id == found["id"])
                .values(status="abandoned", updated_at=now, note="abandoned by a restart")
            )
        found = None
    if found is not None:
        if found["definition_hash"] != definition.content_hash:
            raise ConflictError(
                f"{_describe(found)} under definition {found['definition_version']}, "
                f"which has changed since: start again with `mql score --restart`"
            )
        if found["engine"] != engine.name:
            raise ConflictError(
                f"{_describe(found)}; resume it with the same engine (--engine {found['engine']})"
            )
        run_id, moment, notify = found["id"], found["as_of"], found["notify"]
        cursor, done, total = found["cursor"], found["persons_done"], found["persons_total"]
    else:
        moment = as_of or now
        with database.begin() as connection:
            total = connection.execute(
                select(func.count()).select_from(persons).where(persons.c.merged_into.is_(None))
            ).scalar_one()
            inserted = connection.execute(
                insert(rescore_runs).values(
                    status="running",
                    engine=engine.name,
                    definition_version=definition.version,
                    definition_hash=definition.content_hash,
                    as_of=moment,
                    notify=notify,
                    cursor=0,
                    persons_total=total,
                    persons_done=0,
                    stage_changes=0,
                    started_at=now,
                    updated_at=now,
                )
            ).inserted_primary_key
            assert inserted is not None
            run_id = inserted[0]
        cursor, done = 0, 0
    report = RunReport(run_id, moment, engine.name, resumed_from=done)
    # where the time goes: reading input, the engine, writing scores and snapshots, and
    # the online path of the persons whose stage moves
    timing = {"read": 0.0, "score": 0.0, "write": 0.0, "stage changes": 0.0}
    if progress:
        progress(done, total)

    def scored(after: int) -> pa.Table | None:
        """The cards of the chunk of persons after ``after`` (None: no persons left)."""
        started = time.perf_counter()
        data = source.read(after=after, limit=chunk_persons, until=moment)
        timing["read"] += time.perf_counter() - started
        if data.persons.num_rows == 0:
            return None
        started = time.perf_counter()
        cards = engine.score(definition, data, moment)
        timing["score"] += time.perf_counter() - started
        return cards

    # An engine that runs outside the GIL (DuckDB) scores the next chunk while this one is
    # written: the store's writes are single-threaded, the engine takes the other cores.
    # The cursor still moves only with what is written, so a kill loses nothing.
    ahead = ThreadPoolExecutor(1) if getattr(engine, "scores_beside_writes", False) else None
    try:
        pending = ahead.submit(scored, cursor) if ahead else None
        while True:
            cards = pending.result() if pending else scored(cursor)
            if cards is None:
                break
            if ahead:
                pending = ahead.submit(scored, cards.column("person_id")[-1].as_py())
            started = time.perf_counter()
            for offset in range(0, cards.num_rows, write_persons):
                part = cards.slice(offset, write_persons)
                last = part.column("person_id")[-1].as_py()
                with database.begin() as connection:
                    written = write_slice(
                        connection,
                        definition,
                        part,
                        as_of=moment,
                        now=now,
                        notify=notify,
                        online=online,
                    )
                    done += part.num_rows
                    connection.execute(
                        update(rescore_runs)
                        .where(rescore_runs.c.id == run_id)
                        .values(
                            cursor=last,
                            persons_done=done,
                            stage_changes=rescore_runs.c.stage_changes + written.stage_changes,
                            updated_at=now,
                        )
                    )
                cursor = last
                timing["stage changes"] += written.online_seconds
                report.persons += written.persons
                report.stage_changes += written.stage_changes
                report.mqls_entered += written.mqls_entered
                report.mqls_left += written.mqls_left
                if progress:
                    progress(done, total)
            timing["write"] += time.perf_counter() - started
    finally:
        if ahead:
            ahead.shutdown(wait=True, cancel_futures=True)
    timing["write"] -= timing["stage changes"]
    with database.begin() as connection:
        connection.execute(
            update(rescore_runs)
            .where(rescore_runs.c.id == run_id)
            .values(status="finished", finished_at=now, updated_at=now)
        )
    report.seconds = timing
    return report
