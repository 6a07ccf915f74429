"""The scorecard: monotone bins where the data is, points that double the odds every 20,
a definition `mql validate` accepts whose fit score is the scorecard's score; and the
cross-validated comparison that scores the table with a definition's fit rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mqlengine.definition.compiler import parse_definition
from mqlengine.predict import metrics as m
from mqlengine.predict import synthetic
from mqlengine.predict.evaluate import cross_validate, report, rule_scores, rules_apply
from mqlengine.predict.scorecard import FACTOR, fit_scorecard
from mqlengine.predict.tabular import prepare

CATEGORICAL = ("seniority", "industry", "noise_cat")


def source(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    frame, y = synthetic.leads(n, seed=seed)
    typed = frame.copy()
    for name in CATEGORICAL:
        typed[name] = frame[name].astype(object)
    return typed, y


def test_scorecard_points_rank_and_become_a_valid_definition() -> None:
    frame, y = source(3000, 11)
    card = fit_scorecard(frame, y, CATEGORICAL)
    names = {f.name for f in card.features}
    assert {"seniority", "visits", "employees", "industry"} <= names
    # visits raise the odds monotonically: its bins' points never fall
    visits = next(f for f in card.features if f.name == "visits")
    points = [b.points for b in visits.bins if not b.missing]
    assert points == sorted(points) and points[-1] > points[0]
    seniority = next(f for f in card.features if f.name == "seniority")
    best = max(seniority.bins, key=lambda b: b.points)
    assert "vp" in best.levels
    # 20 points double the odds
    assert abs(FACTOR * np.log(2) - 20) < 1e-9
    fresh, y_fresh = source(4000, 12)
    assert m.roc_auc(y_fresh, card.points(fresh)) > 0.75

    text = card.yaml(version="scorecard-test", description="test")
    loaded = parse_definition(text, "proposed.yaml")
    assert loaded.definition.qualify.threshold == card.threshold
    assert len(loaded.definition.fit_rules) == sum(
        1 for f in card.features for b in f.bins if b.points
    )
    # the engine's own fit score of every lead is the scorecard's score
    assert np.array_equal(rule_scores(loaded, fresh), card.points(fresh))


def test_cross_validation_compares_every_model_and_the_rules(tmp_path: Path) -> None:
    frame, y = synthetic.leads(900, seed=13)
    raw = frame.astype(object).assign(won=np.where(y == 1, "yes", "no"))
    table = prepare(raw, path=tmp_path / "leads.csv", label="won")
    card = fit_scorecard(table.source[list(table.X.features)], table.y, table.X.categorical)
    loaded = parse_definition(card.yaml(version="v", description=""), "proposed.yaml")
    assert rules_apply(loaded, table)
    evaluation = cross_validate(table, definition=loaded, max_trials=1, seed=0)
    doc = report(evaluation, table)
    assert set(doc["models"]) == {"model", "lightgbm_default", "logistic", "naive_bayes", "rules"}
    assert doc["rows"] == 900 and doc["positives"] == int(y.sum())
    for entry in doc["models"].values():
        assert {"roc_auc", "pr_auc", "log_loss", "brier"} <= set(entry)
        assert len(entry["deciles"]) == 10 and entry["deciles"][-1]["cumulative_gain"] == 1.0
    rules = doc["models"]["rules"]
    assert rules["threshold_unit"] == "points"
    assert rules["at_threshold"]["threshold"] == card.threshold
    # the models are cut at the share of leads the rules flag
    flagged = rules["at_threshold"]["flagged"]
    assert abs(doc["models"]["model"]["at_threshold"]["flagged"] - flagged) <= 2
    assert doc["models"]["model"]["roc_auc"] > 0.75
    # the same seed gives the same figures
    again = report(cross_validate(table, definition=loaded, max_trials=1, seed=0), table)
    assert again["models"]["model"] == doc["models"]["model"]
