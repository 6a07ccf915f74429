"""Batch inputs from the store's columnar copy, without reading the row store's rows.

The copy itself (a DuckDB file kept current by id watermarks, changed persons, merges and
erasures) lives in :mod:`mqlengine.store.columnar`, where the reports reach it too. This
module refreshes it and hands the batch engines a :class:`~mqlengine.batch.engine.BatchInput`
in the contract's schemas: live persons with their profile, stage and recycle time, and
their scored events (page, screen and track calls sent with consent).
"""

from __future__ import annotations

from datetime import UTC, datetime

from mqlengine.batch.engine import EVENTS_SCHEMA, PERSONS_SCHEMA, BatchInput
from mqlengine.store.columnar import ColumnarCopy, RefreshStats, copy_for
from mqlengine.store.db import Database
from mqlengine.store.repo import SCORED_TYPES

_TYPES = ", ".join(f"'{t}'" for t in SCORED_TYPES)

PERSONS_SQL = """
SELECT p.id AS person_id, coalesce(f.profile, '{}') AS profile, p.stage,
       f.recycled_at
FROM persons p LEFT JOIN profiles f ON f.person_id = p.id
ORDER BY p.id
"""

EVENTS_SQL = f"""
SELECT e.person_id, e.message_id AS event_id, e.name, e.timestamp,
       coalesce(e.properties, '{{}}') AS properties
FROM events e
WHERE e.type IN ({_TYPES}) AND NOT coalesce(e.consent_withdrawn, false)
  AND e.person_id IN (SELECT id FROM persons)
  __UNTIL__
ORDER BY e.person_id, e.id
"""


def refresh(database: Database, *, rebuild: bool = False) -> RefreshStats:
    """Bring the store's copy up to date (a :class:`ConfigError` when it has none)."""
    return copy_for(database).refresh(rebuild=rebuild)


def batch_input_from_columnar(
    database: Database,
    *,
    until: datetime | None = None,
    refresh_first: bool = True,
) -> BatchInput:
    """Live persons and their scored events (those up to ``until`` when given) from the
    columnar copy, refreshed first unless ``refresh_first`` is False: the same input as
    :func:`mqlengine.batch.source.from_store`."""
    copy: ColumnarCopy = copy_for(database)
    if refresh_first:
        copy.refresh()
    condition = ""
    parameters: list[object] = []
    if until is not None:
        moment = until.replace(tzinfo=UTC) if until.tzinfo is None else until
        condition = "AND e.timestamp <= ?"
        parameters.append(moment)
    with copy.reading() as connection:
        persons = connection.sql(PERSONS_SQL).to_arrow_table()
        events_table = connection.sql(
            EVENTS_SQL.replace("__UNTIL__", condition), params=parameters or None
        ).to_arrow_table()
    return BatchInput(
        persons.cast(PERSONS_SCHEMA),
        events_table.cast(EVENTS_SCHEMA) if events_table.num_rows else EVENTS_SCHEMA.empty_table(),
    )
