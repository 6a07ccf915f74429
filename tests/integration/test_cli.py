"""The `mql` command line end to end on a real SQLite file (CliRunner + one real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mqlengine.cli.app import app

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MQL_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("MQL_DEFINITION", raising=False)
    return tmp_path


def mql(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_init_validate_and_test(env: Path) -> None:
    code, out = mql("init")
    assert code == 0 and (env / "mql.yaml").exists()
    code, out = mql("init")
    assert code != 0 and "already exists" in out
    code, out = mql("validate")
    assert code == 0 and "ok" in out and "2026-11-b2b-v1" in out
    code, out = mql("test")
    assert code == 0 and "7 passed, 0 failed" in out


def test_validate_names_the_line(env: Path) -> None:
    mql("init")
    text = (env / "mql.yaml").read_text()
    broken = text.replace("  threshold: 70", "  threshold: seventy", 1)
    (env / "mql.yaml").write_text(broken)
    line = next(i for i, s in enumerate(broken.splitlines(), 1) if "threshold: seventy" in s)
    code, out = mql("validate")
    assert code == 3
    assert f"mql.yaml:{line}:" in out and "threshold" in out


def test_failing_definition_test_exits_non_zero(env: Path) -> None:
    mql("init")
    text = (
        (env / "mql.yaml")
        .read_text()
        .replace("type: hand_raiser, total_between", "type: fit_qualified, total_between")
    )
    (env / "mql.yaml").write_text(text)
    code, out = mql("test")
    assert code == 1 and "FAIL" in out and "expected type fit_qualified, got hand_raiser" in out


def test_import_jsonl_reports_bad_rows_and_is_idempotent(env: Path) -> None:
    mql("init")
    lines = [
        {
            "type": "identify",
            "userId": "u1",
            "messageId": "m1",
            "timestamp": "2026-11-01T10:00:00Z",
            "traits": {
                "email": "ana@northwind.io",
                "title": "VP Marketing",
                "country": "US",
                "company": {"name": "Northwind", "employees": 800, "industry": "software"},
            },
        },
        "not json at all",
        {
            "type": "track",
            "userId": "u1",
            "messageId": "m2",
            "event": "Demo Requested",
            "timestamp": "2026-11-02T10:00:00Z",
        },
        {"type": "track", "userId": "u1", "messageId": "m3"},
    ]
    path = env / "events.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    code, out = mql("import", str(path))
    assert code == 0, out
    assert "4 rows: 2 loaded" in out and "2 rejected" in out
    assert "events.jsonl:2: invalid JSON" in out
    assert "events.jsonl:4: event: a track call needs an event name" in out
    assert "1 new MQLs" in out
    code, out = mql("import", str(path))
    assert "0 loaded, 2 duplicates skipped" in out
    code, out = mql("leads", "--stage", "mql", "--format", "json")
    rows = json.loads(out)
    assert [r["email"] for r in rows] == ["ana@northwind.io"] and rows[0][
        "mql_type"
    ] == "hand_raiser"


def test_import_csv_persons_and_events_with_mapping(env: Path) -> None:
    mql("init")
    people = env / "people.csv"
    people.write_text(
        "E-mail,Job Title,Employees,Country\n"
        "cy@acme-analytics.com,Director of Sales,450,GB\n"
        ",Nobody,1,US\n"
    )
    code, out = mql(
        "import",
        str(people),
        "--kind",
        "persons",
        "--map",
        "email=E-mail",
        "--map",
        "title=Job Title",
        "--map",
        "company.employees=Employees",
        "--map",
        "country=Country",
    )
    assert code == 0, out
    assert "1 loaded" in out and "people.csv:3: no user_id or email in this row" in out
    activity = env / "activity.csv"
    activity.write_text(
        "email,Activity,When,path\n"
        "cy@acme-analytics.com,Webinar Attended,2026-11-18T09:00:00Z,\n"
        "cy@acme-analytics.com,Page Viewed,2026-11-19T09:00:00Z,/pricing\n"
    )
    code, out = mql(
        "import",
        str(activity),
        "--kind",
        "events",
        "--map",
        "event=Activity",
        "--map",
        "timestamp=When",
    )
    assert code == 0, out and "2 loaded" in out
    code, out = mql("leads", "--format", "json")
    lead = json.loads(out)[0]
    assert lead["email"] == "cy@acme-analytics.com"
    assert lead["fit"] == 45  # director 20 + sales 10 + size 15
    code, out = mql("explain", str(lead["id"]), "--format", "json")
    card = json.loads(out)["score_card"]
    # the same person by e-mail (any case) or kind:value
    for ref in ("Cy@Acme-Analytics.com", "email:cy@acme-analytics.com"):
        code, by_email = mql("explain", ref, "--format", "json")
        assert code == 0 and json.loads(by_email)["person"]["id"] == lead["id"]
    rules = {c["rule"] for c in card["contributions"]}
    assert {
        "senior_buyer",
        "target_department",
        "company_size_sweet_spot",
        "webinar_attended",
        "pricing_page",
    } <= rules


def test_demo_then_leads_and_explain_add_up(env: Path) -> None:
    code, out = mql("demo", "--persons", "300", "--days", "45")
    assert code == 0, out
    assert "Funnel" in out and "MQLs by type" in out
    code, out = mql("leads", "--stage", "mql", "--limit", "5", "--format", "json")
    assert code == 0
    leads = json.loads(out[out.index("[") :])  # after the note that --limit cut the export
    assert leads, "the demo should produce MQLs"
    code, out = mql("explain", str(leads[0]["id"]), "--format", "json")
    payload = json.loads(out)
    card = payload["score_card"]
    fit = (
        sum(c["points"] for c in card["contributions"] if c["kind"] == "fit")
        + card["fit_cap_adjustment"]
    )
    intent = (
        sum(c["points"] for c in card["contributions"] if c["kind"] == "intent")
        + card["intent_cap_adjustment"]
    )
    assert fit == pytest.approx(card["fit"], abs=1e-3)
    assert intent == pytest.approx(card["intent"], abs=1e-3)
    assert fit + intent + card["total_cap_adjustment"] == pytest.approx(card["total"], abs=1e-3)
    mql_changes = [h for h in payload["stage_history"] if h["to_stage"] == "mql"]
    assert mql_changes and mql_changes[0]["definition_version"] == "2026-11-b2b-v1"
    assert mql_changes[0]["score_card"]["qualifies"] is True
    code, out = mql("explain", str(leads[0]["id"]))
    assert "decision:" in out and "stage history" in out
    code, out = mql("leads", "--format", "csv", "--limit", "3")
    lines = [line for line in out.splitlines() if not line.startswith("note:")]
    assert lines[0].startswith("id,email,stage") and len(lines) == 4
    assert "--limit 3 cut the export to 3 of" in out  # an export is never cut silently
    code, out = mql("score")
    assert code == 0 and "scored" in out
    # a second demo run replaces the first
    code, out = mql("demo", "--persons", "100", "--days", "20")
    assert code == 0, out


def test_demo_refuses_a_database_with_other_data(env: Path) -> None:
    test_import_jsonl_reports_bad_rows_and_is_idempotent(env)
    code, out = mql("demo", "--persons", "100", "--days", "20")
    assert code != 0 and "not a previous demo" in out


def test_bad_input_gives_one_clear_line(env: Path) -> None:
    mql("init")
    code, out = mql("explain", "999")
    assert code == 8 and "no database at" in out and "cli.db" in out  # reads never create one
    assert not (env / "cli.db").exists()
    code, out = mql("db", "upgrade")
    assert code == 0 and "(newest)" in out  # at the head revision, whichever it is
    code, out = mql("explain", "999")
    assert code == 5 and "person 999 does not exist" in out
    code, out = mql("explain", "nobody@nowhere.io")
    assert code == 5 and "no person has email 'nobody@nowhere.io'" in out
    code, out = mql("explain", "somebody")
    assert code == 5 and "is not a person id, an e-mail address or kind:value" in out
    code, out = mql("explain", "phone:12")
    assert code == 4 and "phone: '12' is not a phone number" in out
    code, out = mql("leads", "--stage", "hot")
    assert code == 4 and "unknown stage 'hot'" in out
    code, out = mql("leads", "--since", "yesterday")
    assert code == 2 and "--since" in out
    code, out = mql("import", "missing.jsonl")
    assert code == 2 and "no such file" in out


def test_console_script_and_module_entry_points(env: Path) -> None:
    exe = Path(sys.executable).with_name("mql")
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "demo" in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "mqlengine", "init", "x.yaml"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and (env / "x.yaml").exists()
