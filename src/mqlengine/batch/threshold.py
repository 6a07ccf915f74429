"""Suggest the threshold that fills sales capacity with the most expected conversions.

Each candidate threshold is the live definition with only ``qualify.threshold`` changed; all
of them are replayed together on the backtest's daily grid (:func:`backtest.replay`), and
each gets its MQL volume per week, precision, recall and conversions (MQLs whose recorded
history reached sql). The suggestion is the threshold with the most conversions among those
whose weekly volume fits the capacity (ties: the higher precision, then the higher
threshold); when none fits, the one with the lowest volume, said so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from mqlengine.batch.backtest import outcome_figures, replay
from mqlengine.batch.engine import BatchEngine, PythonEngine
from mqlengine.batch.source import from_store
from mqlengine.domain.rules import Definition
from mqlengine.errors import ConfigError, ValidationError
from mqlengine.store.db import Database

NO_LIKELIHOOD = (
    "no likelihood is stored: the predictive model has not scored anyone yet (use --on total)"
)


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
    if on == "likelihood":
        raise ConfigError(NO_LIKELIHOOD)
    if on != "total":
        raise ValidationError(f"--on {on}: expected total or likelihood")
    if capacity_per_week <= 0:
        raise ValidationError("--capacity must be a positive number of MQLs per week")
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
