"""Backtest and threshold suggestion on a hand-counted history.

One intent rule (10 points per demo request, no decay), baseline threshold 20, candidate
threshold 40. Six leads with 5, 3, 3, 1, 6 and 4 requests; p1 and p2 reached sql in the
recorded history (p1 was also won, with an amount). Counted by hand over the window:

* baseline MQLs p1 p2 p3 p5 p6 (5), two reached sql → precision 2/5;
* candidate MQLs p1 p5 p6 (3), one reached sql → precision 1/3;
* the one win (p1) was MQL first under both → recall 100 % for both;
* flips: p2 and p3 are MQL under the baseline only.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mqlengine.batch.backtest import backtest, stage_flips_now
from mqlengine.batch.threshold import parse_capacity, suggest
from mqlengine.cli.app import app
from mqlengine.definition.compiler import parse_definition
from mqlengine.errors import ConfigError, ValidationError
from mqlengine.settings import Settings
from mqlengine.store import repo
from mqlengine.wiring import Wiring
from support.clock import NOW

DEFINITION = """\
version: {version}
intent:
  rules:
    - id: demo
      event: Demo Requested
      points: 10
      half_life_days: 0
qualify:
  threshold: {threshold}
"""
START = NOW.date() - timedelta(days=14)
END = NOW.date() - timedelta(days=1)
REQUESTS = {"p1": (5, 2), "p2": (3, 3), "p3": (3, 4), "p4": (1, 4), "p5": (6, 5), "p6": (4, 6)}


def definition_text(version: str, threshold: float) -> str:
    return DEFINITION.format(version=version, threshold=threshold)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Wiring:
    folder = tmp_path_factory.mktemp("backtest")
    (folder / "mql.yaml").write_text(definition_text("base", 20))
    settings = Settings(
        database_url=f"sqlite:///{folder / 'mql.db'}", definition_path=folder / "mql.yaml"
    )
    wiring = Wiring(settings, clock=lambda: NOW)
    messages = []
    for user, (count, day) in REQUESTS.items():
        moment = f"{START + timedelta(days=day)}T10:00:00Z"
        messages += [
            {
                "type": "track",
                "event": "Demo Requested",
                "userId": user,
                "messageId": f"{user}-{i}",
                "timestamp": moment,
            }
            for i in range(count)
        ]
    pipeline = wiring.pipeline()
    with wiring.db.begin() as connection:
        pipeline.ingest(connection, messages, now=NOW, score_as_of="event")
        ids = {
            row["user_id"]: row["person_id"]
            for row in connection.exec_driver_sql(
                "SELECT value AS user_id, person_id FROM identities WHERE kind = 'user_id'"
            ).mappings()
        }
        for user, stage, day, amount in (
            ("p1", "sql", 8, None),
            ("p1", "customer", 10, 1000.0),
            ("p2", "sql", 9, None),
        ):
            repo.record_stage_change(
                connection,
                ids[user],
                from_stage=None,
                to_stage=stage,
                changed_at=on_day(day),
                reason="imported",
                actor="import",
                recorded_at=NOW,
                amount=amount,
            )
    wiring.ids = ids  # type: ignore[attr-defined]
    return wiring


def on_day(day: int) -> datetime:
    """15:00 UTC on the window's day ``day`` (0 = its first day)."""
    return datetime.combine(START + timedelta(days=day), time(15), UTC)


def test_raising_the_threshold_matches_the_hand_count(store: Wiring) -> None:
    base = parse_definition(definition_text("base", 20)).definition
    high = parse_definition(definition_text("high", 40)).definition
    report = backtest(store.db, base, high, start=START, end=END)
    a, b = report["baseline"], report["candidate"]
    assert (a["mqls"], b["mqls"]) == (5, 3)
    assert a["precision"] == pytest.approx(2 / 5, abs=1e-4)
    assert b["precision"] == pytest.approx(1 / 3, abs=1e-4)
    assert a["recall"] == 1.0 and b["recall"] == 1.0
    assert a["pipeline"] == 1000.0 and b["pipeline"] == 1000.0
    ids = store.ids  # type: ignore[attr-defined]
    assert report["flips"]["in"] == 0 and report["flips"]["out"] == 2
    out = {row["person_id"]: row for row in report["flips"]["examples_out"]}
    assert set(out) == {ids["p2"], ids["p3"]}
    assert out[ids["p2"]]["why_not_other"] == "total 30.0 < threshold 40"
    assert "demo +30.0" in out[ids["p2"]]["why"]
    # weeks add up to the totals; no routing section: load is "—" with its reason, not 0
    assert sum(w["baseline_mqls"] for w in report["weeks"]) == 5
    assert sum(w["candidate_mqls"] for w in report["weeks"]) == 3
    assert a["load"]["reps"] is None and a["notes"]["load"] == "no routing section"
    assert report["median_days_gained"] == 0.0


def test_figures_the_data_cannot_support_are_none_with_a_reason(store: Wiring) -> None:
    base = parse_definition(definition_text("base", 20)).definition
    never = parse_definition(definition_text("never", 1000)).definition
    report = backtest(store.db, base, never, start=START, end=END)
    b = report["candidate"]
    assert b["mqls"] == 0
    assert b["precision"] is None and b["notes"]["precision"] == "no lead became MQL in the window"
    assert b["recall"] == 0.0  # the win was not MQL first: a real 0, not a missing figure
    with pytest.raises(ValidationError):
        backtest(store.db, base, never, start=END, end=START)


def test_stage_flips_now_lists_who_would_move(store: Wiring) -> None:
    base = parse_definition(definition_text("base", 20)).definition
    high = parse_definition(definition_text("high", 40)).definition
    flips = stage_flips_now(store.db, base, high, now=NOW)
    ids = store.ids  # type: ignore[attr-defined]
    moved = {row["person_id"]: row for row in flips["examples"]}
    # p2 and p3 (30 points) are MQLs in the store: under the candidate they drop to lead
    assert set(moved) == {ids["p2"], ids["p3"]} and flips["count"] == 2
    assert moved[ids["p3"]]["candidate"] == "lead" and moved[ids["p3"]]["live"] == "mql"
    assert moved[ids["p3"]]["why"] == "total 30.0 < threshold 40"
    assert flips["moves"] == {"mql → lead": 2}


def test_threshold_suggest_fills_capacity_with_most_conversions(store: Wiring) -> None:
    base = parse_definition(definition_text("base", 20)).definition
    picks = {}
    for capacity in (3.0, 2.0, 0.25):
        result = suggest(
            store.db,
            base,
            capacity_per_week=capacity,
            start=START,
            end=END,
            thresholds=[20, 40, 60],
        )
        picks[capacity] = result
    assert picks[3.0]["suggested"] == 20  # 2.5 a week fits: two conversions
    assert picks[2.0]["suggested"] == 40  # 1.5 a week; 20 would overflow
    rows = {r["threshold"]: r for r in picks[2.0]["candidates"]}
    assert (rows[20]["per_week"], rows[40]["per_week"], rows[60]["per_week"]) == (2.5, 1.5, 0.5)
    assert (rows[20]["conversions"], rows[40]["conversions"]) == (2, 1)
    assert picks[0.25]["suggested"] == 60 and "no candidate threshold" in picks[0.25]["notes"][0]
    with pytest.raises(ConfigError, match="no likelihood is stored"):
        suggest(store.db, base, capacity_per_week=1, start=START, end=END, on="likelihood")
    assert parse_capacity("120/week") == 120 and parse_capacity("20/day") == 140
    with pytest.raises(ValidationError):
        parse_capacity("lots")


def test_backtest_cli_json_and_html(
    store: Wiring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MQL_DATABASE_URL", store.settings.database_url)
    monkeypatch.setenv("MQL_CLOCK", NOW.isoformat())
    monkeypatch.chdir(store.settings.definition_path.parent)
    (tmp_path / "high.yaml").write_text(definition_text("high", 40))
    runner = CliRunner()
    args = ["backtest", "--candidate", str(tmp_path / "high.yaml"), "--from", str(START)]
    result = runner.invoke(app, [*args, "--to", str(END), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for side in ("baseline", "candidate"):
        assert {"mqls", "precision", "recall"} <= set(data[side])
    assert data["baseline"]["version"] == "base" and data["candidate"]["mqls"] == 3
    assert isinstance(data["weeks"], list) and data["flips"]["out"] == 2
    out = tmp_path / "report.html"
    result = runner.invoke(app, [*args, "--to", str(END), "--format", "html", "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert html.startswith("<!doctype html>") and "<svg" in html and "<script" not in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "40.0%" in html and "33.3%" in html and "no routing section" in html
    result = runner.invoke(app, [*args, "--to", str(END)])
    assert result.exit_code == 0 and "MQL under the baseline only: 2" in result.output
    result = runner.invoke(app, [*args, "--to", "yesterday"])
    assert result.exit_code == 2 and "--to 'yesterday'" in result.output
    result = runner.invoke(
        app,
        [
            *("threshold", "suggest", "--capacity", "2/week", "--thresholds", "20,40,60"),
            *("--from", str(START), "--to", str(END), "--json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["suggested"] == 40
    result = runner.invoke(
        app, ["threshold", "suggest", "--capacity", "2/week", "--on", "likelihood"]
    )
    assert result.exit_code == 8 and "no likelihood is stored" in result.output
