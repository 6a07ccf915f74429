"""The sales desk in the dashboard: the Leads page (filters, sorting, pages, CSV export),
sales actions and manual corrections from the person page, the weekly review and the
corrections panel.

Forms post to the dashboard with the session cookie (SameSite=Strict) and a CSRF token
bound to the session (:func:`mqlengine.dashboard.routes.csrf_token`); each route declares
the scope it needs (``feedback`` for sales actions and the review, ``admin`` for
corrections), checked against the session's key. Actions go through the same services as
the API and the CLI, with the key's name as actor, and are audited.
"""

from __future__ import annotations

import csv
import hmac
import io
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from mqlengine.dashboard.routes import (
    _error_page,
    _page,
    _PageRoute,
    _wiring,
    csrf_token,
    dashboard_reader,
    session_principal,
)
from mqlengine.errors import MqlError, ValidationError
from mqlengine.services.audit import record_audit
from mqlengine.services.corrections import correct, corrections_report, recent_corrections
from mqlengine.services.corrections import week_of as _week_of
from mqlengine.services.desk import lead_choices
from mqlengine.services.feedback import apply_feedback
from mqlengine.services.keys import Principal
from mqlengine.services.leads import PAGE_SIZES, LeadView, iter_leads, lead_page
from mqlengine.services.review import (
    STRATA,
    draw_sample,
    get_sample,
    list_samples,
    mark,
    parse_week,
    review_report,
)

MAX_FORM_BYTES = 16_384
SLA_STATES = ("on_time", "due_soon", "breached", "none")
CSV_COLUMNS = (
    "id",
    "email",
    "stage",
    "mql_type",
    "total",
    "fit",
    "intent",
    "channel",
    "owner",
    "team",
    "sla_due_at",
    "first_touch_at",
    "sla_state",
    "created_at",
    "mql_at",
)


def _csv_row(row: dict[str, Any]) -> dict[str, Any]:
    """A lead as the Leads page exports it: the rep's key as owner (blank for a queue),
    ``none`` for no deadline."""
    return {**row, "owner": row["owner_key"], "sla_state": row["sla_state"] or "none"}


def dashboard_scope(scope: str) -> Callable[[Request], Principal]:
    """The dependency of a dashboard form that needs ``scope`` (declared for the route
    test like the API's)."""

    def dependency(request: Request) -> Principal:
        return session_principal(request, scope)

    dependency.__name__ = f"dashboard_{scope}"
    dependency.mql_scope = scope  # type: ignore[attr-defined]
    return dependency


Reader = Annotated[Principal, Depends(dashboard_reader)]
Feedback = Annotated[Principal, Depends(dashboard_scope("feedback"))]
Admin = Annotated[Principal, Depends(dashboard_scope("admin"))]

router = APIRouter(include_in_schema=False, route_class=_PageRoute)


async def _form(request: Request) -> dict[str, str]:
    """The posted form, after checking its CSRF token against the session."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ValidationError(f"the form is too large (at most {MAX_FORM_BYTES} bytes)")
    form = {
        k: v[0]
        for k, v in parse_qs(body.decode("utf-8", "replace"), max_num_fields=20).items()
        if v
    }
    expected = getattr(request.state, "csrf", "")
    given = form.get("csrf", "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ValidationError(
            "the form's CSRF token is missing or does not belong to this session: "
            "reload the page and submit again"
        )
    return form


def _client(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


# -- the Leads page -------------------------------------------------------------------------


@router.get("/leads")
def leads_page(request: Request, _reader: Reader) -> Response:
    params = dict(request.query_params)

    def context() -> dict[str, Any]:
        filters = LeadView.parse(params)
        wiring = _wiring(request)
        with wiring.db.read() as connection:
            page = lead_page(connection, filters, now=wiring.clock())
            choices = lead_choices(connection)
        from mqlengine.reports import metrics
        from mqlengine.reports.data import report_data

        base = filters.query()

        def link(**changes: Any) -> str:
            merged = {**base, **{k: str(v) for k, v in changes.items()}}
            return "/leads?" + urlencode({k: v for k, v in merged.items() if v})

        def sort_link(column: str) -> str:
            order = "asc" if filters.sort == column and filters.order == "desc" else "desc"
            return link(sort=column, order=order, page=1)

        return {
            "f": filters,
            "form": {k: v for k, v in params.items()},
            "page": page,
            "choices": {
                **choices,
                "channels": metrics.dimension_values(report_data(wiring.db), "channel"),
                "sla": SLA_STATES,
                "sizes": PAGE_SIZES,
            },
            "next": link(page=filters.page + 1) if page.has_next else None,
            "prev": link(page=filters.page - 1) if filters.page > 1 else None,
            "sort_link": sort_link,
            "export": "/leads.csv?" + urlencode(base) if base else "/leads.csv",
        }

    return _page(request, "leads.html", "leads", d=context)


@router.get("/leads.csv")
def leads_csv(request: Request, _reader: Reader) -> Response:
    """The filtered list as CSV: every matching row, streamed (no page, no cap)."""
    try:
        filters = LeadView.parse(dict(request.query_params))
    except MqlError as error:
        return _error_page(error, "leads")
    wiring = _wiring(request)
    now = wiring.clock()

    def rows() -> Iterator[bytes]:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        with wiring.db.read() as connection:
            for i, row in enumerate(iter_leads(connection, filters, now=now), 1):
                writer.writerow(_csv_row(row))
                if i % 500 == 0:
                    yield buffer.getvalue().encode()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue().encode()

    stamp = now.strftime("%Y%m%dT%H%M")
    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="leads-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )


# -- sales actions and corrections from the person page -----------------------------------


def _back(person_id: int, anchor: str = "timeline") -> Response:
    return RedirectResponse(f"/persons/{person_id}#{anchor}", status_code=303)


@router.post("/persons/{person_id}/feedback")
async def person_feedback(request: Request, person_id: int, principal: Feedback) -> Response:
    """A sales action (touch, accept, reject, recycle, disqualify, convert, won, lost)
    through the feedback service, with the key's name as actor; audited."""
    try:
        form = await _form(request)
        action = form.get("action", "").strip()
        amount_text = form.get("amount", "").strip()
        try:
            amount = float(amount_text) if amount_text else None
        except ValueError:
            raise ValidationError(f"amount '{amount_text}' is not a number") from None
        reason = form.get("reason", "").strip() or None
        if reason is not None and len(reason) > 64:
            raise ValidationError("the reason code is longer than 64 characters")
        wiring = _wiring(request)
        definition = wiring.definition().definition
        now = wiring.clock()
        with wiring.db.begin() as connection:
            change = apply_feedback(
                connection,
                definition,
                person_id,
                action,
                actor=principal.name,
                at=now,
                now=now,
                reason=reason,
                amount=amount,
            )
            record_audit(
                connection,
                actor=principal.name,
                key_id=principal.key_id,
                action=f"feedback.{action}",
                target=f"person:{person_id}",
                details={
                    "reason": reason,
                    "amount": amount,
                    "at": now.isoformat(),
                    "changed": change is not None,
                    "via": "dashboard",
                },
                address=_client(request),
                at=now,
            )
    except MqlError as error:
        return _error_page(error, "")
    return _back(person_id)


@router.post("/persons/{person_id}/correct")
async def person_correct(request: Request, person_id: int, principal: Admin) -> Response:
    """A manual correction of the score or the stage, with its mandatory reason."""
    try:
        form = await _form(request)
        wiring = _wiring(request)
        definition = wiring.definition().definition
        with wiring.db.begin() as connection:
            correct(
                connection,
                definition,
                person_id,
                kind=form.get("kind", "").strip(),
                value=form.get("value", ""),
                reason=form.get("reason"),
                actor=principal.name,
                key_id=principal.key_id,
                now=wiring.clock(),
                address=_client(request),
            )
    except MqlError as error:
        return _error_page(error, "")
    return _back(person_id)


# -- the weekly review and the corrections panel --------------------------------------------


@router.get("/review")
def review_page(request: Request, _reader: Reader) -> Response:
    def context() -> dict[str, Any]:
        wiring = _wiring(request)
        now = wiring.clock()
        since = _week_of(now) - timedelta(days=7 * 11)
        with wiring.db.read() as connection:
            return {
                "samples": list_samples(connection),
                "report": review_report(connection, now=now),
                "corrections": corrections_report(
                    connection, since=since, until=_week_of(now) + timedelta(days=7)
                ),
                "recent": recent_corrections(connection, limit=10),
                "last_week": (_week_of(now) - timedelta(days=7)).date().isoformat(),
                "teams": lead_choices(connection)["teams"],
            }

    return _page(request, "review.html", "review", v=context)


@router.post("/review/sample")
async def review_sample(request: Request, principal: Feedback) -> Response:
    try:
        form = await _form(request)
        wiring = _wiring(request)
        now = wiring.clock()
        n_text, seed_text = form.get("n", "10").strip(), form.get("seed", "").strip()
        if not n_text.isdigit():
            raise ValidationError(f"sample size '{n_text}' is not a whole number")
        if seed_text and not seed_text.isdigit():
            raise ValidationError(f"seed '{seed_text}' is not a whole number")
        with wiring.db.begin() as connection:
            sample = draw_sample(
                connection,
                week_start=parse_week(form.get("week"), now=now),
                n=int(n_text),
                team=form.get("team", "").strip() or None,
                seed=int(seed_text) if seed_text else None,
                actor=principal.name,
                now=now,
            )
    except MqlError as error:
        return _error_page(error, "review")
    return RedirectResponse(f"/review/{sample['id']}", status_code=303)


@router.get("/review/{sample_id}")
def review_sample_page(request: Request, sample_id: int, _reader: Reader) -> Response:
    def context() -> dict[str, Any]:
        wiring = _wiring(request)
        with wiring.db.read() as connection:
            return {"s": get_sample(connection, sample_id), "strata": STRATA}

    return _page(request, "review_sample.html", "review", v=context)


@router.post("/review/{sample_id}/mark")
async def review_mark(request: Request, sample_id: int, principal: Feedback) -> Response:
    try:
        form = await _form(request)
        person_text = form.get("person_id", "").strip()
        if not person_text.isdigit():
            raise ValidationError(f"person '{person_text}' is not a person id")
        wiring = _wiring(request)
        with wiring.db.begin() as connection:
            mark(
                connection,
                sample_id,
                int(person_text),
                verdict=form.get("verdict", "").strip(),
                note=form.get("note"),
                actor=principal.name,
                now=wiring.clock(),
            )
    except MqlError as error:
        return _error_page(error, "review")
    return RedirectResponse(f"/review/{sample_id}#item-{person_text}", status_code=303)


__all__ = ["csrf_token", "router"]
