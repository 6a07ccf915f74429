"""The reports as one library call each: ``run_report(database, "funnel", filters, …)``.

The CLI, the API and the dashboard are thin shells over :func:`run_report`, so all three
show the same numbers. Health alerts can be written to the outbox (when the handoff's
``outbox`` table exists) with a stable id per alert and day, so repeating the check never
notifies twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import inspect, select

from mqlengine.definition.compiler import LoadedDefinition
from mqlengine.domain.funnel import HealthRules, health_rules_from
from mqlengine.errors import ValidationError
from mqlengine.reports import metrics
from mqlengine.reports.data import ReportData, report_data
from mqlengine.reports.query import Filters
from mqlengine.store.db import Database

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
    data: ReportData | None = None,
) -> dict[str, Any]:
    """One named report as JSON-ready data: ``{report, filters, by, rows | …}``."""
    if name not in REPORTS:
        raise ValidationError(f"unknown report '{name}' (use one of: {', '.join(REPORTS)})")
    data = data or report_data(database)
    result: dict[str, Any] = {"report": name, "filters": filters.as_dict(), "by": by}
    if name == "funnel":
        result["rows"] = metrics.funnel_report(data, filters, by)
        result["steps"] = metrics.funnel_steps(metrics.funnel_total(data, filters))
    elif name == "cohorts":
        result["by"] = "cohort"
        result["rows"] = metrics.funnel_report(data, filters, "cohort")
    elif name == "channels":
        result["by"] = by or "channel"
        result["rows"] = metrics.funnel_report(data, filters, by or "channel")
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
            metrics.health_report(data, rules, now=now, filters=filters_without_period(filters))
        )
    else:
        result.update(metrics.overview(data, filters, rules, now=now))
    return result


def filters_without_period(filters: Filters) -> Filters:
    from dataclasses import replace

    return replace(filters, since=None, until=None)


def notify_health_alerts(database: Database, health: dict[str, Any], *, now: datetime) -> int:
    """Write each alert to the outbox (topic ``funnel.health_alert``) through the handoff's
    :func:`enqueue`, once per alert code and day; returns how many alerts were new.
    Without the outbox (no handoff room) nothing is written."""
    alerts = health.get("alerts") or []
    if not alerts:
        return 0
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
