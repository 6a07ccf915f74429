"""The handoff end to end on real SQLite and PostgreSQL: a new MQL is routed and its
notifications are written in the same transaction; the SLA clock breaches and escalates;
feedback over HTTP records touches and refuses illegal moves; CRM outcomes import."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from mqlengine.domain.rules import Definition
from mqlengine.errors import ConflictError, ValidationError
from mqlengine.ingest.pipeline import Pipeline
from mqlengine.services import outbox, reps
from mqlengine.services.feedback import apply_feedback
from mqlengine.services.handoff.sla import check_breaches
from mqlengine.services.outcomes import import_outcomes
from mqlengine.services.qualify import HANDOFF
from mqlengine.store.db import Database
from mqlengine.store.tables import persons, stage_history
from mqlengine.store.tables_handoff import (
    assignments,
    sla_breaches,
    touches,
)
from mqlengine.store.tables_handoff import (
    outbox as outbox_table,
)
from support.paths import EXAMPLE
from support.secrets import TEST_BOX

# Monday 2026-11-16, 10:00 in New York (15:00 UTC): inside business hours
MONDAY = datetime(2026, 11, 16, 15, 0, tzinfo=UTC)


def team(db: Database) -> None:
    with db.begin() as c:
        reps.upsert_team(
            c, "enterprise", now=MONDAY, manager_name="M", manager_email="m@example.com"
        )
        reps.upsert_team(c, "mid_market", now=MONDAY, manager_email="mm@example.com")
        for key, team_name in (("ana", "enterprise"), ("ben", "enterprise"), ("cy", "mid_market")):
            reps.upsert_rep(
                c,
                key,
                now=MONDAY,
                team=team_name,
                email=f"{key}@example.com",
                timezone="America/New_York",
                capacity_per_day=5,
            )
        outbox.add_destination(
            c, box=TEST_BOX, name="hook", kind="webhook", url="http://127.0.0.1:9/x", now=MONDAY
        )
        outbox.add_destination(
            c,
            box=TEST_BOX,
            name="mail",
            kind="email",
            url="smtp://127.0.0.1:9",
            now=MONDAY,
            topics=["sla.breached"],
            email_to=["manager"],
        )


def hand_raiser(
    user: str, email: str, employees: int = 2000, at: datetime = MONDAY
) -> list[dict[str, Any]]:
    traits = {
        "email": email,
        "title": "VP Marketing",
        "seniority": "vp",
        "department": "marketing",
        "company": {"employees": employees, "industry": "software"},
        "country": "US",
    }
    return [
        {
            "type": "identify",
            "messageId": f"{user}-id",
            "userId": user,
            "traits": traits,
            "timestamp": (at - timedelta(minutes=5)).isoformat(),
        },
        {
            "type": "track",
            "messageId": f"{user}-demo",
            "userId": user,
            "event": "Demo Requested",
            "timestamp": at.isoformat(),
        },
    ]


def ingest(
    db: Database, definition: Definition, messages: list[dict[str, Any]], now: datetime = MONDAY
) -> int:
    with db.begin() as c:
        result = Pipeline(definition, handoff=HANDOFF).ingest(c, messages, now=now)
    assert not result.rejected
    (person_id,) = result.persons
    return person_id


def test_new_mql_is_routed_with_sla_and_outbox_in_one_transaction(
    db: Database, definition: Definition
) -> None:
    team(db)
    first = ingest(db, definition, hand_raiser("u1", "ana@northwind.io"))
    second = ingest(db, definition, hand_raiser("u2", "bo@globex.com"))
    with db.read() as c:
        rows = {r["person_id"]: r for r in c.execute(select(assignments)).mappings()}
        people = {r["id"]: r for r in c.execute(select(persons)).mappings()}
        topics = sorted(r.topic for r in c.execute(select(outbox_table.c.topic)))
    assert set(rows) == {first, second}
    assert {rows[first]["team"], rows[second]["team"]} == {"enterprise"}
    # weighted by capacity across two equal reps: one each
    assert {rows[first]["strategy"], rows[second]["strategy"]} == {"weighted_by_capacity"}
    assert rows[first]["rep_id"] != rows[second]["rep_id"]
    assert rows[first]["sla_policy"] == "hot_demo_request"
    assert rows[first]["sla_due_at"] == rows[first]["assigned_at"] + timedelta(minutes=15)
    assert people[first]["owner_rep_id"] == rows[first]["rep_id"]
    assert people[first]["sla_due_at"] == rows[first]["sla_due_at"]
    # stage change + assignment per MQL to the webhook; nothing to the breach-only mailbox
    assert topics == ["mql.assigned"] * 2 + ["person.stage_changed"] * 2
    # a colleague from the same account sticks to the account's owner
    third = ingest(db, definition, hand_raiser("u3", "cy@northwind.io"))
    with db.read() as c:
        third_row = (
            c.execute(select(assignments).where(assignments.c.person_id == third)).mappings().one()
        )
    assert third_row["strategy"] == "account_owner" and third_row["rep_id"] == rows[first]["rep_id"]


def test_failed_transaction_leaves_no_assignment_and_no_outbox_row(
    db: Database, definition: Definition
) -> None:
    team(db)
    with pytest.raises(RuntimeError), db.begin() as c:
        Pipeline(definition, handoff=HANDOFF).ingest(
            c, hand_raiser("u1", "ana@northwind.io"), now=MONDAY
        )
        raise RuntimeError("crash before commit")
    with db.read() as c:
        assert c.execute(select(assignments)).first() is None
        assert c.execute(select(outbox_table)).first() is None


def test_sla_breach_is_detected_once_and_escalates(db: Database, definition: Definition) -> None:
    team(db)
    person_id = ingest(db, definition, hand_raiser("u1", "ana@northwind.io"))
    with db.read() as c:
        first = c.execute(select(assignments)).mappings().one()
    with db.begin() as c:  # injected clock: 14 minutes later, nothing yet
        assert check_breaches(c, definition, now=MONDAY + timedelta(minutes=14)) == []
    later = MONDAY + timedelta(minutes=16)
    with db.begin() as c:
        (breach,) = check_breaches(c, definition, now=later)
    assert breach["actions"] == ["notify_manager", "reassign"]
    with db.begin() as c:
        assert check_breaches(c, definition, now=later) == []  # recorded once
    with db.read() as c:
        rows = list(c.execute(select(assignments).order_by(assignments.c.seq)).mappings())
        mail = [
            r for r in c.execute(select(outbox_table)).mappings() if r["topic"] == "sla.breached"
        ]
        owner = c.execute(
            select(persons.c.owner_rep_id).where(persons.c.id == person_id)
        ).scalar_one()
    assert [r["status"] for r in rows] == ["reassigned", "waiting"]
    assert rows[1]["rep_id"] not in (None, first["rep_id"]) and owner == rows[1]["rep_id"]
    assert rows[1]["sla_due_at"] == later + timedelta(minutes=15)
    assert {tuple(r["payload"].get("to", [])) for r in mail} >= {("m@example.com",)}
    # the second owner breaches too: notify only (max one reassignment)
    with db.begin() as c:
        (again,) = check_breaches(c, definition, now=later + timedelta(minutes=20))
    assert again["actions"] == ["notify_manager"] and again["reassigned_to"] is None


def test_touch_stops_the_clock_and_late_touch_is_a_breach(
    db: Database, definition: Definition
) -> None:
    team(db)
    on_time = ingest(db, definition, hand_raiser("u1", "ana@northwind.io"))
    late = ingest(db, definition, hand_raiser("u2", "bo@globex.com"))
    with db.begin() as c:
        apply_feedback(
            c,
            definition,
            on_time,
            "touch",
            actor="ana",
            at=MONDAY + timedelta(minutes=5),
            now=MONDAY,
        )
        apply_feedback(
            c, definition, late, "touch", actor="ben", at=MONDAY + timedelta(minutes=40), now=MONDAY
        )
    with db.begin() as c:
        assert check_breaches(c, definition, now=MONDAY + timedelta(hours=3)) == []
    with db.read() as c:
        breaches = list(c.execute(select(sla_breaches)).mappings())
        touched = c.execute(
            select(persons.c.first_touch_at).where(persons.c.id == on_time)
        ).scalar_one()
        assert len(list(c.execute(select(touches)))) == 2
    assert [(b["person_id"], b["late_touch"], b["actions"]) for b in breaches] == [
        (late, True, ["notify_manager"])
    ]
    assert touched == MONDAY + timedelta(minutes=5)


def test_feedback_api_records_history_and_refuses_illegal_moves(
    db: Database, definition: Definition, migrated_database_url: str, tmp_path: Path
) -> None:
    from mqlengine.services.keys import KeyHasher, create_key
    from support.localserver import local_server

    team(db)
    person_id = ingest(db, definition, hand_raiser("u1", "ana@northwind.io"), now=datetime.now(UTC))
    with db.begin() as c:  # a sales rep's key: the feedback scope, named after her
        ana_key = create_key(
            c, KeyHasher(None), scopes=["feedback"], name="ana", now=datetime.now(UTC)
        ).secret
    with (
        local_server(
            migrated_database_url, EXAMPLE, write_key="k", log=tmp_path / "server.log"
        ) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        auth = {"authorization": f"Bearer {ana_key}"}
        admin = {"authorization": f"Bearer {server.admin_key}"}
        url = f"/v1/persons/{person_id}/feedback"
        assert client.post(url, json={"action": "touch"}).status_code == 401
        # the public write key records no feedback
        as_writer = client.post(
            url, json={"action": "touch"}, headers={"authorization": "Bearer k"}
        )
        assert as_writer.status_code == 403 and as_writer.json()["code"] == "forbidden"
        # the actor is the key's name, never what the body says
        claimed = client.post(url, json={"action": "touch", "actor": "mallory"}, headers=auth)
        assert claimed.status_code == 422
        touched = client.post(url, json={"action": "touch"}, headers=auth)
        assert touched.status_code == 200 and touched.json()["assignment_status"] == "touched"
        assert client.post(url, json={"action": "reject"}, headers=auth).status_code == 400
        bad = client.post(url, json={"action": "reject", "reason": "nope"}, headers=auth)
        assert bad.status_code == 400 and bad.json()["details"]["code"] == "unknown_reason"
        accepted = client.post(url, json={"action": "accept"}, headers=auth)
        assert accepted.json()["to_stage"] == "sal"
        illegal = client.post(url, json={"action": "won", "amount": 100}, headers=auth)
        assert illegal.status_code == 409 and illegal.json()["code"] == "conflict"
        converted = client.post(url, json={"action": "convert", "amount": 25000}, headers=auth)
        assert converted.json()["to_stage"] == "opportunity"
        won = client.post(url, json={"action": "won", "amount": 30000}, headers=auth)
        assert won.json()["stage"] == "customer"
        assert (
            client.post(
                "/v1/persons/999999/feedback", json={"action": "touch"}, headers=auth
            ).status_code
            == 404
        )
        # reps: reading takes read (admin implies it), changing takes admin
        assert client.get("/v1/reps", headers=auth).status_code == 403
        listed = client.get("/v1/reps", headers=admin).json()["reps"]
        assert {r["key"] for r in listed} == {"ana", "ben", "cy"}
        dee = {"team": "mid_market", "timezone": "Europe/Berlin"}
        assert client.put("/v1/reps/dee", json=dee, headers=auth).status_code == 403
        reader = {"authorization": f"Bearer {server.read_key}"}
        assert client.put("/v1/reps/dee", json=dee, headers=reader).status_code == 403
        assert (
            client.put(
                "/v1/reps/dee", json={"team": "mid_market", "timezone": "Mars/Base"}, headers=admin
            ).status_code
            == 400
        )
        created = client.put(
            "/v1/reps/dee",
            json={**dee, "working_hours": {"weekdays": ["09:00-17:00"]}},
            headers=admin,
        )
        assert created.status_code == 200 and created.json()["team"] == "mid_market"
        away = client.post(
            "/v1/reps/dee/absences",
            json={"starts_at": "2026-12-01T00:00:00Z", "ends_at": "2026-12-10T00:00:00Z"},
            headers=admin,
        )
        assert away.status_code == 201
        # the audit log: who did what, readable by admin keys only
        assert client.get("/v1/audit", headers=reader).status_code == 403
        entries = client.get("/v1/audit", headers=admin).json()["entries"]
        done = [(e["actor"], e["action"], e["target"]) for e in reversed(entries)]
        assert done == [
            ("ana", "feedback.touch", f"person:{person_id}"),
            ("ana", "feedback.accept", f"person:{person_id}"),
            ("ana", "feedback.convert", f"person:{person_id}"),
            ("ana", "feedback.won", f"person:{person_id}"),
            ("MQL_ADMIN_KEYS#1", "rep.put", "dee"),
            ("MQL_ADMIN_KEYS#1", "rep.absence", "dee"),
        ]
        assert entries[0]["address"] == "127.0.0.1" and entries[0]["key_id"] == "env-admin-1"
    with db.read() as c:
        history = list(
            c.execute(
                select(stage_history)
                .where(stage_history.c.person_id == person_id)
                .order_by(stage_history.c.id)
            ).mappings()
        )
    assert [(h["to_stage"], h["actor"]) for h in history[-3:]] == [
        ("sal", "ana"),
        ("opportunity", "ana"),
        ("customer", "ana"),
    ]


def test_recycle_needs_a_reason_and_a_cool_down(db: Database, definition: Definition) -> None:
    team(db)
    person_id = ingest(db, definition, hand_raiser("u1", "ana@northwind.io"))
    with db.begin() as c, pytest.raises(ValidationError):
        apply_feedback(c, definition, person_id, "recycle", actor="ana", at=MONDAY, now=MONDAY)
    with db.begin() as c:
        apply_feedback(
            c, definition, person_id, "recycle", actor="ana", at=MONDAY, now=MONDAY, reason="timing"
        )
    with db.begin() as c, pytest.raises(ConflictError):
        apply_feedback(
            c, definition, person_id, "lost", actor="ana", at=MONDAY, now=MONDAY, reason="price"
        )
    # more intent inside the cool-down does not re-qualify
    more = [
        {
            "type": "track",
            "messageId": "again",
            "userId": "u1",
            "event": "Webinar Attended",
            "timestamp": (MONDAY + timedelta(days=1)).isoformat(),
        }
    ]
    ingest(db, definition, more, now=MONDAY + timedelta(days=1))
    with db.read() as c:
        assert (
            c.execute(select(persons.c.stage).where(persons.c.id == person_id)).scalar_one()
            == "nurture"
        )


def test_import_outcomes_from_salesforce_and_hubspot_exports(
    db: Database, definition: Definition, tmp_path: Path
) -> None:
    team(db)
    a = ingest(db, definition, hand_raiser("u1", "ana@northwind.io"))
    b = ingest(db, definition, hand_raiser("u2", "bo@globex.com"))
    c_ = ingest(db, definition, hand_raiser("u3", "cy@initech.com"))
    sf = tmp_path / "opportunities.csv"
    sf.write_text(
        "Opportunity Name,Stage,Amount,Close Date,Email,Opportunity Owner,Loss Reason\n"
        'Northwind,Closed Won,"$42,000.00",11/18/2026,ana@northwind.io,Ana Souza,\n'
        "Globex,Closed Lost,10000,2026-11-18,bo@globex.com,Ben Carter,Price\n"
        "Nobody,Closed Won,1,2026-11-18,ghost@nowhere.io,X,\n",
        encoding="utf-8",
    )
    report = import_outcomes(db, definition, sf, now=MONDAY + timedelta(days=3))
    assert report.rows == 3 and report.applied == 2 and len(report.problems) == 1
    assert "ghost@nowhere.io" in report.problems[0].reason
    again = import_outcomes(db, definition, sf, now=MONDAY + timedelta(days=3))
    assert again.applied == 0 and again.skipped == 2  # idempotent
    hubspot = tmp_path / "contacts.csv"
    hubspot.write_text(
        "Email,Lead Status,Contact owner\ncy@initech.com,BAD_TIMING,Cy\n", encoding="utf-8"
    )
    assert import_outcomes(db, definition, hubspot, now=MONDAY + timedelta(days=3)).applied == 1
    with db.read() as c:
        stages = dict(c.execute(select(persons.c.id, persons.c.stage)).all())
        won = (
            c.execute(
                select(stage_history).where(
                    stage_history.c.person_id == a, stage_history.c.to_stage == "customer"
                )
            )
            .mappings()
            .one()
        )
    assert (stages[a], stages[b], stages[c_]) == ("customer", "nurture", "nurture")
    assert won["amount"] == 42000.0 and won["actor"] == "Ana Souza"
    assert won["changed_at"] == datetime(2026, 11, 18, tzinfo=UTC)
