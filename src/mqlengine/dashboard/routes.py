"""The web dashboard: server-rendered pages (Jinja2) over the reports, charts by Chart.js.

Every asset is served by the app from ``static/`` (no CDN), so the dashboard works offline.
Pages need a key with the ``read`` scope, presented once on the login form (``POST
/login``): the answer sets a session cookie (HttpOnly, SameSite=Strict, Secure over HTTPS)
whose value is a signed session id, never the key. Sessions last eight hours, end at
``POST /logout``, and end when their key is revoked or expires. The app provides the key
verifier (``app.state.keys``) and the signing key (``app.state.session_secret``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

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
from mqlengine.domain.conditions import describe
from mqlengine.domain.explain import card_to_dict
from mqlengine.domain.lifecycle import Stage
from mqlengine.errors import (
    AuthError,
    ForbiddenError,
    MqlError,
    NotFoundError,
    ValidationError,
    status_for,
)
from mqlengine.reports import metrics
from mqlengine.reports.data import report_data
from mqlengine.reports.filters import filters_from
from mqlengine.reports.query import Filters
from mqlengine.reports.service import health_rules, run_report
from mqlengine.services.audit import record_audit
from mqlengine.services.keys import (
    SESSION_HOURS,
    KeyVerifier,
    Principal,
    create_session,
    end_session,
    session_key_id,
)
from mqlengine.store import lookups
from mqlengine.wiring import Wiring

HERE = Path(__file__).parent
STATIC = HERE / "static"
STATIC_FILES = {
    "chart.umd.min.js": "text/javascript",
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "chart.js.LICENSE.txt": "text/plain",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js.LICENSE.txt": "text/plain",
    "swagger-ui.LICENSE.txt": "text/plain",
}
NAV = (
    ("overview", "/", "Overview"),
    ("leads", "/leads", "Leads"),
    ("cohorts", "/cohorts", "Cohorts"),
    ("channels", "/channels", "Channels & campaigns"),
    ("reps", "/reps", "Reps & queues"),
    ("review", "/review", "Review"),
    ("definition", "/definition", "Definition"),
)
FILTER_KEYS = ("since", "until", "channel", "campaign", "tz")
COOKIE = "mql_session"
SALES_ACTIONS = (
    ("touch", "Touch (first contact)"),
    ("accept", "Accept"),
    ("reject", "Reject"),
    ("recycle", "Recycle"),
    ("disqualify", "Disqualify"),
    ("convert", "Convert to SQL"),
    ("won", "Won"),
    ("lost", "Lost"),
)
MAX_FORM_BYTES = 4096

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
        env.filters["cond"] = describe
        _env = env
    return _env


def _wiring(request: Request) -> Wiring:
    wiring: Wiring = request.app.state.wiring
    return wiring


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


def _login_page(
    request: Request, status: int = 401, message: str | None = None, next_path: str | None = None
) -> Response:
    html = (
        templates()
        .get_template("login.html")
        .render(
            nav=NAV,
            active="",
            query={},
            message=message,
            next=_safe_next(next_path if next_path is not None else _here(request)),
        )
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _here(request: Request) -> str:
    path = request.url.path
    if path in ("/login", "/logout"):
        return "/"
    return f"{path}?{request.url.query}" if request.url.query else path


def _safe_next(value: str | None) -> str:
    """Only a path of this site (``/…``, not ``//host``) is followed after login."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


# -- sessions ------------------------------------------------------------------------------


def _sign(secret: bytes, token: str) -> str:
    mac = hmac.new(secret, token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def _cookie_token(request: Request) -> str | None:
    """The session token of a correctly signed cookie, else None."""
    value = request.cookies.get(COOKIE)
    if not value:
        return None
    token, _, signature = value.rpartition(".")
    expected = _sign(request.app.state.session_secret, token)
    if not token or not hmac.compare_digest(signature.encode(), expected.encode()):
        return None
    return token


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or _wiring(request).settings.public_url.startswith(
        "https:"
    )


def session_principal(request: Request, scope: str) -> Principal:
    """The session's key, still valid (not revoked, not expired) and holding ``scope``."""
    token = _cookie_token(request)
    if token is None:
        raise AuthError("log in with a read key")
    wiring = _wiring(request)
    with wiring.db.read() as connection:
        key_id = session_key_id(connection, token, now=wiring.clock())
    verifier: KeyVerifier = request.app.state.keys
    principal = verifier.by_id(key_id) if key_id is not None else None
    if principal is None:
        raise AuthError("the session has ended: log in again")
    if not principal.allows(scope):
        raise ForbiddenError(
            f"key {principal.name!r} lacks the {scope!r} scope "
            + ("the dashboard needs" if scope == "read" else "this needs")
        )
    request.state.principal = principal
    request.state.csrf = csrf_token(request.app.state.session_secret, token)
    return principal


def dashboard_reader(request: Request) -> Principal:
    """The dependency of every dashboard page (scope ``read``)."""
    return session_principal(request, "read")


dashboard_reader.mql_scope = "read"  # type: ignore[attr-defined]


def csrf_token(secret: bytes, session_token: str) -> str:
    """The forms' CSRF token: bound to the session (an HMAC of its token under the
    cookie-signing key), so a page of another site can neither read nor forge it."""
    return _sign(secret, "csrf:" + session_token)


Reader = Annotated[Principal, Depends(dashboard_reader)]


class _PageRoute(APIRoute):
    """Dashboard routes answer a refused session with the login page (401) or an error
    page (403) instead of JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except ForbiddenError as error:
                return _error_page(error, "")
            except AuthError as error:
                return _login_page(request, message=error.message)

        return route_handler


router = APIRouter(include_in_schema=False, route_class=_PageRoute)


def _error_page(error: MqlError, active: str) -> Response:
    html = (
        templates()
        .get_template("error.html")
        .render(nav=NAV, active=active, query={}, message=error.message)
    )
    return HTMLResponse(html, status_code=status_for(error))


def _page(request: Request, template: str, active: str, **context: Any) -> Response:
    try:
        body = (
            templates()
            .get_template(template)
            .render(
                nav=NAV,
                active=active,
                query=_query(request),
                request_path=request.url.path,
                principal=getattr(request.state, "principal", None),
                csrf=getattr(request.state, "csrf", ""),
                **{k: (v() if callable(v) else v) for k, v in context.items()},
            )
        )
    except MqlError as error:
        return _error_page(error, active)
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})


def _report(request: Request, name: str, by: str | None = None) -> dict[str, Any]:
    wiring = _wiring(request)
    loaded = wiring.definition_or_none()
    rules = health_rules(loaded)
    definition = loaded.definition if loaded is not None else None
    return run_report(
        wiring.db,
        name,
        _filters(request),
        now=wiring.clock(),
        rules=rules,
        by=by,
        definition=definition,
    )


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
def overview_page(request: Request, _reader: Reader) -> Response:
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
def cohorts_page(request: Request, _reader: Reader) -> Response:
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
def channels_page(request: Request, _reader: Reader) -> Response:
    by = request.query_params.get("by") or "channel"
    allowed = ("channel", "campaign", "source", "mql_type", "definition_version")
    if by not in allowed:
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
def reps_page(request: Request, _reader: Reader) -> Response:
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
def find_person(request: Request, _reader: Reader, q: str = "") -> Response:
    """The header's search box: a person id, an e-mail address or kind:value (user_id,
    anonymous_id, phone, external_id) opens that person's page."""
    from mqlengine.services.leads import resolve_person_ref

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
    return RedirectResponse(f"/persons/{quote(str(person_id))}", status_code=303)


@router.get("/persons/{person_id}", response_class=HTMLResponse)
def person_page(request: Request, _reader: Reader, person_id: int) -> Response:
    def context() -> dict[str, Any]:
        from mqlengine.dashboard.svg import score_timeline_svg
        from mqlengine.services.desk import person_handoff, score_timeline
        from mqlengine.services.leads import person_detail

        wiring = _wiring(request)
        definition = wiring.definition().definition
        now = wiring.clock()
        with wiring.db.read() as connection:
            detail = person_detail(connection, definition, person_id, as_of=now)
            rows = lookups.latest_events(connection, detail.person["id"], limit=200)
            handoff = person_handoff(connection, detail.person["id"], now=now)
            timeline = score_timeline(connection, detail.person["id"])
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
            "consent": detail.consent,
            "handoff": handoff,
            "timeline": score_timeline_svg(timeline, threshold=definition.qualify.threshold),
            "timeline_points": len(timeline["points"]),
            "actions": SALES_ACTIONS,
            "reasons": {a: definition.reason_codes(a) for a, _label in SALES_ACTIONS},
            "stages": [s.value for s in Stage if s.value != detail.person["stage"]],
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
def definition_page(request: Request, _reader: Reader) -> Response:
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


@router.get("/definition/versions", response_class=HTMLResponse)
def definition_versions_page(
    request: Request, _reader: Reader, before: str = "", after: str = ""
) -> Response:
    """Every stored version (live marked, author, message, time) and the diff of two."""

    def context() -> dict[str, Any]:
        from mqlengine.services import definitions

        wiring = _wiring(request)
        with wiring.db.read() as connection:
            versions = definitions.list_versions(connection)
            names = [v["version"] for v in versions]
            live = next((v["version"] for v in versions if v["live"]), None)
            new = after or live or (names[0] if names else "")
            old = before or next((n for n in names if n != new), "")
            diff = None
            if old and new and old != new:
                result = definitions.diff(
                    definitions.stored(connection, old), definitions.stored(connection, new)
                )
                diff = {
                    "changes": [definitions.describe_change(c) for c in result.changes],
                    "unified": result.unified.splitlines(),
                }
        return {"versions": versions, "before": old, "after": new, "diff": diff}

    return _page(request, "definition_versions.html", "definition", x=context)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:
    return _login_page(request, status=200, next_path=next)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """The login form: a key with the ``read`` scope opens a session."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return _login_page(request, 400, "the form is too large", "/")
    form = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
    key = (form.get("key") or [""])[0].strip()
    target = _safe_next((form.get("next") or ["/"])[0])
    if not key:
        return _login_page(request, 401, "enter a key", target)
    verifier: KeyVerifier = request.app.state.keys
    principal = await run_in_threadpool(verifier.resolve, key)
    if principal is None:
        return _login_page(request, 401, "unknown, expired or revoked key", target)
    if not principal.allows("read"):
        message = f"key {principal.name!r} lacks the 'read' scope the dashboard needs"
        return _login_page(request, 403, message, target)
    token = await run_in_threadpool(_open_session, request, principal)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        f"{token}.{_sign(request.app.state.session_secret, token)}",
        max_age=SESSION_HOURS * 3600,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


def _open_session(request: Request, principal: Principal) -> str:
    wiring = _wiring(request)
    now = wiring.clock()
    address = request.client.host if request.client is not None else None
    with wiring.db.begin() as connection:
        token, _expires = create_session(connection, principal.key_id, now=now, address=address)
        record_audit(
            connection,
            actor=principal.name,
            key_id=principal.key_id,
            action="dashboard.login",
            target=None,
            details=None,
            address=address,
            at=now,
        )
    return token


@router.post("/logout")
def logout(request: Request) -> Response:
    """Ends the session (in the store, so a copied cookie stops working too)."""
    token = _cookie_token(request)
    if token is not None:
        wiring = _wiring(request)
        with wiring.db.begin() as connection:
            end_session(connection, token, now=wiring.clock())
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request)
    )
    return response


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
