"""Read endpoints: one person with its score card and history, MQL lists, accounts.

Reads run on their own connections (SQLite WAL readers never block the writer).
They need a key with the ``read`` scope (a write key reads nothing).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from mqlengine.api.auth import require_scope
from mqlengine.api.contract import RowId, errors
from mqlengine.api.limits import ApiError
from mqlengine.domain.bounds import BIGINT_MAX
from mqlengine.domain.explain import card_to_dict
from mqlengine.errors import ValidationError
from mqlengine.ingest.lookup import IDENTITY_KINDS, find_person_id
from mqlengine.ingest.messages import MessageError, parse_time
from mqlengine.services.leads import (
    STAGES,
    LeadFilter,
    account_detail,
    list_page,
    person_account,
    person_detail,
    score_timeline,
)
from mqlengine.wiring import Wiring

router = APIRouter(
    prefix="/v1",
    tags=["persons"],
    dependencies=[Depends(require_scope("read"))],
    responses=errors(400, 401, 403, 404),
)
MAX_PAGE = 500


def _wiring(request: Request) -> Wiring:
    wiring: Wiring = request.app.state.wiring
    return wiring


@router.get("/persons/{person_id}", summary="A person: traits, identities, score card, history")
def get_person(person_id: RowId, request: Request) -> dict[str, Any]:
    wiring = _wiring(request)
    definition = wiring.definition().definition
    with wiring.db.read() as connection:
        detail = person_detail(connection, definition, person_id, as_of=wiring.clock())
        account = person_account(connection, detail.person["account_id"])
    return {
        "person": detail.person,
        "identities": detail.identities,
        "account": account,
        "score_card": card_to_dict(detail.card),
        "stage_history": detail.history,
        "consent": detail.consent,
    }


@router.get(
    "/persons/{person_id}/timeline",
    summary="A person's score over time, with the events and stage changes that moved it",
)
def get_timeline(person_id: RowId, request: Request) -> dict[str, Any]:
    with _wiring(request).db.read() as connection:
        return {"person_id": person_id, "timeline": score_timeline(connection, person_id)}


def _cursor(value: str | None) -> tuple[datetime, int] | None:
    if not value:
        return None
    try:
        text = base64.urlsafe_b64decode(value.encode() + b"==").decode()
        moment, _, person_id = text.rpartition("|")
        after = int(person_id)
        if not 0 <= after <= BIGINT_MAX:
            raise ValueError(person_id)
        return parse_time(moment, "cursor"), after
    except (binascii.Error, UnicodeDecodeError, ValueError, MessageError):
        raise ApiError(400, "invalid_cursor", "cursor is not one this API returned") from None


def _next_cursor(row: dict[str, Any]) -> str:
    text = f"{row['stage_changed_at']}|{row['id']}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@router.get(
    "/persons",
    summary="Persons by stage, changed since a time (paginated), or by identity",
)
def list_persons(
    request: Request,
    stage: str | None = Query(None, description=f"one of {', '.join(STAGES)}"),
    since: str | None = Query(None, description="stage changed at or after (ISO 8601)"),
    limit: int = Query(100, ge=1, le=MAX_PAGE),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    email: str | None = Query(None, description="the person with this e-mail (normalised)"),
    user_id: str | None = Query(None, alias="userId", description="… with this userId"),
    anonymous_id: str | None = Query(
        None, alias="anonymousId", description="… with this anonymousId"
    ),
    phone: str | None = Query(None, description="… with this phone number (E.164)"),
    external_id: str | None = Query(
        None, alias="externalId", description="… with this external (CRM) id"
    ),
) -> dict[str, Any]:
    if stage is not None and stage not in STAGES:
        raise ApiError(400, "invalid_input", f"unknown stage {stage!r}", {"stages": STAGES})
    try:
        moment = parse_time(since, "since") if since else None
    except MessageError as error:
        raise ApiError(400, "invalid_input", f"since: {error.reason}") from None
    given = {
        kind: value
        for kind, value in zip(
            IDENTITY_KINDS, (email, user_id, anonymous_id, phone, external_id), strict=True
        )
        if value is not None
    }
    wiring = _wiring(request)
    gmail = wiring.definition().definition.identity.gmail_normalize if given else False
    with wiring.db.read() as connection:
        ids: list[int] | None = None
        if given:  # several identities: the person that has all of them
            found: set[int | None] = set()
            for kind, value in given.items():
                try:
                    found.add(find_person_id(connection, kind, value, gmail_normalize=gmail))
                except ValidationError as error:
                    raise ApiError(400, "invalid_input", str(error), {"parameter": kind}) from None
            ids = [pid for pid in found if pid is not None] if len(found) == 1 else []
        rows, more = list_page(
            connection,
            LeadFilter.parse({"stage": stage, "since": moment}),
            after=_cursor(cursor),
            limit=limit,
            ids=ids,
            now=wiring.clock(),
        )
    return {
        "data": rows,
        "has_more": more,
        "next_cursor": _next_cursor(rows[-1]) if more and rows else None,
    }


@router.get("/accounts/{account_id}", summary="An account and its persons")
def get_account(account_id: RowId, request: Request) -> dict[str, Any]:
    with _wiring(request).db.read() as connection:
        return account_detail(connection, account_id)
