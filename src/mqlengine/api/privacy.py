"""Privacy requests over HTTP: erase a person, export everything held on them.

``DELETE /v1/persons/{id}`` erases the person (and every person merged into them) from
every table and answers the audit record; ``GET /v1/persons/{id}/export`` answers all
that is held on them as JSON. Both are thin over :mod:`mqlengine.services.privacy`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from mqlengine.api.auth import require_key
from mqlengine.services import privacy
from mqlengine.wiring import Wiring


def require_admin(request: Request) -> None:
    """Who may erase and export: for now a write key in the Authorization header (never
    a key in the URL, which would reach access logs)."""
    require_key(request)


router = APIRouter(prefix="/v1", tags=["privacy"], dependencies=[Depends(require_admin)])


def _wiring(request: Request) -> Wiring:
    wiring: Wiring = request.app.state.wiring
    return wiring


@router.delete("/persons/{person_id}", summary="Erase a person and all that is held on them")
def erase_person(person_id: int, request: Request) -> dict[str, Any]:
    wiring = _wiring(request)
    return privacy.erase(
        wiring.db,
        person_id,
        now=wiring.clock(),
        actor="api",
        after=wiring.settings.after_erasure,
        box=wiring.secret_box(),
    )


@router.get("/persons/{person_id}/export", summary="Everything held on a person (JSON)")
def export_person(person_id: int, request: Request) -> dict[str, Any]:
    wiring = _wiring(request)
    definition = wiring.definition().definition
    with wiring.db.read() as connection:
        return privacy.export_person(connection, definition, person_id)
