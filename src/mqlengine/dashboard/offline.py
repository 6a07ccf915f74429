"""`mql report html OUT.html`: one self-contained file a manager can open offline.

Chart.js, the chart code and the styles are inlined (the same files the dashboard serves),
so the report needs no network and no server.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from mqlengine.dashboard import charts
from mqlengine.dashboard.formatting import (
    fmt_hours,
    fmt_money,
    fmt_number,
    fmt_percent,
    footnotes,
    to_json,
    why,
)
from mqlengine.domain.funnel import HealthRules
from mqlengine.reports.data import report_data
from mqlengine.reports.query import Filters
from mqlengine.reports.rates import Rates
from mqlengine.reports.service import run_report
from mqlengine.store.db import Database

HERE = Path(__file__).parent
STATIC = HERE / "static"


def render_report(
    database: Database,
    filters: Filters,
    *,
    now: datetime,
    rules: HealthRules,
    rates: Rates | None = None,
) -> str:
    data = report_data(database)

    def run(name: str, by: str | None = None) -> dict[str, Any]:
        return run_report(
            database, name, filters, now=now, rules=rules, by=by, data=data, rates=rates
        )

    overview = run("overview")
    cohorts = run("cohorts")
    channels = run("channels", "channel")
    campaigns = run("channels", "campaign")
    sla = run("sla", "channel")
    velocity = run("velocity", "channel")
    reasons = run("reasons")
    env = Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        num=fmt_number,
        pct=fmt_percent,
        money=fmt_money,
        hours=fmt_hours,
        tojson_safe=to_json,
        footnotes=footnotes,
        why=why,
    )
    return env.get_template("report.html").render(
        generated_at=now.isoformat(timespec="minutes"),
        filters=filters.as_dict(),
        o=overview,
        cohorts=cohorts["rows"],
        channels=channels["rows"],
        campaigns=campaigns["rows"],
        sla=sla["rows"],
        velocity=velocity["rows"],
        reasons=reasons,
        charts={
            "funnel": charts.funnel_chart(overview["steps"]),
            "volume": charts.volume_chart(overview["volume"]),
            "cohorts": charts.cohort_chart(cohorts["rows"]),
            "channels": charts.channel_chart(channels["rows"]),
            "cost": charts.cost_chart(channels["rows"]),
            "sla": charts.sla_chart(sla["rows"]),
            "reasons": charts.reasons_chart(reasons["reasons"][:15]),
        },
        chart_js=_script(STATIC / "chart.umd.min.js"),
        dashboard_js=_script(STATIC / "dashboard.js"),
        css=(STATIC / "dashboard.css").read_text(encoding="utf-8"),
        licence=(STATIC / "chart.js.LICENSE.txt").read_text(encoding="utf-8"),
    )


def _script(path: Path) -> str:
    # Inline scripts must not contain a closing tag.
    return path.read_text(encoding="utf-8").replace("</script", "<\\/script")
