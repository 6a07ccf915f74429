"""The web dashboard: server-rendered pages (Jinja2) over the reports, charts by Chart.js.

Every asset is served by the app from ``static/`` (no CDN), so the dashboard works offline.
Pages read with a read key (the app's ``read_access``, see :mod:`mqlengine.api.auth`);
``?key=`` once sets a cookie so the links between pages keep working.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
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
from mqlengine.domain.explain import card_to_dict
from mqlengine.errors import MqlError, NotFoundError, ValidationError, status_for
from mqlengine.reports import metrics
from mqlengine.reports.data import report_data
from mqlengine.reports.filters import filters_from
from mqlengine.reports.query import Filters
from mqlengine.reports.service import health_rules, run_report
from mqlengine.store import lookups
from mqlengine.wiring import Wiring

HERE = Path(__file__).parent
STATIC = HERE / "static"
STATIC_FILES = {
    "chart.umd.min.js": "text/javascript",
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "chart.js.LICENSE.txt": "text/plain",
}
NAV = (
    ("overview", "/", "Overview"),
    ("cohorts", "/cohorts", "Cohorts"),
    ("channels", "/channels", "Channels & campaigns"),
    ("reps", "/reps", "Reps & queues"),
    ("definition", "/definition", "Definition"),
)
FILTER_KEYS = ("since", "until", "channel", "campaign", "tz")

router = APIRouter(include_in_schema=False)
_env: Environment | None = None


def templates() -> Environment:
    global _env
    if _env is None:
        env = Environment(
            loader=FileSystemLoader(str(HERE / "templates")),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["num"] = fmt_number
        env.filters["pct"] = fmt_percent
        env.filters["money"] = fmt_money
        env.filters["hours"] = fmt_hours
        env.filters["tojson_safe"] = to_json
        env.filters["footnotes"] = footnotes
        env.filters["why"] = why
        _env = env
    return _env


def _wiring(request: Request) -> Wiring:
    wiring: Wiring = request.app.state.wiring
    return wiring


def _authorised(request: Request) -> bool:
    """The app's read access (the API sets it; the dashboard does not check keys itself)."""
    return bool(request.app.state.read_access.allows(request))


def _query(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items() if k in FILTER_KEYS and v}


def _filters(request: Request) -> Filters:
    q = request.query_params
    return filters_from(
        since=q.get("since"),
        until=q.get("until"),
        channel=q.get("channel"),
        campaign=q.get("campaign"),
        tz=q.get("tz") or "UTC",
    )


def _unauthorised_page(active: str) -> Response:
    html = templates().get_template("unauthorized.html").render(nav=NAV, active=active)
    return HTMLResponse(html, status_code=401)


def _error_page(error: MqlError, active: str) -> Response:
    html = (
        templates()
        .get_template("error.html")
        .render(nav=NAV, active=active, query={}, message=error.message)
    )
    return HTMLResponse(html, status_code=status_for(error))


def _page(request: Request, template: str, active: str, **context: Any) -> Response:
    if not _authorised(request):
        return _unauthorised_page(active)
    try:
        body = (
            templates()
            .get_template(template)
            .render(
                nav=NAV,
                active=active,
                query=_query(request),
                request_path=request.url.path,
                **{k: (v() if callable(v) else v) for k, v in context.items()},
            )
        )
    except MqlError as error:
        return _error_page(error, active)
    response = HTMLResponse(body)
    key = request.query_params.get("key")
    if key:
        response.set_cookie(
            request.app.state.read_access.cookie, key, httponly=True, samesite="strict"
        )
    return response


def _report(request: Request, name: str, by: str | None = None) -> dict[str, Any]:
    wiring = _wiring(request)
    rules = health_rules(wiring.definition_or_none())
    return run_report(wiring.db, name, _filters(request), now=wiring.clock(), rules=rules, by=by)


def _channels(request: Request) -> list[str]:
    return metrics.dimension_values(report_data(_wiring(request).db), "channel")


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    if name not in STATIC_FILES:
        raise NotFoundError(f"no static file {name}")
    return FileResponse(
        STATIC / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "max-age=3600"}
    )


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request) -> Response:
    def build() -> dict[str, Any]:
        return _report(request, "overview")

    def context() -> dict[str, Any]:
        data = build()
        sla_rows = _report(request, "sla", by="channel")
        return {
            **data,
            "charts": {
                "funnel": charts.funnel_chart(data["steps"]),
                "volume": charts.volume_chart(data["volume"]),
                "sla": charts.sla_chart(sla_rows["rows"]),
            },
            "sla_rows": sla_rows["rows"],
        }

    return _page(
        request, "overview.html", "overview", o=context, channels=lambda: _channels(request)
    )


@router.get("/cohorts", response_class=HTMLResponse)
def cohorts_page(request: Request) -> Response:
    def context() -> dict[str, Any]:
        result = _report(request, "cohorts")
        velocity = _report(request, "velocity", by="cohort")
        return {
            "rows": result["rows"],
            "chart": charts.cohort_chart(result["rows"]),
            "velocity": velocity["rows"],
        }

    return _page(request, "cohorts.html", "cohorts", c=context, channels=lambda: _channels(request))


@router.get("/channels", response_class=HTMLResponse)
def channels_page(request: Request) -> Response:
    by = request.query_params.get("by") or "channel"
    allowed = ("channel", "campaign", "source", "mql_type", "definition_version")
    if by not in allowed:
        if not _authorised(request):
            return _unauthorised_page("channels")
        # the same answer as the API's: 400 naming what is allowed
        return _error_page(
            ValidationError(f"unknown breakdown '{by}' (use one of: {', '.join(allowed)})"),
            "channels",
        )

    def context() -> dict[str, Any]:
        result = _report(request, "channels", by=by)
        reasons = _report(request, "reasons")
        return {
            "rows": result["rows"],
            "by": by,
            "chart": charts.channel_chart(result["rows"]),
            "cost_chart": charts.cost_chart(result["rows"]),
            "reasons": reasons,
            "reasons_chart": charts.reasons_chart(reasons["reasons"][:15]),
        }

    return _page(
        request, "channels.html", "channels", ch=context, channels=lambda: _channels(request)
    )


@router.get("/reps", response_class=HTMLResponse)
def reps_page(request: Request) -> Response:
    def context() -> dict[str, Any]:
        wiring = _wiring(request)
        rules = health_rules(wiring.definition_or_none())
        data = report_data(wiring.db)
        filters = _filters(request)
        now = wiring.clock()
        queues = metrics.open_mqls(
            data, filters, now=now, speed_to_lead_hours=rules.speed_to_lead_hours, limit=100
        )
        by_rep = metrics.sla_report(
            data, filters, now=now, speed_to_lead_hours=rules.speed_to_lead_hours, by="rep"
        )
        return {**queues, "by_rep": by_rep, "speed_to_lead_hours": rules.speed_to_lead_hours}

    return _page(request, "reps.html", "reps", r=context, channels=lambda: _channels(request))


@router.get("/find", response_class=HTMLResponse)
def find_person(request: Request, q: str = "") -> Response:
    """The header's search box: a person id, an e-mail address or kind:value (user_id,
    anonymous_id, phone, external_id) opens that person's page."""
    from mqlengine.services.leads import resolve_person_ref

    if not _authorised(request):
        return _unauthorised_page("")
    try:
        if not q.strip():
            raise ValidationError(
                "type a person id, an e-mail address or kind:value (e.g. user_id:u-1)"
            )
        wiring = _wiring(request)
        gmail = wiring.definition().definition.identity.gmail_normalize
        with wiring.db.read() as connection:
            person_id = resolve_person_ref(connection, q, gmail_normalize=gmail)
    except MqlError as error:
        return _error_page(error, "")
    return RedirectResponse(f"/persons/{person_id}", status_code=303)


@router.get("/persons/{person_id}", response_class=HTMLResponse)
def person_page(request: Request, person_id: int) -> Response:
    def context() -> dict[str, Any]:
        from mqlengine.services.leads import person_detail

        wiring = _wiring(request)
        definition = wiring.definition().definition
        with wiring.db.read() as connection:
            detail = person_detail(connection, definition, person_id, as_of=wiring.clock())
            rows = lookups.latest_events(connection, detail.person["id"], limit=200)
        card = card_to_dict(detail.card, with_hits=False)
        rule_sum = sum(c["points"] for c in card["contributions"])
        adjustments = (
            card["fit_cap_adjustment"]
            + card["intent_cap_adjustment"]
            + card["total_cap_adjustment"]
        )
        return {
            "person": detail.person,
            "identities": detail.identities,
            "card": card,
            "rule_sum": rule_sum,
            "adjustments": adjustments,
            "history": detail.history,
            "events": [
                {
                    "timestamp": r.timestamp,
                    "type": r.type,
                    "name": r.name,
                    "properties": r.properties,
                }
                for r in rows
            ],
        }

    return _page(request, "person.html", "", p=context)


@router.get("/definition", response_class=HTMLResponse)
def definition_page(request: Request) -> Response:
    def context() -> dict[str, Any]:
        from mqlengine.definition.compiler import parse_definition

        wiring = _wiring(request)
        loaded = wiring.definition()
        with wiring.db.read() as connection:
            versions = lookups.definition_versions_newest_first(connection, limit=20)
        changes: list[dict[str, Any]] = []
        previous = next((v for v in versions if v.version != loaded.definition.version), None)
        if previous is not None:
            try:
                before = parse_definition(
                    previous.content, f"<stored {previous.version}>"
                ).definition
                changes = rule_changes(before, loaded.definition)
            except MqlError:
                changes = []
        d = loaded.definition
        return {
            "d": d,
            "health": health_rules(loaded),
            "versions": versions,
            "previous": previous.version if previous is not None else None,
            "changes": changes,
        }

    return _page(request, "definition.html", "definition", x=context)


def rule_changes(before: Any, after: Any) -> list[dict[str, Any]]:
    """Rules added, removed or re-weighted between two definitions, plus the threshold."""

    def points(d: Any) -> dict[str, float]:
        return {r.id: r.points for r in (*d.fit_rules, *d.intent_rules)}

    old, new = points(before), points(after)
    out: list[dict[str, Any]] = []
    for rule in sorted(set(old) | set(new)):
        if rule not in old:
            out.append({"what": rule, "change": "added", "before": None, "after": new[rule]})
        elif rule not in new:
            out.append({"what": rule, "change": "removed", "before": old[rule], "after": None})
        elif old[rule] != new[rule]:
            out.append({"what": rule, "change": "points", "before": old[rule], "after": new[rule]})
    if before.qualify.threshold != after.qualify.threshold:
        out.append(
            {
                "what": "threshold",
                "change": "threshold",
                "before": before.qualify.threshold,
                "after": after.qualify.threshold,
            }
        )
    return out
