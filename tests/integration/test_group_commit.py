"""The group committer's answer when other writers keep taking the same rows (a unique
key: retried, then "contended", which the API answers with 503 + Retry-After) and when a
statement is simply wrong (not retried)."""

from __future__ import annotations

import time
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


def test_an_idle_writer_gives_its_memory_back(db: Database, definition: Definition) -> None:
    """Past ``idle_release`` seconds without a batch the writer forgets what it remembers
    (and the scorer's memo); the next batch reads what it needs back and decides alike."""
    from mqlengine.ingest.qualify import scorer_for
    from mqlengine.ingest.writerstate import WriterState
    from mqlengine.services.qualify import HANDOFF

    scorer = scorer_for(definition)
    memory = WriterState(scorer.relevant, matches=scorer)
    pipeline = Pipeline(definition, handoff=HANDOFF, memory=memory)
    committer = GroupCommitter(db, lambda: pipeline, clock=lambda: NOW, idle_release=1.0)

    def page(number: int) -> dict[str, Any]:
        return {
            "type": "page",
            "anonymousId": "anon-7",
            "messageId": f"m-{number}",
            "properties": {"path": "/pricing"},
            "timestamp": NOW.isoformat(),
        }

    try:
        first = committer.submit(Job([page(1)], "batch")).result(timeout=30)
        assert memory.rows and memory.bytes > 0 and scorer.memo_size() > 0
        deadline = time.monotonic() + 30
        while committer.stats["releases"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert committer.stats["releases"] == 1
        assert not memory.rows and memory.bytes == 0 and scorer.memo_size() == 0
        second = committer.submit(Job([page(2)], "batch")).result(timeout=30)
        time.sleep(1.5)  # idle again: released once more, not in a loop
    finally:
        committer.stop()
    assert second.persons == first.persons and second.accepted == 1
    assert committer.stats["releases"] == 2
