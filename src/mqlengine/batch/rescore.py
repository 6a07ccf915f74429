"""Rescore every person (after a definition change, or nightly so decay takes effect)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from mqlengine.domain.rules import Definition
from mqlengine.ingest.qualify import EventCache
from mqlengine.services.qualify import rescore
from mqlengine.store.db import Database
from mqlengine.store.tables import persons

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
