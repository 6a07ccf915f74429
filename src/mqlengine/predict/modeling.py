"""Learning a calibrated likelihood from a feature frame: LightGBM (early stopping, isotonic
calibration on a held-out split) and logistic regression, with held-out metrics.

Models serialise to JSON (the LightGBM model string, the calibrator's points and the
category levels), so a stored artifact never runs code when it is loaded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy
import pandas

__all__ = ["FeatureFrame", "FittedModel", "fit_best", "fit_logistic"]


@dataclass(frozen=True)
class FeatureFrame:
    """One row per lead; categorical columns have dtype ``category``, numeric ones float."""

    frame: pandas.DataFrame
    categorical: tuple[str, ...]
    order: numpy.ndarray | None = None  # a time per row (datetime64) when history spans time


@dataclass
class FittedModel:
    kind: str
    features: tuple[str, ...]
    categorical: tuple[str, ...]
    params: dict[str, Any]
    calibration: str
    metrics: dict[str, float]
    levels: dict[str, list[str]] = field(default_factory=dict)
    booster_text: str | None = None
    calibrator: tuple[list[float], list[float]] | None = None  # isotonic x, y
    linear: dict[str, Any] | None = None  # logistic: coefficients, scaling, one-hot columns
    _booster: Any = field(default=None, repr=False, compare=False)

    # -- inputs -----------------------------------------------------------------------------
    def _frame(self, X: FeatureFrame | pandas.DataFrame) -> pandas.DataFrame:
        frame = X.frame if isinstance(X, FeatureFrame) else X
        columns: dict[str, Any] = {}
        for name in self.features:
            values = frame[name] if name in frame.columns else pandas.Series([None] * len(frame))
            if name in self.categorical:
                columns[name] = pandas.Categorical(
                    values.astype("object").where(values.notna(), None),
                    categories=self.levels.get(name, []),
                )
            else:
                columns[name] = pandas.to_numeric(values, errors="coerce").astype(float).to_numpy()
        return pandas.DataFrame(columns, index=range(len(frame)))

    def _booster_model(self) -> Any:
        if self._booster is None:
            import lightgbm

            self._booster = lightgbm.Booster(model_str=self.booster_text)
        return self._booster

    def _raw(self, X: FeatureFrame | pandas.DataFrame) -> numpy.ndarray:
        frame = self._frame(X)
        if self.kind == "lightgbm":
            raw: numpy.ndarray = numpy.asarray(self._booster_model().predict(frame), dtype=float)
            return raw
        assert self.linear is not None
        return _sigmoid(_linear_design(frame, self) @ numpy.asarray(self.linear["coef"]))

    # -- outputs ----------------------------------------------------------------------------
    def predict(self, X: FeatureFrame | pandas.DataFrame) -> numpy.ndarray:
        """Calibrated P(y = 1) per row."""
        raw = self._raw(X)
        if self.calibrator is not None:
            xs, ys = self.calibrator
            calibrated: numpy.ndarray = numpy.clip(numpy.interp(raw, xs, ys), 0.0, 1.0)
            return calibrated
        return raw

    def contributions(
        self, X: FeatureFrame | pandas.DataFrame
    ) -> tuple[numpy.ndarray, tuple[str, ...]]:
        """Per row, each feature's signed contribution to the log-odds, then the bias."""
        frame = self._frame(X)
        names = (*self.features, "bias")
        if self.kind == "lightgbm":
            values = self._booster_model().predict(frame, pred_contrib=True)
            return numpy.asarray(values, dtype=float), names
        assert self.linear is not None
        design = _linear_design(frame, self)
        coef = numpy.asarray(self.linear["coef"])
        terms = design * coef
        columns: list[str] = self.linear["columns"]
        out = numpy.zeros((len(frame), len(names)))
        for j, column in enumerate(columns):
            source = column.split("=", 1)[0]
            index = names.index(source) if source in names else len(names) - 1
            out[:, index] += terms[:, j]
        return out, names

    # -- storage ----------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        payload = {
            "kind": self.kind,
            "features": list(self.features),
            "categorical": list(self.categorical),
            "params": self.params,
            "calibration": self.calibration,
            "metrics": self.metrics,
            "levels": self.levels,
            "booster": self.booster_text,
            "calibrator": list(self.calibrator) if self.calibrator is not None else None,
            "linear": self.linear,
        }
        return json.dumps(payload, sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> FittedModel:
        payload = json.loads(data.decode("utf-8"))
        calibrator = payload.get("calibrator")
        return cls(
            kind=payload["kind"],
            features=tuple(payload["features"]),
            categorical=tuple(payload["categorical"]),
            params=dict(payload["params"]),
            calibration=payload["calibration"],
            metrics=dict(payload["metrics"]),
            levels={k: list(v) for k, v in payload["levels"].items()},
            booster_text=payload.get("booster"),
            calibrator=(list(calibrator[0]), list(calibrator[1])) if calibrator else None,
            linear=payload.get("linear"),
        )


def _sigmoid(values: numpy.ndarray) -> numpy.ndarray:
    out: numpy.ndarray = 1.0 / (1.0 + numpy.exp(-numpy.clip(values, -35, 35)))
    return out


def _linear_design(frame: pandas.DataFrame, model: FittedModel) -> numpy.ndarray:
    assert model.linear is not None
    columns: list[str] = model.linear["columns"]
    means = model.linear["means"]
    scales = model.linear["scales"]
    out = numpy.zeros((len(frame), len(columns)))
    for j, column in enumerate(columns):
        if column == "bias":
            out[:, j] = 1.0
        elif "=" in column:
            name, level = column.split("=", 1)
            out[:, j] = (frame[name].astype("object") == level).to_numpy(dtype=float)
        else:
            values = frame[column].to_numpy(dtype=float)
            values = numpy.where(numpy.isnan(values), means[column], values)
            out[:, j] = (values - means[column]) / scales[column]
    return out


def _levels(X: FeatureFrame) -> dict[str, list[str]]:
    levels: dict[str, list[str]] = {}
    for name in X.categorical:
        values = X.frame[name].astype("object")
        levels[name] = sorted({str(v) for v in values if v is not None and v == v})
    return levels


def _metrics(y: numpy.ndarray, p: numpy.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    y = numpy.asarray(y, dtype=int)
    p = numpy.clip(numpy.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    both = len(set(y.tolist())) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
    }


def _split(y: numpy.ndarray, seed: int, share: float = 0.25) -> tuple[numpy.ndarray, numpy.ndarray]:
    from sklearn.model_selection import train_test_split

    index = numpy.arange(len(y))
    stratify = y if min(int(y.sum()), int(len(y) - y.sum())) >= 2 else None
    train, held = train_test_split(index, test_size=share, random_state=seed, stratify=stratify)
    return numpy.asarray(train), numpy.asarray(held)


def fit_best(
    X: FeatureFrame,
    y: numpy.ndarray,
    *,
    budget_s: float = 60,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> FittedModel:
    """LightGBM with early stopping; isotonic calibration and metrics on a held-out split."""
    import lightgbm
    from sklearn.isotonic import IsotonicRegression

    started = time.monotonic()
    y = numpy.asarray(y, dtype=int)
    model = FittedModel(
        kind="lightgbm",
        features=tuple(X.frame.columns),
        categorical=tuple(X.categorical),
        params={},
        calibration="isotonic",
        metrics={},
        levels=_levels(X),
    )
    frame = model._frame(X)
    train, held = _split(y, seed)
    fit_part, stop_part = _split(y[train], seed + 1, 0.2)
    fit_index, stop_index = train[fit_part], train[stop_part]
    params: dict[str, Any] = {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": max(3, min(20, len(y) // 50)),
        "feature_fraction": 0.9,
        "bagging_fraction": 0.9,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "cat_smooth": 5,
        "min_data_per_group": 5,
        "seed": seed,
        "deterministic": True,
        "num_threads": 1,
        "verbose": -1,
    }
    train_set = lightgbm.Dataset(
        frame.iloc[fit_index], y[fit_index], categorical_feature=list(X.categorical)
    )
    stop_set = lightgbm.Dataset(frame.iloc[stop_index], y[stop_index], reference=train_set)
    booster = lightgbm.train(
        params,
        train_set,
        num_boost_round=500,
        valid_sets=[stop_set],
        callbacks=[lightgbm.early_stopping(50, verbose=False)],
    )
    best = booster.best_iteration or booster.current_iteration()
    model.booster_text = booster.model_to_string(num_iteration=best)
    model.params = {**params, "num_boost_round": best}
    model._booster = None
    raw_held = model._raw(frame.iloc[held].reset_index(drop=True))
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    iso.fit(raw_held, y[held])
    model.calibrator = (
        [float(v) for v in iso.X_thresholds_],
        [float(v) for v in iso.y_thresholds_],
    )
    model.metrics = _metrics(y[held], model.predict(frame.iloc[held].reset_index(drop=True)))
    if progress is not None:
        progress(f"lightgbm: {best} trees in {time.monotonic() - started:.1f}s")
    return model


def fit_logistic(X: FeatureFrame, y: numpy.ndarray, *, seed: int = 0) -> FittedModel:
    """L2 logistic regression on standardised numbers and one-hot categories."""
    from sklearn.linear_model import LogisticRegression

    y = numpy.asarray(y, dtype=int)
    model = FittedModel(
        kind="logistic",
        features=tuple(X.frame.columns),
        categorical=tuple(X.categorical),
        params={"C": 1.0},
        calibration="none",
        metrics={},
        levels=_levels(X),
    )
    frame = model._frame(X)
    columns: list[str] = []
    means: dict[str, float] = {}
    scales: dict[str, float] = {}
    for name in model.features:
        if name in model.categorical:
            columns.extend(f"{name}={level}" for level in model.levels[name])
        else:
            values = frame[name].to_numpy(dtype=float)
            mean = float(numpy.nanmean(values)) if numpy.isfinite(values).any() else 0.0
            std = float(numpy.nanstd(values)) if numpy.isfinite(values).any() else 1.0
            means[name], scales[name] = mean, std if std > 0 else 1.0
            columns.append(name)
    model.linear = {"columns": [*columns, "bias"], "means": means, "scales": scales, "coef": []}
    design = _linear_design(frame, model)
    train, held = _split(y, seed)
    fitted = LogisticRegression(C=1.0, max_iter=1000, fit_intercept=False)
    fitted.fit(design[train], y[train])
    model.linear["coef"] = [float(v) for v in fitted.coef_[0]]
    model.metrics = _metrics(y[held], model.predict(frame.iloc[held].reset_index(drop=True)))
    return model
