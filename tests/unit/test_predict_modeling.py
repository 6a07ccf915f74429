"""The modelling core on synthetic leads with known drivers: what it learns, how it is
validated and calibrated, that it is deterministic, and that it survives a round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mqlengine.errors import ValidationError
from mqlengine.predict import metrics as m
from mqlengine.predict import modeling as md
from mqlengine.predict import synthetic

CATEGORICAL = ("seniority", "industry", "noise_cat")


@pytest.fixture(scope="module")
def leads() -> tuple[md.FeatureFrame, np.ndarray]:
    frame, y = synthetic.leads(3000, seed=1)
    return md.FeatureFrame(frame, CATEGORICAL), y


@pytest.fixture(scope="module")
def fresh() -> tuple[pd.DataFrame, np.ndarray]:
    return synthetic.leads(4000, seed=2)


@pytest.fixture(scope="module")
def tuned(leads: tuple[md.FeatureFrame, np.ndarray]) -> md.FittedModel:
    X, y = leads
    return md.fit_best(X, y, seed=0, max_trials=3)


def test_the_true_drivers_rank_first_and_noise_last(tuned: md.FittedModel) -> None:
    ranked = [name for name, _share in tuned.importance()]
    assert set(ranked[:4]) == set(synthetic.DRIVERS)
    assert set(ranked[4:]) == {"noise_num", "noise_cat"}


def test_tuned_model_predicts_unseen_leads(
    tuned: md.FittedModel, fresh: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, y = fresh
    p = tuned.predict(frame)
    assert p.shape == (len(frame),) and np.all((p > 0) & (p < 1))
    scores = m.scores(y, p)
    assert scores["roc_auc"] > 0.78
    base = m.log_loss(y, np.full(len(y), y.mean()))
    assert scores["log_loss"] < base - 0.05  # far better than the base rate alone
    assert tuned.kind == "lightgbm" and tuned.params["trials"] == 3
    assert set(tuned.metrics) == {"roc_auc", "pr_auc", "log_loss", "brier"}
    assert tuned.params["validation"] == "stratified"
    assert tuned.calibration in ("isotonic", "platt", "none")


def test_same_seed_same_bytes_other_seed_other_model(
    leads: tuple[md.FeatureFrame, np.ndarray], tuned: md.FittedModel
) -> None:
    X, y = leads
    again = md.fit_best(X, y, seed=0, max_trials=3)
    assert again.to_bytes() == tuned.to_bytes()
    assert again.metrics == tuned.metrics
    other = md.fit_best(X, y, seed=1, max_trials=3)
    assert other.to_bytes() != tuned.to_bytes()


def test_round_trip_and_contributions(
    tuned: md.FittedModel, fresh: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, _y = fresh
    data = tuned.to_bytes()
    assert b"pickle" not in data and data.startswith(b"{")
    loaded = md.FittedModel.from_bytes(data)
    assert loaded.features == tuned.features and loaded.calibration == tuned.calibration
    assert np.array_equal(loaded.predict(frame), tuned.predict(frame))
    values, columns = loaded.contributions(frame.head(50))
    assert columns == (*tuned.features, "bias")
    assert np.allclose(values.sum(axis=1), tuned.raw(frame.head(50)))
    # a level never seen in training and a missing number still score
    odd = frame.head(2).copy()
    odd["seniority"] = ["astronaut", None]
    odd["employees"] = [np.nan, 10.0]
    assert np.all(np.isfinite(loaded.predict(odd)))


def test_missing_feature_and_bad_model_file_are_clear_errors(tuned: md.FittedModel) -> None:
    frame, _ = synthetic.leads(10, seed=3)
    with pytest.raises(ValidationError, match=r"lacks the model's feature.*visits"):
        tuned.predict(frame.drop(columns=["visits"]))
    with pytest.raises(ValidationError, match="not a model file"):
        md.FittedModel.from_bytes(b'{"format": "something else"}')
    with pytest.raises(ValidationError, match="JSON expected"):
        md.FittedModel.from_bytes(b"\x80garbage")


def test_single_class_label_is_refused() -> None:
    frame, _ = synthetic.leads(100, seed=4)
    X = md.FeatureFrame(frame, CATEGORICAL)
    with pytest.raises(ValidationError, match="at least 2 rows of each class"):
        md.fit_best(X, np.zeros(100), max_trials=1)
    with pytest.raises(ValidationError, match="100 rows but 99 labels"):
        md.fit_logistic(X, np.zeros(99))


def test_time_order_validates_on_later_rows() -> None:
    frame, y = synthetic.leads(1500, seed=5)
    order = np.datetime64("2026-01-01") + np.arange(1500).astype("timedelta64[h]")
    model = md.fit_best(md.FeatureFrame(frame, CATEGORICAL, order), y, max_trials=2)
    assert model.params["validation"] == "time"
    # the held-out rows are the latest fifth
    dev, test = md._holdout(y, order, 0)
    assert order[test].min() > order[dev].max()
    folds = md._inner_folds(y[dev], order[dev], 0)
    assert all(order[dev][valid].min() > order[dev][train].max() for train, valid in folds)
    # a single moment does not span time: stratified folds
    same = np.full(1500, np.datetime64("2026-01-01"))
    assert not md.spans_time(same) and md.spans_time(order)


def test_calibration_on_out_of_fold_predictions_repairs_an_overconfident_model() -> None:
    """A deliberately overfitted LightGBM on a skewed set (about 4–5 % positive) is
    overconfident; the calibrator chosen and fitted on its out-of-fold predictions lowers
    the log loss on leads it never saw."""
    frame, y = synthetic.leads(3000, seed=6, base=-6.0)
    fresh, y_fresh = synthetic.leads(8000, seed=7, base=-6.0)
    assert 0.02 < y.mean() < 0.08
    X = md.FeatureFrame(frame, CATEGORICAL)
    loose = {**md.DEFAULTS, "num_leaves": 63, "min_child_samples": 2, "learning_rate": 0.2}
    oof = np.zeros(len(y))
    for train, test in md.stratified_folds(y, 5, 0):
        booster = md.fit_lightgbm(X.take(train), y[train], loose, rounds=100)
        oof[test] = booster.predict(
            md._matrix(X.take(test), X.features, md._levels(frame, CATEGORICAL)), raw_score=True
        )
    kind, losses = md.choose_calibration(oof, y, seed=0)
    assert kind in ("isotonic", "platt") and losses[kind] < losses["none"]
    calibrator = md.fit_calibrator(kind, oof, y)
    booster = md.fit_lightgbm(X, y, loose, rounds=100)
    raw = booster.predict(
        md._matrix(fresh, X.features, md._levels(frame, CATEGORICAL)), raw_score=True
    )
    uncalibrated = m.log_loss(y_fresh, md.Calibrator("none").apply(raw))
    calibrated = m.log_loss(y_fresh, calibrator.apply(raw))
    assert calibrated < uncalibrated * 0.8


def test_logistic_regression_learns_and_explains(
    leads: tuple[md.FeatureFrame, np.ndarray], fresh: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, y = leads
    model = md.fit_logistic(X, y)
    frame, y_fresh = fresh
    assert model.kind == "logistic" and model.params["C"] in md.CS
    assert m.roc_auc(y_fresh, model.predict(frame)) > 0.72
    values, columns = model.contributions(frame.head(20))
    assert columns[-1] == "bias"
    assert np.allclose(values.sum(axis=1), model.raw(frame.head(20)))
    loaded = md.FittedModel.from_bytes(model.to_bytes())
    assert np.allclose(loaded.predict(frame), model.predict(frame))
    top = [name for name, _ in model.importance()[:2]]
    assert set(top) <= set(synthetic.DRIVERS)
