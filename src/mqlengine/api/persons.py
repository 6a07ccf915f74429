"""Read endpoints: one person with its score card and history, MQL lists, accounts.

Reads run on their own connections (SQLite WAL readers never block the writer).
Until scoped keys arrive, any configured write key may read (Basic or Bearer).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import Connection, and_, or_, select

from mqlengine.api.auth import require_key
from mqlengine.api.limits import ApiError
from mqlengine.domain.explain import card_to_dict
from mqlengine.engine import Engine, utcnow
from mqlengine.errors import NotFoundError, ValidationError
from mqlengine.ingest.messages import MessageError, parse_time
from mqlengine.services.leads import (
    IDENTITY_KINDS,
    STAGES,
    find_person_id,
    lead_row,
    person_detail,
)
from mqlengine.store import repo
from mqlengine.store.tables import accounts, persons

router = APIRouter(prefix="/v1", tags=["persons"], dependencies=[Depends(require_key)])
MAX_PAGE = 500


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def account_summary(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "domain": row["domain"],
        "group_id": row["group_id"],
        "name": row["name"],
        "traits": row["traits"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


@router.get("/persons/{person_id}", summary="A person: traits, identities, score card, history")
def get_person(person_id: int, request: Request) -> dict[str, Any]:
    engine = _engine(request)
    definition = engine.definition().definition
    with engine.db.read() as connection:
        detail = person_detail(connection, definition, person_id, as_of=utcnow())
        account = None
        if detail.person["account_id"] is not None:
            found = repo.accounts_by_id(connection, [detail.person["account_id"]])
            row = found.get(detail.person["account_id"])
            account = account_summary(row) if row is not None else None
    return {
        "person": detail.person,
        "identities": detail.identities,
        "account": account,
        "score_card": card_to_dict(detail.card),
        "stage_history": detail.history,
    }


def _cursor(value: str | None) -> tuple[datetime, int] | None:
    if not value:
        return None
    try:
        text = base64.urlsafe_b64decode(value.encode() + b"==").decode()
        moment, _, person_id = text.rpartition("|")
        return parse_time(moment, "cursor"), int(person_id)
    except (binascii.Error, UnicodeDecodeError, ValueError, MessageError):
        raise ApiError(400, "invalid_cursor", "cursor is not one this API returned") from None


def _next_cursor(row: dict[str, Any]) -> str:
    text = f"{row['stage_changed_at']}|{row['id']}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def list_page(
    connection: Connection,
    *,
    stage: str | None,
    since: datetime | None,
    after: tuple[datetime, int] | None,
    limit: int,
    ids: list[int] | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """Persons in stage-change order (oldest first), keyset-paginated: stable under ingest.
    ``ids``: only these persons (an identity lookup)."""
    query = select(persons).where(persons.c.merged_into.is_(None))
    if ids is not None:
        query = query.where(persons.c.id.in_(ids))
    if stage is not None:
        query = query.where(persons.c.stage == stage)
    if since is not None:
        query = query.where(persons.c.stage_changed_at >= since)
    if after is not None:
        moment, person_id = after
        query = query.where(
            or_(
                persons.c.stage_changed_at > moment,
                and_(persons.c.stage_changed_at == moment, persons.c.id > person_id),
            )
        )
    query = query.order_by(persons.c.stage_changed_at, persons.c.id).limit(limit + 1)
    rows = [lead_row(r) for r in connection.execute(query).mappings()]
    return rows[:limit], len(rows) > limit


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
    engine = _engine(request)
    gmail = engine.definition().definition.identity.gmail_normalize if given else False
    with engine.db.read() as connection:
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
            connection, stage=stage, since=moment, after=_cursor(cursor), limit=limit, ids=ids
        )
    return {
        "data": rows,
        "has_more": more,
        "next_cursor": _next_cursor(rows[-1]) if more and rows else None,
    }


@router.get("/accounts/{account_id}", summary="An account and its persons")
def get_account(account_id: int, request: Request) -> dict[str, Any]:
    engine = _engine(request)
    with engine.db.read() as connection:
        row = connection.execute(select(accounts).where(accounts.c.id == account_id))
        account = row.mappings().first()
        if account is None:
            raise NotFoundError(f"account {account_id} does not exist")
        members = [
            lead_row(r)
            for r in connection.execute(
                select(persons)
                .where(persons.c.account_id == account_id, persons.c.merged_into.is_(None))
                .order_by(persons.c.total_score.desc(), persons.c.id)
            ).mappings()
        ]
    stages: dict[str, int] = {}
    for member in members:
        stages[member["stage"]] = stages.get(member["stage"], 0) + 1
    return {"account": account_summary(account), "persons": members, "stages": stages}
