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
import math
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from mqlengine.batch.backtest import backtest, stage_flips_now
from mqlengine.batch.threshold import parse_capacity, suggest
from mqlengine.cli.app import app
from mqlengine.definition.compiler import parse_definition
from mqlengine.errors import ConfigError, ValidationError
from mqlengine.predict import registry
from mqlengine.predict.features import FeatureSpec, to_frame
from mqlengine.predict.modeling import fit_logistic
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
    return _build(tmp_path_factory.mktemp("backtest"))


def _build(folder: Path) -> Wiring:
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
    with pytest.raises(ConfigError, match="no model is live"):
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
    assert result.exit_code == 8 and "no model is live" in result.output


def _demo_row(spec: FeatureSpec, requests: int) -> dict[str, Any]:
    """A feature row of a lead with ``requests`` demo requests (nothing else known)."""
    row: dict[str, Any] = {name: math.nan for name in spec.names()}
    row.update({"channel": None, "source": None, "campaign": None, "fit": 0.0})
    row["intent"] = row["total"] = row["rule__demo"] = 10.0 * requests
    for window in (7, 30, 90):
        row[f"events_{window}d__Demo_Requested"] = float(requests)
    return row


def test_threshold_suggest_on_likelihood_replays_the_live_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live model whose likelihood grows with demo requests, replayed on the hand-counted
    history: thresholds between the likelihoods of 1, 3, 4 and 5 requests give the same
    MQLs as totals of 20, 40 and 60."""
    wiring = _build(tmp_path)
    definition = parse_definition(definition_text("base", 20)).definition
    spec = FeatureSpec.for_definition(definition)
    assert "rule__demo" in spec.names() and "events_7d__Demo_Requested" in spec.names()
    counts = [k % 7 for k in range(210)]
    frame = to_frame([_demo_row(spec, k) for k in counts], spec.names())
    labels = np.array([1 if (k >= 4) != (i % 10 == 0) else 0 for i, k in enumerate(counts)])
    model = fit_logistic(frame, labels)
    p = {
        k: float(
            model.predict(to_frame([_demo_row(spec, k)], model.features, model.categorical))[0]
        )
        for k in (1, 3, 4, 5, 6)
    }
    assert p[1] < p[3] < p[4] < p[5] < p[6]
    cuts = [round((p[1] + p[3]) / 2, 6), round((p[3] + p[4]) / 2, 6), round((p[5] + p[6]) / 2, 6)]
    with pytest.raises(ConfigError, match="no model is live"):
        suggest(wiring.db, definition, capacity_per_week=2, start=START, end=END, on="likelihood")
    with wiring.db.begin() as connection:
        entry = registry.register(
            connection,
            model,
            label={"reached": "sql", "within_days": 30, "from": "mql"},
            definition_version="base",
            window=(None, None),
            rows=len(counts),
            positives=int(labels.sum()),
            fingerprint="demo-requests",
            reference={},
            now=NOW,
            actor="test",
        )
        registry.promote(connection, entry.version, now=NOW)
    result = suggest(
        wiring.db,
        definition,
        capacity_per_week=2.0,
        start=START,
        end=END,
        on="likelihood",
        thresholds=cuts,
    )
    rows = {r["threshold"]: r for r in result["candidates"]}
    assert [rows[c]["mqls"] for c in cuts] == [5, 3, 1]  # p1 p2 p3 p5 p6 | p1 p5 p6 | p5
    assert [rows[c]["per_week"] for c in cuts] == [2.5, 1.5, 0.5]
    assert [rows[c]["conversions"] for c in cuts] == [2, 1, 0]
    assert [rows[c]["precision"] for c in cuts] == [0.4, 0.3333, 0.0]
    assert [rows[c]["recall"] for c in cuts] == [1.0, 1.0, 0.0]  # p1 won after its MQL
    assert result["suggested"] == cuts[1] and result["model_version"] == entry.version
    assert result["expected"]["per_week"] == 1.5 and result["live_threshold"] is None
    with pytest.raises(ValidationError, match="likelihood threshold"):
        suggest(
            wiring.db,
            definition,
            capacity_per_week=2,
            start=START,
            end=END,
            on="likelihood",
            thresholds=[40],
        )
    # the command line: the same replay, the default candidates
    monkeypatch.setenv("MQL_DATABASE_URL", wiring.settings.database_url)
    monkeypatch.setenv("MQL_CLOCK", NOW.isoformat())
    monkeypatch.chdir(tmp_path)
    args = ["threshold", "suggest", "--capacity", "2/week", "--on", "likelihood"]
    window = ["--from", str(START), "--to", str(END)]
    result_cli = CliRunner().invoke(app, [*args, *window, "--json"])
    assert result_cli.exit_code == 0, result_cli.output
    data = json.loads(result_cli.output)
    assert data["on"] == "likelihood" and len(data["candidates"]) == 11
    assert data["expected"]["per_week"] <= 2.0
    result_cli = CliRunner().invoke(app, [*args, *window])
    assert result_cli.exit_code == 0 and "suggested threshold" in result_cli.output
    assert "(live none)" in result_cli.output
