"""The likelihood on the store's own data: labels from imported history, point-in-time
features (a planted leak is not used), train → registry → promote → serving through the
facade, `mql import`, `mql explain` and a real API server; shadow, drift, rollback."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import mqlengine
from mqlengine.cli.app import app
from mqlengine.predict import registry
from mqlengine.predict.features import feature_name
from mqlengine.predict.trainset import features_at
from mqlengine.store.db import Database
from support.localserver import local_server
from support.paths import EXAMPLE

NOW = datetime.fromisoformat("2026-11-20T12:00:00+00:00")
runner = CliRunner()
PREDICT = """
predict:
  label: {reached: opportunity, within_days: 30, from: mql}
  min_rows: 40
  traits: [seniority, department]
  shadow: true
"""


def mql(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def _identify(n: int, seniority: str, at: datetime, **traits: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "messageId": f"id-{n}-{at.timestamp():.0f}-{seniority}",
        "userId": f"u-{n}",
        "timestamp": at.isoformat(),
        "traits": {
            "email": f"p{n}@company{n}.example",
            "seniority": seniority,
            "department": "marketing",
            **traits,
        },
    }


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """60 leads: VPs reached an opportunity within 30 days of their MQL, interns did not.
    Person 1 (an intern) was later called a VP, after its outcome: a leak to ignore."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MQL_DATABASE_URL", f"sqlite:///{tmp_path / 'p.db'}")
    monkeypatch.setenv("MQL_CLOCK", NOW.isoformat())
    monkeypatch.delenv("MQL_DEFINITION", raising=False)
    text = EXAMPLE.read_text().replace('version: "2026-11-b2b-v1"', 'version: "predict-test"')
    (tmp_path / "mql.yaml").write_text(text + PREDICT)
    start = NOW - timedelta(days=150)
    messages, rows = [], ["email,created_at,mql_at,opportunity_at"]
    for n in range(60):
        senior = n % 2 == 0
        at = start + timedelta(hours=n)
        messages.append(_identify(n, "vp" if senior else "intern", at))
        mql_at = at + timedelta(days=1)
        won = (mql_at + timedelta(days=10)).date().isoformat() if senior else ""
        rows.append(f"p{n}@company{n}.example,{at.date()},{mql_at.date()},{won}")
    # the leak: after its outcome window, person 1 is said to be a VP, and acts
    messages.append(_identify(1, "vp", NOW - timedelta(days=5)))
    messages.append(
        {
            "type": "track",
            "messageId": "late-demo",
            "userId": "u-1",
            "event": "Demo Requested",
            "timestamp": (NOW - timedelta(days=5)).isoformat(),
        }
    )
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(m) for m in messages) + "\n")
    (tmp_path / "h.csv").write_text("\n".join(rows) + "\n")
    code, out = mql("import", "m.jsonl")
    assert code == 0, out
    code, out = mql("history", "import", "h.csv")
    assert code == 0, out
    return tmp_path


def _person(db: Database, user: str) -> int:
    from sqlalchemy import select

    from mqlengine.store.tables import identities

    with db.read() as connection:
        return int(
            connection.execute(
                select(identities.c.person_id).where(identities.c.value == user)
            ).scalar_one()
        )


def test_features_use_only_what_was_known_at_the_moment(store: Path) -> None:
    with mqlengine.open() as engine:
        db = engine.wiring.db
        definition = engine.wiring.definition().definition
        leaky = _person(db, "u-1")
        moment = NOW - timedelta(days=140)
        with db.read() as connection:
            before = features_at(connection, definition, {leaky: moment})[leaky]
            after = features_at(connection, definition, {leaky: NOW})[leaky]
    # as of its MQL moment: an intern without the demo request sent months later
    assert before[feature_name("trait", "seniority")] == "intern"
    assert before[feature_name("events_90d", "Demo Requested")] == 0
    # as of now both are known (the same code reads them when they are in the past)
    assert after[feature_name("trait", "seniority")] == "vp"
    assert after[feature_name("events_7d", "Demo Requested")] == 1


def test_train_promote_serve_shadow_drift_rollback(store: Path, tmp_path: Path) -> None:
    code, out = mql("validate")
    assert code == 0 and "likelihood: P(reaching opportunity" in out
    code, out = mql("model", "train", "--budget", "5", "--json")
    assert code == 0, out
    entry = json.loads(out)
    # person 1 became an MQL on its late demo request, so its imported MQL date was
    # refused (a different date for a stage already stored): 59 labelled leads
    assert entry["status"] == "candidate" and entry["rows"] == 59 and entry["positives"] == 30
    assert feature_name("trait", "seniority") in entry["features"]
    # without a live model nothing changes
    with mqlengine.open() as engine:
        result = engine.ingest([_identify(100, "vp", NOW - timedelta(hours=1))])
        assert result.outcomes and all(o.card.likelihood is None for o in result.outcomes)
    code, out = mql("model", "promote", str(entry["version"]))
    assert code == 0 and "is live" in out, out
    code, out = mql("audit", "--action", "model.promote", "--json")
    assert code == 0 and "model.promote" in out

    # serving: the facade, `mql import` and `mql explain` agree; VPs are likelier
    with mqlengine.open() as engine:
        result = engine.ingest([_identify(101, "vp", NOW - timedelta(hours=1))])
        vp = result.outcomes[0].card
        result = engine.ingest([_identify(102, "intern", NOW - timedelta(hours=1))])
        intern = result.outcomes[0].card
    assert vp.likelihood is not None and intern.likelihood is not None
    assert vp.model_version == entry["version"]
    assert vp.likelihood > intern.likelihood
    assert any("seniority" in name for name, _ in vp.likelihood_top)
    (tmp_path / "one.jsonl").write_text(
        json.dumps(_identify(103, "vp", NOW - timedelta(hours=1))) + "\n"
    )
    code, out = mql("import", "one.jsonl")
    assert code == 0, out
    code, out = mql("explain", "user_id:u-103", "--format", "json")
    assert code == 0, out
    explained = json.loads(out)["score_card"]["likelihood"]
    assert explained["model_version"] == entry["version"]
    assert explained["value"] == pytest.approx(vp.likelihood, abs=1e-4)

    # a real server answers with the same likelihood
    db_url = f"sqlite:///{tmp_path / 'p.db'}"
    with local_server(
        db_url,
        tmp_path / "mql.yaml",
        log=tmp_path / "server.log",
        env={"MQL_CLOCK": NOW.isoformat()},
    ) as server:
        sent = httpx.post(
            f"{server.url}/v1/batch",
            auth=(server.write_key, ""),
            json={"batch": [_identify(104, "vp", NOW - timedelta(hours=1))]},
            timeout=60,
        )
        assert sent.status_code == 200, sent.text
        found = httpx.get(
            f"{server.url}/v1/persons",
            params={"userId": "u-104"},
            headers={"Authorization": f"Bearer {server.read_key}"},
            timeout=60,
        )
        assert found.status_code == 200, found.text
        body = found.json()
        person = body["data"][0] if "data" in body else body
        detail = httpx.get(
            f"{server.url}/v1/persons/{person['id']}",
            headers={"Authorization": f"Bearer {server.read_key}"},
            timeout=60,
        ).json()
    served = detail["score_card"]["likelihood"]
    assert served["value"] == pytest.approx(vp.likelihood, abs=1e-4)
    assert served["top"] and served["model_version"] == entry["version"]

    # shadow: a second candidate scores beside the live one, never deciding
    code, out = mql("model", "train", "--budget", "5", "--seed", "1", "--json")
    assert code == 0, out
    second = json.loads(out)["version"]
    with mqlengine.open() as engine:
        card = engine.ingest([_identify(105, "vp", NOW - timedelta(hours=1))]).outcomes[0].card
        assert card.model_version == entry["version"]
    code, out = mql("model", "shadow-report", "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["shadow_version"] == second and report["scorings"] >= 1
    assert report["agreement"] == 1.0

    code, out = mql("model", "drift", "--json")
    assert code == 0, out
    drift = json.loads(out)
    assert drift["model_version"] == entry["version"] and drift["rows"] > 0
    assert feature_name("trait", "seniority") in drift["features"]

    code, out = mql("model", "promote", str(second))
    assert code == 0, out
    code, out = mql("model", "rollback")
    assert code == 0 and f"v{entry['version']} is live again" in out, out
    db = Database(db_url)
    try:
        with db.read() as connection:
            assert registry.live_version(connection) == entry["version"]
            statuses = {e.version: e.status for e in registry.list_models(connection)}
    finally:
        db.dispose()
    assert statuses == {entry["version"]: "live", second: "retired"}

    # the health report carries the live model's drift, and an alert per drifted feature
    code, out = mql("report", "health", "--format", "json", "--no-notify")
    assert code == 0, out
    health = json.loads(out)
    assert health["model_drift"]["model_version"] == entry["version"]
    assert not [a for a in health["alerts"] if a["code"] == "model_drift"] or drift["warnings"]
    path = store / "mql.yaml"
    text = path.read_text().replace('version: "predict-test"', 'version: "predict-test-2"')
    path.write_text(text + "  drift_warn_psi: 0.000001\n")
    code, out = mql("report", "health", "--format", "json", "--no-notify")
    assert code == 0, out
    health = json.loads(out)
    drifted = [a for a in health["alerts"] if a["code"] == "model_drift"]
    assert drifted and all(a["value"] > a["threshold"] == 0.000001 for a in drifted)
    assert {a["metric"] for a in drifted} == {
        f"psi:{name}" for name in health["model_drift"]["warnings"]
    }
    code, out = mql("report", "health")
    assert code == 0 and "has drifted from the training set" in out, out


def test_too_few_labelled_leads_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MQL_DATABASE_URL", f"sqlite:///{tmp_path / 'e.db'}")
    code, out = mql("init")
    assert code == 0
    code, out = mql("model", "train", "--budget", "1")
    assert code == 4, out
    assert "too few labelled leads" in out and "min_rows is 200" in out


def test_two_stores_with_the_same_version_number_serve_their_own_models(
    tmp_path: Path,
) -> None:
    """One process, two stores, each with its own model version 1: each store's model."""
    import numpy as np

    from mqlengine.predict import synthetic
    from mqlengine.predict.modeling import FeatureFrame, fit_logistic
    from mqlengine.settings import Settings
    from mqlengine.wiring import Wiring

    frame, y = synthetic.leads(300, seed=4)
    loaded = []
    for n, flip in enumerate((False, True)):
        labels = 1 - y if flip else y
        model = fit_logistic(FeatureFrame(frame, ("seniority", "industry", "noise_cat")), labels)
        wiring = Wiring(
            Settings(database_url=f"sqlite:///{tmp_path / f's{n}.db'}", definition_path=EXAMPLE)
        )
        with wiring.db.begin() as connection:
            entry = registry.register(
                connection,
                model,
                label={"reached": "sql", "within_days": 90, "from": "mql"},
                definition_version="v",
                window=(None, None),
                rows=300,
                positives=int(labels.sum()),
                fingerprint="same",
                reference={},
                now=NOW,
                actor="test",
            )
            assert entry.version == 1
        with wiring.db.read() as connection:
            loaded.append(registry.load(connection, 1).predict(frame.head(50)))
        wiring.close()
    assert not np.allclose(loaded[0], loaded[1])
    assert np.allclose(loaded[0] + loaded[1], 1.0, atol=0.05)  # opposite labels, mirror models


def test_evaluate_on_the_store_compares_every_candidate(store: Path) -> None:
    """`mql model evaluate` without --csv: the same candidates as on a table, from
    stratified folds over the store's labelled leads, each with its four measures."""
    code, out = mql("model", "evaluate", "--budget", "5", "--format", "json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["rows"] == 59 and doc["positives"] == 30 and doc["folds"] == 5
    assert set(doc["models"]) == {"model", "logistic", "naive_bayes", "rules"}
    for values in doc["models"].values():
        assert 0.0 <= values["roc_auc"] <= 1.0 and 0.0 <= values["brier"] <= 1.0
        assert values["log_loss"] >= 0.0
    # the seniority and the demo requests decide the outcome in this store: every
    # candidate ranks better than chance
    assert min(v["roc_auc"] for v in doc["models"].values()) > 0.5
