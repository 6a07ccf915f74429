"""Funnel maths: rates, percentiles, pipeline velocity, health rules and the health score.

Pure and small on purpose: the reports compute counts and sums with DuckDB, then every
ratio, alert and score goes through these functions, so the CLI, the API, the dashboard and
the tests share one definition of each number.

Health score (0–100)
--------------------
Each component compares one measured value with its target from the definition's
``health:`` section and scores 0..1; the health score is the weighted mean of the components
that have data, times 100, rounded::

    acceptance      w=25  min(1, acceptance_rate / min_acceptance)
    mql_to_sql      w=25  min(1, mql_to_sql / min_mql_to_sql)
    sla             w=20  min(1, sla_compliance / min_sla_compliance)
    speed_to_lead   w=15  min(1, speed_to_lead_hours / p50 speed to lead in hours)
    volume_trend    w=15  min(1, MQLs in window / MQLs in the window before)

A component without data (no reviewed MQLs, no SLA clock, no earlier window) is left out and
the remaining weights are renormalised; with no component at all the score is ``None``.
Meeting every target scores 100; a component at half its target costs half its weight.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

HOURS_PER_DAY = 24.0

# Actors whose stage rows and touches are not sales working a lead: scoring ("system") and
# the importers of CRM history ("import") and CRM outcomes ("crm-import", the default when
# the file names no owner). Their rows count for stages reached, never as touches.
IMPORT_ACTORS = ("import", "crm-import")
NON_SALES_ACTORS = ("system", *IMPORT_ACTORS)


def rate(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``; None when the denominator is 0 or unknown (not 0 %)."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def per(amount: float | None, count: float | None) -> float | None:
    """An amount per unit (cost per MQL, revenue per MQL); None without units."""
    return rate(amount, count)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (``q`` in 0..1), the same as DuckDB's
    ``quantile_cont`` and numpy's default; None for no values."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"percentile q must be within 0..1, got {q}")
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(ordered[low])
    fraction = position - low
    return float(ordered[low] + (ordered[high] - ordered[low]) * fraction)


def pipeline_velocity(
    opportunities: float | None,
    win_rate: float | None,
    average_deal: float | None,
    cycle_days: float | None,
) -> float | None:
    """Revenue per day the pipeline produces:
    (opportunities × win rate × average deal size) ÷ sales cycle length in days."""
    if None in (opportunities, win_rate, average_deal, cycle_days):
        return None
    assert opportunities is not None and win_rate is not None
    assert average_deal is not None and cycle_days is not None
    if cycle_days <= 0:
        return None
    return opportunities * win_rate * average_deal / cycle_days


def month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(moment: datetime) -> datetime:
    start = month_start(moment)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def parse_month(text: str) -> datetime:
    """``YYYY-MM`` (or ``YYYY-MM-DD``, day ignored) → the first instant of that UTC month."""
    parts = text.strip().split("-")
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
        raise ValueError(f"month must look like YYYY-MM, got {text!r}")
    year, month = int(parts[0]), int(parts[1])
    if not 1 <= month <= 12 or not 1900 <= year <= 9999:
        raise ValueError(f"month out of range: {text!r}")
    return datetime(year, month, 1, tzinfo=UTC)


def month_overlap(month: datetime, since: datetime | None, until: datetime | None) -> float:
    """Share (0..1) of a calendar month inside ``[since, until)``: spend is booked per month,
    so a period that covers half a month carries half its spend."""
    start, end = month_start(month), next_month(month)
    lo = start if since is None else max(start, since)
    hi = end if until is None else min(end, until)
    if hi <= lo:
        return 0.0
    return (hi - lo) / (end - start)


# --------------------------------------------------------------------------- health


@dataclass(frozen=True, slots=True)
class HealthRules:
    """Rules of thumb from the definition's ``health:`` section (defaults: the field's)."""

    window_days: int = 90
    min_mql_to_sql: float = 0.20
    min_acceptance: float = 0.70
    min_sla_compliance: float = 0.90
    speed_to_lead_hours: float = 24.0
    min_mqls: int = 20


@dataclass(frozen=True, slots=True)
class HealthAlert:
    code: str
    severity: str  # "warning" | "critical"
    metric: str
    value: float
    threshold: float
    message: str


@dataclass(frozen=True, slots=True)
class HealthInputs:
    """What the health check needs, measured over the window."""

    mqls: int
    acceptance_rate: float | None
    mql_to_sql: float | None
    sla_compliance: float | None
    speed_to_lead_p50_hours: float | None
    previous_mqls: int | None = None


@dataclass(frozen=True, slots=True)
class HealthComponent:
    name: str
    weight: float
    score: float  # 0..1
    value: float
    target: float


@dataclass(frozen=True, slots=True)
class HealthScore:
    score: int | None
    components: tuple[HealthComponent, ...]


def _pct(value: float) -> str:
    return f"{value * 100:.1f} %"


def health_alerts(inputs: HealthInputs, rules: HealthRules) -> list[HealthAlert]:
    """Warnings when the window's conversion rates fall below the rules of thumb.

    Below ``min_mqls`` MQLs the rates are noise, so no rate alert fires; half the threshold
    or less is critical.
    """
    alerts: list[HealthAlert] = []
    if inputs.mqls < rules.min_mqls:
        return alerts
    checks: Iterable[tuple[str, str, float | None, float, str]] = (
        (
            "low_mql_to_sql",
            "mql_to_sql",
            inputs.mql_to_sql,
            rules.min_mql_to_sql,
            "MQL→SQL conversion is {value} over the last {days} days (target ≥ {target}): "
            "the definition may be qualifying leads sales cannot use",
        ),
        (
            "low_acceptance",
            "acceptance_rate",
            inputs.acceptance_rate,
            rules.min_acceptance,
            "sales accept {value} of reviewed MQLs over the last {days} days "
            "(target ≥ {target}): check the rejection reasons and the rules behind them",
        ),
        (
            "low_sla_compliance",
            "sla_compliance",
            inputs.sla_compliance,
            rules.min_sla_compliance,
            "{value} of MQLs were touched within their SLA over the last {days} days "
            "(target ≥ {target})",
        ),
    )
    for code, metric, value, threshold, template in checks:
        if value is None or value >= threshold:
            continue
        severity = "critical" if value <= threshold / 2 else "warning"
        message = template.format(value=_pct(value), target=_pct(threshold), days=rules.window_days)
        alerts.append(HealthAlert(code, severity, metric, value, threshold, message))
    return alerts


def _component(name: str, weight: float, value: float, target: float) -> HealthComponent:
    score = 1.0 if target <= 0 else max(0.0, min(1.0, value / target))
    return HealthComponent(name, weight, score, value, target)


def health_score(inputs: HealthInputs, rules: HealthRules) -> HealthScore:
    """The 0–100 pipeline health score (formula in the module docstring)."""
    parts: list[HealthComponent] = []
    if inputs.acceptance_rate is not None:
        parts.append(_component("acceptance", 25, inputs.acceptance_rate, rules.min_acceptance))
    if inputs.mql_to_sql is not None:
        parts.append(_component("mql_to_sql", 25, inputs.mql_to_sql, rules.min_mql_to_sql))
    if inputs.sla_compliance is not None:
        parts.append(_component("sla", 20, inputs.sla_compliance, rules.min_sla_compliance))
    p50 = inputs.speed_to_lead_p50_hours
    if p50 is not None:
        # Faster than target scores 1; twice as slow scores 0.5.
        score = 1.0 if p50 <= rules.speed_to_lead_hours else rules.speed_to_lead_hours / p50
        parts.append(HealthComponent("speed_to_lead", 15, score, p50, rules.speed_to_lead_hours))
    if inputs.previous_mqls:
        parts.append(_component("volume_trend", 15, inputs.mqls, inputs.previous_mqls))
    weight = sum(p.weight for p in parts)
    if not parts or weight == 0:
        return HealthScore(None, ())
    value = 100.0 * sum(p.weight * p.score for p in parts) / weight
    return HealthScore(round(value), tuple(parts))


def health_rules_from(config: Mapping[str, object] | None) -> HealthRules:
    """Build rules from a plain mapping (the validated ``health:`` section); missing keys
    keep their defaults."""
    if not config:
        return HealthRules()
    defaults = HealthRules()
    window = config.get("window_days", defaults.window_days)
    min_mqls = config.get("min_mqls", defaults.min_mqls)
    return HealthRules(
        window_days=int(window) if isinstance(window, int | float) else defaults.window_days,
        min_mql_to_sql=_float(config.get("min_mql_to_sql"), defaults.min_mql_to_sql),
        min_acceptance=_float(config.get("min_acceptance"), defaults.min_acceptance),
        min_sla_compliance=_float(config.get("min_sla_compliance"), defaults.min_sla_compliance),
        speed_to_lead_hours=_float(config.get("speed_to_lead_hours"), defaults.speed_to_lead_hours),
        min_mqls=int(min_mqls) if isinstance(min_mqls, int | float) else defaults.min_mqls,
    )


def _float(value: object, default: float) -> float:
    return float(value) if isinstance(value, int | float) else default
