"""Reads the shells show as they are: a person's latest events, the stored definitions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from mqlengine.store.tables import definition_versions, events


def latest_events(connection: Connection, person_id: int, *, limit: int) -> Sequence[Any]:
    """``timestamp, type, name, properties`` of a person's newest events, newest first."""
    return connection.execute(
        select(events.c.timestamp, events.c.type, events.c.name, events.c.properties)
        .where(events.c.person_id == person_id)
        .order_by(events.c.timestamp.desc())
        .limit(limit)
    ).all()


def definition_versions_newest_first(connection: Connection, *, limit: int) -> Sequence[Any]:
    """The stored definition versions with their content, newest first."""
    dv = definition_versions
    return connection.execute(
        select(
            dv.c.version,
            dv.c.description,
            dv.c.created_at,
            dv.c.activated_at,
            dv.c.active,
            dv.c.content,
        )
        .order_by(dv.c.created_at.desc(), dv.c.id.desc())
        .limit(limit)
    ).all()
