"""The predictive likelihood: LightGBM tuned within a time budget and calibrated, or a
regularised logistic regression as the simple alternative.

How :func:`fit_best` spends its budget:

1. **Hold out** the latest 20 % of the rows (when ``order`` spans time) or a stratified
   20 % (otherwise): the reported ``metrics`` come from there and nothing else.
2. **Search** a fixed, seeded list of hyper-parameter sets (the first is LightGBM's
   defaults) with 3-fold cross-validation on the rest — expanding time windows (train on
   earlier, validate on later) or stratified folds — each fold stopping early on its
   validation part. Candidates are compared by mean validation log loss. A candidate is
   started only while the budget has room for it; ``max_trials`` pins their number (the
   budget alone makes the count depend on the machine's speed).
3. **Calibrate** on the winner's out-of-fold predictions: isotonic, Platt or none, chosen
   by cross-validated log loss over those predictions (never on training predictions).
4. **Refit** on every row with the averaged best iteration count; the calibrator is refit
   on all out-of-sample predictions (out-of-fold plus the held-out part).

Same data, same seed and same trial count give the same bytes (LightGBM runs with
``deterministic`` and a fixed thread count).
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from mqlengine.errors import ValidationError
from mqlengine.predict import compiled
from mqlengine.predict import metrics as m

FORMAT = "mqlengine.model/1"
THREADS = 1  # fixed: LightGBM's sums (hence its bytes) depend on the thread count, and
# OpenMP threads that spin on a shared, busy machine cost ten times their work
# batch scoring of many rows uses every core (rows are independent: the same numbers)
PREDICT_THREADS = os.cpu_count() or 1
PARALLEL_ROWS = 50_000
MAX_ROUNDS = 3000
EARLY_STOP = 50
INNER_FOLDS = 3
HOLDOUT = 0.2


F = TypeVar("F", bound=Callable[..., Any])


def _single_threaded(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with one_thread():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def one_thread() -> threadpool_limits:
    """BLAS and OpenMP on one thread: their worker threads spin while they wait, which on a
    shared or busy machine costs several times the work (and LightGBM's bytes depend on its
    thread count)."""
    return threadpool_limits(1)


@dataclass(frozen=True)
class FeatureFrame:
    """What every model takes: one row per lead; categorical columns have dtype
    ``category``, numeric ones float. ``order`` is a time per row (datetime64) when the
    history spans time."""

    frame: pd.DataFrame
    categorical: tuple[str, ...]
    order: np.ndarray | None = None

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.frame.columns)

    def take(self, rows: np.ndarray) -> FeatureFrame:
        return FeatureFrame(
            self.frame.iloc[rows].reset_index(drop=True),
            self.categorical,
            None if self.order is None else self.order[rows],
        )


# -- encoding ----------------------------------------------------------------------------


def _levels(frame: pd.DataFrame, categorical: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in categorical:
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            out[name] = [str(c) for c in column.cat.categories]
        else:
            out[name] = sorted({str(v) for v in column.dropna().unique()})
    return out


def _matrix(
    X: FeatureFrame | pd.DataFrame,
    features: Sequence[str],
    levels: dict[str, list[str]],
) -> np.ndarray:
    """The frame as a float matrix in ``features`` order: a categorical value becomes the
    index of its level (unknown or missing: NaN), a numeric one a float."""
    frame = X.frame if isinstance(X, FeatureFrame) else X
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise ValidationError(
            f"the data lacks the model's feature(s) {', '.join(missing)} "
            f"(has: {', '.join(map(str, frame.columns))})"
        )
    out = np.empty((len(frame), len(features)), dtype=np.float64)
    for j, name in enumerate(features):
        column = frame[name]
        if name in levels:
            if (
                isinstance(column.dtype, pd.CategoricalDtype)
                and [str(c) for c in column.cat.categories] == levels[name]
            ):
                codes = column.cat.codes.to_numpy()
            else:
                index = pd.Index(levels[name], dtype="string")
                codes = index.get_indexer(column.astype("string"))
            out[:, j] = np.where(codes < 0, np.nan, codes)
        else:
            try:
                out[:, j] = pd.to_numeric(column, errors="raise").to_numpy(
                    dtype=np.float64, na_value=np.nan
                )
            except (ValueError, TypeError):
                raise ValidationError(f"feature {name!r} should be numeric") from None
    return out


# -- calibration -------------------------------------------------------------------------


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-12, 1 - 1e-12)
    return np.asarray(np.log(q / (1 - q)))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


@dataclass(frozen=True)
class Calibrator:
    kind: str  # "isotonic" | "platt" | "none"
    params: dict[str, Any] = field(default_factory=dict)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated probabilities from raw log-odds."""
        if self.kind == "platt":
            return _sigmoid(self.params["a"] * raw + self.params["b"])
        if self.kind == "isotonic":
            p = np.interp(_sigmoid(raw), self.params["x"], self.params["y"])
            floor = self.params["floor"]
            return np.asarray(np.clip(p, floor, 1 - floor))
        return _sigmoid(raw)


def fit_calibrator(kind: str, raw: np.ndarray, y: np.ndarray) -> Calibrator:
    if kind == "platt":
        lr = LogisticRegression(C=1e6, max_iter=1000)
        lr.fit(raw.reshape(-1, 1), y)
        return Calibrator("platt", {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])})
    if kind == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        iso.fit(_sigmoid(raw), y)
        return Calibrator(
            "isotonic",
            {
                "x": [float(v) for v in iso.X_thresholds_],
                "y": [float(v) for v in iso.y_thresholds_],
                "floor": 1.0 / (len(y) + 2),
            },
        )
    return Calibrator("none")


def choose_calibration(raw: np.ndarray, y: np.ndarray, seed: int) -> tuple[str, dict[str, float]]:
    """The calibration with the lowest cross-validated log loss over out-of-sample raw
    predictions (each calibrator fit on 4/5 of them, scored on the other 1/5)."""
    losses: dict[str, float] = {}
    folds = list(stratified_folds(y, 5, seed))
    for kind in ("none", "platt", "isotonic"):
        total = 0.0
        for train, test in folds:
            cal = fit_calibrator(kind, raw[train], y[train])
            total += m.log_loss(y[test], cal.apply(raw[test])) * len(test)
        losses[kind] = total / len(y)
    best = min(losses, key=lambda k: (losses[k], k != "none"))
    return best, losses


# -- splits ------------------------------------------------------------------------------


def stratified_folds(y: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    smallest = int(min(y.sum(), len(y) - y.sum()))
    k = max(2, min(k, smallest))
    return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(y, y))


def spans_time(order: np.ndarray | None) -> bool:
    if order is None or len(order) == 0:
        return False
    values = pd.Series(order)
    return bool(values.notna().all() and values.nunique() > 1)


def _holdout(y: np.ndarray, order: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(y)
    if spans_time(order):
        assert order is not None
        ranked = np.argsort(order, kind="stable")
        cut = n - max(1, round(n * HOLDOUT))
        return np.sort(ranked[:cut]), np.sort(ranked[cut:])
    train, test = stratified_folds(y, round(1 / HOLDOUT), seed)[0]
    return train, test


def _inner_folds(
    y: np.ndarray, order: np.ndarray | None, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    if spans_time(order):
        assert order is not None
        ranked = np.argsort(order, kind="stable")
        chunks = np.array_split(ranked, INNER_FOLDS + 1)
        return [
            (np.sort(np.concatenate(chunks[: i + 1])), np.sort(chunks[i + 1]))
            for i in range(INNER_FOLDS)
        ]
    return stratified_folds(y, INNER_FOLDS, seed)


# -- the search space --------------------------------------------------------------------

DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_child_samples": 20,
    "feature_fraction": 1.0,
    "lambda_l2": 0.0,
    "cat_smooth": 10.0,
    "max_cat_to_onehot": 4,
    "additive": False,
}
SPACE: dict[str, list[Any]] = {
    "learning_rate": [0.02, 0.03, 0.05, 0.08],
    "num_leaves": [4, 7, 15, 31, 63],
    "min_child_samples": [10, 20, 50, 100, 200],
    "feature_fraction": [0.5, 0.7, 0.85, 1.0],
    "lambda_l2": [0.0, 1.0, 5.0, 20.0],
    "cat_smooth": [1.0, 10.0, 50.0],
    "max_cat_to_onehot": [4, 16],
    "additive": [False, False, False, True],  # interaction constraints: each feature alone
}


def candidates(seed: int, count: int = 60) -> list[dict[str, Any]]:
    """LightGBM's defaults, a conservative prior, then seeded random draws (no repeats)."""
    out = [
        dict(DEFAULTS),
        {
            "learning_rate": 0.05,
            "num_leaves": 15,
            "min_child_samples": 50,
            "feature_fraction": 0.7,
            "lambda_l2": 5.0,
            "cat_smooth": 10.0,
            "max_cat_to_onehot": 4,
            "additive": False,
        },
    ]
    rng = np.random.default_rng(seed)
    seen = {json.dumps(c, sort_keys=True) for c in out}
    while len(out) < count:
        draw = {k: v[int(rng.integers(len(v)))] for k, v in SPACE.items()}
        key = json.dumps(draw, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(draw)
    return out


def _lgb_params(choice: dict[str, Any], n_features: int, seed: int) -> dict[str, Any]:
    params: dict[str, Any] = {
        "objective": "binary",
        "verbosity": -1,
        "seed": seed,
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": THREADS,
        "learning_rate": choice["learning_rate"],
        "num_leaves": choice["num_leaves"],
        "min_child_samples": choice["min_child_samples"],
        "feature_fraction": choice["feature_fraction"],
        "lambda_l2": choice["lambda_l2"],
        "cat_smooth": choice["cat_smooth"],
        "max_cat_to_onehot": choice["max_cat_to_onehot"],
        "min_data_per_group": max(5, min(100, choice["min_child_samples"])),
        "cat_l2": 10.0,
    }
    if choice.get("additive") and n_features > 1:
        params["interaction_constraints"] = [[i] for i in range(n_features)]
    return params


def _dataset(
    matrix: np.ndarray, y: np.ndarray | None, features: Sequence[str], cat_idx: list[int]
) -> lgb.Dataset:
    return lgb.Dataset(
        matrix,
        label=y,
        feature_name=list(features),
        categorical_feature=cat_idx,
        free_raw_data=False,
        params={"verbosity": -1, "max_bin": 255},
    )


@dataclass
class _Trial:
    choice: dict[str, Any]
    log_loss: float
    auc: float
    rounds: int
    oof: np.ndarray  # raw log-odds out of fold (NaN where a row was never validated)
    seconds: float


def _cross_validate(
    matrix: np.ndarray,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    choice: dict[str, Any],
    features: Sequence[str],
    cat_idx: list[int],
    seed: int,
) -> _Trial:
    started = time.perf_counter()
    params = _lgb_params(choice, len(features), seed)
    oof = np.full(len(y), np.nan)
    rounds = []
    for train, valid in folds:
        dtrain = _dataset(matrix[train], y[train], features, cat_idx)
        dvalid = _dataset(matrix[valid], y[valid], features, cat_idx)
        dvalid.reference = dtrain
        booster = lgb.train(
            params,
            dtrain,
            num_boost_round=MAX_ROUNDS,
            valid_sets=[dvalid],
            callbacks=[lgb.early_stopping(EARLY_STOP, verbose=False)],
        )
        best = booster.best_iteration or booster.current_iteration()
        rounds.append(best)
        oof[valid] = booster.predict(matrix[valid], num_iteration=best, raw_score=True)
    seen = ~np.isnan(oof)
    p = _sigmoid(oof[seen])
    return _Trial(
        choice,
        m.log_loss(y[seen], p),
        m.roc_auc(y[seen], p),
        round(float(np.mean(rounds))),
        oof,
        time.perf_counter() - started,
    )


# -- the fitted model --------------------------------------------------------------------


class FittedModel:
    """A trained, calibrated model: ``predict`` gives P(y=1) per row."""

    def __init__(
        self,
        *,
        kind: str,
        features: tuple[str, ...],
        categorical: tuple[str, ...],
        levels: dict[str, list[str]],
        params: dict[str, Any],
        calibration: str,
        calibrator: Calibrator,
        metrics: dict[str, float],
        booster: lgb.Booster | None = None,
        linear: dict[str, Any] | None = None,
    ) -> None:
        self.kind = kind
        self.features = features
        self.categorical = categorical
        self.levels = levels
        self.params = params
        self.calibration = calibration
        self.calibrator = calibrator
        self.metrics = metrics
        self.booster = booster
        self.linear = linear

    def __repr__(self) -> str:
        return (
            f"FittedModel(kind={self.kind!r}, features={len(self.features)}, "
            f"calibration={self.calibration!r})"
        )

    # predictions

    def matrix(self, X: FeatureFrame | pd.DataFrame) -> np.ndarray:
        return _matrix(X, self.features, self.levels)

    def raw(self, X: FeatureFrame | pd.DataFrame | np.ndarray) -> np.ndarray:
        """Uncalibrated log-odds."""
        matrix = X if isinstance(X, np.ndarray) else self.matrix(X)
        if self.booster is not None:
            threads = PREDICT_THREADS if len(matrix) >= PARALLEL_ROWS else THREADS
            if len(matrix) >= compiled.COMPILE_ROWS and compiled.available():
                return compiled.raw_scores(self.compiled(), matrix, threads)
            return np.asarray(self.booster.predict(matrix, raw_score=True, num_threads=threads))
        assert self.linear is not None
        design = _linear_design(matrix, self.features, self.levels, self.linear)
        coef = np.asarray(self.linear["coef"])
        return np.asarray(design @ coef + float(self.linear["intercept"]))

    def compiled(self) -> Any:
        """The trees compiled to machine code (:mod:`mqlengine.predict.compiled`): what
        :meth:`raw` uses for a batch of ``compiled.COMPILE_ROWS`` rows or more."""
        assert self.booster is not None
        return compiled.compiled_forest(self.booster.model_to_string(num_iteration=-1))

    def predict(self, X: FeatureFrame | pd.DataFrame | np.ndarray) -> np.ndarray:
        """Calibrated P(y=1) per row."""
        return self.calibrator.apply(self.raw(X))

    def contributions(self, X: FeatureFrame | pd.DataFrame) -> tuple[np.ndarray, tuple[str, ...]]:
        """Per-row contributions to the raw log-odds (before calibration): one column per
        feature, then ``bias``; each row sums to the raw score."""
        matrix = self.matrix(X)
        columns = (*self.features, "bias")
        if self.booster is not None:
            values = self.booster.predict(matrix, pred_contrib=True, num_threads=THREADS)
            return np.asarray(values), columns
        assert self.linear is not None
        design = _linear_design(matrix, self.features, self.levels, self.linear)
        coef = np.asarray(self.linear["coef"])
        parts = design * coef
        out = np.zeros((len(matrix), len(self.features) + 1))
        for j, (start, stop) in enumerate(self.linear["spans"]):
            out[:, j] = parts[:, start:stop].sum(axis=1)
        out[:, -1] = float(self.linear["intercept"])
        return out, columns

    def importance(self) -> list[tuple[str, float]]:
        """Features by share of total gain (LightGBM) or of |contribution| spread (logistic),
        largest first."""
        if self.booster is not None:
            gain = np.asarray(self.booster.feature_importance("gain"), dtype=np.float64)
        else:
            assert self.linear is not None
            coef = np.abs(np.asarray(self.linear["coef"]))
            gain = np.array([coef[a:b].sum() for a, b in self.linear["spans"]])
        total = gain.sum() or 1.0
        pairs = [(f, float(g / total)) for f, g in zip(self.features, gain, strict=True)]
        return sorted(pairs, key=lambda fg: (-fg[1], fg[0]))

    # serialisation

    def to_bytes(self) -> bytes:
        """JSON: the LightGBM model string (or the logistic coefficients), the calibrator's
        parameters and the category levels; no pickled code."""
        document: dict[str, Any] = {
            "format": FORMAT,
            "kind": self.kind,
            "features": list(self.features),
            "categorical": list(self.categorical),
            "levels": self.levels,
            "params": self.params,
            "calibration": self.calibration,
            "calibrator": self.calibrator.params,
            "metrics": self.metrics,
        }
        if self.booster is not None:
            document["booster"] = self.booster.model_to_string(num_iteration=-1)
        else:
            document["linear"] = self.linear
        return json.dumps(document, sort_keys=True, allow_nan=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> FittedModel:
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as error:
            raise ValidationError(f"not a model file (JSON expected): {error}") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValidationError(f"not a model file of this version (format {FORMAT} expected)")
        booster = lgb.Booster(model_str=document["booster"]) if document.get("booster") else None
        return cls(
            kind=document["kind"],
            features=tuple(document["features"]),
            categorical=tuple(document["categorical"]),
            levels={k: list(v) for k, v in document["levels"].items()},
            params=document["params"],
            calibration=document["calibration"],
            calibrator=Calibrator(document["calibration"], document["calibrator"]),
            metrics=document["metrics"],
            booster=booster,
            linear=document.get("linear"),
        )


def _prepare(X: FeatureFrame, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_arr = np.asarray(y, dtype=np.float64).ravel()
    if len(y_arr) != len(X.frame):
        raise ValidationError(f"{len(X.frame)} rows but {len(y_arr)} labels")
    if not np.isin(y_arr, (0.0, 1.0)).all():
        raise ValidationError("labels must be 0 or 1")
    positives = int(y_arr.sum())
    if positives < 2 or len(y_arr) - positives < 2:
        raise ValidationError(
            f"the label needs at least 2 rows of each class (has {positives} positive, "
            f"{len(y_arr) - positives} negative)"
        )
    unknown = [c for c in X.categorical if c not in X.frame.columns]
    if unknown:
        raise ValidationError(f"categorical column(s) not in the frame: {', '.join(unknown)}")
    return y_arr, X.frame.columns.to_numpy()


@_single_threaded
def fit_lightgbm(
    X: FeatureFrame,
    y: np.ndarray,
    choice: dict[str, Any],
    *,
    rounds: int,
    seed: int = 0,
) -> lgb.Booster:
    """One LightGBM fit on every row with fixed hyper-parameters and round count."""
    features = X.features
    levels = _levels(X.frame, X.categorical)
    matrix = _matrix(X, features, levels)
    cat_idx = [features.index(c) for c in X.categorical]
    return lgb.train(
        _lgb_params(choice, len(features), seed),
        _dataset(matrix, np.asarray(y, dtype=np.float64), features, cat_idx),
        num_boost_round=max(1, rounds),
    )


@_single_threaded
def fit_default(X: FeatureFrame, y: np.ndarray, *, seed: int = 0) -> FittedModel:
    """LightGBM as it comes (its default parameters, 100 rounds, no calibration): the
    yardstick tuning is measured against."""
    y_arr, _ = _prepare(X, y)
    features = X.features
    levels = _levels(X.frame, X.categorical)
    booster = fit_lightgbm(X, y_arr, DEFAULTS, rounds=100, seed=seed)
    return FittedModel(
        kind="lightgbm",
        features=features,
        categorical=X.categorical,
        levels=levels,
        params={**DEFAULTS, "rounds": 100},
        calibration="none",
        calibrator=Calibrator("none"),
        metrics={},
        booster=booster,
    )


@_single_threaded
def fit_best(
    X: FeatureFrame,
    y: np.ndarray,
    *,
    budget_s: float = 60,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    max_trials: int | None = None,
) -> FittedModel:
    """LightGBM tuned within ``budget_s`` seconds, early-stopped and calibrated (see the
    module's docstring for the procedure). ``max_trials`` caps the number of
    hyper-parameter sets tried (for results that do not depend on the machine's speed)."""
    started = time.perf_counter()
    say = progress or (lambda _message: None)
    y_arr, _ = _prepare(X, y)
    features = X.features
    levels = _levels(X.frame, X.categorical)
    matrix = _matrix(X, features, levels)
    cat_idx = [features.index(c) for c in X.categorical]
    order = X.order
    by_time = spans_time(order)

    dev, test = _holdout(y_arr, order, seed)
    dev_order = None if order is None else order[dev]
    folds = _inner_folds(y_arr[dev], dev_order, seed)
    say(
        f"{len(y_arr):,} rows, {len(features)} features ({len(cat_idx)} categorical); "
        f"validation {'by time' if by_time else 'stratified'}; held out {len(test):,}"
    )
    pool = candidates(seed)
    limit = len(pool) if max_trials is None else max(1, min(max_trials, len(pool)))
    trials: list[_Trial] = []
    for index, choice in enumerate(pool[:limit]):
        elapsed = time.perf_counter() - started
        if max_trials is None and index >= 2:
            per_trial = max(t.seconds for t in trials)
            # keep about a fifth of the budget for calibration and the two refits
            if elapsed + per_trial > 0.8 * budget_s:
                break
        trial = _cross_validate(matrix[dev], y_arr[dev], folds, choice, features, cat_idx, seed)
        trials.append(trial)
        say(
            f"trial {index + 1}: log loss {trial.log_loss:.4f}, AUC {trial.auc:.4f}, "
            f"{trial.rounds} rounds ({trial.seconds:.1f}s)"
        )
    best = min(trials, key=lambda t: (t.log_loss, trials.index(t)))
    default_trial = trials[0]
    say(
        f"best of {len(trials)}: log loss {best.log_loss:.4f} (defaults "
        f"{default_trial.log_loss:.4f}), AUC {best.auc:.4f} (defaults {default_trial.auc:.4f})"
    )

    # a model on the development rows, for the held-out figures
    rounds = best.rounds
    params = _lgb_params(best.choice, len(features), seed)
    dev_model = lgb.train(
        params,
        _dataset(matrix[dev], y_arr[dev], features, cat_idx),
        num_boost_round=max(1, rounds),
    )
    test_raw = np.asarray(dev_model.predict(matrix[test], raw_score=True))
    seen = ~np.isnan(best.oof)
    oof_raw, oof_y = best.oof[seen], y_arr[dev][seen]
    calibration, losses = choose_calibration(oof_raw, oof_y, seed)
    calibrator = fit_calibrator(calibration, oof_raw, oof_y)
    held = m.scores(y_arr[test], calibrator.apply(test_raw))
    say(
        f"calibration {calibration} (CV log loss: "
        + ", ".join(f"{k} {v:.4f}" for k, v in losses.items())
        + f"); held out: AUC {held['roc_auc']:.4f}, log loss {held['log_loss']:.4f}"
    )

    # the final model on every row; the calibrator on every out-of-sample prediction
    scale = 1.0 + 1.0 / INNER_FOLDS if not by_time else 1.0 + HOLDOUT
    final_rounds = max(1, round(rounds * scale))
    booster = lgb.train(
        params, _dataset(matrix, y_arr, features, cat_idx), num_boost_round=final_rounds
    )
    all_raw = np.concatenate([oof_raw, test_raw])
    all_y = np.concatenate([oof_y, y_arr[test]])
    calibrator = fit_calibrator(calibration, all_raw, all_y)
    chosen = {**best.choice, "rounds": final_rounds}
    return FittedModel(
        kind="lightgbm",
        features=features,
        categorical=X.categorical,
        levels=levels,
        params={
            **chosen,
            "trials": len(trials),
            "validation": "time" if by_time else "stratified",
            "cv_log_loss": best.log_loss,
            "cv_auc": best.auc,
            "default_cv_log_loss": default_trial.log_loss,
            "default_cv_auc": default_trial.auc,
        },
        calibration=calibration,
        calibrator=calibrator,
        metrics=held,
        booster=booster,
    )


# -- regularised logistic regression -----------------------------------------------------

CS = (0.01, 0.1, 1.0, 10.0)


def _linear_stats(
    matrix: np.ndarray, features: Sequence[str], levels: dict[str, list[str]]
) -> dict[str, Any]:
    """One-hot columns for each categorical level (and its missing value), and for numeric
    columns the median (imputed), mean and spread (standardised) and a missing flag."""
    numeric: dict[str, dict[str, float]] = {}
    spans: list[tuple[int, int]] = []
    width = 0
    for j, name in enumerate(features):
        if name in levels:
            size = len(levels[name]) + 1
        else:
            column = matrix[:, j]
            present = column[~np.isnan(column)]
            median = float(np.median(present)) if present.size else 0.0
            filled = np.where(np.isnan(column), median, column)
            std = float(filled.std()) or 1.0
            numeric[name] = {
                "median": median,
                "mean": float(filled.mean()),
                "std": std,
                "flag": float(np.isnan(column).any()),
            }
            size = 2 if numeric[name]["flag"] else 1
        spans.append((width, width + size))
        width += size
    return {"numeric": numeric, "spans": spans, "width": width}


def _linear_design(
    matrix: np.ndarray,
    features: Sequence[str],
    levels: dict[str, list[str]],
    linear: dict[str, Any],
) -> np.ndarray:
    out = np.zeros((len(matrix), int(linear["width"])))
    for j, name in enumerate(features):
        start, _stop = linear["spans"][j]
        column = matrix[:, j]
        if name in levels:
            codes = np.where(np.isnan(column), len(levels[name]), column).astype(np.int64)
            out[np.arange(len(matrix)), start + codes] = 1.0
        else:
            stats = linear["numeric"][name]
            missing = np.isnan(column)
            filled = np.where(missing, stats["median"], column)
            out[:, start] = (filled - stats["mean"]) / stats["std"]
            if stats["flag"]:
                out[:, start + 1] = missing
    return out


def _logistic(C: float, seed: int) -> LogisticRegression:
    return LogisticRegression(C=C, max_iter=2000, random_state=seed)


@_single_threaded
def fit_logistic(X: FeatureFrame, y: np.ndarray, *, seed: int = 0) -> FittedModel:
    """L2-regularised logistic regression on one-hot categoricals and standardised
    numerics; C chosen by 3-fold cross-validated log loss. ``metrics`` are the chosen C's
    out-of-fold figures."""
    y_arr, _ = _prepare(X, y)
    features = X.features
    levels = _levels(X.frame, X.categorical)
    matrix = _matrix(X, features, levels)
    folds = stratified_folds(y_arr, 3, seed)
    best: tuple[float, float, np.ndarray] | None = None
    for C in CS:
        oof = np.zeros(len(y_arr))
        for train, test in folds:
            stats = _linear_stats(matrix[train], features, levels)
            lr = _logistic(C, seed).fit(
                _linear_design(matrix[train], features, levels, stats), y_arr[train]
            )
            oof[test] = lr.predict_proba(_linear_design(matrix[test], features, levels, stats))[
                :, 1
            ]
        loss = m.log_loss(y_arr, oof)
        if best is None or loss < best[1]:
            best = (C, loss, oof)
    assert best is not None
    C, _loss, oof = best
    stats = _linear_stats(matrix, features, levels)
    lr = _logistic(C, seed).fit(_linear_design(matrix, features, levels, stats), y_arr)
    linear = {
        **stats,
        "coef": [float(v) for v in lr.coef_[0]],
        "intercept": float(lr.intercept_[0]),
    }
    return FittedModel(
        kind="logistic",
        features=features,
        categorical=X.categorical,
        levels=levels,
        params={"C": C, "penalty": "l2"},
        calibration="none",
        calibrator=Calibrator("none"),
        metrics=m.scores(y_arr, oof),
        linear=linear,
    )
