"""The sales desk where people look: owners, SLAs, why-not and the score timeline in
`mql leads`, `mql explain` and the API, on a small demo history."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mqlengine.cli.app import app
from mqlengine.domain.sla import SlaState, sla_state
from mqlengine.services.leads import LeadFilter, query_leads
from mqlengine.store.db import Database
from support.localserver import LocalServer, local_server

runner = CliRunner()
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("desk")
    url = f"sqlite:///{path / 'desk.db'}"
    result = runner.invoke(app, ["init", str(path / "mql.yaml")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        [
            "--database",
            url,
            "--definition",
            str(path / "mql.yaml"),
            "demo",
            "--persons",
            "150",
            "--days",
            "30",
        ],
    )
    assert result.exit_code == 0, result.output
    yield path


@pytest.fixture
def env(demo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(demo)
    monkeypatch.setenv("MQL_DATABASE_URL", f"sqlite:///{demo / 'desk.db'}")
    monkeypatch.delenv("MQL_DEFINITION", raising=False)
    return demo


def mql(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_sla_state() -> None:
    due = NOW + timedelta(hours=2)
    assert sla_state(None, None, NOW) is None
    assert sla_state(due, None, NOW) is SlaState.ON_TIME
    assert sla_state(due, None, due - timedelta(minutes=30)) is SlaState.DUE_SOON
    assert sla_state(due, None, due + timedelta(seconds=1)) is SlaState.BREACHED
    assert sla_state(due, due - timedelta(hours=1), due + timedelta(days=1)) is SlaState.ON_TIME
    assert sla_state(due, due + timedelta(minutes=1), due + timedelta(days=1)) is SlaState.BREACHED


def _export(*args: str) -> list[dict[str, str]]:
    code, out = mql("leads", "--format", "csv", *args)
    assert code == 0, out
    lines = [line for line in out.splitlines() if not line.startswith("note:")]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


def test_filters_and_exports_are_never_cut_silently(env: Path) -> None:
    everyone = _export()
    assert len(everyone) > 100  # all rows, not the table's 50
    owned = [r for r in everyone if r["owner"] not in ("", "queue")]
    assert owned, "the demo routes MQLs to reps"
    rep = owned[0]["owner"]
    mine = _export("--owner", rep)
    assert mine and {r["owner"] for r in mine} == {rep}
    team = owned[0]["team"]
    assert {r["team"] for r in _export("--team", team)} == {team}
    high = _export("--min-score", "80")
    assert high and all(float(r["total"]) >= 80 for r in high)
    assert len(high) == sum(1 for r in everyone if float(r["total"]) >= 80)
    breached = _export("--sla", "breached")
    assert breached and {r["sla_state"] for r in breached} == {"breached"}
    assert len(breached) == sum(1 for r in everyone if r["sla_state"] == "breached")
    waiting = [r for r in everyone if r["stage"] == "lead" and r["why_not"]]
    assert waiting and all(
        r["why_not"].startswith(("excluded:", "missing:")) or "points short" in r["why_not"]
        for r in waiting
    )
    code, out = mql("leads", "--format", "json", "--limit", "5")
    assert "note: --limit 5 cut the export to 5 of" in out
    code, out = mql("leads", "--sla", "late")
    assert code == 2 and "'late'" in out


def test_table_fits_80_columns_and_says_how_many(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mqlengine.cli import common

    monkeypatch.setattr(common.console, "_width", 80)
    code, out = mql("leads", "--limit", "20")
    assert code == 0, out
    lines = [line for line in out.splitlines() if line.strip()]
    table = [line for line in lines if not line.startswith("showing")]
    assert all(len(line) <= 80 for line in table), "\n".join(table)
    assert "why not MQL" in table[0] and "owner" in table[0] and "SLA" in table[0]
    rows = table[2:]
    assert len(rows) == 20
    for row in rows:  # the id and the score are never cut to "1…"
        cells = row.split()
        assert cells[0].isdigit()
    showing = next(line for line in lines if line.startswith("showing"))
    assert showing.startswith("showing 20 of ") and "--format csv" in showing


def test_explain_shows_owner_and_history(env: Path) -> None:
    owned = [r for r in _export() if r["owner"] not in ("", "queue")]
    person = owned[0]["id"]
    code, out = mql("explain", person, "--history")
    assert code == 0, out
    assert "owner " in out and "SLA due" in out and "score timeline" in out
    code, out = mql("explain", person, "--history", "--format", "json")
    payload = json.loads(out)
    assert payload["person"]["owner"] == owned[0]["owner"]
    timeline = payload["timeline"]
    assert timeline and all(a["as_of"] <= b["as_of"] for a, b in itertools.pairwise(timeline))
    assert sum(entry["events_count"] for entry in timeline) > 0


def test_query_leads_pages_add_up(env: Path) -> None:
    database = Database(f"sqlite:///{env / 'desk.db'}")
    try:
        with database.read() as connection:
            first = query_leads(connection, LeadFilter(stage="lead"), now=NOW, limit=10)
            second = query_leads(connection, LeadFilter(stage="lead"), now=NOW, limit=10, offset=10)
            by_sla = query_leads(connection, now=NOW, sort="sla", limit=5)
    finally:
        database.dispose()
    assert first.total == second.total and first.cut
    assert not {r["id"] for r in first.rows} & {r["id"] for r in second.rows}
    scores = [r["total"] for r in first.rows + second.rows]
    assert scores == sorted(scores, reverse=True)
    dues = [r["sla_due_at"] for r in by_sla.rows if r["sla_due_at"]]
    assert dues == sorted(dues)


@pytest.fixture(scope="module")
def server(demo: Path) -> Iterator[LocalServer]:
    with local_server(
        f"sqlite:///{demo / 'desk.db'}", demo / "mql.yaml", log=demo / "server.log"
    ) as running:
        yield running


def test_api_persons_carry_the_desk_and_the_timeline(server: LocalServer) -> None:
    headers = {"Authorization": f"Bearer {server.read_key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as http:
        page = http.get("/v1/persons", params={"stage": "sal", "limit": 50}).json()
        assert page["data"]
        row = next(r for r in page["data"] if r["owner"])
        for key in ("owner", "team", "sla_due_at", "first_touch_at", "sla_state"):
            assert key in row
        detail = http.get(f"/v1/persons/{row['id']}").json()
        assert detail["person"]["owner"] == row["owner"]
        assert detail["person"]["sla_state"] in ("on_time", "due_soon", "breached")
        timeline = http.get(f"/v1/persons/{row['id']}/timeline").json()
        assert timeline["timeline"] and "rules_changed" in timeline["timeline"][0]
        assert http.get("/v1/persons/999999/timeline").status_code == 404
        assert httpx.get(f"{server.url}/v1/persons/{row['id']}/timeline").status_code == 401
    admin = {"Authorization": f"Bearer {server.admin_key}"}
    with httpx.Client(base_url=server.url, headers=admin, timeout=10) as http:
        bad = http.put("/v1/reps/ann", json={"team": "enterprise", "capacity_per_day": "many"})
        assert bad.status_code == 422, bad.text
        detail = bad.json()["details"][0]
        assert detail["loc"] == ["body", "capacity_per_day"]
        assert detail["message"] == "expected a whole number, got 'many'"  # not pydantic's text
        assert "pydantic" not in bad.text


def test_worker_logs_each_retry_and_dead_letter(env: Path, tmp_path: Path) -> None:
    """A destination nobody listens on: the first pass logs a retry, the last a dead letter;
    --quiet prints neither."""
    from mqlengine.services import outbox

    url = f"sqlite:///{tmp_path / 'worker.db'}"
    assert mql("--database", url, "db", "upgrade")[0] == 0
    code, out = mql(
        "--database",
        url,
        "outbox",
        "add-destination",
        "nowhere",
        "--kind",
        "webhook",
        "--url",
        "http://127.0.0.1:9/hook",
        "--secret",
        "generate",
    )
    assert code == 0, out

    def enqueue() -> None:
        database = Database(url)
        try:
            with database.begin() as connection:
                outbox.enqueue(
                    connection, "mql.created", {"email": "ada@northwind.io"}, now=datetime.now(UTC)
                )
        finally:
            database.dispose()

    worker = ("--database", url, "worker", "--once", "--timeout", "1")
    enqueue()
    code, out = mql(*worker, "--quiet", "--max-attempts", "5")
    assert code == 0 and "retry #" not in out and "1 to retry" in out
    enqueue()  # the first waits for its backoff; the second is due now
    code, out = mql(*worker, "--max-attempts", "1")
    assert code == 0, out
    assert "worker: dead letter #2 mql.created" in out
    assert "ada@northwind.io" not in out


def test_validate_warns_on_likely_mistakes(env: Path) -> None:
    text = (env / "mql.yaml").read_text()
    for old, new in (
        ("event: Demo Requested\n", "event: Demo Request\n"),
        ("  threshold: 70", "  threshold: -5"),
        ("recycle: [not_now, no_response, timing]", "recycle: [not_now, timing, timing]"),
        ("excluded_because: [student]}", "excluded_because: [studnet]}"),
        ("      team: emea\n", "      team: emeaa\n"),
        ("{trait: seniority, in:", "{trait: senority, in:"),
    ):
        assert old in text, old
        text = text.replace(old, new, 1)
    (env / "mistakes.yaml").write_text(text, encoding="utf-8")
    code, out = mql("validate", "mistakes.yaml")
    assert code == 0, out  # warnings, not errors
    for expected in (
        "event 'Demo Request' is in no recent event",
        "threshold -5 is negative",
        "duplicate reason code 'timing'",
        "expects exclusion 'studnet', which the definition does not have",
        "routing team 'emeaa' does not exist",
        "trait 'senority' is in no recent person's profile",
    ):
        assert expected in out, expected
    code, out = mql("validate")  # the demo's own definition: nothing to warn about
    assert code == 0 and "warning" not in out, out


def test_report_tables_fit_80_columns(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mqlengine.cli import common

    monkeypatch.setattr(common.console, "_force_terminal", True)
    monkeypatch.setattr(common.console, "_width", 80)
    for report in ("funnel", "channels", "sla", "reasons", "velocity"):
        code, out = mql("report", report)
        assert code == 0, out
        table = [line for line in out.splitlines() if line[:1] in "┏┃│┡└"]
        assert table and all(len(line) <= 80 for line in table), "\n".join(table)
        assert "…" not in "\n".join(table), "\n".join(table)  # nothing cut mid-word
    code, out = mql("report", "channels")
    assert "--format csv shows every column" in out
