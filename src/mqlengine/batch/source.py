"""Where a batch engine's input comes from: the store, or Parquet/CSV exports.

Both give a :class:`~mqlengine.batch.engine.BatchInput` in the engines' schemas, so a data
team can run a rescore or a backtest on warehouse exports exactly as on the store.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from sqlalchemy import false, select

from mqlengine.batch.engine import EVENTS_SCHEMA, PERSONS_SCHEMA, BatchInput
from mqlengine.store.db import Database
from mqlengine.store.repo import SCORED_TYPES
from mqlengine.store.tables import events, persons

CHUNK = 50_000


def _json(value: Any) -> str:
    return orjson.dumps(value or {}, option=orjson.OPT_SORT_KEYS).decode()


def from_store(database: Database, *, until: datetime | None = None) -> BatchInput:
    """Live persons and their scored events (those up to ``until`` when given)."""
    person_batches: list[pa.RecordBatch] = []
    event_batches: list[pa.RecordBatch] = []
    with database.read() as connection:
        query = (
            select(persons.c.id, persons.c.profile, persons.c.stage, persons.c.recycled_at)
            .where(persons.c.merged_into.is_(None))
            .order_by(persons.c.id)
        )
        result = connection.execute(query)
        while rows := result.fetchmany(CHUNK):
            person_batches.append(
                pa.RecordBatch.from_pydict(
                    {
                        "person_id": [r.id for r in rows],
                        "profile": [_json(r.profile) for r in rows],
                        "stage": [r.stage for r in rows],
                        "recycled_at": [r.recycled_at for r in rows],
                    },
                    schema=PERSONS_SCHEMA,
                )
            )
        live = select(persons.c.id).where(persons.c.merged_into.is_(None))
        query_events = select(
            events.c.person_id,
            events.c.message_id,
            events.c.name,
            events.c.timestamp,
            events.c.properties,
        ).where(
            events.c.type.in_(SCORED_TYPES),
            events.c.consent_withdrawn == false(),
            events.c.person_id.in_(live),
        )
        if until is not None:
            query_events = query_events.where(events.c.timestamp <= until)
        result = connection.execute(query_events.order_by(events.c.person_id, events.c.id))
        while rows := result.fetchmany(CHUNK):
            event_batches.append(
                pa.RecordBatch.from_pydict(
                    {
                        "person_id": [r.person_id for r in rows],
                        "event_id": [r.message_id for r in rows],
                        "name": [r.name for r in rows],
                        "timestamp": [r.timestamp for r in rows],
                        "properties": [_json(r.properties) for r in rows],
                    },
                    schema=EVENTS_SCHEMA,
                )
            )
    return BatchInput(
        pa.Table.from_batches(person_batches, schema=PERSONS_SCHEMA),
        pa.Table.from_batches(event_batches, schema=EVENTS_SCHEMA),
    )


def _read(path: Path, schema: pa.Schema) -> pa.Table:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
    elif path.suffix.lower() == ".csv":
        import pyarrow.csv as pcsv

        table = pcsv.read_csv(path)
    else:
        raise ValueError(f"{path}: expected a .parquet or .csv file")
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    return table.select([f.name for f in schema]).cast(schema)


def from_files(events_path: Path, persons_path: Path) -> BatchInput:
    """Exports in the engines' schemas (Parquet, or CSV with JSON text columns)."""
    return BatchInput(_read(persons_path, PERSONS_SCHEMA), _read(events_path, EVENTS_SCHEMA))
