"""Suggest the threshold that fills sales capacity with the most expected conversions.

Each candidate threshold is the live definition with only ``qualify.threshold`` changed; all
of them are replayed together on the backtest's daily grid (:func:`backtest.replay`), and
each gets its MQL volume per week, precision, recall and conversions (MQLs whose recorded
history reached sql). The suggestion is the threshold with the most conversions among those
whose weekly volume fits the capacity (ties: the higher precision, then the higher
threshold); when none fits, the one with the lowest volume, said so.

``on="likelihood"`` does the same for a likelihood threshold with the live model
(:func:`suggest_likelihood`): the likelihood is replayed point-in-time on the same grid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from mqlengine.batch.backtest import (
    SCORED_STAGES,
    History,
    end_of,
    load_history,
    outcome_figures,
    precision_recall,
    replay,
)
from mqlengine.batch.engine import BatchEngine, PythonEngine
from mqlengine.batch.source import from_store
from mqlengine.domain.rules import Definition
from mqlengine.domain.scoring import ScoreCard
from mqlengine.errors import ConfigError, ValidationError
from mqlengine.ingest.qualify import scorer_for
from mqlengine.store.db import Database

NO_LIKELIHOOD = (
    "no model is live, so there is no likelihood to replay: train and promote one "
    "(`mql model train`, `mql model promote`), or use --on total"
)
LIKELIHOODS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def with_threshold(definition: Definition, threshold: float) -> Definition:
    qualify = dataclasses.replace(definition.qualify, threshold=threshold)
    return dataclasses.replace(definition, qualify=qualify, version=f"threshold {threshold:g}")


def candidate_thresholds(definition: Definition, steps: int = 9) -> list[float]:
    """Around the live threshold: from half of it to twice it, in ``steps`` even steps."""
    live = definition.qualify.threshold
    if live <= 0:
        return [float(v) for v in range(0, 10 * steps, 10)]
    low, high = live / 2, live * 2
    values = {round(low + (high - low) * i / (steps - 1), 1) for i in range(steps)}
    values.add(live)
    return sorted(values)


def suggest(
    database: Database,
    definition: Definition,
    *,
    capacity_per_week: float,
    start: date,
    end: date,
    on: str = "total",
    thresholds: Sequence[float] | None = None,
    engine: BatchEngine | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    if on not in ("total", "likelihood"):
        raise ValidationError(f"--on {on}: expected total or likelihood")
    if capacity_per_week <= 0:
        raise ValidationError("--capacity must be a positive number of MQLs per week")
    if on == "likelihood":
        return suggest_likelihood(
            database,
            definition,
            capacity_per_week=capacity_per_week,
            start=start,
            end=end,
            thresholds=thresholds,
            progress=progress,
        )
    values = sorted(set(thresholds)) if thresholds else candidate_thresholds(definition)
    definitions = {f"{t:g}": with_threshold(definition, t) for t in values}
    result = replay(
        database,
        definitions,
        start=start,
        end=end,
        engine=engine or PythonEngine(),
        keep_cards=False,
        data=from_store(database),
        progress=progress,
    )
    rows = []
    for value in values:
        figures = outcome_figures(result, result.tracks[f"{value:g}"])
        rows.append(
            {
                "threshold": value,
                "per_week": figures["per_week"],
                "mqls": figures["mqls"],
                "conversions": figures["converted"],
                "precision": figures["precision"],
                "recall": figures["recall"],
                "fits": figures["per_week"] <= capacity_per_week,
                "notes": figures["notes"],
            }
        )
    best, notes = _pick(rows, capacity_per_week)
    return {
        "on": on,
        "capacity_per_week": capacity_per_week,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "live_threshold": definition.qualify.threshold,
        "suggested": best["threshold"],
        "expected": best,
        "candidates": rows,
        "notes": notes,
    }


def _pick(rows: list[dict[str, Any]], capacity_per_week: float) -> tuple[dict[str, Any], list[str]]:
    """The candidate with the most conversions whose weekly volume fits (ties: the higher
    precision, then the higher threshold); else the one with the lowest volume."""
    fitting = [r for r in rows if r["fits"]]
    notes: list[str] = []
    if fitting:
        best = max(
            fitting,
            key=lambda r: (r["conversions"], r["precision"] or 0.0, r["threshold"]),
        )
        if best["conversions"] == 0:
            notes.append(
                "no candidate's MQLs reached sql in the recorded history: the suggestion "
                "only fills capacity"
            )
            best = max(fitting, key=lambda r: (r["per_week"], r["threshold"]))
    else:
        best = min(rows, key=lambda r: (r["per_week"], -r["threshold"]))
        notes.append(
            f"no candidate threshold keeps the volume within {capacity_per_week:g} per week; "
            f"the highest tried ({best['threshold']:g}) gives {best['per_week']:g}"
        )
    return best, notes


def suggest_likelihood(
    database: Database,
    definition: Definition,
    *,
    capacity_per_week: float,
    start: date,
    end: date,
    thresholds: Sequence[float] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """The likelihood threshold that fills capacity best, replayed with the live model.

    Each candidate ``t`` is taken as the qualification "``likelihood_at_least: t``,
    bypassing the total threshold" (``min_fit``, exclusions and requirements still apply).
    On the backtest's daily grid, every person not (yet) with sales is scored as of the
    end of the day: features point-in-time through the one feature definition
    (:class:`~mqlengine.predict.trainset.PointInTime`, read once: the profile rebuilt
    from the identify events sent by then, the events and score card then), then the live
    model.
    A person becomes an MQL under ``t`` on the first day it qualifies (each counted once;
    one qualifying before the window is not counted). Volume, precision and recall are
    counted as for the total (:func:`~mqlengine.batch.backtest.outcome_figures`).
    """
    from mqlengine.predict import registry
    from mqlengine.predict.features import FeatureSpec, to_frame
    from mqlengine.predict.trainset import PointInTime

    values = sorted(set(thresholds)) if thresholds else list(LIKELIHOODS)
    if any(not 0 < v <= 1 for v in values):
        raise ValidationError("--thresholds: a likelihood threshold lies in (0, 1]")
    if end < start:
        raise ValidationError(f"--from {start} is after --to {end}")
    with database.read() as connection:
        version = registry.live_version(connection)
        if version is None:
            raise ConfigError(NO_LIKELIHOOD)
        model = registry.load(connection, version)
        history = load_history(connection)
    spec = FeatureSpec.for_definition(definition)
    scorer = scorer_for(definition)
    last = end_of(end)
    with database.read() as connection:  # read once; each day is computed from it
        known = PointInTime(
            connection,
            definition,
            [pid for pid, seen in history.first_seen.items() if seen <= last],
            spec=spec,
            scorer=scorer,
        )
    first_at: dict[float, dict[int, datetime]] = {v: {} for v in values}
    day = start - timedelta(days=1)  # the state at the start, not counted
    while day <= end:
        as_of = end_of(day)
        moments = {
            pid: as_of
            for pid, seen in history.first_seen.items()
            if seen <= as_of and pid not in first_at[values[-1]] and _scored_at(history, pid, as_of)
        }
        if moments:
            cards: dict[int, ScoreCard] = {}
            rows = known.rows(moments, cards=cards)
            ids = sorted(rows)
            likelihood = model.predict(
                to_frame([rows[pid] for pid in ids], model.features, model.categorical)
            )
            for pid, value in zip(ids, likelihood, strict=True):
                card = cards[pid]
                if card.excluded_because or card.missing_requirements:
                    continue
                if card.fit < definition.qualify.min_fit:
                    continue
                for threshold in values:
                    if value >= threshold:
                        first_at[threshold].setdefault(pid, as_of)
        if progress is not None and day >= start:
            progress(1)
        day += timedelta(days=1)
    window_start = datetime.combine(start, time(), UTC)
    days = (end - start).days + 1
    rows_out = []
    for threshold in values:
        entered = {pid: at for pid, at in first_at[threshold].items() if at >= window_start}
        figures = _figures(history, entered, first_at[threshold], window_start, days)
        rows_out.append(
            {"threshold": threshold, **figures, "fits": figures["per_week"] <= capacity_per_week}
        )
    best, notes = _pick(rows_out, capacity_per_week)
    return {
        "on": "likelihood",
        "model_version": version,
        "capacity_per_week": capacity_per_week,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "live_threshold": definition.qualify.min_likelihood,
        "suggested": best["threshold"],
        "expected": best,
        "candidates": rows_out,
        "notes": notes,
    }


def _scored_at(history: History, pid: int, moment: datetime) -> bool:
    """Whether the score may still move the person at ``moment`` (no sales stage yet)."""
    stage = None
    for at, to_stage in history.steps.get(pid, []):
        if at > moment:
            break
        stage = to_stage
    return stage is None or stage in SCORED_STAGES


def _figures(
    history: History,
    entered: dict[int, datetime],
    first_mql: dict[int, datetime],
    window_start: datetime,
    days: int,
) -> dict[str, Any]:
    notes: dict[str, str] = {}
    precision, recall = precision_recall(history, entered, first_mql, window_start, notes=notes)
    return {
        "per_week": round(len(entered) / max(days / 7, 1e-9), 2),
        "mqls": len(entered),
        "conversions": sum(1 for pid in entered if pid in history.converted_at),
        "precision": precision,
        "recall": recall,
        "notes": notes,
    }


def parse_capacity(text: str) -> float:
    """``120/week``, ``120/w``, ``20/day`` or a plain number (per week)."""
    value, _, unit = text.strip().partition("/")
    try:
        number = float(value)
    except ValueError:
        raise ValidationError(
            f"--capacity {text!r}: expected a number per week, e.g. 120/week"
        ) from None
    factor = {"": 1.0, "week": 1.0, "w": 1.0, "wk": 1.0, "day": 7.0, "d": 7.0}.get(unit.strip())
    if factor is None:
        raise ValidationError(f"--capacity {text!r}: the unit must be /week or /day")
    return number * factor
