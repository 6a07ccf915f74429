"""Explanations name the known drivers: on synthetic leads whose outcome depends on
seniority, company size (a sweet spot), visits (more so the more senior the lead) and
industry, and not at all on two planted noise columns, the tuned model beats the additive
baselines clearly, and its contributions — the ones a score card shows — rank the drivers
first, overall and lead by lead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mqlengine.predict import metrics as m
from mqlengine.predict import modeling as md
from mqlengine.predict import synthetic
from mqlengine.predict.baselines import NaiveBayes

CATEGORICAL = ("seniority", "industry", "noise_cat")
NOISE = ("noise_num", "noise_cat")
INTERACTION = 0.8  # visits × seniority: what naive Bayes and a logistic regression miss
Fitted = tuple[md.FittedModel, md.FittedModel, NaiveBayes, pd.DataFrame, np.ndarray]


@pytest.fixture(scope="module")
def fitted() -> Fitted:
    frame, y = synthetic.leads(4000, seed=11, interaction=INTERACTION)
    X = md.FeatureFrame(frame, CATEGORICAL)
    test, y_test = synthetic.leads(6000, seed=12, interaction=INTERACTION)
    model = md.fit_best(X, y, seed=0, max_trials=3)
    logistic = md.fit_logistic(X, y, seed=0)
    bayes = NaiveBayes().fit(frame, y, CATEGORICAL)
    return model, logistic, bayes, test, y_test


def test_the_model_beats_naive_bayes_and_logistic_clearly(fitted: Fitted) -> None:
    model, logistic, bayes, test, y_test = fitted
    auc = {
        "model": m.roc_auc(y_test, model.predict(test)),
        "logistic": m.roc_auc(y_test, logistic.predict(test)),
        "naive_bayes": m.roc_auc(y_test, bayes.predict(test)),
    }
    # measured: model 0.862, naive Bayes 0.795, logistic 0.751 (seeds 11 and 12)
    assert auc["model"] > 0.84
    assert auc["model"] - auc["naive_bayes"] > 0.04, auc
    assert auc["model"] - auc["logistic"] > 0.07, auc


def test_contributions_rank_the_true_drivers_first(fitted: Fitted) -> None:
    model, _logistic, _bayes, test, _y = fitted
    values, columns = model.contributions(test)
    assert columns[-1] == "bias"
    names = list(columns[:-1])
    spread = np.abs(values[:, :-1]).mean(axis=0)
    ranked = [names[i] for i in np.argsort(-spread)]
    assert set(ranked[:4]) == set(synthetic.DRIVERS), ranked
    assert set(ranked[4:]) == set(NOISE), ranked
    weakest_driver = min(spread[names.index(d)] for d in synthetic.DRIVERS)
    strongest_noise = max(spread[names.index(n)] for n in NOISE)
    assert weakest_driver > 3 * strongest_noise, dict(zip(names, spread, strict=True))

    # lead by lead, as a score card lists them (largest |contribution| first)
    order = np.argsort(-np.abs(values[:, :-1]), axis=1)
    noise = [names.index(n) for n in NOISE]
    top_is_noise = np.isin(order[:, 0], noise).mean()
    top_two_noise = np.isin(order[:, :2], noise).any(axis=1).mean()
    assert top_is_noise < 0.01 and top_two_noise < 0.03, (top_is_noise, top_two_noise)
    # an intern is held back by its seniority (among its two largest contributions for most),
    # a VP with many visits is explained first by seniority or visits
    frame = test.reset_index(drop=True)
    interns = np.flatnonzero((frame["seniority"] == "intern").to_numpy())
    seniority_in_top_two = np.any(order[interns, :2] == names.index("seniority"), axis=1)
    assert np.mean(seniority_in_top_two) > 0.75, np.mean(seniority_in_top_two)  # 0.81
    assert np.all(values[interns, names.index("seniority")] < 0)
    eager_vps = np.flatnonzero(((frame["seniority"] == "vp") & (frame["visits"] >= 5)).to_numpy())
    assert len(eager_vps) > 20
    explained = np.isin(order[eager_vps, 0], [names.index("seniority"), names.index("visits")])
    assert np.mean(explained) > 0.9, np.mean(explained)  # else: a company far off the sweet spot
    assert not np.isin(order[eager_vps, 0], noise).any()
