"""Privacy requests over HTTP: erase a person, export everything held on them.

``DELETE /v1/persons/{id}`` erases the person (and every person merged into them) from
every table and answers the audit record; ``GET /v1/persons/{id}/export`` answers all
that is held on them as JSON. Both are thin over :mod:`mqlengine.services.privacy`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from mqlengine.api.auth import audit, require_scope
from mqlengine.api.contract import RowId, errors
from mqlengine.services import privacy
from mqlengine.services.keys import Principal
from mqlengine.wiring import Wiring

Admin = Annotated[Principal, Depends(require_scope("admin"))]
router = APIRouter(prefix="/v1", tags=["privacy"], responses=errors(401, 403, 404))


def _wiring(request: Request) -> Wiring:
    wiring: Wiring = request.app.state.wiring
    return wiring


@router.delete("/persons/{person_id}", summary="Erase a person and all that is held on them")
def erase_person(person_id: RowId, request: Request, principal: Admin) -> dict[str, Any]:
    wiring = _wiring(request)
    record = privacy.erase(
        wiring.db,
        person_id,
        now=wiring.clock(),
        actor=principal.name,
        after=wiring.settings.after_erasure,
        box=wiring.secret_box(),
    )
    with wiring.db.begin() as connection:
        audit(
            request,
            connection,
            principal,
            "person.erase",
            f"erasure:{record['erasure_id']}",  # the person's id names no one any more
        )
    return record


@router.get("/persons/{person_id}/export", summary="Everything held on a person (JSON)")
def export_person(person_id: RowId, request: Request, principal: Admin) -> dict[str, Any]:
    wiring = _wiring(request)
    definition = wiring.definition().definition
    with wiring.db.read() as connection:
        data = privacy.export_person(connection, definition, person_id)
    with wiring.db.begin() as connection:
        audit(request, connection, principal, "person.export", f"person:{person_id}")
    return data
