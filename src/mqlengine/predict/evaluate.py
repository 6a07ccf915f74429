"""Comparing models on one table by 5-fold stratified cross-validation with a fixed seed:
the tuned, calibrated LightGBM (``model``), LightGBM with its defaults
(``lightgbm_default``), regularised logistic regression (``logistic``), Odoo-style naive
Bayes (``naive_bayes``) and, when a definition's fit rules read the table's columns, its fit
score (``rules``; turned into a probability by a logistic fit on the training folds).

Every figure comes from out-of-fold predictions: each row is predicted by models that never
saw it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mqlengine.definition.compiler import LoadedDefinition
from mqlengine.definition.schema import AllCondition, AnyCondition, LeafCondition, NotCondition
from mqlengine.domain.scoring import Scorer
from mqlengine.predict import metrics as m
from mqlengine.predict.baselines import NaiveBayes
from mqlengine.predict.modeling import (
    fit_best,
    fit_calibrator,
    fit_default,
    fit_logistic,
    stratified_folds,
)
from mqlengine.predict.tabular import Table

FOLDS = 5
MODELS = ("model", "lightgbm_default", "logistic", "naive_bayes", "rules")


def condition_traits(condition: Any) -> Iterator[str]:
    """The trait names a definition condition reads."""
    if isinstance(condition, LeafCondition):
        if condition.trait is not None:
            yield condition.trait
    elif isinstance(condition, AllCondition):
        for part in condition.all:
            yield from condition_traits(part)
    elif isinstance(condition, AnyCondition):
        for part in condition.any:
            yield from condition_traits(part)
    elif isinstance(condition, NotCondition):
        yield from condition_traits(condition.not_)


def rules_apply(loaded: LoadedDefinition | None, table: Table) -> list[str]:
    """The table's columns the definition's fit rules read (none: the rules do not apply)."""
    if loaded is None:
        return []
    columns = set(map(str, table.source.columns))
    read = {t for rule in loaded.spec.fit.rules for t in condition_traits(rule.when)}
    return sorted(read & columns)


def rule_scores(loaded: LoadedDefinition, source: pd.DataFrame) -> np.ndarray:
    """The definition's fit score for every row, the row's columns as traits."""
    scorer = Scorer(loaded.definition)
    records = source.to_dict("records")
    out = np.empty(len(records))
    for i, record in enumerate(records):
        traits = {
            k: (int(v) if isinstance(v, float) and v.is_integer() else v)
            for k, v in record.items()
            if v is not None and not (isinstance(v, float) and np.isnan(v))
        }
        out[i] = scorer.judge_traits(traits).fit
    return out


@dataclass
class Evaluation:
    rows: int
    positives: int
    folds: int
    seed: int
    budget_s: float
    predictions: dict[str, np.ndarray]  # model → out-of-fold P(y=1)
    rule_points: np.ndarray | None = None  # the definition's fit score per row
    definition: str | None = None  # its version
    rule_threshold: float | None = None  # its qualify threshold (points)
    params: list[dict[str, Any]] = field(default_factory=list)  # the tuned model's, per fold
    seconds: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, dict[str, float]]:
        y = self.y
        return {name: m.scores(y, p) for name, p in self.predictions.items()}

    y: np.ndarray = field(default_factory=lambda: np.zeros(0))


def cross_validate(
    table: Table,
    *,
    budget_s: float = 60,
    seed: int = 0,
    definition: LoadedDefinition | None = None,
    max_trials: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Evaluation:
    say = progress or (lambda _message: None)
    X, y = table.X, table.y
    folds = stratified_folds(y, FOLDS, seed)
    use_rules = bool(rules_apply(definition, table))
    names = [n for n in MODELS if n != "rules" or use_rules]
    predictions = {name: np.zeros(len(y)) for name in names}
    seconds = dict.fromkeys(names, 0.0)
    points = rule_scores(definition, table.source) if use_rules and definition else None
    params: list[dict[str, Any]] = []
    for index, (train, test) in enumerate(folds, start=1):
        Xtr, Xte, ytr = X.take(train), X.take(test), y[train]
        say(f"fold {index}/{len(folds)}: {len(train):,} rows to train, {len(test):,} to test")
        started = time.process_time()
        best = fit_best(Xtr, ytr, budget_s=budget_s / len(folds), seed=seed, max_trials=max_trials)
        predictions["model"][test] = best.predict(Xte)
        params.append(best.params)
        seconds["model"] += time.process_time() - started

        started = time.process_time()
        predictions["lightgbm_default"][test] = fit_default(Xtr, ytr, seed=seed).predict(Xte)
        seconds["lightgbm_default"] += time.process_time() - started

        started = time.process_time()
        predictions["logistic"][test] = fit_logistic(Xtr, ytr, seed=seed).predict(Xte)
        seconds["logistic"] += time.process_time() - started

        started = time.process_time()
        nb = NaiveBayes().fit(Xtr.frame, ytr, X.categorical)
        predictions["naive_bayes"][test] = nb.predict(Xte.frame)
        seconds["naive_bayes"] += time.process_time() - started

        if points is not None:
            calibrator = fit_calibrator("platt", points[train], ytr)
            predictions["rules"][test] = calibrator.apply(points[test])
    return Evaluation(
        rows=len(y),
        positives=int(y.sum()),
        folds=len(folds),
        seed=seed,
        budget_s=budget_s,
        predictions=predictions,
        rule_points=points,
        definition=definition.definition.version if definition and use_rules else None,
        rule_threshold=definition.definition.qualify.threshold
        if definition and use_rules
        else None,
        params=params,
        seconds=seconds,
        y=y,
    )


def report(
    evaluation: Evaluation, table: Table, *, threshold: float | None = None
) -> dict[str, Any]:
    """The evaluation as one JSON-ready object: per model the four figures, the
    calibration curve, lift and gains by decile and precision/recall at a threshold.

    The threshold: ``threshold`` (a probability) when given; else, with a definition, the
    share of leads its qualify threshold flags, so every model is cut at the same volume;
    else 0.5. The rules are cut at the definition's threshold in points."""
    y = evaluation.y
    share = None
    if threshold is None and evaluation.rule_points is not None:
        assert evaluation.rule_threshold is not None
        share = float(np.mean(evaluation.rule_points >= evaluation.rule_threshold))
    models: dict[str, Any] = {}
    for name, p in evaluation.predictions.items():
        entry: dict[str, Any] = dict(m.scores(y, p))
        if name == "rules" and evaluation.rule_points is not None:
            assert evaluation.rule_threshold is not None
            cut = m.at_threshold(y, evaluation.rule_points, evaluation.rule_threshold)
            entry["threshold_unit"] = "points"
        elif threshold is not None:
            cut = m.at_threshold(y, p, threshold)
            entry["threshold_unit"] = "probability"
        elif share is not None:
            cut = m.at_threshold(y, p, m.threshold_for_share(p, share))
            entry["threshold_unit"] = "probability, same share as the rules"
        else:
            cut = m.at_threshold(y, p, 0.5)
            entry["threshold_unit"] = "probability"
        entry["at_threshold"] = asdict(cut)
        entry["calibration_curve"] = [asdict(b) for b in m.calibration_curve(y, p)]
        entry["deciles"] = [asdict(d) for d in m.deciles(y, p)]
        models[name] = entry
    return {
        "file": str(table.path),
        "label": table.label,
        "positive": table.positive,
        "rows": evaluation.rows,
        "positives": evaluation.positives,
        "positive_rate": evaluation.positives / evaluation.rows if evaluation.rows else None,
        "unlabelled_rows": table.unlabelled,
        "features": list(table.X.features),
        "categorical": list(table.X.categorical),
        "dropped": table.dropped,
        "warnings": [note.text() for note in table.notes],
        "validation": {
            "folds": evaluation.folds,
            "stratified": True,
            "seed": evaluation.seed,
            "budget_s": evaluation.budget_s,
        },
        "definition": evaluation.definition,
        "threshold": threshold,
        "tuned_params": evaluation.params,
        "cpu_seconds": {k: round(v, 2) for k, v in evaluation.seconds.items()},
        "models": models,
    }
