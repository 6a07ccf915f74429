"""Writing a batch engine's cards back to the store, one short transaction per slice.

Scores go to every person with one bulk UPDATE; score snapshots follow the online rule
(a stage change, a first score, a move of half a point or more, another definition).
A card whose ``next_stage`` moves the person is handed to the online path
(:func:`mqlengine.services.qualify.rescore`): it scores that person again from the store
and applies the change with its score card and the handoff (routing, SLA, outbox rows),
exactly as ingest would — so stage history keeps full explanations. Those handoff rows
are written ``suppressed`` unless ``notify``.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
from sqlalchemy import Connection, select

from mqlengine.domain.rules import Definition
from mqlengine.ingest.qualify import SNAPSHOT_MIN_DELTA
from mqlengine.services import outbox
from mqlengine.services.qualify import rescore
from mqlengine.store.dialect import bulk_insert, bulk_update
from mqlengine.store.tables import persons, score_snapshots


@dataclass
class SliceResult:
    persons: int = 0
    mqls_entered: int = 0
    mqls_left: int = 0
    stage_changes: int = 0


def write_slice(
    connection: Connection,
    definition: Definition,
    cards: pa.Table,
    *,
    as_of: datetime,
    now: datetime,
    notify: bool,
    online: bool = False,
) -> SliceResult:
    """Write one slice of cards (ordered by person) on the caller's transaction.
    ``online``: every person of the slice goes through the online path (a definition that
    reads the likelihood of a live model: the batch engines score rules only)."""
    result = SliceResult()
    if cards.num_rows == 0:
        return result
    columns = cards.select(["person_id", "fit", "intent", "total", "qualifies", "rule_points"])
    ids: list[int] = columns.column("person_id").to_pylist()
    current = {
        row.id: row
        for row in connection.execute(
            select(
                persons.c.id,
                persons.c.total_score,
                persons.c.scored_at,
                persons.c.definition_version,
            ).where(
                persons.c.id.between(ids[0], ids[-1]),
                persons.c.merged_into.is_(None),
            )
        )
    }
    moving = (
        set(ids)
        if online
        else set(
            pa.compute.filter(
                cards.column("person_id"), pa.compute.is_valid(cards["next_stage"])
            ).to_pylist()
        )
    )
    version = definition.version
    score_rows: list[dict[str, Any]] = []
    snapshots: list[dict[str, Any]] = []
    rows = zip(
        ids,
        columns.column("fit").to_pylist(),
        columns.column("intent").to_pylist(),
        columns.column("total").to_pylist(),
        columns.column("qualifies").to_pylist(),
        columns.column("rule_points").to_pylist(),
        strict=True,
    )
    for person_id, fit, intent, total, qualifies, points in rows:
        row = current.get(person_id)
        if row is None or person_id in moving:
            continue  # merged or erased since it was read; or left to the online path
        score_rows.append(
            {
                "id": person_id,
                "fit_score": fit,
                "intent_score": intent,
                "total_score": total,
                "scored_at": as_of,
                "definition_version": version,
            }
        )
        if (
            row.scored_at is None
            or abs(row.total_score - total) >= SNAPSHOT_MIN_DELTA
            or row.definition_version != version
        ):
            snapshots.append(
                {
                    "person_id": person_id,
                    "as_of": as_of,
                    "definition_version": version,
                    "fit": fit,
                    "intent": intent,
                    "total": total,
                    "qualifies": qualifies,
                    "rule_points": json.loads(points),
                }
            )
    bulk_update(connection, persons, score_rows)
    bulk_insert(connection, score_snapshots, snapshots)
    result.persons = len(score_rows)
    movers = sorted(pid for pid in moving if pid in current)
    if movers:
        moments = dict.fromkeys(movers, as_of)
        with nullcontext() if notify else outbox.suppressed():
            outcomes = rescore(connection, definition, movers, now=now, as_of=moments)
        result.persons += len(outcomes)
        for outcome in outcomes:
            if outcome.change is None:
                continue
            result.stage_changes += 1
            if outcome.change.to_stage.value == "mql":
                result.mqls_entered += 1
            elif outcome.change.from_stage.value == "mql":
                result.mqls_left += 1
    return result
