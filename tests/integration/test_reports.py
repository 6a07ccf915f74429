"""Reports on a real store (SQLite and PostgreSQL): store → Arrow → DuckDB, spend and CRM
history imports, the CLI, the HTTP API with read keys, and health alerts into the outbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mqlengine.cli.app import app
from mqlengine.domain.funnel import HealthRules
from mqlengine.reports.data import clear_cache, report_data
from mqlengine.reports.history import import_history_csv
from mqlengine.reports.query import Filters
from mqlengine.reports.service import notify_health_alerts, run_report
from mqlengine.reports.spend import import_spend_csv
from mqlengine.settings import Settings
from mqlengine.wiring import Wiring
from support.localserver import LocalServer, local_server
from support.paths import EXAMPLE

NOW = datetime(2026, 4, 1, tzinfo=UTC)

HISTORY_CSV = """E-mail,Created,Channel,Campaign,MQL date,MQL type,SAL date,SQL date,Opp date,Pipeline,Won date,Revenue,Rejected,Reject reason
ann@northwind.io,2026-01-10,paid_search,brand,2026-01-15T10:00:00Z,hand_raiser,2026-01-16,2026-01-20,2026-01-25,1000,2026-02-20,800,,
bo@acme.com,2026-01-05,paid_search,brand,2026-02-01T01:30:00Z,fit_qualified,,,,,,,2026-02-02,not_a_fit
cy@globex.com,2026-01-20,email,newsletter,2026-01-25,fit_qualified,,2026-01-30,,,,,,
di@initech.com,2026-01-22,email,newsletter,,,,,,,,,,
bad-row,,,,,,,,,,,,,
"""
MAPPING = {
    "email": "E-mail",
    "created_at": "Created",
    "channel": "Channel",
    "campaign": "Campaign",
    "mql_at": "MQL date",
    "mql_type": "MQL type",
    "sal_at": "SAL date",
    "sql_at": "SQL date",
    "opportunity_at": "Opp date",
    "amount": "Pipeline",
    "customer_at": "Won date",
    "revenue": "Revenue",
    "rejected_at": "Rejected",
    "reject_reason": "Reject reason",
}
SPEND_CSV = """Channel,Campaign,Month,Cost,Currency
paid_search,brand,2026-01,"1,000.00",USD
paid_search,brand,2026-02,500,USD
email,newsletter,2026-01,300,usd
email,,not-a-month,5,USD
"""


def _load(engine: Wiring, tmp_path: Path) -> None:
    history = tmp_path / "crm.csv"
    history.write_text(HISTORY_CSV, encoding="utf-8")
    report = import_history_csv(engine.db, history, MAPPING, now=NOW)
    assert (report.rows, report.created, len(report.problems)) == (5, 4, 1)
    assert report.problems[0].row == 6
    spend = tmp_path / "spend.csv"
    spend.write_text(SPEND_CSV, encoding="utf-8")
    with engine.db.begin() as connection:
        result = import_spend_csv(connection, spend, {"amount": "Cost"}, now=NOW)
    assert result.loaded == 3 and [p.row for p in result.problems] == [5]


@pytest.fixture
def engine(migrated_database_url: str, tmp_path: Path) -> Iterator[Wiring]:
    clear_cache()
    eng = Wiring(Settings(migrated_database_url, EXAMPLE))
    _load(eng, tmp_path)
    yield eng
    eng.db.dispose()


Q1 = Filters(since=datetime(2026, 1, 1, tzinfo=UTC), until=datetime(2026, 4, 1, tzinfo=UTC))


def test_imported_history_fills_the_funnel(engine: Wiring, tmp_path: Path) -> None:
    funnel = run_report(engine.db, "funnel", Q1, now=NOW, rules=HealthRules())["rows"][0]
    assert (funnel["new_leads"], funnel["mqls"]) == (4, 3)
    # cy went MQL → SQL without SAL: counts as accepted for the funnel.
    assert (funnel["sal"], funnel["sql"], funnel["opportunities"], funnel["customers"]) == (
        2,
        2,
        1,
        1,
    )
    assert funnel["rejected"] == 1
    assert funnel["mql_rate"] == pytest.approx(0.75)
    assert funnel["spend"] == pytest.approx(1800.0)
    assert funnel["cost_per_mql"] == pytest.approx(600.0)
    assert funnel["pipeline"] == pytest.approx(1000.0)
    assert funnel["revenue"] == pytest.approx(800.0)
    cohorts = {
        r["key"]: r["mqls"]
        for r in run_report(engine.db, "cohorts", Q1, now=NOW, rules=HealthRules())["rows"]
    }
    assert cohorts["2026-01"] == 2 and cohorts["2026-02"] == 1
    campaigns = {
        r["key"]: r
        for r in run_report(engine.db, "channels", Q1, now=NOW, rules=HealthRules(), by="campaign")[
            "rows"
        ]
    }
    assert campaigns["brand"]["cost_per_mql"] == pytest.approx(750.0)
    # Importing the same file again adds nothing.
    again = tmp_path / "crm.csv"
    repeat = import_history_csv(engine.db, again, MAPPING, now=NOW)
    assert repeat.created == 0 and repeat.skipped == 4
    assert run_report(engine.db, "funnel", Q1, now=NOW, rules=HealthRules())["rows"][0]["mqls"] == 3


def test_report_data_is_cached_until_the_store_changes(engine: Wiring, tmp_path: Path) -> None:
    first = report_data(engine.db)
    assert report_data(engine.db) is first
    extra = tmp_path / "more.csv"
    extra.write_text(
        "email,created_at,mql_at\nnew@lead.io,2026-03-01,2026-03-02\n", encoding="utf-8"
    )
    import_history_csv(engine.db, extra, {}, now=NOW)
    assert report_data(engine.db) is not first
    assert run_report(engine.db, "funnel", Q1, now=NOW, rules=HealthRules())["rows"][0]["mqls"] == 4


def test_health_alerts_reach_the_outbox_once(engine: Wiring) -> None:
    from sqlalchemy import func, select

    from mqlengine.store.tables_handoff import destinations, outbox

    with engine.db.begin() as connection:
        connection.execute(
            destinations.insert().values(
                name="ops",
                kind="webhook",
                url="https://example.invalid/hook",
                topics=[],
                email_to=[],
                active=True,
                created_at=NOW,
            )
        )
    health = {
        "alerts": [{"code": "low_acceptance", "severity": "warning", "message": "low"}],
        "score": 40,
        "window_days": 90,
    }
    assert notify_health_alerts(engine.db, health, now=NOW) == 1
    assert notify_health_alerts(engine.db, health, now=NOW) == 0  # once a day
    with engine.db.read() as connection:
        count = connection.execute(
            select(func.count()).select_from(outbox).where(outbox.c.topic == "funnel.health_alert")
        ).scalar_one()
    assert count == 1


def test_cli_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_cache()
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MQL_DATABASE_URL", db)
    monkeypatch.setenv("MQL_DEFINITION", str(EXAMPLE))
    runner = CliRunner()
    (tmp_path / "crm.csv").write_text(HISTORY_CSV, encoding="utf-8")
    (tmp_path / "spend.csv").write_text(SPEND_CSV, encoding="utf-8")
    maps = [f"--map={k}={v}" for k, v in MAPPING.items()]
    result = runner.invoke(app, ["history", "import", "crm.csv", *maps])
    assert result.exit_code == 0, result.output
    assert "4 leads created" in result.output
    result = runner.invoke(app, ["spend", "import", "spend.csv", "--map", "amount=Cost"])
    assert result.exit_code == 0, result.output
    assert "1,800.00 USD" in result.output
    args = ["--since", "2026-01-01", "--until", "2026-04-01"]
    result = runner.invoke(app, ["report", "funnel", *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["rows"][0]["mqls"] == 3
    result = runner.invoke(app, ["report", "channels", *args])
    assert result.exit_code == 0 and "paid_search" in result.output and "cost/MQL" in result.output
    result = runner.invoke(app, ["report", "cohorts", *args, "--format", "csv"])
    assert result.exit_code == 0 and result.output.startswith("key,")
    for name in ("sla", "velocity", "reasons"):
        result = runner.invoke(app, ["report", name, *args])
        assert result.exit_code == 0, (name, result.output)
    result = runner.invoke(app, ["report", "health", "--no-notify"])
    assert result.exit_code == 0 and "health score" in result.output
    result = runner.invoke(app, ["report", "funnel", "--by", "colour"])
    assert result.exit_code != 0 and "unknown breakdown" in result.output
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "html", str(out), *args])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert "Chart.js v4" in html and "<canvas" in html
    assert 'src="http' not in html and 'href="http' not in html  # self-contained


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    db = f"sqlite:///{tmp_path / 'api.db'}"
    eng = Wiring(Settings(db, EXAMPLE))
    eng.definition()
    _load(eng, tmp_path)
    eng.db.dispose()
    with local_server(
        db, EXAMPLE, log=tmp_path / "server.log", env={"MQL_READ_KEYS": "reader-key"}
    ) as running:
        yield running


def test_api_reports_with_read_keys(server: LocalServer) -> None:
    url = f"{server.url}/v1/reports/funnel"
    params = {"since": "2026-01-01", "until": "2026-04-01", "by": "channel"}
    assert httpx.get(url, params=params).status_code == 401
    assert (
        httpx.get(url, params=params, headers={"Authorization": "Bearer wrong"}).status_code == 401
    )
    reader = {"Authorization": "Bearer reader-key"}
    response = httpx.get(url, params=params, headers=reader)
    assert response.status_code == 200
    rows = {r["key"]: r for r in response.json()["rows"]}
    assert rows["paid_search"]["mqls"] == 2 and rows["email"]["mqls"] == 1
    writer = {"Authorization": f"Bearer {server.write_key}"}
    refused = httpx.get(url, params=params, headers=writer)  # the public write key reads nothing
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    admin = {"X-API-Key": server.admin_key}  # admin implies read
    for name in (
        "cohorts",
        "channels",
        "sla",
        "velocity",
        "reasons",
        "health",
        "overview",
        "volume",
        "open-mqls",
    ):
        r = httpx.get(f"{server.url}/v1/reports/{name}", headers=admin)
        assert r.status_code == 200, (name, r.text)
    bad = httpx.get(
        f"{server.url}/v1/reports/funnel", params={"since": "yesterday"}, headers=reader
    )
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_input"
    # The dashboard: the login form takes the key once and sets a session cookie.
    with httpx.Client(base_url=server.url) as browser:
        assert browser.get("/").status_code == 401
        assert browser.get("/", params={"key": "reader-key"}).status_code == 401  # not in URLs
        assert browser.get("/", headers=reader).status_code == 401  # pages take the session
        assert browser.post("/login", data={"key": server.write_key}).status_code == 403
        assert browser.post("/login", data={"key": "wrong"}).status_code == 401
        login = browser.post("/login", data={"key": "reader-key", "next": "/cohorts"})
        assert login.status_code == 303 and login.headers["location"] == "/cohorts"
        cookie = login.headers["set-cookie"]
        assert "reader-key" not in cookie
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
        page = browser.get("/")
        assert page.status_code == 200 and "Funnel overview" in page.text
        assert "cdn" not in page.text.lower()
        for path in ("/cohorts", "/channels", "/reps", "/definition", "/persons/1"):
            assert browser.get(path).status_code == 200, path
        assert browser.get("/persons/999999").status_code == 404
        asset = browser.get("/static/chart.umd.min.js")
        assert asset.status_code == 200 and "Chart.js" in asset.text[:200]


@pytest.mark.parametrize("name", ["funnel", "cohorts", "channels", "sla", "velocity", "reasons"])
def test_every_report_takes_every_filter(engine: Wiring, name: str) -> None:
    """Filters on columns that more than one joined table has (campaign, mql_type, team …)
    once made the reasons and open-MQL queries ambiguous."""
    every = Filters(
        since=Q1.since,
        until=Q1.until,
        channel="paid_search",
        source="unknown",
        campaign="brand",
        mql_type="hand_raiser",
        definition_version="none",
        team="unassigned",
        rep="unassigned",
    )
    run_report(engine.db, name, every, now=NOW, rules=HealthRules())
    from mqlengine.reports import metrics

    data = report_data(engine.db)
    assert metrics.open_mqls(data, every, now=NOW, speed_to_lead_hours=1.0)["leads"] == []
    reasons = metrics.reasons_report(data, replace(Q1, channel="paid_search", campaign="brand"))
    assert reasons["totals"] == {"reject": 1}
