"""Keys and the audit log over HTTP (admin scope): ``/v1/keys``, ``/v1/audit``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from mqlengine.api.auth import audit, require_scope
from mqlengine.api.contract import errors
from mqlengine.errors import ValidationError
from mqlengine.services import keys as service
from mqlengine.services.audit import list_audit
from mqlengine.services.keys import KeyHasher, KeyVerifier, Principal
from mqlengine.wiring import Wiring

ADMIN = require_scope("admin")
Admin = Annotated[Principal, Depends(ADMIN)]
router = APIRouter(
    prefix="/v1",
    tags=["access"],
    dependencies=[Depends(ADMIN)],
    responses=errors(400, 401, 403, 404),
)


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scopes: list[str] = Field(min_length=1)
    name: str | None = Field(default=None, max_length=255)
    expires_at: datetime | None = None
    server_side: bool = False


def _wiring(request: Request) -> Wiring:
    wiring: Wiring = request.app.state.wiring
    return wiring


def _json(value: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in value.items()}


@router.get("/keys", summary="Stored keys (never their secrets)")
def get_keys(request: Request) -> dict[str, Any]:
    wiring = _wiring(request)
    with wiring.db.read() as connection:
        rows = service.list_keys(connection, now=wiring.clock())
    return {"keys": [_json(row) for row in rows]}


@router.post("/keys", summary="Create a key; the answer is the only time its secret is shown")
def post_key(body: KeyIn, request: Request, principal: Admin) -> dict[str, Any]:
    wiring = _wiring(request)
    if body.expires_at is not None and body.expires_at.tzinfo is None:
        raise ValidationError("'expires_at' needs a time zone (e.g. 2027-01-01T00:00:00Z)")
    with wiring.db.begin() as connection:
        created = service.create_key(
            connection,
            KeyHasher(wiring.settings.secret_key),
            scopes=body.scopes,
            now=wiring.clock(),
            name=body.name,
            expires_at=body.expires_at,
            server_side=body.server_side,
        )
        audit(
            request,
            connection,
            principal,
            "key.create",
            created.key_id,
            {"name": created.name, "scopes": created.scopes, "server_side": body.server_side},
        )
    return _json(
        {
            "key_id": created.key_id,
            "name": created.name,
            "scopes": created.scopes,
            "server_side": created.server_side,
            "created_at": created.created_at,
            "expires_at": created.expires_at,
            "key": created.secret,
        }
    )


@router.post("/keys/{key_id}/revoke", summary="Revoke a key (effective within seconds)")
def revoke_key(key_id: str, request: Request, principal: Admin) -> dict[str, Any]:
    wiring = _wiring(request)
    with wiring.db.begin() as connection:
        row = service.revoke_key(connection, key_id, now=wiring.clock())
        audit(request, connection, principal, "key.revoke", key_id, {"name": row["name"]})
    verifier: KeyVerifier = request.app.state.keys
    verifier.forget(key_id)
    return _json(row)


@router.get("/audit", summary="The audit log of admin and feedback actions, newest first")
def get_audit(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    action: str | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    with _wiring(request).db.read() as connection:
        return {"entries": list_audit(connection, limit=limit, action=action, actor=actor)}
