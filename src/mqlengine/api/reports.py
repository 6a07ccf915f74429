"""``GET /v1/reports/…``: the funnel reports as JSON (the same numbers as CLI and dashboard).

Needs a key with the ``read`` scope (see :mod:`mqlengine.api.auth`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from mqlengine.api.auth import require_scope
from mqlengine.api.contract import errors
from mqlengine.reports import metrics
from mqlengine.reports.data import report_data
from mqlengine.reports.filters import filters_from
from mqlengine.reports.query import Filters
from mqlengine.reports.service import REPORTS, health_rules, run_report
from mqlengine.wiring import Wiring

FiltersDep = Annotated[Filters, Depends(filters_from)]
router = APIRouter(
    prefix="/v1/reports",
    tags=["reports"],
    dependencies=[Depends(require_scope("read"))],
    responses=errors(400, 401, 403, 404),
)


def _wiring(request: Request) -> Wiring:
    wiring: Wiring = request.app.state.wiring
    return wiring


@router.get("")
def list_reports() -> dict[str, Any]:
    return {"reports": [*REPORTS, "volume", "open-mqls"]}


@router.get("/volume")
def volume(
    request: Request,
    filters: FiltersDep,
    grain: Annotated[str, Query(pattern="^(day|week|month)$")] = "week",
    by: str = "channel",
) -> dict[str, Any]:
    data = report_data(_wiring(request).db)
    return metrics.volume_over_time(data, filters, grain=grain, by=by)


@router.get("/open-mqls")
def open_mqls(
    request: Request, filters: FiltersDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> dict[str, Any]:
    wiring = _wiring(request)
    rules = health_rules(wiring.definition_or_none())
    data = report_data(wiring.db)
    return metrics.open_mqls(
        data,
        filters,
        now=wiring.clock(),
        speed_to_lead_hours=rules.speed_to_lead_hours,
        limit=limit,
    )


@router.get("/{name}")
def report(
    request: Request,
    name: Annotated[str, Path(json_schema_extra={"enum": list(REPORTS)})],
    filters: FiltersDep,
    by: str | None = None,
) -> dict[str, Any]:
    """One report: funnel, cohorts, channels, sla, velocity, reasons, health or overview."""
    wiring = _wiring(request)
    loaded = wiring.definition_or_none()
    rules = health_rules(loaded)
    definition = loaded.definition if loaded is not None else None
    return run_report(
        wiring.db, name, filters, now=wiring.clock(), rules=rules, by=by, definition=definition
    )
