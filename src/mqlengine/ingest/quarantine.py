"""Quarantine: rejected payloads kept for inspection, in one place.

A message the pipeline rejects, or a body the API cannot use at all (bad JSON, too
large), is kept as a row of the ``quarantine`` table with why it was refused, so an
operator can see what a sender got wrong and replay it once fixed. Rows are written on
the caller's transaction (with the batch they came in), read and purged by ``mql
quarantine``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, RowMapping, delete, func, select

from mqlengine.ingest.batch import Rejection
from mqlengine.store.tables_ingest import quarantine

# A payload is kept up to this size (a larger one is cut and marked truncated).
QUARANTINE_PAYLOAD_LIMIT = 64 * 1024


def quarantine_rows(
    raw_messages: Sequence[Any],
    rejected: Sequence[Rejection],
    endpoint: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """One row per rejected message (its payload as JSON, or its repr when it has none)."""
    rows = []
    for rejection in rejected:
        raw = raw_messages[rejection.index]
        try:
            payload = orjson.dumps(raw).decode()
        except TypeError:
            payload = repr(raw)
        truncated = len(payload) > QUARANTINE_PAYLOAD_LIMIT
        rows.append(
            {
                "received_at": now,
                "endpoint": endpoint,
                "code": rejection.code,
                "field": rejection.field[:255] or None,
                "reason": rejection.reason,
                "message_index": rejection.index,
                "message_id": (rejection.message_id or None) and rejection.message_id[:255],
                "payload": payload[:QUARANTINE_PAYLOAD_LIMIT],
                "truncated": int(truncated),
            }
        )
    return rows


def body_row(
    endpoint: str,
    code: str,
    reason: str,
    body: bytes,
    field: str | None = None,
    *,
    received_at: datetime | None = None,
) -> dict[str, Any]:
    """The row of a whole request body that could not be read as messages."""
    text = body[:QUARANTINE_PAYLOAD_LIMIT].decode("utf-8", errors="replace")
    return {
        "received_at": received_at or datetime.now(UTC),
        "endpoint": endpoint,
        "code": code,
        "field": field,
        "reason": reason,
        "message_index": None,
        "message_id": None,
        "payload": text,
        "truncated": int(len(body) > QUARANTINE_PAYLOAD_LIMIT),
    }


def insert_rows(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Keep these rows, on the caller's transaction."""
    if rows:
        connection.execute(quarantine.insert(), list(rows))


def quarantine_rejections(
    connection: Connection,
    raw_messages: Sequence[Any],
    rejected: Sequence[Rejection],
    endpoint: str,
    now: datetime,
) -> None:
    """Keep rejected messages for inspection, on the caller's transaction."""
    insert_rows(connection, quarantine_rows(raw_messages, rejected, endpoint, now))


def quarantined(connection: Connection, *, limit: int) -> tuple[int, list[RowMapping]]:
    """How many rows are kept, and the newest ``limit`` of them."""
    total = int(connection.execute(select(func.count()).select_from(quarantine)).scalar_one())
    query = select(quarantine).order_by(quarantine.c.id.desc()).limit(limit)
    return total, list(connection.execute(query).mappings())


def quarantined_row(connection: Connection, row_id: int) -> RowMapping | None:
    query = select(quarantine).where(quarantine.c.id == row_id)
    return connection.execute(query).mappings().first()


def purge(connection: Connection, row_ids: Sequence[int]) -> None:
    """Delete these rows (e.g. once the sender is fixed and the payloads replayed)."""
    connection.execute(delete(quarantine).where(quarantine.c.id.in_(list(row_ids))))
