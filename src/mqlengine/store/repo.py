"""Repository functions over a Connection: the business code never builds SQL strings."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, false, func, select, update

from mqlengine.domain.scoring import Event
from mqlengine.store.tables import (
    accounts,
    definition_versions,
    events,
    persons,
    stage_history,
)
from mqlengine.store.tables_privacy import suppressions

CHUNK = 500
# the message types that are scored events (identify, group and alias only change who)
SCORED_TYPES = ("page", "screen", "track")


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load_events(
    connection: Connection,
    person_ids: Iterable[int],
    *,
    until: datetime | None = None,
    names: Collection[str] | None = None,
) -> dict[int, list[Event]]:
    """Scored events (track/page/screen) per person, as scoring values; ``names``: only
    events of these names (None: all)."""
    if names is not None and not names:
        return {}
    result: dict[int, list[Event]] = defaultdict(list)
    ids = sorted(set(person_ids))
    for part in chunks(ids):
        query = select(
            events.c.person_id,
            events.c.message_id,
            events.c.name,
            events.c.timestamp,
            events.c.properties,
        ).where(
            events.c.person_id.in_(part),
            events.c.type.in_(SCORED_TYPES),
            events.c.consent_withdrawn == false(),
        )
        if until is not None:
            query = query.where(events.c.timestamp <= until)
        if names is not None:
            query = query.where(events.c.name.in_(sorted(names)))
        for row in connection.execute(query):
            result[row.person_id].append(
                Event(row.message_id, row.name, row.timestamp, row.properties or {})
            )
    return result


def persons_by_id(
    connection: Connection,
    person_ids: Iterable[int],
    *,
    without: tuple[str, ...] = (),
    only: tuple[str, ...] | None = None,
) -> dict[int, RowMapping]:
    """Person rows by id; ``without`` leaves out (large) columns the caller won't read,
    ``only`` reads just these."""
    found: dict[int, RowMapping] = {}
    ids = sorted(set(person_ids))
    columns = [c for c in persons.c if c.name not in without and (only is None or c.name in only)]
    for part in chunks(ids):
        query = select(*columns).where(persons.c.id.in_(part))
        for row in connection.execute(query).mappings():
            found[row["id"]] = row
    return found


def known_message_ids(connection: Connection, message_ids: Sequence[str]) -> set[str]:
    """Which of these message ids are stored already (one IN query per chunk; on
    PostgreSQL one query with the ids as a single array, which the server plans once)."""
    seen: set[str] = set()
    if connection.dialect.name == "postgresql":
        found = connection.exec_driver_sql(
            "SELECT message_id FROM events WHERE message_id = ANY(CAST(%b AS VARCHAR[]))",
            (list(message_ids),),
        )
        return {row[0] for row in found}
    for part in chunks(message_ids):
        query = select(events.c.message_id).where(events.c.message_id.in_(part))
        seen.update(r.message_id for r in connection.execute(query))
    return seen


def person_traits(connection: Connection, person_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    ids = sorted(set(person_ids))
    for part in chunks(ids):
        query = select(persons.c.id, persons.c.traits).where(persons.c.id.in_(part))
        for row in connection.execute(query):
            found[row.id] = row.traits or {}
    return found


def get_person(connection: Connection, person_id: int) -> RowMapping | None:
    return connection.execute(select(persons).where(persons.c.id == person_id)).mappings().first()


def suppressed_digests(connection: Connection, digests: Sequence[str]) -> set[str]:
    """Which of these identifier digests were erased with suppression."""
    found: set[str] = set()
    for part in chunks(sorted(set(digests))):
        query = select(suppressions.c.digest).where(suppressions.c.digest.in_(part))
        found.update(row.digest for row in connection.execute(query))
    return found


def live_person_id(connection: Connection, person_id: int) -> int:
    """Follow ``merged_into`` to the person that now holds this one's history."""
    seen = set()
    current = person_id
    while current not in seen:
        seen.add(current)
        row = connection.execute(
            select(persons.c.merged_into).where(persons.c.id == current)
        ).first()
        if row is None or row.merged_into is None:
            return current
        current = row.merged_into
    return current


def accounts_by_id(connection: Connection, account_ids: Iterable[int]) -> dict[int, RowMapping]:
    found: dict[int, RowMapping] = {}
    ids = sorted({a for a in account_ids if a is not None})
    for part in chunks(ids):
        for row in connection.execute(select(accounts).where(accounts.c.id.in_(part))).mappings():
            found[row["id"]] = row
    return found


def record_stage_change(
    connection: Connection,
    person_id: int,
    *,
    from_stage: str | None,
    to_stage: str,
    changed_at: datetime,
    reason: str,
    actor: str,
    recorded_at: datetime,
    action: str | None = None,
    definition_version: str | None = None,
    mql_type: str | None = None,
    reactivated: bool = False,
    amount: float | None = None,
    score_card: dict[str, Any] | None = None,
) -> None:
    # parameters, not .values(): the statement stays one cached compiled form, and the
    # score card (a large dict) is not walked as a SQL literal
    connection.execute(
        _INSERT_HISTORY,
        {
            "person_id": person_id,
            "from_stage": from_stage,
            "to_stage": to_stage,
            "changed_at": changed_at,
            "reason": reason,
            "actor": actor,
            "action": action,
            "definition_version": definition_version,
            "mql_type": mql_type,
            "reactivated": reactivated,
            "amount": amount,
            "score_card": score_card,
            "recorded_at": recorded_at,
        },
    )


_INSERT_HISTORY = stage_history.insert()


def stage_history_of(connection: Connection, person_id: int) -> list[RowMapping]:
    query = (
        select(stage_history)
        .where(stage_history.c.person_id == person_id)
        .order_by(stage_history.c.changed_at, stage_history.c.id)
    )
    return list(connection.execute(query).mappings())


def bump_person(connection: Connection, person_id: int, values: dict[str, Any]) -> None:
    connection.execute(
        update(persons)
        .where(persons.c.id == person_id)
        .values(**values, row_version=persons.c.row_version + 1)
    )


def count(connection: Connection, table: Any) -> int:
    return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def save_definition(
    connection: Connection,
    *,
    version: str,
    content_hash: str,
    content: str,
    description: str,
    now: datetime,
    activate: bool = True,
) -> tuple[bool, str | None]:
    """Store a definition version. Returns (created, conflict message)."""
    existing = (
        connection.execute(
            select(definition_versions).where(definition_versions.c.version == version)
        )
        .mappings()
        .first()
    )
    if existing is not None and existing["content_hash"] != content_hash:
        return False, (
            f"definition version '{version}' is already stored with different content; "
            "give the changed definition a new version"
        )
    created = existing is None
    if created:
        connection.execute(
            definition_versions.insert().values(
                version=version,
                content_hash=content_hash,
                content=content,
                description=description,
                created_at=now,
                active=False,
            )
        )
    if activate and (existing is None or not existing["active"]):
        connection.execute(update(definition_versions).values(active=False))
        connection.execute(
            update(definition_versions)
            .where(definition_versions.c.version == version)
            .values(active=True, activated_at=now)
        )
    return created, None


def active_definition(connection: Connection) -> RowMapping | None:
    return (
        connection.execute(select(definition_versions).where(definition_versions.c.active))
        .mappings()
        .first()
    )


def definition_version(connection: Connection, version: str) -> RowMapping | None:
    """One stored definition version (with its content), or None."""
    query = select(definition_versions).where(definition_versions.c.version == version)
    return connection.execute(query).mappings().first()


def definition_versions_listed(connection: Connection) -> list[RowMapping]:
    """Every stored definition version, oldest first (content included)."""
    query = select(definition_versions).order_by(
        definition_versions.c.created_at, definition_versions.c.id
    )
    return list(connection.execute(query).mappings())


def definitions_applied(connection: Connection) -> bool:
    """Whether ``mql definition apply`` (or rollback) has ever made a version live: from
    then on the store's live version is the one in force, not the file."""
    query = select(definition_versions.c.id).where(definition_versions.c.applied_at.is_not(None))
    return connection.execute(query.limit(1)).first() is not None


def mark_applied(
    connection: Connection,
    version: str,
    *,
    now: datetime,
    author: str | None = None,
    message: str | None = None,
) -> None:
    """Make a stored version the live one, recording when (and, when given, who and why)."""
    values: dict[str, Any] = {"active": True, "activated_at": now, "applied_at": now}
    if author is not None:
        values["author"] = author
    if message is not None:
        values["message"] = message
    connection.execute(update(definition_versions).values(active=False))
    connection.execute(
        update(definition_versions).where(definition_versions.c.version == version).values(**values)
    )
