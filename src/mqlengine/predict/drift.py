"""Population stability of the features and the likelihood: training set against now.

At training each feature's distribution is kept as a reference in the registry: numbers
as deciles of the training values (plus a bucket for unknown), categories as shares of
their levels (plus "other" and unknown). The population stability index compares the
shares of a recent population with it::

    PSI = Σ (recent − reference) · ln(recent / reference)

(shares floored at 0.0001 so an empty bucket stays finite). Rules of thumb: below 0.1
stable, 0.1–0.2 moving, above 0.2 shifted — the definition's ``predict.drift_warn_psi``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

FLOOR = 1e-4
MISSING = "(unknown)"
OTHER = "(other)"
MAX_LEVELS = 30


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def numeric_reference(values: Sequence[float | None], bins: int = 10) -> dict[str, Any]:
    known = sorted(float(v) for v in values if v is not None and not _is_missing(v))
    edges: list[float] = []
    if known:
        for i in range(1, bins):
            edge = known[min(len(known) - 1, int(len(known) * i / bins))]
            if not edges or edge > edges[-1]:
                edges.append(edge)
    reference: dict[str, Any] = {"kind": "numeric", "edges": edges, "shares": []}
    reference["shares"] = _numeric_shares(reference, values)
    return reference


def _numeric_shares(reference: Mapping[str, Any], values: Sequence[float | None]) -> list[float]:
    edges: list[float] = reference["edges"]
    counts = [0] * (len(edges) + 2)  # the buckets, then unknown
    for value in values:
        if _is_missing(value):
            counts[-1] += 1
            continue
        index = 0
        number = float(value)  # type: ignore[arg-type]
        while index < len(edges) and number >= edges[index]:
            index += 1
        counts[index] += 1
    total = max(1, len(values))
    return [c / total for c in counts]


def categorical_reference(values: Sequence[object]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for value in values:
        key = MISSING if _is_missing(value) else str(value)
        counts[key] = counts.get(key, 0) + 1
    levels: list[str] = sorted(counts, key=lambda k: (-counts[k], k))[:MAX_LEVELS]
    reference: dict[str, Any] = {"kind": "categorical", "levels": levels, "shares": []}
    reference["shares"] = _categorical_shares(reference, values)
    return reference


def _categorical_shares(reference: Mapping[str, Any], values: Sequence[object]) -> list[float]:
    levels: list[str] = reference["levels"]
    index = {level: i for i, level in enumerate(levels)}
    counts = [0] * (len(levels) + 1)  # the levels, then other
    for value in values:
        key = MISSING if _is_missing(value) else str(value)
        counts[index.get(key, len(levels))] += 1
    total = max(1, len(values))
    return [c / total for c in counts]


def shares(reference: Mapping[str, Any], values: Sequence[Any]) -> list[float]:
    if reference["kind"] == "numeric":
        return _numeric_shares(reference, values)
    return _categorical_shares(reference, values)


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, FLOOR), max(a, FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def build_reference(
    columns: Mapping[str, Sequence[Any]], categorical: Sequence[str], likelihood: Sequence[float]
) -> dict[str, Any]:
    """The reference kept with a model: each feature's and the likelihood's distribution."""
    features = {
        name: (categorical_reference(values) if name in categorical else numeric_reference(values))
        for name, values in columns.items()
    }
    return {"features": features, "likelihood": numeric_reference(list(likelihood))}


def drift_report(
    reference: Mapping[str, Any],
    columns: Mapping[str, Sequence[Any]],
    likelihood: Sequence[float],
    *,
    warn_psi: float,
) -> dict[str, Any]:
    """PSI of each feature and of the likelihood, the recent population against the
    reference; ``warnings`` names those above ``warn_psi``, worst first."""
    result: dict[str, float] = {}
    for name, entry in reference.get("features", {}).items():
        if name in columns:
            result[name] = psi(entry["shares"], shares(entry, columns[name]))
    overall = None
    if "likelihood" in reference and likelihood:
        overall = psi(
            reference["likelihood"]["shares"], shares(reference["likelihood"], likelihood)
        )
    warnings = sorted(
        (name for name, value in result.items() if value > warn_psi),
        key=lambda name: -result[name],
    )
    if overall is not None and overall > warn_psi:
        warnings.insert(0, "likelihood")
    return {
        "likelihood_psi": None if overall is None else round(overall, 4),
        "features": {name: round(value, 4) for name, value in sorted(result.items())},
        "warn_psi": warn_psi,
        "warnings": warnings,
        "rows": len(likelihood),
    }
