"""Odoo-style naive Bayes against a hand-computed example, and the metrics against
figures worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mqlengine.predict import metrics as m
from mqlengine.predict.baselines import NaiveBayes, bin_edges, bin_labels, nice


def test_naive_bayes_matches_the_hand_computed_example() -> None:
    frame = pd.DataFrame(
        {
            "color": ["red", "red", "red", "blue", "blue", "blue"],
            "channel": ["web", "web", "ads", "ads", "web", None],
        }
    )
    y = np.array([1, 1, 0, 0, 0, 1])
    nb = NaiveBayes().fit(frame, y, ("color", "channel"))
    # counts + 0.1: color red 2.1 won / 1.1 lost, blue 1.1 / 2.1 (totals 3.2 / 3.2);
    # channel web 2.1 / 1.1, ads 0.1 / 2.1 (totals 2.2 / 3.2; the unset channel is skipped)
    assert nb.tables["color"] == {"red": [2.1, 1.1], "blue": [1.1, 2.1]}
    assert nb.tables["channel"] == {"web": pytest.approx([2.1, 1.1]), "ads": [0.1, 2.1]}
    won = 0.5 * (2.1 / 3.2) * (2.1 / 2.2)
    lost = 0.5 * (1.1 / 3.2) * (1.1 / 3.2)
    won2 = 0.5 * (1.1 / 3.2) * (0.1 / 2.2)
    lost2 = 0.5 * (2.1 / 3.2) * (2.1 / 3.2)
    query = pd.DataFrame(
        {"color": ["red", "blue", "green", "red"], "channel": ["web", "ads", None, "mail"]}
    )
    p = nb.predict(query)
    assert p[0] == pytest.approx(won / (won + lost))
    assert p[1] == pytest.approx(won2 / (won2 + lost2))
    assert p[2] == pytest.approx(0.5)  # nothing known: the prior alone
    assert p[3] == pytest.approx(2.1 / 3.2)  # an unseen channel is left out


def test_numbers_are_binned_as_a_user_reads_them() -> None:
    assert nice(1234.0) == 1200 and nice(0.04567) == 0.046 and nice(37.2) == 37
    values = np.array([18, 22, 25, 31, 35, 40, 44, 52, 60, 71, np.nan], dtype=float)
    edges = bin_edges(values)
    assert edges == sorted(edges) and all(nice(e) == e for e in edges)
    labels = bin_labels(values, edges)
    assert labels[0] == f"<{edges[0]:g}" and labels[-2] == f"≥{edges[-1]:g}"
    assert labels[-1] is None


def test_naive_bayes_on_numbers_and_everything_probability() -> None:
    rng = np.random.default_rng(0)
    age = rng.integers(18, 70, 400).astype(float)
    y = (rng.random(400) < np.where(age > 45, 0.6, 0.1)).astype(float)
    nb = NaiveBayes().fit(pd.DataFrame({"age": age}), y, ())
    p = nb.predict(pd.DataFrame({"age": [20.0, 60.0, np.nan]}))
    assert p[1] > p[0] and p[2] == pytest.approx(y.mean())
    assert m.roc_auc(y, nb.predict(pd.DataFrame({"age": age}))) > 0.7


def test_metrics_by_hand() -> None:
    y = np.array([0, 0, 1, 1])
    assert m.roc_auc(y, [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert m.pr_auc(y, [0.1, 0.4, 0.35, 0.8]) == pytest.approx((1 + 2 / 3) / 2)
    assert m.log_loss(y, [0.5] * 4) == pytest.approx(math.log(2))
    assert m.brier(y, [0, 0, 1, 0.5]) == pytest.approx(0.25 / 4)
    assert math.isnan(m.roc_auc([1, 1], [0.2, 0.3]))
    cut = m.at_threshold(y, [0.1, 0.6, 0.7, 0.2], 0.5)
    assert (cut.flagged, cut.precision, cut.recall) == (2, 0.5, 0.5)
    curve = m.calibration_curve(y, [0.05, 0.15, 0.95, 0.92])
    assert [(b.low, b.count, b.observed) for b in curve] == [
        (0.0, 1, 0.0),
        (pytest.approx(0.1), 1, 0.0),
        (pytest.approx(0.9), 2, 1.0),
    ]
    ys = np.array([1] * 10 + [0] * 90)
    scores = np.linspace(1, 0, 100)
    deciles = m.deciles(ys, scores)
    assert deciles[0].lift == pytest.approx(10.0) and deciles[0].cumulative_gain == 1.0
    assert deciles[-1].cumulative_gain == 1.0 and len(deciles) == 10
    assert m.threshold_for_share(scores, 0.1) == pytest.approx(scores[9])
