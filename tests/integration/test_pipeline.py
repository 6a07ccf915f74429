"""The ingest pipeline and the lifecycle services against real SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from mqlengine.domain.lifecycle import Stage, StageChange
from mqlengine.domain.rules import Definition
from mqlengine.domain.scoring import score
from mqlengine.errors import ConflictError, NotFoundError, ValidationError
from mqlengine.ingest.pipeline import BatchResult, Pipeline
from mqlengine.ingest.qualify import Handoff
from mqlengine.services.feedback import apply_feedback
from mqlengine.services.qualify import HANDOFF, apply_stage_change, rescore
from mqlengine.store import repo
from mqlengine.store.db import Database
from mqlengine.store.tables import events, identities, merges, persons, stage_history
from mqlengine.store.tables_handoff import outbox
from support.clock import NOW

THREADS = 8


def at(days_ago: float, hours: float = 0) -> str:
    return (NOW - timedelta(days=days_ago, hours=hours)).isoformat()


VP_TRAITS = {
    "email": "ana@northwind.io",
    "title": "VP Marketing",
    "seniority": "vp",
    "department": "marketing",
    "company": {"employees": 800, "industry": "software"},
    "country": "US",
}


def identify(
    message_id: str,
    *,
    user: str | None = None,
    anon: str | None = None,
    traits: dict[str, Any],
    days_ago: float = 1,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "identify",
        "messageId": message_id,
        "traits": traits,
        "timestamp": at(days_ago),
    }
    if user:
        message["userId"] = user
    if anon:
        message["anonymousId"] = anon
    return message


def track(
    message_id: str,
    event: str,
    *,
    user: str | None = None,
    anon: str | None = None,
    days_ago: float = 1,
    hours: float = 0,
    **properties: Any,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "track",
        "messageId": message_id,
        "event": event,
        "properties": properties,
        "timestamp": at(days_ago, hours),
    }
    if user:
        message["userId"] = user
    if anon:
        message["anonymousId"] = anon
    return message


def page(
    message_id: str,
    path: str,
    *,
    anon: str | None = None,
    user: str | None = None,
    days_ago: float = 1,
    hours: float = 0,
) -> dict[str, Any]:
    message = track(message_id, "x", anon=anon, user=user, days_ago=days_ago, hours=hours)
    message.update(type="page", properties={"path": path})
    del message["event"]
    return message


@pytest.fixture
def ingest(db: Database, definition: Definition) -> Callable[..., BatchResult]:
    pipeline = Pipeline(definition, handoff=HANDOFF)

    def run(messages: list[Any], *, now: datetime = NOW) -> BatchResult:
        with db.begin() as connection:
            return pipeline.ingest(connection, messages, now=now)

    return run


def count(db: Database, table: Any, *where: Any) -> int:
    with db.read() as connection:
        query = select(func.count()).select_from(table)
        if where:
            query = query.where(*where)
        return int(connection.execute(query).scalar_one())


def person(db: Database, person_id: int) -> Any:
    with db.read() as connection:
        row = repo.get_person(connection, person_id)
    assert row is not None
    return row


def owner(db: Database, kind: str, value: str) -> int:
    with db.read() as connection:
        return int(
            connection.execute(
                select(identities.c.person_id).where(
                    identities.c.kind == kind, identities.c.value == value
                )
            ).scalar_one()
        )


def history(db: Database, person_id: int) -> list[Any]:
    with db.read() as connection:
        return repo.stage_history_of(connection, person_id)


def make_mql(ingest: Callable[..., BatchResult], user: str = "u-ana") -> int:
    result = ingest(
        [
            identify("m-id", user=user, traits=VP_TRAITS, days_ago=2),
            page("m-pricing", "/pricing", user=user, days_ago=2),
            track("m-demo", "Demo Requested", user=user, days_ago=1),
        ]
    )
    assert not result.rejected
    (person_id,) = result.persons
    return person_id


# --- ingest --------------------------------------------------------------------------------


def test_events_are_stored_once_and_redelivery_is_a_no_op(
    db: Database, ingest: Callable[..., BatchResult]
) -> None:
    batch = [
        identify("m1", anon="a1", traits={"email": "bo@acme-analytics.com"}, days_ago=3),
        page("m2", "/pricing", anon="a1", days_ago=3),
        track("m3", "Webinar Attended", anon="a1", days_ago=2),
        track("m3", "Webinar Attended", anon="a1", days_ago=2),  # repeated inside the batch
    ]
    first = ingest(batch)
    assert (first.accepted, first.duplicates, first.rejected) == (3, 1, [])
    (person_id,) = first.persons
    assert count(db, events) == 3
    before = person(db, person_id)
    rows_before = (count(db, stage_history), count(db, identities), count(db, persons))

    again = ingest(batch)
    assert (again.accepted, again.duplicates, again.rejected) == (0, 4, [])
    assert again.persons == set()
    assert count(db, events) == 3
    after = person(db, person_id)
    assert after["total_score"] == before["total_score"]
    assert after["intent_score"] == before["intent_score"]
    assert after["row_version"] == before["row_version"]
    assert (count(db, stage_history), count(db, identities), count(db, persons)) == rows_before


def test_anonymous_history_links_to_one_person_on_identify(
    db: Database, ingest: Callable[..., BatchResult]
) -> None:
    first = ingest([page("p1", "/blog/a", anon="anon-1", days_ago=5)])
    ingest([page("p2", "/pricing", anon="anon-1", days_ago=4)])
    (anonymous,) = first.persons
    result = ingest(
        [identify("i1", anon="anon-1", user="user-1", traits={"email": "cy@globex.com"})]
    )
    assert result.persons == {anonymous}
    assert result.merges == []
    assert count(db, persons) == 1
    assert owner(db, "anonymous_id", "anon-1") == anonymous
    assert owner(db, "user_id", "user-1") == anonymous
    assert owner(db, "email", "cy@globex.com") == anonymous
    with db.read() as connection:
        holders = set(connection.execute(select(events.c.person_id)).scalars())
    assert holders == {anonymous}
    # later calls with the user id alone land on the same person, with the whole history
    later = ingest([track("t1", "Webinar Attended", user="user-1")])
    assert later.persons == {anonymous}
    with db.read() as connection:
        loaded = repo.load_events(connection, [anonymous])[anonymous]
    assert sorted(e.id for e in loaded) == ["p1", "p2", "t1"]


@pytest.mark.parametrize("email_holder", ["older", "newer"])
def test_a_shared_email_merges_into_the_lowest_id(
    db: Database, ingest: Callable[..., BatchResult], definition: Definition, email_holder: str
) -> None:
    email = "di@acme-analytics.com"
    traits = {"email": email, "seniority": "manager"}
    older_batch = [
        page("a-1", "/pricing", anon="anon-a", days_ago=2, hours=3),
        track("a-2", "Content Downloaded", anon="anon-a", days_ago=3),
    ]
    newer_batch = [
        page("b-1", "/pricing", anon="anon-b", days_ago=2, hours=1),  # same day as a-1
        track("b-2", "Content Downloaded", anon="anon-b", days_ago=4),
    ]
    if email_holder == "older":
        older_batch.append(identify("a-id", anon="anon-a", traits=traits, days_ago=2))
    else:
        newer_batch.append(identify("b-id", anon="anon-b", traits=traits, days_ago=2))
    (older_id,) = ingest(older_batch).persons
    (newer_id,) = ingest(newer_batch).persons
    assert older_id < newer_id
    intent_before = person(db, older_id)["intent_score"] + person(db, newer_id)["intent_score"]

    # the other person identifies with the same email: both are one human
    other_anon = "anon-b" if email_holder == "older" else "anon-a"
    result = ingest([identify("join", anon=other_anon, traits={"email": email})])
    assert result.merges == [(older_id, newer_id)]
    assert result.persons == {older_id}

    survivor, gone = person(db, older_id), person(db, newer_id)
    assert gone["merged_into"] == older_id
    assert survivor["merged_into"] is None
    assert survivor["email"] == email
    for kind, value in (("anonymous_id", "anon-a"), ("anonymous_id", "anon-b"), ("email", email)):
        assert owner(db, kind, value) == older_id
    with db.read() as connection:
        recorded = connection.execute(select(merges)).mappings().all()
        union = repo.load_events(connection, [older_id])[older_id]
        assert repo.live_person_id(connection, newer_id) == older_id
    assert len(recorded) == 1
    assert (recorded[0]["survivor_id"], recorded[0]["merged_id"]) == (older_id, newer_id)
    assert set(recorded[0]["moved"]["events"])  # the moved event ids are kept for undo
    assert sorted(e.id for e in union) == ["a-1", "a-2", "b-1", "b-2"]

    # rescored from the union of events — not the sum of the two scores
    expected = score(definition, survivor["profile"], union, NOW)
    assert survivor["total_score"] == pytest.approx(expected.total)
    assert survivor["intent_score"] == pytest.approx(expected.intent)
    assert survivor["intent_score"] < intent_before - 1  # pricing counts once per day
    assert count(db, events, events.c.person_id == newer_id) == 0


def test_a_qualifying_lead_becomes_an_mql_with_its_reasons(
    db: Database, ingest: Callable[..., BatchResult], definition: Definition
) -> None:
    person_id = make_mql(ingest)
    row = person(db, person_id)
    assert row["stage"] == "mql"
    assert row["mql_type"] == "hand_raiser"
    assert row["mql_at"] == NOW
    assert row["definition_version"] == definition.version

    rows = history(db, person_id)
    assert [(h["from_stage"], h["to_stage"]) for h in rows] == [(None, "lead"), ("lead", "mql")]
    change = rows[-1]
    assert change["reason"] == "qualified:hand_raiser"
    assert change["actor"] == "system"
    assert change["definition_version"] == definition.version
    assert change["mql_type"] == "hand_raiser"
    assert change["changed_at"] == NOW

    card = change["score_card"]
    assert card["definition_version"] == definition.version
    assert card["qualifies"] is True
    contributions = card["contributions"]
    fit_points = sum(c["points"] for c in contributions if c["kind"] == "fit")
    intent_points = sum(c["points"] for c in contributions if c["kind"] == "intent")
    assert fit_points + card["fit_cap_adjustment"] == pytest.approx(card["fit"], abs=1e-3)
    assert intent_points + card["intent_cap_adjustment"] == pytest.approx(card["intent"], abs=1e-3)
    assert card["fit"] + card["intent"] + card["total_cap_adjustment"] == pytest.approx(
        card["total"], abs=1e-3
    )
    assert card["total"] == pytest.approx(row["total_score"], abs=1e-3)
    assert {c["rule"] for c in contributions} >= {"senior_buyer", "demo_request", "pricing_page"}


def test_the_handoff_is_what_the_pipeline_was_given(db: Database, definition: Definition) -> None:
    """What a stage change sets off is handed in: the pipeline calls it once per committed
    change, on the same transaction, with the person as the stage UPDATE left it; without
    one, the stage still moves and nothing else happens."""
    calls: list[tuple[int, StageChange, Any]] = []

    def record(
        connection: Any,
        definition: Definition,
        person_id: int,
        change: StageChange,
        *,
        recorded_at: datetime,
        card: Any = None,
        person: Any = None,
    ) -> None:
        assert connection.in_transaction()
        calls.append((person_id, change, person))

    recording = Handoff(person_columns=HANDOFF.person_columns, on_stage_change=record)
    for handoff, user in ((recording, "u-recorded"), (None, "u-silent")):
        traits = {**VP_TRAITS, "email": f"{user}@northwind.io"}
        with db.begin() as connection:
            result = Pipeline(definition, handoff=handoff).ingest(
                connection,
                [
                    identify(f"{user}-id", user=user, traits=traits, days_ago=2),
                    page(f"{user}-pricing", "/pricing", user=user, days_ago=2),
                    track(f"{user}-demo", "Demo Requested", user=user, days_ago=1),
                ],
                now=NOW,
            )
        (person_id,) = result.persons
        assert person(db, person_id)["stage"] == "mql"
        if handoff is not None:
            ((called_for, change, row),) = calls
            assert called_for == person_id and change.to_stage is Stage.MQL
            if row is not None:  # the UPDATE returned it (where the database can)
                assert row["id"] == person_id and row["mql_type"] == "hand_raiser"
    assert len(calls) == 1
    with db.read() as connection:
        assert connection.execute(select(func.count()).select_from(outbox)).scalar_one() == 0


def test_bad_messages_are_reported_per_index_and_good_ones_load(
    db: Database, ingest: Callable[..., BatchResult]
) -> None:
    batch: list[Any] = [
        track("g1", "Webinar Attended", anon="a1"),
        {"type": "track", "messageId": "b1", "event": "No Ids"},
        "not an object",
        page("g2", "/pricing", anon="a1"),
        {"type": "track", "messageId": "b2", "anonymousId": "a1"},
        {"type": "shout", "messageId": "b3", "anonymousId": "a1"},
        track("b4", "Future", anon="a1", days_ago=-3),
    ]
    result = ingest(batch)
    assert result.accepted == 2
    assert [(r.index, r.message_id, r.field) for r in result.rejected] == [
        (1, "b1", "userId"),
        (2, None, ""),
        (4, "b2", "event"),
        (5, "b3", "type"),
        (6, "b4", "timestamp"),
    ]
    assert all(r.reason for r in result.rejected)
    with db.read() as connection:
        stored = set(connection.execute(select(events.c.message_id)).scalars())
    assert stored == {"g1", "g2"}


# --- feedback ------------------------------------------------------------------------------


def test_feedback_moves_validates_and_refuses(
    db: Database, ingest: Callable[..., BatchResult], definition: Definition
) -> None:
    person_id = make_mql(ingest)

    def feedback(action: str, reason: str | None = None, who: int = person_id) -> Any:
        with db.begin() as connection:
            return apply_feedback(
                connection,
                definition,
                who,
                action,
                actor="rep@example.com",
                at=NOW,
                now=NOW,
                reason=reason,
            )

    with pytest.raises(ValidationError):
        feedback("shrug")
    with pytest.raises(NotFoundError):
        feedback("accept", who=999_999)
    change = feedback("accept")
    assert (change.from_stage, change.to_stage) == (Stage.MQL, Stage.SAL)
    assert person(db, person_id)["stage"] == "sal"
    with pytest.raises(ConflictError) as illegal:
        feedback("won")  # sal → customer skips the funnel
    assert illegal.value.details == {"code": "illegal_transition"}
    with pytest.raises(ConflictError):
        feedback("lost", reason="price")  # only an sql or opportunity can be lost
    with pytest.raises(ValidationError) as missing:
        feedback("reject")
    assert missing.value.details == {"code": "reason_required"}
    with pytest.raises(ValidationError) as unknown:
        feedback("reject", reason="smells_funny")
    assert unknown.value.details == {"code": "unknown_reason"}
    assert person(db, person_id)["stage"] == "sal"  # refused feedback changed nothing

    change = feedback("reject", reason="not_a_fit")
    assert change.to_stage is Stage.NURTURE
    row = person(db, person_id)
    assert row["stage"] == "nurture"
    assert row["recycled_at"] == NOW
    last = history(db, person_id)[-1]
    assert (last["from_stage"], last["to_stage"]) == ("sal", "nurture")
    assert (last["actor"], last["action"], last["reason"]) == (
        "rep@example.com",
        "reject",
        "not_a_fit",
    )
    assert last["definition_version"] == definition.version
    assert last["score_card"] is None
    assert [h["to_stage"] for h in history(db, person_id)] == ["lead", "mql", "sal", "nurture"]


# --- concurrency: several writers, each stage change exactly once --------------------------


def _in_threads(work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in THREADS threads started together; returns results or exceptions."""
    barrier = threading.Barrier(THREADS)
    results: list[Any] = [None] * THREADS

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = work(index)
        except Exception as error:  # collected and asserted on by the test
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    return results


def test_concurrent_feedback_changes_the_stage_once(
    db: Database, ingest: Callable[..., BatchResult], definition: Definition
) -> None:
    person_id = make_mql(ingest)

    def accept(_: int) -> Any:
        with db.begin() as connection:
            return apply_feedback(
                connection, definition, person_id, "accept", actor="rep", at=NOW, now=NOW
            )

    results = _in_threads(accept)
    done = [r for r in results if isinstance(r, StageChange)]
    refused = [r for r in results if isinstance(r, ConflictError)]
    assert len(done) == 1, results
    assert len(refused) == THREADS - 1, results
    assert count(db, stage_history, stage_history.c.to_stage == "sal") == 1
    assert person(db, person_id)["stage"] == "sal"


def test_concurrent_rescoring_qualifies_once(
    db: Database, ingest: Callable[..., BatchResult], definition: Definition
) -> None:
    person_id = make_mql(ingest)
    with db.begin() as connection:  # back to lead, as if the score had dipped meanwhile
        connection.execute(
            update(persons).where(persons.c.id == person_id).values(stage="lead", mql_at=None)
        )

    def score_again(_: int) -> Any:
        with db.begin() as connection:
            return rescore(connection, definition, [person_id], now=NOW)

    results = _in_threads(score_again)
    assert not [r for r in results if isinstance(r, Exception)], results
    changed = [o for r in results for o in r if o.change is not None]
    assert len(changed) == 1
    assert count(db, stage_history, stage_history.c.to_stage == "mql") == 2  # first + this one
    assert person(db, person_id)["stage"] == "mql"


@pytest.mark.postgres
@pytest.mark.parametrize("migrated_database_url", ["postgresql"], indirect=True)
def test_racing_writers_that_all_read_the_old_stage_change_it_once(
    db: Database, ingest: Callable[..., BatchResult], definition: Definition
) -> None:
    """Every writer reads ``mql`` and decides before any commits; the conditional UPDATE
    still lets exactly one through (the others wait on the row lock, then match nothing).
    PostgreSQL only: SQLite writers are serialised by BEGIN IMMEDIATE before they read."""
    person_id = make_mql(ingest)
    all_read = threading.Barrier(THREADS)

    def move(index: int) -> bool:
        with db.begin() as connection:
            row = repo.get_person(connection, person_id)
            assert row is not None and row["stage"] == "mql"
            all_read.wait(timeout=30)
            change = StageChange(
                Stage.MQL,
                Stage.SAL,
                NOW,
                "accept",
                f"rep-{index}",
                definition.version,
                action="accept",
            )
            return apply_stage_change(connection, person_id, change, recorded_at=NOW)

    results = _in_threads(move)
    assert (results.count(True), results.count(False)) == (1, THREADS - 1), results
    assert count(db, stage_history, stage_history.c.to_stage == "sal") == 1
    row = person(db, person_id)
    assert row["stage"] == "sal"


def test_history_replay_rescores_only_when_the_batch_can_change_the_score(
    db: Database, definition: Definition
) -> None:
    """score_as_of="event": an event no rule scores leaves the stored score as it was (it
    cannot qualify anyone); a scored event rescores as of that event."""
    pipeline = Pipeline(definition, handoff=HANDOFF)

    def replay(messages: list[Any]) -> BatchResult:
        with db.begin() as connection:
            return pipeline.ingest(connection, messages, now=NOW, score_as_of="event")

    replay([identify("h1", user="u-h", traits=VP_TRAITS, days_ago=10)])
    pid = owner(db, "user_id", "u-h")
    first = person(db, pid)
    assert first["scored_at"] == NOW - timedelta(days=10)

    result = replay([track("h2", "Email Opened", user="u-h", days_ago=8)])  # no rule scores it
    assert result.persons == {pid} and [o.person_id for o in result.outcomes] == []
    unchanged = person(db, pid)
    assert unchanged["scored_at"] == first["scored_at"]
    assert unchanged["last_seen_at"] == NOW - timedelta(days=8)

    result = replay([page("h3", "/pricing", user="u-h", days_ago=5)])
    assert [o.person_id for o in result.outcomes] == [pid]
    rescored = person(db, pid)
    assert rescored["scored_at"] == NOW - timedelta(days=5)
    assert rescored["intent_score"] > 0
