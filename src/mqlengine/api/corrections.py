"""Manual corrections over HTTP: ``POST /v1/persons/{id}/corrections`` (admin).

An admin overrides a lead's score or stage with a mandatory reason; the change lands in
the stage history as a manual change (the key's name as actor) and in the audit log.
Thin over :mod:`mqlengine.services.corrections`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from mqlengine.api.auth import address_of, require_scope
from mqlengine.api.contract import RowId, errors
from mqlengine.services.corrections import correct
from mqlengine.services.keys import Principal
from mqlengine.wiring import Wiring

Admin = Annotated[Principal, Depends(require_scope("admin"))]
router = APIRouter(prefix="/v1", tags=["corrections"], responses=errors(400, 401, 403, 404, 409))


class CorrectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["score", "stage"]
    value: str = Field(min_length=1, max_length=32, description="the new stage, or score")
    reason: str = Field(min_length=1, max_length=500)


@router.post("/persons/{person_id}/corrections", summary="Correct a lead's score or stage")
def post_correction(
    person_id: RowId, body: CorrectionIn, request: Request, principal: Admin
) -> dict[str, Any]:
    wiring: Wiring = request.app.state.wiring
    definition = wiring.definition().definition
    with wiring.db.begin() as connection:
        return correct(
            connection,
            definition,
            person_id,
            kind=body.kind,
            value=body.value,
            reason=body.reason,
            actor=principal.name,
            key_id=principal.key_id,
            now=wiring.clock(),
            address=address_of(request),
        )
