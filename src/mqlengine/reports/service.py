"""The reports as one library call each: ``run_report(database, "funnel", filters, …)``.

The CLI, the API and the dashboard are thin shells over :func:`run_report`, so all three
show the same numbers. Health alerts can be written to the outbox (when the handoff's
``outbox`` table exists) with a stable id per alert and day, so repeating the check never
notifies twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from mqlengine.domain.funnel import HealthRules, health_rules_from
from mqlengine.errors import ValidationError
from mqlengine.reports import metrics
from mqlengine.reports.query import Filters
from mqlengine.reports.rates import Rates
from mqlengine.store.db import Database

if TYPE_CHECKING:  # a type only: the definition's schema costs a cold report 0.3 s to import
    from mqlengine.definition.compiler import LoadedDefinition
    from mqlengine.domain.rules import Definition
    from mqlengine.reports.source import ReportSource

HEALTH_TOPIC = "funnel.health_alert"
REPORTS = ("funnel", "cohorts", "channels", "sla", "velocity", "reasons", "health", "overview")


def health_rules(loaded: LoadedDefinition | None) -> HealthRules:
    """The definition's ``health:`` section; the field's defaults without a definition."""
    spec = getattr(loaded.spec, "health", None) if loaded is not None else None
    return health_rules_from(spec.model_dump() if spec is not None else None)


def run_report(
    database: Database,
    name: str,
    filters: Filters,
    *,
    now: datetime,
    rules: HealthRules,
    by: str | None = None,
    data: ReportSource | None = None,
    rates: Rates | None = None,
    definition: Definition | None = None,
) -> dict[str, Any]:
    """One named report as JSON-ready data: ``{report, filters, by, rows | …, notes}``.

    ``definition``: for ``health``, the definition whose ``predict:`` section names the
    drift level above which a live model's features (population stability against its
    training set) raise a ``model_drift`` alert.

    ``rates`` converts spend in several currencies to one (without them spend is reported
    per currency). For ``health`` the filters' since/until set the judged window (default:
    the definition's window before ``now``). ``notes`` lists, per row and figure, why a
    figure is None ("—")."""
    if name not in REPORTS:
        raise ValidationError(f"unknown report '{name}' (use one of: {', '.join(REPORTS)})")
    if data is None:
        from mqlengine.reports.data import report_data

        data = report_data(database)
    result: dict[str, Any] = {"report": name, "filters": filters.as_dict(), "by": by}
    if name == "funnel":
        result["rows"] = metrics.funnel_report(data, filters, by, rates=rates)
        # without a breakdown the one row is the total: not computed twice
        total = (
            result["rows"][0]
            if by is None and result["rows"]
            else metrics.funnel_total(data, filters, rates=rates)
        )
        result["steps"] = metrics.funnel_steps(total)
    elif name == "cohorts":
        result["by"] = by if by in ("cohort", "lead_cohort", "week") else "cohort"
        result["rows"] = metrics.funnel_report(data, filters, result["by"], rates=rates)
    elif name == "channels":
        result["by"] = by or "channel"
        result["rows"] = metrics.funnel_report(data, filters, by or "channel", rates=rates)
    elif name == "sla":
        result["rows"] = metrics.sla_report(
            data, filters, now=now, speed_to_lead_hours=rules.speed_to_lead_hours, by=by
        )
        result["sla_source"] = "routing" if data.features.get("sla_clocks") else "definition"
        result["speed_to_lead_hours"] = rules.speed_to_lead_hours
    elif name == "velocity":
        result["rows"] = metrics.velocity_report(data, filters, by)
    elif name == "reasons":
        result.update(metrics.reasons_report(data, filters))
    elif name == "health":
        result.update(
            metrics.health_report(
                data,
                rules,
                now=now,
                filters=filters_without_period(filters),
                since=filters.since,
                until=filters.until,
            )
        )
        if definition is not None and definition.predict is not None:
            _model_drift(database, definition, result, now=now)
    else:
        result.update(metrics.overview(data, filters, rules, now=now))
    result["notes"] = collect_notes(result)
    if name in ("funnel", "cohorts", "channels") and not data.features.get("sql_stage"):
        result["sql_stage"] = False
    return result


def _model_drift(
    database: Database, definition: Definition, result: dict[str, Any], *, now: datetime
) -> None:
    """The live model's drift (``model_drift``) and an alert per drifted feature."""
    from mqlengine.predict.registry import live_version

    with database.read() as connection:
        if live_version(connection) is None:
            result["model_drift"] = None
            return
        from mqlengine.predict.trainset import live_drift

        drift = live_drift(connection, definition, now=now)
    result["model_drift"] = drift
    level = definition.predict.drift_warn_psi if definition.predict is not None else 0.2
    values = {"likelihood": drift.get("likelihood_psi"), **drift.get("features", {})}
    for name in drift.get("warnings", []):
        value = values.get(name)
        result.setdefault("alerts", []).append(
            {
                "code": "model_drift",
                "severity": "warning",
                "metric": f"psi:{name}",
                "value": value,
                "threshold": level,
                "message": (
                    f"model v{drift['model_version']}: {name} has drifted from the training "
                    f"set (PSI {value} > {level:g} over the last {drift['window_days']} days); "
                    "retrain with `mql model train`"
                ),
            }
        )


def collect_notes(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every "—" of a report with its reason: ``[{key, field, reason}]`` (rows' ``notes``
    plus the report's own), one list the CLI prints as footnotes."""
    out: list[dict[str, Any]] = []
    for row in result.get("rows") or []:
        for field, reason in (row.get("notes") or {}).items():
            out.append({"key": row.get("key"), "field": field, "reason": reason})
    for section in ("funnel", "sla"):
        part = result.get(section)
        if isinstance(part, dict):
            for field, reason in (part.get("notes") or {}).items():
                out.append({"key": part.get("key"), "field": field, "reason": reason})
    notes = result.get("input_notes")
    if isinstance(notes, dict):
        for field, reason in notes.items():
            out.append({"key": "total", "field": field, "reason": reason})
    return out


def filters_without_period(filters: Filters) -> Filters:
    from dataclasses import replace

    return replace(filters, since=None, until=None)


def has_destination(connection: Any, topic: str) -> bool:
    """An active destination that takes ``topic`` (an empty topic list takes every topic)."""
    from sqlalchemy import inspect, select

    from mqlengine.store.tables_handoff import destinations

    if not inspect(connection).has_table("destinations"):
        return False
    for row in connection.execute(
        select(destinations.c.topics).where(destinations.c.active.is_(True))
    ):
        topics = row.topics or []
        if not topics or topic in topics:
            return True
    return False


def notify_health_alerts(database: Database, health: dict[str, Any], *, now: datetime) -> int:
    """Write each alert to the outbox (topic ``funnel.health_alert``) through the handoff's
    :func:`enqueue`, once per alert code and day; returns how many alerts were new.
    Without the outbox, or without an active destination taking the topic, nothing is
    written (and 0 is returned: an alert nobody receives is not "sent")."""
    alerts = health.get("alerts") or []
    if not alerts:
        return 0
    from sqlalchemy import inspect, select

    try:
        from mqlengine.services.outbox import enqueue
        from mqlengine.store.tables_handoff import outbox
    except ImportError:
        return 0
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    written = 0
    with database.begin() as connection:
        if not inspect(connection).has_table("outbox"):
            return 0
        if not has_destination(connection, HEALTH_TOPIC):
            return 0  # nobody would receive it: not reported as sent
        sent_today = {
            (row.payload or {}).get("data", {}).get("code")
            for row in connection.execute(
                select(outbox.c.payload).where(
                    outbox.c.topic == HEALTH_TOPIC, outbox.c.created_at >= day_start
                )
            )
        }
        for alert in alerts:
            if alert["code"] in sent_today:
                continue
            data = {**alert, "score": health.get("score"), "window_days": health.get("window_days")}
            enqueue(connection, HEALTH_TOPIC, data, now=now)
            written += 1
    return written
