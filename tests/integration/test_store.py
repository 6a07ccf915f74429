"""The store on both backends: migrations build exactly the declared schema, and values
(timezone-aware times, JSON) come back as they went in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, null, select
from sqlalchemy.exc import StatementError

from mqlengine.store.db import Database
from mqlengine.store.schema import metadata
from mqlengine.store.tables import accounts, persons, stage_history
from support.clock import NOW
from support.rows import person_row


def test_migrations_create_the_schema_and_are_idempotent(database_url: str) -> None:
    database = Database(database_url)
    try:
        assert database.pending_migrations()
        database.migrate()
        database.migrate()  # a second run changes nothing and does not fail
        assert not database.pending_migrations()
        with database.read() as connection:
            tables = set(inspect(connection).get_table_names())
            versions = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
        assert tables == set(metadata.tables) | {"alembic_version"}
        heads = ScriptDirectory.from_config(database.alembic_config()).get_heads()
        assert sorted(v for (v,) in versions) == sorted(heads)
    finally:
        database.dispose()


def test_migrations_match_the_metadata(db: Database) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        differences = compare_metadata(context, metadata)
    assert differences == []


@pytest.mark.postgres
@pytest.mark.parametrize("migrated_database_url", ["postgresql"], indirect=True)
def test_ids_are_big_integers_on_postgresql(db: Database) -> None:
    """(SQLite ids are INTEGER PRIMARY KEY: its 64-bit rowid.)"""
    with db.read() as connection:
        columns = {c["name"]: c for c in inspect(connection).get_columns("events")}
    assert str(columns["id"]["type"]) == "BIGINT"
    assert str(columns["person_id"]["type"]) == "BIGINT"
    assert columns["id"]["autoincrement"] is True
    assert columns["timestamp"]["type"].timezone is True  # timestamptz, not timestamp
    # the identity/sequence accepts values beyond 32 bits
    with db.begin() as connection:
        connection.exec_driver_sql("SELECT setval('persons_id_seq', 5000000000)")
        new_id = connection.execute(persons.insert().values(**person_row())).inserted_primary_key[0]
    assert new_id == 5000000001


def test_timestamps_round_trip_timezone_aware_utc(db: Database) -> None:
    paris = timezone(timedelta(hours=1))
    created = datetime(2026, 3, 29, 2, 30, 15, 123456, tzinfo=paris)
    with db.begin() as connection:
        person_id = connection.execute(
            persons.insert().values(**person_row(created_at=created, mql_at=None))
        ).inserted_primary_key[0]
    with db.read() as connection:
        row = connection.execute(select(persons).where(persons.c.id == person_id)).mappings().one()
    assert row["created_at"] == created
    assert row["created_at"].tzinfo is not None
    assert row["created_at"].utcoffset() == timedelta(0)
    assert row["created_at"] == datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=UTC)
    assert row["mql_at"] is None
    # comparisons in SQL see the instant, not the wall-clock text
    with db.read() as connection:
        later = connection.execute(
            select(func.count())
            .select_from(persons)
            .where(persons.c.created_at > datetime(2026, 3, 29, 1, 30, tzinfo=UTC))
        ).scalar_one()
    assert later == 1


def test_naive_timestamps_are_refused(db: Database) -> None:
    with pytest.raises(StatementError, match="timezone-aware"), db.begin() as connection:
        connection.execute(persons.insert().values(**person_row(created_at=datetime(2026, 1, 1))))


def test_json_round_trips(db: Database) -> None:
    traits = {
        "email": "zoë@example.com",
        "company": {"name": "Ünïcode “Ltd”", "employees": 1200, "tags": ["a", "b"]},
        "score": 12.5,
        "big": 2**53 + 1,
        "consent_marketing": False,
        "nothing": None,
        "nested": {"deeper": {"list": [1, {"x": [True, None]}]}},
    }
    flags = ["bot", "spam"]
    with db.begin() as connection:
        person_id = connection.execute(
            persons.insert().values(**person_row(traits=traits, profile={}, flags=flags))
        ).inserted_primary_key[0]
        account_id = connection.execute(
            accounts.insert().values(
                domain="example.com", traits={}, created_at=NOW, updated_at=NOW
            )
        ).inserted_primary_key[0]
    with db.read() as connection:
        row = connection.execute(select(persons).where(persons.c.id == person_id)).mappings().one()
        account = connection.execute(select(accounts).where(accounts.c.id == account_id)).one()
    assert row["traits"] == traits
    assert row["profile"] == {}
    assert row["flags"] == flags
    assert account.traits == {}


def test_missing_json_is_sql_null(db: Database) -> None:
    """A stage change without a score card stores SQL NULL, so ``IS NULL`` finds it."""
    with db.begin() as connection:
        person_id = connection.execute(
            persons.insert().values(**person_row())
        ).inserted_primary_key[0]
        for card in (None, {"total": 1.0}):
            connection.execute(
                stage_history.insert().values(
                    person_id=person_id,
                    from_stage="lead",
                    to_stage="mql",
                    changed_at=NOW,
                    reason="test",
                    actor="system",
                    reactivated=False,
                    score_card=card,
                    recorded_at=NOW,
                )
            )
    with db.read() as connection:
        without = connection.execute(
            select(func.count())
            .select_from(stage_history)
            .where(stage_history.c.score_card.is_(null()))
        ).scalar_one()
        cards = connection.execute(
            select(stage_history.c.score_card).order_by(stage_history.c.id)
        ).scalars()
        assert list(cards) == [None, {"total": 1.0}]
    assert without == 1
