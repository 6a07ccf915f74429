"""Privacy requests: erase a person, or export everything held on them.

**Erasure** removes a person — with every person merged into them — from every table:
persons, identities, events, stage history (with its score cards), score snapshots,
merges, assignments, touches, SLA breaches, outbox rows (notification payloads) and the
quarantined payloads that carry one of their identifiers. What stays is an audit row in
``erasures`` without personal data (when, by whom, how many rows each table lost) and,
when later events of the same identifiers are to be dropped (``MQL_AFTER_ERASURE=suppress``),
keyed hashes of those identifiers in ``suppressions``. SQLite runs with ``secure_delete``
(deleted content is overwritten) and the write-ahead log is truncated afterwards.

The ingest writer of a running server remembers identities and persons between its
transactions; an erasure is a write by another connection, which its change watch
notices (SQLite: the delete triggers bump ``ingest_epoch``; PostgreSQL: the erased
person's row, and so its change token, is gone), so it forgets what it held.

**Export** (an access request) returns the same set of rows as JSON-ready values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Column, Connection, Table, delete, or_, select, update

from mqlengine.domain.rules import Definition
from mqlengine.errors import NotFoundError, ValidationError
from mqlengine.services.leads import consent_detail, person_account
from mqlengine.store import repo
from mqlengine.store.changes import lock_persons
from mqlengine.store.db import Database
from mqlengine.store.dialect import insert_ignoring_conflicts
from mqlengine.store.secretbox import SecretBox
from mqlengine.store.tables import (
    events,
    identities,
    merges,
    persons,
    score_snapshots,
    stage_history,
)
from mqlengine.store.tables_desk import manual_corrections, review_items
from mqlengine.store.tables_handoff import assignments, destinations, outbox, sla_breaches, touches
from mqlengine.store.tables_ingest import quarantine
from mqlengine.store.tables_predict import model_shadow_scores
from mqlengine.store.tables_privacy import erasures, suppressions

AFTER_ERASURE = ("fresh", "suppress")


def _cluster(connection: Connection, person_id: int) -> list[int]:
    """The live person behind ``person_id`` and every person merged into it."""
    live = repo.live_person_id(connection, person_id)
    if connection.execute(select(persons.c.id).where(persons.c.id == live)).first() is None:
        raise NotFoundError(f"person {person_id} does not exist")
    found = {live}
    frontier = [live]
    while frontier:
        merged = [
            row.id
            for row in connection.execute(
                select(persons.c.id).where(persons.c.merged_into.in_(frontier))
            )
        ]
        frontier = [pid for pid in merged if pid not in found]
        found.update(frontier)
    return sorted(found)


def _identifiers(connection: Connection, ids: Sequence[int]) -> set[tuple[str, str]]:
    """Every identifier of these persons: their identities and the ids their events carry."""
    found = {
        (row.kind, row.value)
        for row in connection.execute(
            select(identities.c.kind, identities.c.value).where(identities.c.person_id.in_(ids))
        )
    }
    for row in connection.execute(
        select(events.c.user_id, events.c.anonymous_id)
        .where(events.c.person_id.in_(ids))
        .distinct()
    ):
        if row.user_id:
            found.add(("user_id", row.user_id))
        if row.anonymous_id:
            found.add(("anonymous_id", row.anonymous_id))
    for row in connection.execute(select(persons.c.email).where(persons.c.id.in_(ids))):
        if row.email:
            found.add(("email", row.email))
    return found


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _quarantined(connection: Connection, values: Iterable[str]) -> list[int]:
    """Quarantine rows whose raw payload contains one of these identifiers."""
    wanted = sorted({v for v in values if len(v) >= 3})
    found: set[int] = set()
    for part in repo.chunks(wanted, 50):
        condition = or_(*(quarantine.c.payload.like(_like(v), escape="\\") for v in part))
        found.update(row.id for row in connection.execute(select(quarantine.c.id).where(condition)))
    return sorted(found)


def _delete(connection: Connection, table: Table, column: Column[Any], ids: Sequence[int]) -> int:
    removed = 0
    for part in repo.chunks(list(ids)):
        removed += connection.execute(delete(table).where(column.in_(part))).rowcount or 0
    return removed


def erase_person(
    connection: Connection,
    person_id: int,
    *,
    now: datetime,
    actor: str,
    after: str = "fresh",
    box: SecretBox | None = None,
) -> dict[str, Any]:
    """Erase a person (and every person merged into them) on the caller's transaction.

    ``after``: ``fresh`` — later events with the same identifiers start a new person;
    ``suppress`` — they are dropped at ingest, which keeps keyed hashes of the
    identifiers (``box`` must hold a secret key). Returns the audit record."""
    if after not in AFTER_ERASURE:
        raise ValidationError(f"after erasure: {after!r} is not one of {', '.join(AFTER_ERASURE)}")
    ids = _cluster(connection, person_id)
    lock_persons(connection, ids)
    found = _identifiers(connection, ids)
    digests: list[str] = []
    if after == "suppress":
        if box is None:
            box = SecretBox(None)
        digests = sorted({box.digest(kind, value) for kind, value in found})
    assignment_ids = [
        row.id
        for row in connection.execute(
            select(assignments.c.id).where(assignments.c.person_id.in_(ids))
        )
    ]
    counts: dict[str, int] = {}
    counts["sla_breaches"] = _delete(
        connection, sla_breaches, sla_breaches.c.person_id, ids
    ) + _delete(connection, sla_breaches, sla_breaches.c.assignment_id, assignment_ids)
    counts["touches"] = _delete(connection, touches, touches.c.person_id, ids)
    counts["manual_corrections"] = _delete(
        connection, manual_corrections, manual_corrections.c.person_id, ids
    )
    counts["review_items"] = _delete(connection, review_items, review_items.c.person_id, ids)
    counts["assignments"] = _delete(connection, assignments, assignments.c.person_id, ids)
    counts["outbox"] = _delete(connection, outbox, outbox.c.person_id, ids)
    counts["stage_history"] = _delete(connection, stage_history, stage_history.c.person_id, ids)
    counts["score_snapshots"] = _delete(
        connection, score_snapshots, score_snapshots.c.person_id, ids
    )
    counts["model_shadow_scores"] = _delete(
        connection, model_shadow_scores, model_shadow_scores.c.person_id, ids
    )
    counts["merges"] = _delete(connection, merges, merges.c.survivor_id, ids) + _delete(
        connection, merges, merges.c.merged_id, ids
    )
    counts["events"] = _delete(connection, events, events.c.person_id, ids)
    counts["identities"] = _delete(connection, identities, identities.c.person_id, ids)
    counts["quarantine"] = _delete(
        connection, quarantine, quarantine.c.id, _quarantined(connection, (v for _, v in found))
    )
    for part in repo.chunks(ids):
        connection.execute(update(persons).where(persons.c.id.in_(part)).values(merged_into=None))
    counts["persons"] = _delete(connection, persons, persons.c.id, ids)
    erasure_id = connection.execute(
        erasures.insert().values(erased_at=now, actor=actor, counts=counts, after=after)
    ).inserted_primary_key[0]  # type: ignore[index]
    insert_ignoring_conflicts(
        connection,
        suppressions,
        [{"erasure_id": erasure_id, "digest": d, "created_at": now} for d in digests],
        ["digest"],
    )
    return {
        "erasure_id": int(erasure_id),
        "erased_at": now.isoformat(),
        "actor": actor,
        "counts": counts,
        "after": after,
        "suppressed_identifiers": len(digests),
    }


def erase(
    database: Database,
    person_id: int,
    *,
    now: datetime,
    actor: str,
    after: str = "fresh",
    box: SecretBox | None = None,
) -> dict[str, Any]:
    """:func:`erase_person` in its own transaction, then the store scrubbed (SQLite's
    write-ahead log truncated: no copy of the deleted pages is left in it)."""
    with database.begin() as connection:
        record = erase_person(connection, person_id, now=now, actor=actor, after=after, box=box)
    record["log_truncated"] = database.scrub()
    return record


# --- export ----------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _rows(connection: Connection, query: Any) -> list[dict[str, Any]]:
    return [_plain(dict(row)) for row in connection.execute(query).mappings()]


def export_person(connection: Connection, definition: Definition, person_id: int) -> dict[str, Any]:
    """Everything held on a person (and the persons merged into them), JSON-ready."""
    ids = _cluster(connection, person_id)
    live = repo.live_person_id(connection, person_id)
    profiles = _rows(
        connection, select(persons).where(persons.c.id.in_(ids)).order_by(persons.c.id)
    )
    main = next(p for p in profiles if p["id"] == live)
    assignment_ids = [
        row.id
        for row in connection.execute(
            select(assignments.c.id).where(assignments.c.person_id.in_(ids))
        )
    ]
    notifications = _rows(
        connection,
        select(
            outbox.c.id,
            outbox.c.message_id,
            outbox.c.topic,
            outbox.c.person_id,
            destinations.c.name.label("destination"),
            destinations.c.kind,
            outbox.c.payload,
            outbox.c.status,
            outbox.c.created_at,
            outbox.c.delivered_at,
        )
        .join(destinations, destinations.c.id == outbox.c.destination_id)
        .where(outbox.c.person_id.in_(ids))
        .order_by(outbox.c.id),
    )
    return {
        "person": main,
        "merged_persons": [p for p in profiles if p["id"] != live],
        "account": person_account(connection, main.get("account_id")),
        "consent": consent_detail(connection, definition, live, main.get("profile") or {}),
        **{
            name: _rows(
                connection,
                select(table).where(table.c.person_id.in_(ids)).order_by(*order, table.c.id),
            )
            for name, table, order in (
                ("identities", identities, ()),
                ("events", events, (events.c.timestamp,)),
                ("stage_history", stage_history, (stage_history.c.changed_at,)),
                ("score_snapshots", score_snapshots, (score_snapshots.c.as_of,)),
                ("assignments", assignments, (assignments.c.assigned_at,)),
                ("touches", touches, ()),
                ("model_shadow_scores", model_shadow_scores, (model_shadow_scores.c.as_of,)),
                ("manual_corrections", manual_corrections, (manual_corrections.c.corrected_at,)),
                ("review_items", review_items, ()),
            )
        },
        "sla_breaches": _rows(
            connection,
            select(sla_breaches)
            .where(
                or_(
                    sla_breaches.c.person_id.in_(ids),
                    sla_breaches.c.assignment_id.in_(assignment_ids or [-1]),
                )
            )
            .order_by(sla_breaches.c.id),
        ),
        "notifications": notifications,
        "merges": _rows(
            connection,
            select(merges)
            .where(or_(merges.c.survivor_id.in_(ids), merges.c.merged_id.in_(ids)))
            .order_by(merges.c.id),
        ),
    }
