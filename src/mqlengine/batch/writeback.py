"""Writing a batch engine's cards back to the store, one short transaction per slice.

Scores go to every person with one bulk UPDATE per slice — the figures only where they
changed (the score indexes of ``persons`` are touched only then), else just ``scored_at``;
score snapshots follow the online rule (a stage change, a first score, a move of half a
point or more, another definition).
A card whose ``next_stage`` moves the person is handed to the online path
(:func:`mqlengine.services.qualify.rescore`): it scores that person again from the store
and applies the change with its score card and the handoff (routing, SLA, outbox rows),
exactly as ingest would — so stage history keeps full explanations. Those handoff rows
are written ``suppressed`` unless ``notify``.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime

import orjson
import pyarrow as pa
from sqlalchemy import Connection, select

from mqlengine.domain.rules import Definition
from mqlengine.ingest.qualify import SNAPSHOT_MIN_DELTA
from mqlengine.services import outbox
from mqlengine.services.qualify import rescore
from mqlengine.store.db import _json_dumps
from mqlengine.store.dialect import _sqlite_time_text, bulk_insert, bulk_update
from mqlengine.store.tables import persons, score_snapshots


@dataclass
class SliceResult:
    persons: int = 0
    mqls_entered: int = 0
    mqls_left: int = 0
    stage_changes: int = 0
    online_seconds: float = 0.0  # of it, the online path's (stage changes)


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
    reads the likelihood of a live model: the batch engines score rules only).

    The stored scores of the slice are read first and compared with the cards: a person
    whose figures and definition version are unchanged gets only ``scored_at`` (a column
    no index reads); the others get their figures, which the lead lists' score indexes
    follow. On SQLite the rows go to the driver as tuples built column-wise, never as one
    dict per person."""
    result = SliceResult()
    if cards.num_rows == 0:
        return result
    ids: list[int] = cards.column("person_id").to_pylist()
    current = {
        row[0]: row
        for row in connection.execute(
            select(
                persons.c.id,
                persons.c.fit_score,
                persons.c.intent_score,
                persons.c.total_score,
                persons.c.scored_at.is_(None),
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
    changed: list[tuple[float, float, float, int]] = []
    touched: list[tuple[int]] = []
    snapshots: list[tuple[int, float, float, float, bool, str]] = []
    rows = zip(
        ids,
        cards.column("fit").to_pylist(),
        cards.column("intent").to_pylist(),
        cards.column("total").to_pylist(),
        cards.column("qualifies").to_pylist(),
        cards.column("rule_points").to_pylist(),
        strict=True,
    )
    for person_id, fit, intent, total, qualifies, points in rows:
        row = current.get(person_id)
        if row is None or person_id in moving:
            continue  # merged or erased since it was read; or left to the online path
        _, old_fit, old_intent, old_total, never_scored, old_version = row
        if never_scored or old_version != version:
            changed.append((fit, intent, total, person_id))
            snapshots.append((person_id, fit, intent, total, qualifies, points))
            continue
        if old_total != total or old_fit != fit or old_intent != intent:
            changed.append((fit, intent, total, person_id))
            if abs(old_total - total) >= SNAPSHOT_MIN_DELTA:
                snapshots.append((person_id, fit, intent, total, qualifies, points))
        else:
            touched.append((person_id,))
    _write_scores(connection, changed, touched, as_of=as_of, version=version)
    _write_snapshots(connection, snapshots, as_of=as_of, version=version)
    result.persons = len(changed) + len(touched)
    movers = sorted(pid for pid in moving if pid in current)
    if movers:
        started = time.perf_counter()
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
        result.online_seconds = time.perf_counter() - started
    return result


_SQLITE_SCORES = (
    "UPDATE persons SET fit_score = ?, intent_score = ?, total_score = ?, scored_at = ?,"
    " definition_version = ? WHERE id = ?"
)
_SQLITE_TOUCH = "UPDATE persons SET scored_at = ? WHERE id = ?"
_SQLITE_SNAPSHOT = (
    "INSERT INTO score_snapshots (person_id, as_of, definition_version, fit, intent, total,"
    " qualifies, rule_points) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _write_scores(
    connection: Connection,
    changed: list[tuple[float, float, float, int]],
    touched: list[tuple[int]],
    *,
    as_of: datetime,
    version: str,
) -> None:
    if connection.dialect.name != "sqlite":
        bulk_update(
            connection,
            persons,
            [
                {
                    "id": pid,
                    "fit_score": fit,
                    "intent_score": intent,
                    "total_score": total,
                    "scored_at": as_of,
                    "definition_version": version,
                }
                for fit, intent, total, pid in changed
            ],
        )
        bulk_update(connection, persons, [{"id": pid, "scored_at": as_of} for (pid,) in touched])
        return
    stamp = _sqlite_time_text(as_of)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if changed:
            cursor.executemany(
                _SQLITE_SCORES,
                ((fit, intent, total, stamp, version, pid) for fit, intent, total, pid in changed),
            )
        if touched:
            cursor.executemany(_SQLITE_TOUCH, ((stamp, pid) for (pid,) in touched))
    finally:
        cursor.close()


def _write_snapshots(
    connection: Connection,
    snapshots: list[tuple[int, float, float, float, bool, str]],
    *,
    as_of: datetime,
    version: str,
) -> None:
    if not snapshots:
        return
    if connection.dialect.name != "sqlite":
        bulk_insert(
            connection,
            score_snapshots,
            [
                {
                    "person_id": pid,
                    "as_of": as_of,
                    "definition_version": version,
                    "fit": fit,
                    "intent": intent,
                    "total": total,
                    "qualifies": qualifies,
                    "rule_points": orjson.loads(points),
                }
                for pid, fit, intent, total, qualifies, points in snapshots
            ],
        )
        return
    stamp = _sqlite_time_text(as_of)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(
            _SQLITE_SNAPSHOT,
            (
                # the engine's JSON text in the store's own form (compact, keys sorted)
                (
                    pid,
                    stamp,
                    version,
                    fit,
                    intent,
                    total,
                    int(qualifies),
                    _json_dumps(orjson.loads(points)),
                )
                for pid, fit, intent, total, qualifies, points in snapshots
            ),
        )
    finally:
        cursor.close()
