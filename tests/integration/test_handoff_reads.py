"""The handoff's reads on real SQLite and PostgreSQL: routing reads only what its decision
needs (one statement) and decides as with the full routing state; reps, teams and
destinations are read once per transaction, yet changes made on the same transaction, or
committed elsewhere before the next one, are always seen."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, select

from mqlengine.domain.lifecycle import Stage, StageChange, decide_on_score
from mqlengine.domain.routing import match_rule, route
from mqlengine.domain.rules import Definition
from mqlengine.domain.scoring import Event, Scorer
from mqlengine.services import outbox, reps, txcache
from mqlengine.services.handoff.directory import load_reps, rep_directory
from mqlengine.services.handoff.hook import on_stage_change
from mqlengine.services.handoff.reads import lead_of, routing_state, routing_state_for
from mqlengine.services.qualify import apply_stage_change
from mqlengine.store.db import Database
from mqlengine.store.tables import accounts, persons
from mqlengine.store.tables_handoff import assignments, destinations
from mqlengine.store.tables_handoff import outbox as outbox_table
from mqlengine.store.tables_handoff import reps as reps_table
from support.secrets import TEST_BOX

# Monday 2026-11-16, 10:00 in New York (15:00 UTC): inside business hours
MONDAY = datetime(2026, 11, 16, 15, 0, tzinfo=UTC)
HOURS = {"weekdays": ["08:00-18:00"]}


def setup_team(db: Database) -> None:
    """Teams and reps of every kind routing looks at: capacities (and none), time zones,
    working hours, territories, an absence, an inactive rep; a webhook and a mailbox."""
    with db.begin() as c:
        for name in ("enterprise", "emea", "mid_market", "sdr_queue"):
            reps.upsert_team(c, name, now=MONDAY, manager_email=f"boss.{name}@example.com")
        for key, team, zone, capacity, territories in (
            ("ana", "enterprise", "America/New_York", 5, []),
            ("ben", "enterprise", "America/Chicago", None, []),
            ("chloe", "emea", "Europe/London", 3, ["GB", "IE"]),
            ("dieter", "emea", "Europe/Berlin", None, ["DE", "emea"]),
            ("elodie", "emea", "Europe/Paris", 2, []),
            ("frank", "mid_market", "America/New_York", 2, []),
            ("grace", "mid_market", "America/Los_Angeles", None, []),
            ("hiro", "mid_market", "Australia/Sydney", 4, []),
            ("ivan", "mid_market", "UTC", 9, []),
        ):
            reps.upsert_rep(
                c,
                key,
                now=MONDAY,
                team=team,
                email=f"{key}@example.com",
                timezone=zone,
                capacity_per_day=capacity,
                working_hours=HOURS if key != "ben" else None,
                territories=territories,
            )
        reps.upsert_rep(c, "ivan", now=MONDAY, active=False)
        reps.add_absence(
            c, "grace", starts_at=MONDAY - timedelta(days=1), ends_at=MONDAY + timedelta(hours=5)
        )
        outbox.add_destination(
            c, box=TEST_BOX, name="hook", kind="webhook", url="https://x.example/", now=MONDAY
        )
        outbox.add_destination(
            c,
            box=TEST_BOX,
            name="mail",
            kind="email",
            url="smtp://mail.example:25",
            now=MONDAY,
            topics=["mql.assigned"],
            email_to=["owner", "manager"],
        )


COUNTRIES = ("US", "GB", "DE", "FR", "IE", "US", "AU", "NL")
SIZES = (30, 120, 600, 2500, 20000)


def add_persons(
    c: Connection, count: int, *, accounts_count: int = 0, sizes: tuple[int, ...] = SIZES
) -> list[int]:
    if accounts_count:
        c.execute(
            accounts.insert(),
            [
                {"name": f"A{a}", "traits": {}, "created_at": MONDAY, "updated_at": MONDAY}
                for a in range(accounts_count)
            ],
        )
    account_ids = [r.id for r in c.execute(select(accounts.c.id).order_by(accounts.c.id))]
    rows = []
    for i in range(count):
        profile = {
            "email": f"p{i}@company{i % 7}.com",
            "first_name": f"P{i}",
            "title": "VP Marketing",
            "seniority": "vp",
            "department": "marketing",
            "company": {"employees": sizes[i % len(sizes)], "industry": "software"},
            "country": COUNTRIES[i % len(COUNTRIES)],
        }
        rows.append(
            {
                "account_id": account_ids[i % len(account_ids)]
                if account_ids and i % 3 == 0
                else None,
                "traits": profile,
                "profile": profile,
                "flags": [],
                "email": profile["email"],
                "first_seen_at": MONDAY - timedelta(days=1),
                "last_seen_at": MONDAY - timedelta(days=1),
                "stage": "lead",
                "stage_changed_at": MONDAY - timedelta(days=1),
                "created_at": MONDAY - timedelta(days=1),
                "updated_at": MONDAY - timedelta(days=1),
            }
        )
    before = c.execute(select(persons.c.id).order_by(persons.c.id.desc()).limit(1)).first()
    c.execute(persons.insert(), rows)
    first = before.id if before is not None else 0
    return [r.id for r in c.execute(select(persons.c.id).where(persons.c.id > first))]


HAND_RAISER = ("Demo Requested",)
ENGAGED = ("Trial Started", "Content Downloaded", "Webinar Attended")


def qualify(
    c: Connection,
    definition: Definition,
    person_id: int,
    at: datetime,
    events: tuple[str, ...] = HAND_RAISER,
) -> None:
    """Make the person an MQL through the scoring path's call (with the handoff)."""
    profile = c.execute(select(persons.c.profile).where(persons.c.id == person_id)).scalar_one()
    history = [Event(f"e{person_id}-{i}", name, at, {}) for i, name in enumerate(events)]
    card = Scorer(definition).score(profile, history, at)
    change = decide_on_score(Stage.LEAD, card, at)
    assert change is not None and change.to_stage is Stage.MQL
    assert apply_stage_change(
        c, person_id, change, recorded_at=at, card=card, definition=definition
    )


def assignment_of(c: Connection, person_id: int) -> dict[str, Any]:
    row = (
        c.execute(
            select(assignments, reps_table.c.key.label("rep"))
            .outerjoin(reps_table, reps_table.c.id == assignments.c.rep_id)
            .where(assignments.c.person_id == person_id)
            .order_by(assignments.c.id.desc())
        )
        .mappings()
        .first()
    )
    assert row is not None
    return dict(row)


def outbox_of(c: Connection, person_id: int, topic: str) -> dict[str, dict[str, Any]]:
    """The person's outbox payloads of ``topic`` by destination name."""
    query = (
        select(destinations.c.name, outbox_table.c.payload)
        .join(destinations, destinations.c.id == outbox_table.c.destination_id)
        .where(outbox_table.c.person_id == person_id, outbox_table.c.topic == topic)
    )
    return {r.name: r.payload for r in c.execute(query)}


def test_routing_reads_decide_as_the_full_routing_state(
    db: Database, definition: Definition
) -> None:
    assert definition.routing is not None
    setup_team(db)
    with db.begin() as c:
        ids = add_persons(c, 90, accounts_count=12)
    # a day of MQLs: loads, capacities used up, cursors moved, account owners
    at = MONDAY - timedelta(hours=9)
    for part in range(0, 60, 12):
        with db.begin() as c:
            for n, pid in enumerate(ids[part : part + 12]):
                at += timedelta(minutes=11)
                qualify(c, definition, pid, at, HAND_RAISER if n % 3 else ENGAGED)
    with db.read() as c:
        rows = {r["id"]: r for r in c.execute(select(persons)).mappings()}
        counts = Counter(a["strategy"] for a in c.execute(select(assignments)).mappings())
    assert {"weighted_by_capacity", "round_robin", "least_loaded", "account_owner"} <= set(
        counts
    ), counts
    decisions: Counter[str] = Counter()
    with db.read() as c:
        directory = rep_directory(c)
        values, rep_rows = load_reps(c)
        for pid in ids:
            person = rows[pid]
            for mql_type in ("hand_raiser", "engagement"):
                lead = lead_of(person, None, mql_type)
                for hours in (0, 3, 9, 16):
                    now = MONDAY + timedelta(hours=hours, minutes=pid % 50)
                    for exclude, only_rule in (
                        (frozenset(), None),
                        (frozenset({"ana", "chloe", "frank"}), None),
                        (frozenset({"grace"}), "mid_market"),
                        (frozenset(), "emea"),
                    ):
                        full_state = routing_state(
                            c,
                            rep_rows,
                            person_id=pid,
                            account_id=person["account_id"],
                            now=now,
                        )
                        full = route(
                            definition.routing,
                            values,
                            lead,
                            full_state,
                            now,
                            exclude=exclude,
                            only_rule=only_rule,
                        )
                        rule = match_rule(definition.routing, lead, now, only_rule=only_rule)
                        state = routing_state_for(
                            c,
                            directory,
                            rule,
                            person_id=pid,
                            account_id=person["account_id"],
                            now=now,
                        )
                        fast = route(
                            definition.routing,
                            directory.reps,
                            lead,
                            state,
                            now,
                            exclude=exclude,
                            only_rule=only_rule,
                        )
                        assert fast == full, (pid, mql_type, now, exclude, only_rule)
                        decisions[full.strategy] += 1
    assert len(decisions) == 5, decisions  # every strategy, and the fallback queue


def test_rep_and_team_changes_on_the_same_transaction_are_seen(
    db: Database, definition: Definition
) -> None:
    setup_team(db)
    with db.begin() as c:
        first, second, third = add_persons(c, 3, sizes=(9000,))
    with db.begin() as c:
        qualify(c, definition, first, MONDAY)
        owner = assignment_of(c, first)["rep"]
        assert owner in ("ana", "ben")
        other = "ben" if owner == "ana" else "ana"
        reps.upsert_rep(c, owner, now=MONDAY, active=False)
        qualify(c, definition, second, MONDAY + timedelta(minutes=1))
        assert assignment_of(c, second)["rep"] == other
        reps.add_absence(
            c, other, starts_at=MONDAY - timedelta(hours=1), ends_at=MONDAY + timedelta(days=1)
        )
        reps.upsert_team(c, "sdr_queue", now=MONDAY, manager_email="new.boss@example.com")
        qualify(c, definition, third, MONDAY + timedelta(minutes=2))
        third_row = assignment_of(c, third)
        assert (third_row["rep"], third_row["team"]) == (None, "sdr_queue")
        mail = outbox_of(c, third, "mql.assigned")["mail"]
        assert mail["to"] == ["new.boss@example.com"]


def test_destination_changes_on_the_same_transaction_are_seen(
    db: Database, definition: Definition
) -> None:
    setup_team(db)
    with db.begin() as c:
        first, second, third = add_persons(c, 3)
    with db.begin() as c:
        qualify(c, definition, first, MONDAY)
        outbox.add_destination(
            c, box=TEST_BOX, name="late", kind="webhook", url="https://y.example/", now=MONDAY
        )
        qualify(c, definition, second, MONDAY)
        outbox.remove_destination(c, "hook")
        qualify(c, definition, third, MONDAY)
        assert set(outbox_of(c, first, "person.stage_changed")) == {"hook"}
        assert set(outbox_of(c, second, "person.stage_changed")) == {"hook", "late"}
        assert set(outbox_of(c, third, "person.stage_changed")) == {"late"}
        assert set(outbox_of(c, third, "mql.assigned")) == {"late", "mail"}


def test_the_next_transaction_sees_what_another_connection_committed(
    db: Database, definition: Definition
) -> None:
    setup_team(db)
    with db.begin() as c:
        first, second = add_persons(c, 2, sizes=(9000,))
    with db.engine.connect() as c:  # one connection, two transactions
        with c.begin():
            qualify(c, definition, first, MONDAY)
            owner = assignment_of(c, first)["rep"]
        with db.begin() as elsewhere:
            reps.upsert_rep(elsewhere, owner, now=MONDAY, active=False)
            outbox.add_destination(
                elsewhere,
                box=TEST_BOX,
                name="new",
                kind="webhook",
                url="https://z.example/",
                now=MONDAY,
            )
        with c.begin():
            qualify(c, definition, second, MONDAY + timedelta(minutes=1))
            assert assignment_of(c, second)["rep"] not in (owner, None)
            assert set(outbox_of(c, second, "mql.assigned")) == {"hook", "mail", "new"}


def test_a_memo_lives_as_long_as_its_transaction_and_savepoint(db: Database) -> None:
    loads: list[int] = []

    def load() -> int:
        loads.append(1)
        return len(loads)

    with db.engine.connect() as c:
        assert txcache.cached(c, "x", load) == 1  # no transaction: nothing kept
        assert txcache.cached(c, "x", load) == 2
        with c.begin():
            assert txcache.cached(c, "x", load) == 3
            assert txcache.cached(c, "x", load) == 3
            with c.begin_nested():
                assert txcache.cached(c, "x", load) == 4
                assert txcache.cached(c, "x", load) == 4
            assert txcache.cached(c, "x", load) == 5  # the savepoint may have changed things
            txcache.forget(c, "x")
            assert txcache.cached(c, "x", load) == 6
            assert txcache.cached(c, "y", load) == 7
            assert txcache.cached(c, "x", load) == 6
        with c.begin():
            assert txcache.cached(c, "x", load) == 8


def test_the_handoff_reads_the_person_when_the_caller_has_no_row(
    db: Database, definition: Definition
) -> None:
    setup_team(db)
    with db.begin() as c:
        (pid,) = add_persons(c, 1)
        profile = c.execute(select(persons.c.profile).where(persons.c.id == pid)).scalar_one()
        card = Scorer(definition).score(profile, [Event("e", "Demo Requested", MONDAY, {})], MONDAY)
        change = decide_on_score(Stage.LEAD, card, MONDAY)
        assert change is not None
        assert apply_stage_change(c, pid, change, recorded_at=MONDAY, card=card)
        assert not outbox_of(c, pid, "person.stage_changed")  # no definition: no handoff
        on_stage_change(c, definition, pid, change, recorded_at=MONDAY, card=card)
        assert assignment_of(c, pid)["sla_policy"] == "hot_demo_request"
        assert set(outbox_of(c, pid, "person.stage_changed")) == {"hook"}
        data = outbox_of(c, pid, "mql.assigned")["hook"]["data"]
        assert data["person"]["email"] == profile["email"]


@pytest.mark.parametrize("with_definition", [False, True])
def test_a_stage_change_happens_once_with_extra_values_too(
    db: Database, definition: Definition, with_definition: bool
) -> None:
    setup_team(db)
    with db.begin() as c:
        (pid,) = add_persons(c, 1)
    change = StageChange(Stage.LEAD, Stage.NURTURE, MONDAY, "parked", "rep@example.com", "v1")
    handoff = definition if with_definition else None
    with db.begin() as c:
        assert apply_stage_change(
            c, pid, change, recorded_at=MONDAY, extra={"owner_team": "emea"}, definition=handoff
        )
        assert not apply_stage_change(c, pid, change, recorded_at=MONDAY, definition=handoff)
        row = c.execute(select(persons).where(persons.c.id == pid)).mappings().one()
    assert (row["stage"], row["owner_team"], row["row_version"]) == ("nurture", "emea", 2)
    assert row["recycled_at"] == MONDAY
