"""``GET /v1/reports/…``: the funnel reports as JSON (the same numbers as CLI and dashboard).

Read access: a key from ``MQL_READ_KEYS`` (comma-separated) or any write key, given as
``Authorization: Bearer KEY`` (or Basic, Segment style), ``X-API-Key``, ``?key=`` or the
dashboard's ``mql_key`` cookie. With no key configured at all, reads are open.
"""

from __future__ import annotations

import hmac
import os
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from mqlengine.engine import Engine, utcnow
from mqlengine.errors import AuthError, ValidationError
from mqlengine.reports import metrics
from mqlengine.reports.data import report_data
from mqlengine.reports.query import Filters
from mqlengine.reports.service import REPORTS, health_rules, run_report

COOKIE = "mql_key"


def read_keys(request: Request) -> tuple[str, ...]:
    """Keys that may read: ``MQL_READ_KEYS`` plus the app's write keys (read when asked)."""
    state = request.app.state
    cached = getattr(state, "read_keys", None)
    if cached is None:
        env = os.environ.get("MQL_READ_KEYS", "")
        keys = [k.strip() for k in env.split(",") if k.strip()]
        engine: Engine | None = getattr(state, "engine", None)
        if engine is not None:
            keys.extend(engine.settings.write_keys)
        writes = getattr(state, "write_keys", None)
        raw = getattr(writes, "_keys", ())
        keys.extend(k.decode() if isinstance(k, bytes) else str(k) for k in raw)
        cached = tuple(dict.fromkeys(keys))
        state.read_keys = cached
    return tuple(cached)


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer":
            return value.strip() or None
        if scheme.lower() == "basic":
            import base64
            import binascii

            try:
                return base64.b64decode(value.strip()).decode().partition(":")[0] or None
            except (binascii.Error, UnicodeDecodeError):
                return None
    return (
        request.headers.get("x-api-key")
        or request.query_params.get("key")
        or request.cookies.get(COOKIE)
    )


def key_is_valid(keys: tuple[str, ...], key: str | None) -> bool:
    if not key:
        return False
    found = False
    for known in keys:  # no early exit
        found |= hmac.compare_digest(key.encode(), known.encode())
    return found


def require_read_key(request: Request) -> None:
    keys = read_keys(request)
    if keys and not key_is_valid(keys, presented_key(request)):
        raise AuthError("a read key is required (MQL_READ_KEYS or a write key)")


def parse_moment(value: str | None, name: str) -> datetime | None:
    """ISO date or date-time; a date or a time without offset is UTC."""
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{name}: {value!r} is not an ISO date or date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def filters_from(
    since: str | None = None,
    until: str | None = None,
    channel: str | None = None,
    source: str | None = None,
    campaign: str | None = None,
    mql_type: str | None = None,
    definition_version: str | None = None,
    team: str | None = None,
    rep: str | None = None,
    tz: str = "UTC",
) -> Filters:
    def clean(value: str | None) -> str | None:
        return value if value not in (None, "", "all") else None

    return Filters(
        since=parse_moment(since, "since"),
        until=parse_moment(until, "until"),
        channel=clean(channel),
        source=clean(source),
        campaign=clean(campaign),
        mql_type=clean(mql_type),
        definition_version=clean(definition_version),
        team=clean(team),
        rep=clean(rep),
        tz=tz or "UTC",
    )


FiltersDep = Annotated[Filters, Depends(filters_from)]
router = APIRouter(prefix="/v1/reports", tags=["reports"], dependencies=[Depends(require_read_key)])


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


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
    data = report_data(_engine(request).db)
    return metrics.volume_over_time(data, filters, grain=grain, by=by)


@router.get("/open-mqls")
def open_mqls(
    request: Request, filters: FiltersDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> dict[str, Any]:
    engine = _engine(request)
    rules = health_rules(engine)
    data = report_data(engine.db)
    return metrics.open_mqls(
        data, filters, now=utcnow(), speed_to_lead_hours=rules.speed_to_lead_hours, limit=limit
    )


@router.get("/{name}")
def report(
    request: Request, name: str, filters: FiltersDep, by: str | None = None
) -> dict[str, Any]:
    """One report: funnel, cohorts, channels, sla, velocity, reasons, health or overview."""
    return run_report(_engine(request), name, filters, now=utcnow(), by=by)
