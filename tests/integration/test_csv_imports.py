"""CSV imports through the real `mql` CLI on a real SQLite file: CRM history in several
files, columns nothing reads, stage dates that run backwards, deal exports, owners, number
and date formats, delimiters and encodings; spend, outcomes and persons/events on the same
reader. Every count printed is checked against a count made from the files in plain
Python and against the store."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from mqlengine.cli.app import app
from mqlengine.store.db import Database

NOW = "2026-04-01T00:00:00Z"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_database_url: str) -> Path:
    """A folder with the example definition and a store on each backend."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MQL_DATABASE_URL", migrated_database_url)
    monkeypatch.setenv("MQL_CLOCK", NOW)
    monkeypatch.delenv("MQL_DEFINITION", raising=False)
    assert mql("init")[0] == 0
    return tmp_path


def mql(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def summary(*args: str) -> dict[str, Any]:
    code, out = mql(*args, "--json")
    assert code in (0, 4), out
    data: dict[str, Any] = json.loads(out.splitlines()[0] if out.startswith("{") else out)
    assert data["rows"] == (
        data["created"] + data["updated"] + data["unchanged"] + data["rejected"]
    ), data
    return data


def rows(env: Path, query: str, **params: Any) -> list[Any]:
    """The store's answer to ``query``, read independently of the commands under test."""
    database = Database(os.environ["MQL_DATABASE_URL"])
    try:
        with database.read() as connection:
            return [tuple(r) for r in connection.execute(text(query), params)]
    finally:
        database.dispose()


def utc(value: Any) -> str:
    """A stored time as ``YYYY-MM-DD HH:MM:SS`` UTC (PostgreSQL answers in its session's
    zone, SQLite with the stored text)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)[:19]


def execute(statement: str) -> None:
    """Change the store behind the commands' back (a lead reopened in the CRM)."""
    database = Database(os.environ["MQL_DATABASE_URL"])
    try:
        with database.begin() as connection:
            connection.execute(text(statement))
    finally:
        database.dispose()


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else json.loads(value)


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def data_rows(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def history_of(env: Path, email: str) -> list[tuple[str | None, str, str]]:
    return [
        (r[0], r[1], utc(r[2]))
        for r in rows(
            env,
            "SELECT h.from_stage, h.to_stage, h.changed_at FROM stage_history h "
            "JOIN identities i ON i.person_id = h.person_id "
            "WHERE i.kind = 'email' AND i.value = :e ORDER BY h.changed_at, h.id",
            e=email,
        )
    ]


LEADS = """email,created_at,channel,mql_at
ann@northwind.io,2026-01-10,paid_search,2026-01-15
bo@acme.com,2026-01-11,email,2026-01-16
cy@globex.com,2026-01-12,,2026-01-17
"""
WINS = """email,customer_at,revenue
ann@northwind.io,2026-02-20,800
bo@acme.com,2026-02-21,"1,200"
"""
CONFLICT = """email,customer_at
ann@northwind.io,2026-03-01
cy@globex.com,2026-03-02
"""


def test_a_later_file_adds_the_won_dates_it_brings(env: Path) -> None:
    leads = write(env / "leads.csv", LEADS)
    first = summary("history", "import", str(leads))
    assert (first["rows"], first["created"], first["stage_changes"]) == (3, 3, 3)
    wins = write(env / "wins.csv", WINS)
    second = summary("history", "import", str(wins))
    expected_wins = sum(1 for r in data_rows(wins) if r["customer_at"])
    assert second["updated"] == expected_wins == 2 and second["stage_changes"] == 2
    again = summary("history", "import", str(wins))
    assert again["unchanged"] == 2 and again["stage_changes"] == 0
    assert summary("history", "import", str(leads))["unchanged"] == 3
    customers = rows(
        env, "SELECT count(*), sum(amount) FROM stage_history WHERE to_stage = 'customer'"
    )
    assert customers[0][0] == 2 and customers[0][1] == pytest.approx(2000.0)
    assert history_of(env, "ann@northwind.io") == [
        (None, "lead", "2026-01-10 00:00:00"),
        ("lead", "mql", "2026-01-15 00:00:00"),
        ("mql", "customer", "2026-02-20 00:00:00"),
    ]
    # Another won date for the same lead is a rejected row, named; a new one for cy loads.
    conflict = write(env / "conflict.csv", CONFLICT)
    third = summary("history", "import", str(conflict))
    assert (third["updated"], third["rejected"]) == (1, 1)
    (problem,) = [p for p in third["problems"] if not p["warning"]]
    assert problem["row"] == 2 and "customer_at" in problem["reason"]
    assert "conflicts with the stored 2026-02-20" in problem["reason"]
    assert rows(env, "SELECT count(*) FROM stage_history WHERE to_stage = 'customer'")[0][0] == 3
    # the lead without a channel keeps none (the attribution rule names it in reports)
    assert rows(env, "SELECT channel FROM persons WHERE email = 'cy@globex.com'") == [(None,)]
    code, out = mql("history", "import", str(wins))
    assert code == 0 and "0 leads created, 0 existing leads given history, 2 unchanged" in out


def test_columns_nothing_reads_are_named_with_the_nearest_field(env: Path) -> None:
    lines = ["user_id,mql_at,origin,won_at"] + [
        f"u{i},2026-01-{1 + i % 28:02d},ads,2026-02-{1 + i % 28:02d}" for i in range(100)
    ]
    crm = write(env / "crm.csv", "\n".join(lines) + "\n")
    code, out = mql("history", "import", str(crm), "--strict")
    assert code == 4 and "origin (channel?)" in out and "won_at (customer_at?)" in out
    assert rows(env, "SELECT count(*) FROM persons") == [(0,)]
    code, out = mql("history", "import", str(crm))
    assert code == 0 and "ignored column(s): origin (channel?), won_at (customer_at?)" in out
    code, out = mql(
        "history", "import", str(crm), "--map", "channel=origin", "--map", "customer_at=won_at"
    )
    assert code == 0 and "100 existing leads given history" in out
    assert rows(env, "SELECT count(*) FROM persons WHERE channel = 'ads'") == [(100,)]
    assert rows(env, "SELECT count(*) FROM persons WHERE stage = 'customer'") == [(100,)]


def test_a_stage_dated_before_the_mql_keeps_the_lead_and_the_outcome(env: Path) -> None:
    crm = write(
        env / "crm.csv",
        "email,created_at,mql_at,customer_at,revenue\n"
        "early@won.io,2026-01-20T00:00:00Z,2026-01-15T12:00:00Z,2026-01-14T07:12:00Z,500\n"
        "fine@won.io,2026-01-01,2026-01-05,2026-01-25,100\n",
    )
    report = summary("history", "import", str(crm))
    assert (report["created"], report["rejected"]) == (2, 0)
    warnings = [p for p in report["problems"] if p["warning"]]
    assert {w["row"] for w in warnings} == {2}
    assert any("customer_at" in w["reason"] and "1.2 days before" in w["reason"] for w in warnings)
    assert any("created_at" in w["reason"] for w in warnings)
    steps = history_of(env, "early@won.io")
    assert [s[1] for s in steps] == ["lead", "mql", "customer"]
    assert [s[2] for s in steps] == sorted(s[2] for s in steps)
    _, out = mql("report", "funnel", "--since", "2026-01-01", "--format", "json")
    funnel = json.loads(out)["rows"][0]
    assert funnel["mqls"] == 2 and funnel["customers"] == 2
    assert funnel["time_to_mql_p50_days"] >= 0


def test_back_dated_events_keep_time_in_order(env: Path) -> None:
    persons = write(
        env / "persons.csv",
        "email,title,timestamp\nvp@acme.com,VP Marketing,2026-03-10T12:00:00Z\n",
    )
    events = write(
        env / "events.csv",
        "email,event,timestamp\n"
        "vp@acme.com,Page Viewed,2026-03-03T00:00:00Z\n"
        "vp@acme.com,Demo Requested,2026-03-04T01:00:00Z\n",
    )
    assert mql("import", str(persons), "--kind", "persons")[0] == 0
    code, out = mql("import", str(events), "--kind", "events")
    assert code == 0 and "1 new MQLs" in out
    steps = history_of(env, "vp@acme.com")
    assert [s[1] for s in steps] == ["lead", "mql"]
    assert steps[0][2] == "2026-03-03 00:00:00" and steps[1][2] == "2026-03-04 01:00:00"
    code, out = mql("report", "funnel", "--since", "2026-01-01", "--format", "json")
    assert json.loads(out)["rows"][0]["time_to_mql_p50_days"] == pytest.approx(1 + 1 / 24)


def test_a_deal_export_imports_directly(env: Path) -> None:
    deals = write(
        env / "deals.csv",
        "Email,Deal Stage,Close Date,Amount,mql_at\n"
        'won@deal.io,Won,2026-02-10,"2,500.00",2026-01-10\n'
        "lost@deal.io,Closed Lost,2026-02-11,900,2026-01-11\n"
        "open@deal.io,Open,2026-06-30,700,2026-01-12\n"
        "odd@deal.io,Pending,2026-02-12,1,2026-01-13\n",
    )
    report = summary("history", "import", str(deals), "--lost-reason", "no_decision")
    assert (report["created"], report["rejected"]) == (3, 1)
    assert "Pending" in report["problems"][0]["reason"] and report["problems"][0]["row"] == 5
    stages = dict(rows(env, "SELECT email, stage FROM persons"))
    assert stages == {
        "won@deal.io": "customer",
        "lost@deal.io": "nurture",
        "open@deal.io": "opportunity",
    }
    won = rows(env, "SELECT amount FROM stage_history WHERE to_stage = 'customer'")
    assert won == [(2500.0,)]
    assert rows(env, "SELECT reason FROM stage_history WHERE action = 'lost'") == [("no_decision",)]


def test_the_owner_column_makes_reports_by_rep_work(env: Path) -> None:
    assert (
        mql("reps", "set", "ana", "--team", "emea", "--email", "ana@sales.io", "--name", "Ana")[0]
        == 0
    )
    crm = write(
        env / "crm.csv",
        "email,mql_at,owner\n"
        "a@x.io,2026-01-10,ana\n"
        "b@x.io,2026-01-11,ANA@sales.io\n"
        "c@x.io,2026-01-12,nobody\n",
    )
    report = summary("history", "import", str(crm))
    assert report["created"] == 3
    assert [p["row"] for p in report["problems"] if p["warning"]] == [4]
    _, out = mql("report", "funnel", "--since", "2026-01-01", "--by", "rep", "--format", "json")
    by_rep = {r["key"]: r["mqls"] for r in json.loads(out)["rows"]}
    assert by_rep.get("ana") == 2 and by_rep.get("unassigned") == 1


def test_numbers_dates_delimiters_and_encodings(env: Path) -> None:
    # ; as delimiter, a BOM, decimal commas: refused per row unless --decimal , is named
    body = (
        "email;mql_at;opportunity_at;amount\n"
        "a@num.io;2026-01-10;2026-01-20;1.234,56\n"
        "b@num.io;2026-01-10;2026-01-20;1,5\n"
        "c@num.io;2026-01-10;2026-01-20;-3\n"
    )
    crm = write(env / "crm.csv", b"\xef\xbb\xbf" + body.encode())
    plain = summary("history", "import", str(crm))
    assert (plain["created"], plain["rejected"]) == (0, 3)
    assert "--decimal ," in plain["problems"][0]["reason"]
    comma = summary("history", "import", str(crm), "--decimal", ",")
    assert (comma["created"], comma["rejected"]) == (2, 1)
    assert "negative" in comma["problems"][0]["reason"] and comma["problems"][0]["row"] == 4
    amounts = sorted(
        r[0] for r in rows(env, "SELECT amount FROM stage_history WHERE amount IS NOT NULL")
    )
    assert amounts == [1.5, 1234.56]
    # spend refuses negatives the same way
    spend = write(env / "spend.csv", 'channel,month,amount\nads,2026-01,-5\nads,2026-02,"1,000"\n')
    code, out = mql("spend", "import", str(spend))
    assert code == 0 and "1 new" in out and "1 rejected" in out and "negative" in out
    # a date alone is midnight in the file's zone
    berlin = write(env / "berlin.csv", "email,mql_at\nz@tz.io,2026-01-10\n")
    assert mql("history", "import", str(berlin), "--tz", "Europe/Berlin")[0] == 0
    stored = rows(env, "SELECT mql_at FROM persons WHERE email = 'z@tz.io'")[0][0]
    assert utc(stored) == "2026-01-09 23:00:00"
    # dates in the future and ragged rows are reported by row
    odd = write(
        env / "odd.csv",
        "email,mql_at\nf@x.io,2027-01-01\nr@x.io,2026-01-01,extra\nok@x.io,2026-01-02\n",
    )
    report = summary("history", "import", str(odd))
    reasons = {p["row"]: p["reason"] for p in report["problems"]}
    assert report["created"] == 1 and "future" in reasons[2] and "3 field(s)" in reasons[3]
    # an empty file is one clear line
    code, out = mql("history", "import", str(write(env / "empty.csv", "")))
    assert code == 4 and "empty" in out


def test_a_latin1_byte_names_its_line_and_what_was_committed(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mqlengine.reports.history as history

    monkeypatch.setattr(history, "BATCH", 2)
    lines = [f"l{i}@x.io,2026-01-0{1 + i},Caf{'é' if i == 4 else 'e'}" for i in range(6)]
    data = ("email,mql_at,campaign\n" + "\n".join(lines) + "\n").encode("latin-1")
    crm = write(env / "latin.csv", data)
    code, out = mql("history", "import", str(crm))
    assert code == 4 and "latin.csv:6:" in out and "0xe9" in out and "--encoding" in out
    assert "4 row(s) before it were already imported" in out
    assert rows(env, "SELECT count(*) FROM persons") == [(4,)]
    code, out = mql("history", "import", str(crm), "--encoding", "latin-1")
    assert code == 0 and "2 leads created" in out and "4 unchanged" in out
    assert rows(env, "SELECT campaign FROM persons WHERE email = 'l4@x.io'") == [("Café",)]


def test_outcomes_match_user_ids_and_count_only_what_was_stored(env: Path) -> None:
    crm = write(
        env / "crm.csv",
        "email,user_id,mql_at\nu1@x.io,u-1,2026-01-10\nu2@x.io,u-2,2026-01-10\nu3@x.io,,2026-01-10\n"
        "u4@x.io,u-4,2026-01-10\n",
    )
    assert mql("history", "import", str(crm))[0] == 0
    outcomes = write(
        env / "outcomes.csv",
        "User ID;Email;Deal Stage;Closed Lost Reason;Amount;Close Date\n"
        "u-1;;Closed Won;;1.000,50;2026-02-01\n"
        "u-2;;Closed Lost;;;2026-02-02\n"
        ";u3@x.io;Closed Lost;not-a-code;;2026-02-03\n"
        "u-4;;Closed Won;;5;2027-01-01\n",
    )
    code, out = mql("import-outcomes", str(outcomes), "--decimal", ",", "--lost-reason", "timing")
    assert code == 0, out
    # u3's loss has an unknown reason: its convert is rolled back and not counted
    assert "4 rows: 2 applied (convert 2, lost 1, won 1), 0 unchanged, 2 rejected" in out
    assert "outcomes.csv:5: date: '2027-01-01' is in the future" in out
    stages = dict(rows(env, "SELECT email, stage FROM persons"))
    assert stages == {
        "u1@x.io": "customer",
        "u2@x.io": "nurture",
        "u3@x.io": "mql",
        "u4@x.io": "mql",
    }
    assert rows(env, "SELECT amount FROM stage_history WHERE to_stage = 'customer'") == [(1000.5,)]
    # without a default reason a lost deal says how to give one
    execute("UPDATE persons SET stage = 'mql' WHERE email = 'u2@x.io'")
    code, out = mql("import-outcomes", str(outcomes), "--decimal", ",")
    assert "outcomes.csv:3: a lost deal without a reason" in out and "--lost-reason" in out


def test_persons_read_consent_booleans_through_the_shared_reader(env: Path) -> None:
    persons = write(
        env / "persons.csv",
        b"\xef\xbb\xbfemail;marketing_consent;employees;phone\n"
        b"a@b.io;yes;1.200;+4930123\n"
        b"c@d.io;0;15;007\n"
        b"e@f.io;n\n",
    )
    code, out = mql("import", str(persons), "--kind", "persons", "--decimal", ",")
    assert code == 0 and "3 rows: 2 loaded, 0 duplicates skipped, 1 rejected" in out
    traits = {r[0]: as_dict(r[1]) for r in rows(env, "SELECT email, traits FROM persons")}
    assert traits["a@b.io"]["marketing_consent"] is True
    assert traits["c@d.io"]["marketing_consent"] is False
    assert traits["a@b.io"]["employees"] == 1200  # "1.200" under --decimal , is 1200
    assert traits["a@b.io"]["phone"] == "+4930123" and traits["c@d.io"]["phone"] == "007"


def test_plain_python_count_matches_a_large_mixed_file(env: Path) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["email", "mql_at", "customer_at", "amount"])
    for i in range(300):
        if i % 10 == 0:
            writer.writerow([f"x{i}@x.io", "not-a-date", "", ""])
        elif i % 7 == 0:
            writer.writerow([f"x{i}@x.io", "2026-01-05", "2026-01-03", ""])
        else:
            writer.writerow([f"x{i}@x.io", "2026-01-05", "", ""])
    crm = write(env / "mixed.csv", out.getvalue())
    expected_bad = sum(1 for r in data_rows(crm) if r["mql_at"] == "not-a-date")
    report = summary("history", "import", str(crm))
    assert report["rejected"] == expected_bad and report["created"] == 300 - expected_bad
    stored = rows(env, "SELECT count(*) FROM persons WHERE mql_at IS NOT NULL")[0][0]
    assert stored == 300 - expected_bad
    early = sum(1 for r in data_rows(crm) if r["customer_at"] and r["customer_at"] < r["mql_at"])
    assert sum(1 for p in report["problems"] if p["warning"]) == early
    assert rows(env, "SELECT count(*) FROM persons WHERE stage = 'customer'")[0][0] == early


def test_history_and_ingest_find_the_same_person(env: Path) -> None:
    crm = write(
        env / "crm.csv",
        "email,user_id,mql_at\n Ann@Northwind.IO ,,2026-01-10\n,u-7,2026-01-11\n",
    )
    assert summary("history", "import", str(crm))["created"] == 2
    events = write(
        env / "events.csv",
        "email,user_id,event,timestamp\n"
        "ann@northwind.io,,Page Viewed,2026-01-12T00:00:00Z\n"
        "seven@x.io,u-7,Page Viewed,2026-01-12T00:00:00Z\n",
    )
    code, out = mql("import", str(events), "--kind", "events")
    assert code == 0 and "2 persons touched" in out
    assert rows(env, "SELECT count(*) FROM persons WHERE merged_into IS NULL") == [(2,)]
    # a second history file naming both ids of one person adds to it, not to a new one
    more = write(env / "more.csv", "email,user_id,customer_at\nseven@x.io,u-7,2026-02-01\n")
    assert summary("history", "import", str(more))["updated"] == 1
    assert rows(env, "SELECT count(*) FROM persons WHERE merged_into IS NULL") == [(2,)]
