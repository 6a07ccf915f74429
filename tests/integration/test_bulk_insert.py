"""The SQLite bulk path for events stores exactly what SQLAlchemy's own INSERT stores."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from mqlengine.store.db import Database
from mqlengine.store.dialect import insert_ignoring_conflicts
from mqlengine.store.tables import events, persons

T = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=timezone(timedelta(hours=2)))


def test_bulk_insert_matches_sqlalchemy_storage_and_ignores_duplicates(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    db.migrate()
    row = {
        "person_id": 1,
        "type": "track",
        "name": "X",
        "anonymous_id": None,
        "user_id": "u",
        "properties": {"path": "/pricing", "n": [1, 2]},
        "context": {"ip": "10.0.0.1"},
        "timestamp": T,
        "received_at": T + timedelta(seconds=1),
    }
    with db.begin() as connection:
        connection.execute(
            persons.insert().values(
                id=1,
                traits={},
                profile={},
                flags=[],
                first_seen_at=T,
                last_seen_at=T,
                stage="lead",
                stage_changed_at=T,
                created_at=T,
                updated_at=T,
            )
        )
        connection.execute(events.insert().values(message_id="core", **row))
        insert_ignoring_conflicts(
            connection, events, [{"message_id": "bulk", **row}], ["message_id"]
        )
        insert_ignoring_conflicts(
            connection, events, [{"message_id": "bulk", **row, "name": "changed"}], ["message_id"]
        )
    stored = (
        sqlite3.connect(tmp_path / "x.db")
        .execute(
            "SELECT message_id, name, properties, context, timestamp, received_at FROM events ORDER BY id"
        )
        .fetchall()
    )
    assert [r[0] for r in stored] == ["core", "bulk"]
    assert stored[0][1:] == stored[1][1:]
    with db.read() as connection:
        loaded = list(connection.execute(events.select().order_by(events.c.id)).mappings())
    assert loaded[1]["timestamp"] == T and loaded[1]["timestamp"].tzinfo is UTC
    assert loaded[1]["properties"] == {"path": "/pricing", "n": [1, 2]}
    with pytest.raises(ValueError), db.begin() as connection:
        insert_ignoring_conflicts(
            connection,
            events,
            [{"message_id": "naive", **row, "timestamp": datetime(2026, 1, 1)}],
            ["message_id"],
        )
