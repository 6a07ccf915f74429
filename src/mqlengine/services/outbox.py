"""The transactional outbox: notification rows written in the same commit as the change.

Writers call :func:`enqueue` on their own transaction, so a notification exists if and only
if its change committed. The relay (:mod:`mqlengine.notify.relay`) claims due rows with a
short lease, renews it while delivering (:func:`renew`), delivers them outside any
transaction and records each result. A worker that dies mid-delivery stops renewing; its
lease runs out within seconds, and the row is claimed again and delivered with the *same*
``message_id`` — at least once, deduplicable by the receiver.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, RowMapping, func, or_, select, update

from mqlengine.errors import NotFoundError, ValidationError
from mqlengine.services import txcache
from mqlengine.store.dialect import for_update
from mqlengine.store.secretbox import SecretBox, mask_url
from mqlengine.store.tables_handoff import destinations, outbox

TOPICS = ("person.stage_changed", "mql.assigned", "sla.breached")
KINDS = ("webhook", "slack", "email")
STATUSES = ("pending", "delivered", "dead", "suppressed")
_SUPPRESSED: ContextVar[bool] = ContextVar("outbox_suppressed", default=False)


@contextmanager
def suppressed() -> Iterator[None]:
    """Rows prepared inside are written as ``suppressed``: recorded, never delivered (a
    full rescore's historical stage changes, unless it is asked to notify)."""
    token = _SUPPRESSED.set(True)
    try:
        yield
    finally:
        _SUPPRESSED.reset(token)


MAX_ATTEMPTS = 8
BACKOFF_BASE = timedelta(seconds=2)
BACKOFF_CAP = timedelta(hours=1)
DEFAULT_LEASE = timedelta(seconds=5)
"""How long a claimed row stays leased without a renewal (:func:`renew`): how long a dead
worker's rows wait before another worker claims them."""


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with jitter: base·2^(n-1), capped, scaled by U(0.5, 1)."""
    exponent = min(max(attempts - 1, 0), 20)
    delay: timedelta = min(BACKOFF_BASE * (2**exponent), BACKOFF_CAP)
    factor: float = (rng or random).uniform(0.5, 1.0)
    return delay * factor


_DESTINATIONS = "outbox.destinations"
_ACTIVE_DESTINATIONS = select(destinations).where(destinations.c.active)
_INSERT = outbox.insert()


def _subscribed(row: Mapping[Any, Any], topic: str) -> bool:
    topics = row["topics"] or []
    return not topics or topic in topics


def active_destinations(connection: Connection) -> list[RowMapping]:
    """The active destinations, read once per transaction (see :mod:`.txcache`)."""
    return txcache.cached(
        connection,
        _DESTINATIONS,
        lambda: list(connection.execute(_ACTIVE_DESTINATIONS).mappings()),
    )


def enqueue(
    connection: Connection,
    topic: str,
    data: Mapping[str, Any],
    *,
    now: datetime,
    person_id: int | None = None,
    recipients: Mapping[str, str | None] | None = None,
) -> list[str]:
    """Write one outbox row per active destination subscribed to ``topic``.

    ``recipients`` resolves the symbolic e-mail addresses ``owner`` and ``manager``.
    Returns the message ids written.
    """
    return write(
        connection,
        prepare(connection, topic, data, now=now, person_id=person_id, recipients=recipients),
    )


def write(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Insert rows made by :func:`prepare` (several messages' rows in one statement, in
    order); returns their message ids."""
    if rows:
        connection.execute(_INSERT, list(rows))
    return [row["message_id"] for row in rows]


def prepare(
    connection: Connection,
    topic: str,
    data: Mapping[str, Any],
    *,
    now: datetime,
    person_id: int | None = None,
    recipients: Mapping[str, str | None] | None = None,
) -> list[dict[str, Any]]:
    """The rows :func:`enqueue` writes, not yet written (see :func:`write`)."""
    written: list[dict[str, Any]] = []
    for dest in active_destinations(connection):
        if not _subscribed(dest, topic):
            continue
        message_id = new_message_id()
        payload: dict[str, Any] = {
            "id": message_id,
            "type": topic,
            "timestamp": now.isoformat(),
            "data": dict(data),
        }
        if dest["kind"] == "email":
            resolved = [
                (recipients or {}).get(address, address)
                if address in ("owner", "manager")
                else address
                for address in (dest["email_to"] or [])
            ]
            payload["to"] = sorted({a for a in resolved if a})
            if not payload["to"]:
                continue  # nobody to write to (e.g. a queue without a manager)
        written.append(
            {
                "message_id": message_id,
                "topic": topic,
                "person_id": person_id,
                "destination_id": dest["id"],
                "payload": payload,
                "status": "suppressed" if _SUPPRESSED.get() else "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    return written


def claim(
    connection: Connection,
    *,
    now: datetime,
    worker: str,
    limit: int = 50,
    lease: timedelta = DEFAULT_LEASE,
) -> list[dict[str, Any]]:
    """Lease up to ``limit`` due rows to ``worker`` (counting the attempt now, so a row
    whose delivery keeps killing workers still reaches the dead-letter state)."""
    query = (
        select(outbox.c.id)
        .where(
            outbox.c.status == "pending",
            outbox.c.next_attempt_at <= now,
            or_(outbox.c.locked_until.is_(None), outbox.c.locked_until < now),
        )
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(limit)
    )
    ids = [r.id for r in connection.execute(for_update(connection, query, skip_locked=True))]
    if not ids:
        return []
    connection.execute(
        update(outbox)
        .where(outbox.c.id.in_(ids))
        .values(locked_until=now + lease, locked_by=worker, attempts=outbox.c.attempts + 1)
    )
    query_rows = (
        select(
            outbox,
            destinations.c.kind,
            destinations.c.url,
            destinations.c.secret,
            destinations.c.name.label("destination"),
        )
        .join(destinations, destinations.c.id == outbox.c.destination_id)
        .where(outbox.c.id.in_(ids))
        .order_by(outbox.c.id)
    )
    return [dict(r) for r in connection.execute(query_rows).mappings()]


def renew(connection: Connection, ids: Sequence[int], *, worker: str, until: datetime) -> int:
    """Extend ``worker``'s lease on the rows ``ids`` it is still delivering to ``until``;
    rows another worker took over (the lease had run out) or already recorded stay as they
    are. Returns how many rows were renewed."""
    if not ids:
        return 0
    result = connection.execute(
        update(outbox)
        .where(
            outbox.c.id.in_(list(ids)),
            outbox.c.locked_by == worker,
            outbox.c.status == "pending",
        )
        .values(locked_until=until)
    )
    return int(result.rowcount or 0)


def mark_delivered(
    connection: Connection, row_id: int, *, now: datetime, status_code: int | None
) -> None:
    connection.execute(
        update(outbox)
        .where(outbox.c.id == row_id, outbox.c.status == "pending")
        .values(
            status="delivered",
            delivered_at=now,
            locked_until=None,
            last_status=status_code,
            last_error=None,
        )
    )


def mark_failed(
    connection: Connection,
    row_id: int,
    *,
    now: datetime,
    attempts: int,
    error: str,
    status_code: int | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    rng: random.Random | None = None,
) -> str:
    """Schedule a retry, or move the row to ``dead`` after ``max_attempts``."""
    dead = attempts >= max_attempts
    connection.execute(
        update(outbox)
        .where(outbox.c.id == row_id, outbox.c.status == "pending")
        .values(
            status="dead" if dead else "pending",
            next_attempt_at=now if dead else now + backoff(attempts, rng),
            locked_until=None,
            last_error=error[:2000],
            last_status=status_code,
        )
    )
    return "dead" if dead else "pending"


def list_outbox(
    connection: Connection,
    *,
    status: str | None = None,
    topic: str | None = None,
    person_id: int | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    if status is not None and status not in STATUSES:
        raise ValidationError(f"unknown status '{status}' (use one of: {', '.join(STATUSES)})")
    query = select(
        outbox.c.id,
        outbox.c.message_id,
        outbox.c.topic,
        outbox.c.person_id,
        outbox.c.status,
        outbox.c.attempts,
        outbox.c.next_attempt_at,
        outbox.c.last_status,
        outbox.c.last_error,
        outbox.c.created_at,
        outbox.c.delivered_at,
        destinations.c.name.label("destination"),
        destinations.c.kind,
    ).join(destinations, destinations.c.id == outbox.c.destination_id)
    if status is not None:
        query = query.where(outbox.c.status == status)
    if topic is not None:
        query = query.where(outbox.c.topic == topic)
    if person_id is not None:
        query = query.where(outbox.c.person_id == person_id)
    query = query.order_by(outbox.c.id.desc()).limit(limit)
    return [dict(r) for r in connection.execute(query).mappings()]


def counts(connection: Connection) -> dict[str, int]:
    rows = connection.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status))
    return {status: n for status, n in rows}


def replay(
    connection: Connection,
    *,
    now: datetime,
    ids: Sequence[int] = (),
    message_ids: Sequence[str] = (),
    dead: bool = False,
) -> int:
    """Deliver rows again (same message ids): dead letters, or named rows in any state."""
    conditions: list[Any] = []
    if ids:
        conditions.append(outbox.c.id.in_(list(ids)))
    if message_ids:
        conditions.append(outbox.c.message_id.in_(list(message_ids)))
    if dead:
        conditions.append(outbox.c.status == "dead")
    if not conditions:
        raise ValidationError("say what to replay: ids, message ids, or --dead")
    result = connection.execute(
        update(outbox)
        .where(or_(*conditions))
        .values(status="pending", attempts=0, next_attempt_at=now, locked_until=None)
    )
    return int(result.rowcount or 0)


# --- destinations ---------------------------------------------------------------------------


def add_destination(
    connection: Connection,
    *,
    name: str,
    kind: str,
    url: str,
    now: datetime,
    box: SecretBox,
    secret: str | None = None,
    topics: Sequence[str] = (),
    email_to: Sequence[str] = (),
) -> dict[str, Any]:
    """Add or replace a destination. Its URL (a Slack webhook URL or an SMTP URL with a
    password is a credential) and signing secret are stored sealed by ``box``."""
    if kind not in KINDS:
        raise ValidationError(f"unknown destination kind '{kind}' (use one of: {', '.join(KINDS)})")
    unknown = [t for t in topics if t not in TOPICS]
    if unknown:
        raise ValidationError(f"unknown topic(s) {', '.join(unknown)} (use: {', '.join(TOPICS)})")
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    wanted = ("smtp", "smtps") if kind == "email" else ("http", "https")
    if scheme not in wanted:
        raise ValidationError(f"a {kind} destination needs a {' or '.join(wanted)}:// URL")
    if kind == "email" and not email_to:
        raise ValidationError("an email destination needs --to (addresses, 'owner' or 'manager')")
    existing = connection.execute(
        select(destinations.c.id).where(destinations.c.name == name)
    ).first()
    values = {
        "kind": kind,
        "url": box.seal(url),
        "secret": box.seal(secret),
        "topics": list(topics),
        "email_to": list(email_to),
        "active": True,
    }
    if existing is None:
        connection.execute(destinations.insert().values(name=name, created_at=now, **values))
    else:
        connection.execute(update(destinations).where(destinations.c.name == name).values(**values))
    txcache.forget(connection, _DESTINATIONS)
    return {"name": name, **values, "url": mask_url(url), "secret": "…" if secret else None}


def remove_destination(connection: Connection, name: str) -> None:
    result = connection.execute(
        update(destinations).where(destinations.c.name == name).values(active=False)
    )
    txcache.forget(connection, _DESTINATIONS)
    if not result.rowcount:
        raise NotFoundError(f"no destination named '{name}'")


def list_destinations(connection: Connection) -> list[RowMapping]:
    return list(connection.execute(select(destinations).order_by(destinations.c.name)).mappings())
