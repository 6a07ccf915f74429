"""Sales feedback: ``POST /v1/persons/{id}/feedback`` closes the loop from sales to scoring.

Needs a key with the ``feedback`` scope; the actor recorded with the stage change is the
key's name (not something the request says), and each call is kept in the audit log.
Illegal moves answer 409 with the allowed stages; unknown or missing reason codes 400.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from mqlengine.api.auth import audit, require_scope
from mqlengine.api.contract import Moment, RowId, errors
from mqlengine.errors import ValidationError
from mqlengine.services.feedback import apply_feedback
from mqlengine.services.handoff.assign import current_assignment
from mqlengine.services.keys import Principal
from mqlengine.store import repo
from mqlengine.wiring import Wiring

FEEDBACK = require_scope("feedback")
router = APIRouter(
    prefix="/v1",
    tags=["feedback"],
    dependencies=[Depends(FEEDBACK)],
    responses=errors(400, 401, 403, 404, 409),
)

ActionName = Literal[
    "touch", "accept", "reject", "recycle", "disqualify", "convert", "won", "lost", "reopen"
]


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: ActionName
    reason: str | None = Field(default=None, max_length=64)
    amount: float | None = Field(default=None, ge=0)
    at: Moment | None = None  # when it happened (default: now)


@router.post("/persons/{person_id}/feedback", summary="Record sales feedback on a lead")
def post_feedback(
    person_id: RowId,
    body: FeedbackIn,
    request: Request,
    principal: Annotated[Principal, Depends(FEEDBACK)],
) -> dict[str, Any]:
    wiring: Wiring = request.app.state.wiring
    definition = wiring.definition().definition
    now = wiring.clock()
    at = body.at or now
    if at.tzinfo is None:
        raise ValidationError("'at' needs a time zone (e.g. 2026-11-20T12:00:00Z)")
    if at > now:
        raise ValidationError("'at' is in the future")
    with wiring.db.begin() as connection:
        change = apply_feedback(
            connection,
            definition,
            person_id,
            body.action,
            actor=principal.name,
            at=at,
            now=now,
            reason=body.reason,
            amount=body.amount,
        )
        live = repo.live_person_id(connection, person_id)
        person = repo.get_person(connection, live)
        assignment = current_assignment(connection, live)
        audit(
            request,
            connection,
            principal,
            f"feedback.{body.action}",
            f"person:{person_id}",
            {
                "reason": body.reason,
                "amount": body.amount,
                "at": at.isoformat(),
                "changed": change is not None,
            },
        )
    assert person is not None
    return {
        "person_id": live,
        "action": body.action,
        "stage": person["stage"],
        "changed": change is not None,
        "from_stage": change.from_stage.value if change else None,
        "to_stage": change.to_stage.value if change else None,
        "first_touch_at": person["first_touch_at"].isoformat()
        if person["first_touch_at"]
        else None,
        "assignment_status": assignment["status"] if assignment is not None else None,
    }
