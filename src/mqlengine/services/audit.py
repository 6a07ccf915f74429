"""The audit log: who (a key's name and id) did what (admin and feedback actions), to which
target, when and from which address. Rows are only ever added."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from mqlengine.store.tables_access import audit_log


def record_audit(
    connection: Connection,
    *,
    actor: str,
    key_id: str | None,
    action: str,
    target: str | None,
    details: dict[str, Any] | None,
    address: str | None = None,
    at: datetime | None = None,
) -> None:
    """Add one entry on the caller's transaction, so it commits with the action it
    records (or not at all)."""
    connection.execute(
        audit_log.insert().values(
            at=at or datetime.now(UTC),
            actor=actor[:255],
            key_id=key_id,
            action=action[:64],
            target=None if target is None else str(target)[:255],
            details=details,
            address=None if address is None else address[:64],
        )
    )


def list_audit(
    connection: Connection,
    *,
    limit: int = 100,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    """Entries, newest first."""
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if action is not None:
        query = query.where(audit_log.c.action == action)
    if actor is not None:
        query = query.where(audit_log.c.actor == actor)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    return [
        {
            "id": row["id"],
            "at": row["at"].isoformat(),
            "actor": row["actor"],
            "key_id": row["key_id"],
            "action": row["action"],
            "target": row["target"],
            "details": row["details"],
            "address": row["address"],
        }
        for row in connection.execute(query).mappings()
    ]
