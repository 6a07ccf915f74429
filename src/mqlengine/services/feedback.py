"""Sales feedback on a lead: validated against the lifecycle and the definition's reasons."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from mqlengine.domain.lifecycle import Action, Refusal, Stage, StageChange, decide_on_feedback
from mqlengine.domain.rules import Definition
from mqlengine.errors import ConflictError, NotFoundError, ValidationError
from mqlengine.services.handoff.sla import record_touch
from mqlengine.services.qualify import apply_stage_change
from mqlengine.store import repo


def apply_feedback(
    connection: Connection,
    definition: Definition,
    person_id: int,
    action: str,
    *,
    actor: str,
    at: datetime,
    now: datetime,
    reason: str | None = None,
    amount: float | None = None,
) -> StageChange | None:
    """Apply one feedback action. Raises NotFound / Validation / Conflict errors.

    ``touch`` records a touch (the first one stops the SLA clock) and returns None.
    """
    try:
        verb = Action(action)
    except ValueError:
        choices = ", ".join(a.value for a in Action)
        raise ValidationError(f"unknown action '{action}' (use one of: {choices})") from None
    if amount is not None and amount < 0:
        raise ValidationError("amount must not be negative")
    live_id = repo.live_person_id(connection, person_id)
    row = repo.get_person(connection, live_id)
    if row is None:
        raise NotFoundError(f"person {person_id} does not exist")
    decision = decide_on_feedback(
        Stage(row["stage"]),
        verb,
        at,
        actor=actor,
        reason=reason,
        reason_codes=definition.reason_codes(verb.value),
        definition_version=definition.version,
        amount=amount,
    )
    if isinstance(decision, Refusal):
        if decision.code in ("reason_required", "unknown_reason"):
            raise ValidationError(decision.message, details={"code": decision.code})
        raise ConflictError(decision.message, details={"code": decision.code})
    if verb is not Action.REOPEN:
        # any sales action on the lead is (at least) a touch: it stops the SLA clock
        record_touch(
            connection, definition, live_id, actor=actor, action=verb.value, at=at, now=now
        )
    if decision is None:
        return None
    if not apply_stage_change(
        connection, live_id, decision, recorded_at=now, amount=amount, definition=definition
    ):
        raise ConflictError(
            f"person {person_id} changed stage concurrently; reload and retry",
            details={"code": "concurrent_change"},
        )
    return decision
