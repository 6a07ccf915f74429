"""Erasure and export on real SQLite and PostgreSQL: after `erase`, a dump of the whole
database (SQLite's ``iterdump()``, PostgreSQL's ``pg_dump``) holds none of the person's
identifiers, while everyone else stays; the audit row holds no personal data; later
events of the same identifiers start a fresh person or are suppressed; an export holds
everything that was kept."""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mqlengine.errors import ConfigError, NotFoundError
from mqlengine.facade import MqlEngine
from mqlengine.services import outbox, reps
from mqlengine.settings import Settings
from mqlengine.store.admin import sqlite_path
from mqlengine.store.tables import events, identities, persons
from mqlengine.store.tables_handoff import assignments
from mqlengine.store.tables_handoff import outbox as outbox_table
from mqlengine.store.tables_ingest import quarantine
from mqlengine.store.tables_privacy import erasures, suppressions
from mqlengine.wiring import Wiring, frozen_clock
from support import pg
from support.paths import EXAMPLE
from support.secrets import TEST_BOX, TEST_SECRET_KEY

# Monday 2026-11-16, 10:00 in New York: inside the example's business hours
MONDAY = datetime(2026, 11, 16, 15, 0, tzinfo=UTC)
EMAIL = "ada.lovelace@example-health.org"
PHONE_RAW = "+44 20 7946 0321"
PHONE = "+442079460321"
USER_ID = "ada-user-7781"
ANONYMOUS_ID = "anon-ada-5512"
NAME = "Ada Lovelace"
IP = "203.0.113.77"
IDENTIFIERS = (EMAIL, PHONE, PHONE_RAW, USER_ID, ANONYMOUS_ID, NAME, "Lovelace", IP)
OTHER_EMAIL = "bob.other@northwind-clinic.com"


def wiring_for(url: str, **settings: Any) -> Wiring:
    chosen = Settings(
        database_url=url, definition_path=EXAMPLE, secret_key=TEST_SECRET_KEY, **settings
    )
    return Wiring(chosen, clock=frozen_clock(MONDAY))


def sales_team(eng: Wiring) -> None:
    with eng.db.begin() as c:
        reps.upsert_team(c, "enterprise", now=MONDAY, manager_email="boss@vendor.example")
        reps.upsert_rep(
            c,
            "ana",
            now=MONDAY,
            team="enterprise",
            email="ana@vendor.example",
            timezone="America/New_York",
            capacity_per_day=5,
        )
        outbox.add_destination(
            c, box=TEST_BOX, name="crm", kind="webhook", url="https://crm.example/h", now=MONDAY
        )


def ada_messages() -> list[dict[str, Any]]:
    at = MONDAY - timedelta(hours=1)
    traits = {
        "email": EMAIL,
        "phone": PHONE_RAW,
        "name": NAME,
        "title": "VP Marketing",
        "company": {"employees": 2000, "industry": "software"},
        "country": "GB",
    }
    return [
        {  # an anonymous visit: a person of its own until the identify below
            "type": "page",
            "messageId": "ada-page",
            "anonymousId": ANONYMOUS_ID,
            "properties": {"path": "/pricing", "title": f"Pricing for {NAME}"},
            "context": {"ip": IP, "userAgent": "Mozilla/5.0 (Ada)"},
            "timestamp": (at - timedelta(days=1)).isoformat(),
        },
        {
            "type": "identify",
            "messageId": "ada-identify",
            "userId": USER_ID,
            "traits": traits,
            "context": {"ip": IP},
            "timestamp": at.isoformat(),
        },
    ]


def ada_joins() -> list[dict[str, Any]]:
    return [
        {  # names both ids: the anonymous person is merged into the known one
            "type": "track",
            "messageId": "ada-demo",
            "userId": USER_ID,
            "anonymousId": ANONYMOUS_ID,
            "event": "Demo Requested",
            "properties": {"comment": f"call {PHONE_RAW}"},
            "context": {"ip": IP},
            "timestamp": MONDAY.isoformat(),
        },
        {"type": "track", "messageId": "ada-bad", "userId": USER_ID},  # no event: quarantined
    ]


def bob_messages() -> list[dict[str, Any]]:
    return [
        {
            "type": "identify",
            "messageId": "bob-identify",
            "userId": "bob-1",
            "traits": {"email": OTHER_EMAIL, "title": "Director", "country": "US"},
        }
    ]


def load(eng: Wiring) -> int:
    pipeline = eng.pipeline()
    for batch in (ada_messages(), ada_joins(), bob_messages()):
        with eng.db.begin() as c:
            pipeline.ingest(c, batch, now=MONDAY, quarantine_endpoint="batch")
    with eng.db.read() as c:
        (person_id,) = c.execute(
            select(identities.c.person_id).where(identities.c.value == EMAIL)
        ).one()
    return int(person_id)


def dump(url: str) -> str:
    path = sqlite_path(url)
    if path is None:
        return pg.dump(url)
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return "\n".join(connection.iterdump())


def test_erasure_leaves_none_of_the_persons_identifiers_in_a_dump(
    migrated_database_url: str,
) -> None:
    eng = wiring_for(migrated_database_url)
    try:
        sales_team(eng)
        person_id = load(eng)
        before = dump(migrated_database_url)
        for value in IDENTIFIERS:  # the test data really is there to begin with
            assert value in before, value
        with eng.db.read() as c:
            assert c.execute(select(func.count()).select_from(assignments)).scalar_one() == 1
            assert c.execute(select(func.count()).select_from(quarantine)).scalar_one() == 1
            assert c.execute(select(func.count()).select_from(outbox_table)).scalar_one() >= 1

        record = MqlEngine(eng).erase(EMAIL, actor="test:dpo")

        after = dump(migrated_database_url)
        for value in IDENTIFIERS:
            assert value not in after, value
        assert OTHER_EMAIL in after  # nobody else was touched
        counts = record["counts"]
        assert counts["persons"] == 2  # the known person and the anonymous one merged into it
        assert counts["events"] == 3 and counts["identities"] >= 4
        assert counts["assignments"] == 1 and counts["quarantine"] == 1
        assert counts["merges"] == 1 and counts["stage_history"] >= 2
        with eng.db.read() as c:
            audit = c.execute(select(erasures)).mappings().one()
            assert c.execute(select(func.count()).select_from(suppressions)).scalar_one() == 0
            assert c.execute(select(persons.c.id).where(persons.c.id == person_id)).first() is None
        assert audit["actor"] == "test:dpo" and audit["counts"] == counts
        assert audit["after"] == "fresh"
        with pytest.raises(NotFoundError):
            MqlEngine(eng).explain(EMAIL)

        path = sqlite_path(migrated_database_url)
        if path is not None:  # secure_delete and the truncated log: not in the file either
            raw = path.read_bytes() + (
                Path(f"{path}-wal").read_bytes() if Path(f"{path}-wal").exists() else b""
            )
            for value in (EMAIL, USER_ID, ANONYMOUS_ID, NAME, IP):
                assert value.encode() not in raw, value
    finally:
        eng.close()


def test_later_events_start_a_fresh_person_or_are_suppressed(migrated_database_url: str) -> None:
    eng = wiring_for(migrated_database_url, after_erasure="suppress")
    try:
        load(eng)
        record = MqlEngine(eng).erase(f"user_id:{USER_ID}", actor="test")
        assert record["after"] == "suppress" and record["suppressed_identifiers"] >= 4
        with eng.db.read() as c:
            digests = [r.digest for r in c.execute(select(suppressions.c.digest))]
        assert all(len(d) == 64 and EMAIL not in d for d in digests)
        assert USER_ID not in dump(migrated_database_url)

        pipeline = eng.pipeline()
        with eng.db.begin() as c:  # the same e-mail comes back: dropped, stored nowhere
            result = pipeline.ingest(
                c,
                [{"type": "identify", "userId": "new-id", "traits": {"email": EMAIL}}],
                now=MONDAY,
            )
        assert result.suppressed == 1 and result.accepted == 0
        assert EMAIL not in dump(migrated_database_url)
    finally:
        eng.close()

    fresh = wiring_for(migrated_database_url)  # default: a fresh person
    try:
        pipeline = fresh.pipeline()
        with fresh.db.begin() as c:
            result = pipeline.ingest(
                c,
                [{"type": "identify", "userId": USER_ID, "traits": {"email": EMAIL}}],
                now=MONDAY,
            )
        assert result.accepted == 1
        detail = MqlEngine(fresh).explain(EMAIL)
        assert detail.person["stage"] == "lead" and len(detail.history) == 1
    finally:
        fresh.close()


def test_suppression_needs_a_secret_key(tmp_path: Path) -> None:
    eng = wiring_for(f"sqlite:///{tmp_path / 'k.db'}", after_erasure="suppress")
    eng.settings = replace(eng.settings, secret_key=None)
    try:
        with pytest.raises(ConfigError, match="MQL_SECRET_KEY"):
            eng.pipeline()
    finally:
        eng.close()


def test_export_holds_everything_kept_on_the_person(migrated_database_url: str) -> None:
    eng = wiring_for(migrated_database_url)
    try:
        sales_team(eng)
        load(eng)
        data = MqlEngine(eng).export(f"anonymous_id:{ANONYMOUS_ID}")
    finally:
        eng.close()
    assert data["person"]["email"] == EMAIL
    assert len(data["merged_persons"]) == 1
    assert {i["value"] for i in data["identities"]} >= {EMAIL, PHONE, USER_ID, ANONYMOUS_ID}
    assert [e["message_id"] for e in data["events"]] == ["ada-page", "ada-identify", "ada-demo"]
    assert any(h["to_stage"] == "mql" and h["score_card"] for h in data["stage_history"])
    assert data["assignments"][0]["team"] == "enterprise"
    assert {n["topic"] for n in data["notifications"]} >= {"person.stage_changed"}
    assert data["merges"] and data["account"]["domain"] == "example-health.org"
    assert data["consent"]["notes"] == []


def test_erasing_nobody_is_not_found(migrated_database_url: str) -> None:
    eng = wiring_for(migrated_database_url)
    try:
        with pytest.raises(NotFoundError):
            MqlEngine(eng).erase("nobody@nowhere.example", actor="test")
        with eng.db.begin() as c:
            from mqlengine.services.privacy import erase_person

            with pytest.raises(NotFoundError):
                erase_person(c, 424242, now=MONDAY, actor="test")
            assert c.execute(select(func.count()).select_from(events)).scalar_one() == 0
    finally:
        eng.close()
