"""Properties of identity resolution, merges and unmerges on a real SQLite store: random
sequences of identify, alias and track calls over a small pool of ids (so persons keep
meeting and merging), then an unmerge.

Invariants: every identity belongs to exactly one live person, every event too; merged
persons point (through any chain) at a live one; an event's user id resolves to the person
holding the event. Undoing a merge gives the merged person back exactly the identities the
merge moved, loses no identity and no event, and cannot be done twice.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, func, select

import mqlengine
from mqlengine.errors import ConflictError
from mqlengine.facade import MqlEngine
from mqlengine.store.tables import events, identities, merges, persons
from support.clock import NOW
from support.paths import EXAMPLE

pytestmark = pytest.mark.slow

USERS = ["u1", "u2", "u3"]
ANONYMOUS = ["a1", "a2", "a3", "a4"]
EMAILS = ["ann@northwind.io", "bo@globex.com"]

identify = st.fixed_dictionaries(
    {"type": st.just("identify"), "anonymousId": st.sampled_from(ANONYMOUS)},
    optional={
        "userId": st.sampled_from(USERS),
        "traits": st.fixed_dictionaries({"email": st.sampled_from(EMAILS)}),
    },
)
alias = st.fixed_dictionaries(
    {
        "type": st.just("alias"),
        "userId": st.sampled_from(USERS),
        "previousId": st.sampled_from(USERS + ANONYMOUS),
    }
)
track = st.fixed_dictionaries(
    {
        "type": st.just("track"),
        "event": st.sampled_from(["Page Viewed", "Demo Requested"]),
        "anonymousId": st.sampled_from(ANONYMOUS),
    },
    optional={"userId": st.sampled_from(USERS)},
)
batches = st.lists(
    st.lists(identify | alias | track, min_size=1, max_size=5), min_size=1, max_size=4
)


@pytest.fixture
def engines(tmp_path: Path, _sqlite_template: Path) -> Iterator[Any]:
    """A factory of engines, each over a fresh copy of the migrated template."""
    opened: list[MqlEngine] = []

    def fresh() -> MqlEngine:
        path = tmp_path / f"{uuid.uuid4().hex}.db"
        with (
            contextlib.closing(sqlite3.connect(_sqlite_template)) as source,
            contextlib.closing(sqlite3.connect(path)) as target,
        ):
            source.backup(target)
        engine = mqlengine.open(f"sqlite:///{path}", definition=EXAMPLE, clock=lambda: NOW)
        opened.append(engine)
        return engine

    yield fresh
    for engine in opened:
        engine.close()


def _live(connection: Connection) -> set[int]:
    return set(
        connection.execute(select(persons.c.id).where(persons.c.merged_into.is_(None))).scalars()
    )


def _check_invariants(connection: Connection) -> None:
    live = _live(connection)
    holders = connection.execute(select(identities.c.person_id)).scalars().all()
    assert set(holders) <= live, "an identity belongs to a merged person"
    keys = connection.execute(select(identities.c.kind, identities.c.value)).all()
    assert len(keys) == len(set(keys)), "an identity belongs to two persons"
    assert set(connection.execute(select(events.c.person_id)).scalars()) <= live
    parent = dict(
        connection.execute(
            select(persons.c.id, persons.c.merged_into).where(persons.c.merged_into.is_not(None))
        ).all()
    )
    for start in parent:
        seen, at = {start}, parent[start]
        while at in parent:
            assert at not in seen, "a cycle of merges"
            seen.add(at)
            at = parent[at]
        assert at in live
    owner = dict(
        connection.execute(
            select(identities.c.value, identities.c.person_id).where(identities.c.kind == "user_id")
        ).all()
    )
    for user_id, person_id in connection.execute(
        select(events.c.user_id, events.c.person_id).where(events.c.user_id.is_not(None))
    ):
        assert owner.get(user_id) == person_id, f"events of {user_id} on another person"


def _counts(connection: Connection) -> tuple[int, int]:
    return (
        int(connection.execute(select(func.count()).select_from(identities)).scalar_one()),
        int(connection.execute(select(func.count()).select_from(events)).scalar_one()),
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(batches, st.integers(min_value=0, max_value=10))
@example(  # two visitors, then a sign-up that says they are one person
    messages=[
        [
            {"type": "track", "event": "Page Viewed", "anonymousId": "a1"},
            {"type": "identify", "anonymousId": "a2", "userId": "u1"},
        ],
        [{"type": "identify", "anonymousId": "a1", "userId": "u1"}],
    ],
    pick=0,
)
def test_merges_keep_identities_whole_and_unmerge_restores_them(
    engines: Any, messages: list[list[dict[str, Any]]], pick: int
) -> None:
    engine: MqlEngine = engines()
    for number, batch in enumerate(messages):
        for index, message in enumerate(batch):
            message["messageId"] = f"m-{number}-{index}"
        engine.ingest(batch)
    database = engine.wiring.db
    with database.read() as connection:
        _check_invariants(connection)
        done = (
            connection.execute(select(merges).where(merges.c.undone_at.is_(None))).mappings().all()
        )
        before = _counts(connection)
    event(f"merges to undo: {min(len(done), 3)}")
    if not done:
        return
    merge = done[pick % len(done)]
    engine.unmerge(int(merge["id"]))
    with database.read() as connection:
        _check_invariants(connection)
        assert _counts(connection) == before, "an unmerge lost or made identities or events"
        assert merge["merged_id"] in _live(connection)
        moved = [int(i) for i in (merge["moved"] or {}).get("identities", [])]
        if moved:
            holders = connection.execute(
                select(identities.c.person_id).where(identities.c.id.in_(moved))
            ).scalars()
            assert set(holders) == {merge["merged_id"]}
    with pytest.raises(ConflictError):
        engine.unmerge(int(merge["id"]))
