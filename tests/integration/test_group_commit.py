"""The group committer's answer when other writers keep taking the same rows (a unique
key: retried, then "contended", which the API answers with 503 + Retry-After) and when a
statement is simply wrong (not retried)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from mqlengine.domain.rules import Definition
from mqlengine.errors import Contended
from mqlengine.ingest.pipeline import BatchResult, Pipeline
from mqlengine.ingest.writer import GroupCommitter, Job
from mqlengine.store.db import Database
from mqlengine.store.tables import identities, persons
from support.clock import NOW
from support.rows import person_row


class Colliding(Pipeline):
    """Each transaction inserts a row whose key another writer already committed (the
    conflict two server processes meet when both create the same visitor)."""

    attempts = 0

    def ingest(self, connection: Connection, raw_messages: Any, **kwargs: Any) -> BatchResult:
        Colliding.attempts += 1
        connection.execute(
            identities.insert(),
            {"person_id": 1, "kind": "anonymous_id", "value": "anon-1", "created_at": NOW},
        )
        return BatchResult()


class Broken(Pipeline):
    """A statement that can never succeed (a NOT NULL column left empty)."""

    attempts = 0

    def ingest(self, connection: Connection, raw_messages: Any, **kwargs: Any) -> BatchResult:
        Broken.attempts += 1
        connection.execute(persons.insert(), {"id": 99, "traits": {}, "profile": {}})
        return BatchResult()


@pytest.fixture
def taken(db: Database) -> Database:
    with db.begin() as connection:
        connection.execute(persons.insert(), person_row(id=1))
        connection.execute(
            identities.insert(),
            {"person_id": 1, "kind": "anonymous_id", "value": "anon-1", "created_at": NOW},
        )
    return db


def test_a_conflict_that_keeps_coming_back_is_contended(
    taken: Database, definition: Definition
) -> None:
    Colliding.attempts = 0
    committer = GroupCommitter(taken, lambda: Colliding(definition, handoff=None))
    committer.conflict_retries = 3
    try:
        future = committer.submit(Job([{"type": "page"}], "batch"))
        with pytest.raises(Contended) as raised:
            future.result(timeout=30)
    finally:
        committer.stop()
    assert isinstance(raised.value.__cause__, IntegrityError)
    assert Colliding.attempts == 3
    assert committer.stats["conflicts"] == 3


def test_a_wrong_statement_is_not_retried(taken: Database, definition: Definition) -> None:
    Broken.attempts = 0
    committer = GroupCommitter(taken, lambda: Broken(definition, handoff=None))
    try:
        future = committer.submit(Job([{"type": "page"}], "batch"))
        with pytest.raises(IntegrityError):
            future.result(timeout=30)
    finally:
        committer.stop()
    assert Broken.attempts == 1
    assert committer.stats["conflicts"] == 0
