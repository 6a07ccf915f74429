"""Undo a merge: give the merged person back its identities and events, rescore both.

A merge records what it moved (identity and event ids) and the survivor's columns it
changed. Undoing it moves those rows back — wherever later merges carried them — plus the
events that arrived *after* the merge for the merged person's identities (by user id, or
by anonymous id when the event carried no user id). The survivor's traits and flags are
replayed from the events it keeps, so nothing the merged person said lingers on it. Both
persons are rescored (stage changes recorded as usual), and the pair is remembered:
identity resolution never merges them again on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, or_, select, update

from mqlengine.errors import ConflictError, NotFoundError
from mqlengine.ingest.pipeline import Pipeline
from mqlengine.ingest.profile import deep_merge
from mqlengine.ingest.qualify import Outcome, rescore
from mqlengine.ingest.validation import cached_check_email, signal_hits
from mqlengine.store import repo
from mqlengine.store.repositories.accounts import accounts_by_id
from mqlengine.store.tables import events, identities, merges, persons


@dataclass
class UnmergeResult:
    merge_id: int
    survivor_id: int
    merged_id: int
    identities_moved: int
    events_moved: int
    outcomes: list[Outcome] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "merge_id": self.merge_id,
            "survivor_id": self.survivor_id,
            "merged_id": self.merged_id,
            "identities_moved": self.identities_moved,
            "events_moved": self.events_moved,
            "stage_changes": [
                {
                    "person_id": o.person_id,
                    "from": o.change.from_stage.value,
                    "to": o.change.to_stage.value,
                }
                for o in self.outcomes
                if o.change is not None
            ],
        }


def list_merges(
    connection: Connection, *, person_id: int | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    query = select(merges).order_by(merges.c.id.desc()).limit(limit)
    if person_id is not None:
        query = query.where(or_(merges.c.survivor_id == person_id, merges.c.merged_id == person_id))
    return [
        {
            "id": r["id"],
            "survivor_id": r["survivor_id"],
            "merged_id": r["merged_id"],
            "reason": r["reason"],
            "merged_at": r["merged_at"].isoformat(),
            "undone_at": r["undone_at"].isoformat() if r["undone_at"] else None,
            "identities": len((r["moved"] or {}).get("identities", [])),
            "events": len((r["moved"] or {}).get("events", [])),
        }
        for r in connection.execute(query).mappings()
    ]


def unmerge(
    connection: Connection, pipeline: Pipeline, merge_id: int, *, now: datetime
) -> UnmergeResult:
    """Undo merge ``merge_id`` on the caller's transaction."""
    row = connection.execute(select(merges).where(merges.c.id == merge_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"merge {merge_id} does not exist (see `mql unmerge --list`)")
    if row["undone_at"] is not None:
        raise ConflictError(f"merge {merge_id} was already undone at {row['undone_at']}")
    survivor, merged = int(row["survivor_id"]), int(row["merged_id"])
    moved = row["moved"] or {}
    identity_ids = [int(i) for i in moved.get("identities", [])]
    event_ids = [int(i) for i in moved.get("events", [])]

    # Who holds the moved rows now (the survivor, or whoever absorbed it later).
    holders = {survivor}
    for part in repo.chunks(identity_ids):
        holders.update(
            r.person_id
            for r in connection.execute(
                select(identities.c.person_id).where(identities.c.id.in_(part))
            )
        )
    for part in repo.chunks(identity_ids):
        connection.execute(
            update(identities).where(identities.c.id.in_(part)).values(person_id=merged)
        )
    for part in repo.chunks(event_ids):
        connection.execute(update(events).where(events.c.id.in_(part)).values(person_id=merged))

    # Events that arrived after the merge under the merged person's identities.
    keys = connection.execute(
        select(identities.c.kind, identities.c.value).where(identities.c.person_id == merged)
    ).all()
    user_ids = [k.value for k in keys if k.kind == "user_id"]
    anonymous_ids = [k.value for k in keys if k.kind == "anonymous_id"]
    late = 0
    if user_ids or anonymous_ids:
        clauses: list[ColumnElement[bool]] = []
        if user_ids:
            clauses.append(events.c.user_id.in_(user_ids))
        if anonymous_ids:
            clauses.append(
                and_(events.c.user_id.is_(None), events.c.anonymous_id.in_(anonymous_ids))
            )
        result = connection.execute(
            update(events)
            .where(events.c.person_id.in_(sorted(holders)), or_(*clauses))
            .values(person_id=merged)
        )
        late = max(result.rowcount or 0, 0)

    connection.execute(
        update(persons)
        .where(persons.c.id == merged)
        .values(merged_into=None, updated_at=now, row_version=persons.c.row_version + 1)
    )
    # Persons the merged one had absorbed before stay with it (their merged_into is it).
    _restore_columns(connection, survivor, moved)
    for person_id in sorted(holders | {merged}):
        replay_person(connection, pipeline, person_id, now=now)
    connection.execute(update(merges).where(merges.c.id == merge_id).values(undone_at=now))
    touched = sorted(holders | {merged})
    outcomes = rescore(
        connection, pipeline.definition, touched, now=now, handoff=pipeline.context.handoff
    )
    pipeline.forget(touched)
    return UnmergeResult(
        merge_id, survivor, merged, len(identity_ids), len(event_ids) + late, outcomes
    )


def _restore_columns(connection: Connection, survivor: int, moved: dict[str, Any]) -> None:
    before: dict[str, Any] = moved.get("survivor_before") or {}
    after: dict[str, Any] = moved.get("survivor_after") or {}
    current = repo.get_person(connection, survivor)
    if current is None or not before:
        return
    values: dict[str, Any] = {}
    for column, old in before.items():
        now_value = current[column]
        plain = now_value.isoformat() if isinstance(now_value, datetime) else now_value
        if plain == after.get(column):  # nothing changed it since the merge
            values[column] = datetime.fromisoformat(old) if column.endswith("_at") and old else old
    if values:
        repo.bump_person(connection, survivor, values)


def replay_person(
    connection: Connection, pipeline: Pipeline, person_id: int, *, now: datetime
) -> None:
    """Rebuild a person's traits, flags, e-mail and profile from the events it holds.

    Traits come from identify calls and ``context.traits`` of any call, in arrival order,
    exactly as the pipeline applied them.
    """
    row = repo.get_person(connection, person_id)
    if row is None:
        return
    traits: dict[str, Any] = {}
    flags: set[str] = set()
    first_seen = last_seen = None
    policy = pipeline.definition.validation
    query = (
        select(events.c.type, events.c.properties, events.c.context, events.c.timestamp)
        .where(events.c.person_id == person_id)
        .order_by(events.c.id)
    )
    for event in connection.execute(query):
        context = event.context or {}
        properties = event.properties or {}
        if event.type != "group":
            context_traits = context.get("traits")
            if isinstance(context_traits, dict):
                traits = deep_merge(traits, context_traits)
            if event.type == "identify":
                traits = deep_merge(traits, properties)
        hits = signal_hits(event.type, properties, context, policy)
        flags.update(h for h in hits if policy.action(h).value == "flag")
        first_seen = event.timestamp if first_seen is None else min(first_seen, event.timestamp)
        last_seen = event.timestamp if last_seen is None else max(last_seen, event.timestamp)
    values: dict[str, Any] = {"traits": traits, "flags": sorted(flags), "updated_at": now}
    email = traits.get("email")
    if isinstance(email, str) and email.strip():
        check = cached_check_email(email, pipeline.gmail_normalize)
        values["email"] = check.normalized or email.strip().lower()
    else:
        values["email"] = None
    if first_seen is not None:
        values["first_seen_at"] = min(first_seen, row["first_seen_at"])
        values["last_seen_at"] = last_seen
    account = None
    if row["account_id"] is not None:
        account = accounts_by_id(connection, [row["account_id"]]).get(row["account_id"])
    values["profile"] = pipeline.profile_for(traits, sorted(flags), account)
    repo.bump_person(connection, person_id, values)
