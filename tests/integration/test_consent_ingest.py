"""Consent on the write path, on SQLite and PostgreSQL: without marketing consent a person
is scored and may reach MQL, but nobody is assigned or notified and `explain` says why;
CSV and history imports read consent values as booleans (a CRM's `no` triggers the
example's no_consent exclusion; `maybe` is a row error)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from mqlengine.definition.compiler import parse_definition
from mqlengine.facade import MqlEngine
from mqlengine.reports.history import import_history_csv
from mqlengine.services import outbox, reps
from mqlengine.settings import Settings
from mqlengine.store.tables import persons
from mqlengine.store.tables_handoff import assignments
from mqlengine.store.tables_handoff import outbox as outbox_table
from mqlengine.wiring import Wiring, frozen_clock
from support.paths import EXAMPLE
from support.secrets import TEST_BOX, TEST_SECRET_KEY

MONDAY = datetime(2026, 11, 16, 15, 0, tzinfo=UTC)


def wiring_for(url: str, tmp_path: Path, *, keep_exclusion: bool = True) -> Wiring:
    text = EXAMPLE.read_text()
    if not keep_exclusion:  # consent alone (not the exclusion) must keep sales away
        text = text.replace(
            "  - id: no_consent\n    when: {trait: consent_marketing, equals: false}\n", ""
        )
        text = text.replace('version: "2026-11-b2b-v1"', 'version: "consent-test"')
        assert "id: no_consent" not in text
    path = tmp_path / "mql.yaml"
    path.write_text(text)
    parse_definition(text)
    settings = Settings(database_url=url, definition_path=path, secret_key=TEST_SECRET_KEY)
    return Wiring(settings, clock=frozen_clock(MONDAY))


def hand_raiser(user: str, email: str, **traits: Any) -> list[dict[str, Any]]:
    return [
        {
            "type": "identify",
            "userId": user,
            "traits": {
                "email": email,
                "title": "VP Marketing",
                "company": {"employees": 2000, "industry": "software"},
                "country": "US",
                **traits,
            },
            "timestamp": (MONDAY - timedelta(minutes=5)).isoformat(),
        },
        {
            "type": "track",
            "userId": user,
            "event": "Demo Requested",
            "timestamp": MONDAY.isoformat(),
        },
    ]


def test_without_marketing_consent_nobody_is_assigned_or_notified(
    migrated_database_url: str, tmp_path: Path
) -> None:
    eng = wiring_for(migrated_database_url, tmp_path, keep_exclusion=False)
    try:
        with eng.db.begin() as c:
            reps.upsert_team(c, "enterprise", now=MONDAY, manager_email="m@vendor.example")
            reps.upsert_rep(c, "ana", now=MONDAY, team="enterprise", timezone="America/New_York")
            outbox.add_destination(
                c, box=TEST_BOX, name="crm", kind="webhook", url="https://c.example/", now=MONDAY
            )
        facade = MqlEngine(eng)
        facade.ingest(hand_raiser("yes-1", "yes@acme-corp.com", consent_marketing="yes"))
        facade.ingest(hand_raiser("no-1", "no@acme-corp.com", consent_marketing="No"))
        consenting = facade.explain("yes@acme-corp.com")
        refusing = facade.explain("no@acme-corp.com")
        assert consenting.person["stage"] == refusing.person["stage"] == "mql"
        with eng.db.read() as c:
            assigned = {r.person_id for r in c.execute(select(assignments.c.person_id))}
            notified = {r.person_id for r in c.execute(select(outbox_table.c.person_id))}
            owner = c.execute(
                select(persons.c.owner_rep_id).where(persons.c.id == refusing.person["id"])
            ).scalar_one()
        assert consenting.person["id"] in assigned and consenting.person["id"] in notified
        assert refusing.person["id"] not in assigned and refusing.person["id"] not in notified
        assert owner is None
        assert refusing.consent["marketing"] is False
        assert any("not routed to sales" in n for n in refusing.consent["notes"])
        assert consenting.consent["notes"] == []
    finally:
        eng.close()


def test_csv_import_reads_consent_as_booleans(migrated_database_url: str, tmp_path: Path) -> None:
    csv = tmp_path / "crm.csv"
    csv.write_text(
        "E-mail,Job Title,Country,Marketing OK\n"
        "no@acme-corp.com,VP Marketing,US,no\n"
        "yes@acme-corp.com,VP Marketing,US,Yes\n"
        "odd@acme-corp.com,VP Marketing,US,maybe\n"
    )
    eng = wiring_for(migrated_database_url, tmp_path)
    try:
        facade = MqlEngine(eng)
        report = facade.import_file(
            csv,
            kind="persons",
            mapping={
                "email": "E-mail",
                "title": "Job Title",
                "country": "Country",
                "consent_marketing": "Marketing OK",
            },
        )
        assert [(p.row, "maybe" in p.reason) for p in report.problems] == [(4, True)]
        assert "consent_marketing" in report.problems[0].reason
        refusing = facade.explain("no@acme-corp.com")
        assert refusing.person["traits"]["consent_marketing"] is False
        assert "no_consent" in refusing.card.excluded_because  # the example's exclusion
        consenting = facade.explain("yes@acme-corp.com")
        assert consenting.person["traits"]["consent_marketing"] is True
        assert "no_consent" not in consenting.card.excluded_because
        with eng.db.read() as c:
            assert c.execute(select(func.count()).select_from(persons)).scalar_one() == 2
    finally:
        eng.close()


def test_history_import_reads_consent_as_booleans(
    migrated_database_url: str, tmp_path: Path
) -> None:
    csv = tmp_path / "history.csv"
    csv.write_text(
        "email,created_at,mql_at,consent_marketing\n"
        "no@acme-corp.com,2026-10-01,2026-10-03,N\n"
        "yes@acme-corp.com,2026-10-01,,TRUE\n"
        "odd@acme-corp.com,2026-10-01,,opted-out\n"
    )
    eng = wiring_for(migrated_database_url, tmp_path)
    try:
        report = import_history_csv(eng.db, csv, {}, now=MONDAY)
        assert report.created == 2
        assert [(p.row, "consent_marketing" in p.reason) for p in report.problems] == [(4, True)]
        facade = MqlEngine(eng)
        refusing = facade.explain("no@acme-corp.com")
        assert refusing.person["traits"]["consent_marketing"] is False
        assert "no_consent" in refusing.card.excluded_because
        assert facade.explain("yes@acme-corp.com").person["traits"]["consent_marketing"] is True
    finally:
        eng.close()
