"""The lead lifecycle: stages, the transition table, and the decisions that move a lead.

The system moves leads on score (lead → mql, mql → lead below the hysteresis band,
nurture → mql once the recycle cool-down has passed); people move them with feedback.
Every decision is a value — a :class:`StageChange` or a :class:`Refusal` — never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from mqlengine.domain.scoring import ScoreCard


class Stage(StrEnum):
    LEAD = "lead"
    MQL = "mql"
    SAL = "sal"
    SQL = "sql"
    OPPORTUNITY = "opportunity"
    CUSTOMER = "customer"
    NURTURE = "nurture"
    DISQUALIFIED = "disqualified"


S = Stage
TRANSITIONS: dict[Stage, frozenset[Stage]] = {
    S.LEAD: frozenset({S.MQL, S.SAL, S.SQL, S.NURTURE, S.DISQUALIFIED}),
    S.MQL: frozenset({S.LEAD, S.SAL, S.SQL, S.OPPORTUNITY, S.NURTURE, S.DISQUALIFIED}),
    S.SAL: frozenset({S.SQL, S.OPPORTUNITY, S.NURTURE, S.DISQUALIFIED}),
    S.SQL: frozenset({S.OPPORTUNITY, S.CUSTOMER, S.NURTURE, S.DISQUALIFIED}),
    S.OPPORTUNITY: frozenset({S.CUSTOMER, S.NURTURE, S.DISQUALIFIED}),
    S.CUSTOMER: frozenset(),
    S.NURTURE: frozenset({S.MQL, S.SAL, S.SQL, S.DISQUALIFIED}),
    S.DISQUALIFIED: frozenset({S.LEAD}),
}

# Stages the scoring engine may still move a lead out of. Once sales own a lead
# (sal and beyond) only feedback moves it.
SYSTEM_MANAGED = frozenset({S.LEAD, S.MQL, S.NURTURE})

SYSTEM_ACTOR = "system"


class Action(StrEnum):
    """Sales feedback verbs and the stage each leads to."""

    TOUCH = "touch"
    ACCEPT = "accept"
    REJECT = "reject"
    RECYCLE = "recycle"
    DISQUALIFY = "disqualify"
    CONVERT = "convert"
    WON = "won"
    LOST = "lost"
    REOPEN = "reopen"


ACTION_TARGET: dict[Action, Stage | None] = {
    Action.TOUCH: None,  # records the first touch; no stage change
    Action.ACCEPT: S.SAL,
    Action.REJECT: S.NURTURE,
    Action.RECYCLE: S.NURTURE,
    Action.DISQUALIFY: S.DISQUALIFIED,
    Action.CONVERT: S.SQL,
    Action.WON: S.CUSTOMER,
    Action.LOST: S.NURTURE,
    Action.REOPEN: S.LEAD,
}

# Actions whose reason must be one of the definition's codes for that action.
REASON_REQUIRED = frozenset({Action.REJECT, Action.RECYCLE, Action.DISQUALIFY, Action.LOST})


@dataclass(frozen=True, slots=True)
class StageChange:
    from_stage: Stage
    to_stage: Stage
    at: datetime
    reason: str
    actor: str
    definition_version: str | None
    mql_type: str | None = None
    reactivated: bool = False
    action: str | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    message: str


def allowed(from_stage: Stage, to_stage: Stage) -> bool:
    return to_stage in TRANSITIONS[from_stage]


def check_transition(from_stage: Stage, to_stage: Stage) -> Refusal | None:
    if allowed(from_stage, to_stage):
        return None
    permitted = ", ".join(sorted(s.value for s in TRANSITIONS[from_stage])) or "none"
    return Refusal(
        "illegal_transition",
        f"a lead cannot move from {from_stage.value} to {to_stage.value} "
        f"(allowed from {from_stage.value}: {permitted})",
    )


def decide_on_score(
    current: Stage,
    card: ScoreCard,
    now: datetime,
    *,
    recycled_at: datetime | None = None,
    cooldown_days: float = 0.0,
) -> StageChange | None:
    """What the score says should happen to a lead in ``current`` stage, if anything."""
    version = card.definition_version
    if current is S.LEAD and card.qualifies:
        return StageChange(
            S.LEAD, S.MQL, now, f"qualified:{card.mql_type}", SYSTEM_ACTOR, version, card.mql_type
        )
    if current is S.NURTURE and card.qualifies:
        if recycled_at is not None and now < recycled_at + timedelta(days=cooldown_days):
            return None
        return StageChange(
            S.NURTURE,
            S.MQL,
            now,
            f"requalified:{card.mql_type}",
            SYSTEM_ACTOR,
            version,
            card.mql_type,
            reactivated=True,
        )
    if current is S.MQL and not card.retains:
        if card.excluded_because:
            reason = "excluded:" + ",".join(card.excluded_because)
        elif card.missing_requirements:
            reason = "missing:" + ",".join(card.missing_requirements)
        else:
            reason = "score_below_hysteresis"
        return StageChange(S.MQL, S.LEAD, now, reason, SYSTEM_ACTOR, version)
    return None


def decide_on_feedback(
    current: Stage,
    action: Action,
    now: datetime,
    *,
    actor: str,
    reason: str | None,
    reason_codes: tuple[str, ...],
    definition_version: str | None,
    amount: float | None = None,
) -> StageChange | Refusal | None:
    """Validate a feedback action; returns the change, a refusal, or None (touch)."""
    if action in REASON_REQUIRED:
        if not reason:
            return Refusal("reason_required", f"'{action.value}' needs a reason")
        if reason_codes and reason not in reason_codes:
            return Refusal(
                "unknown_reason",
                f"'{reason}' is not a {action.value} reason in the definition "
                f"(use one of: {', '.join(reason_codes)})",
            )
    target = ACTION_TARGET[action]
    if target is None:
        return None
    if action is Action.LOST and current is not S.OPPORTUNITY and current is not S.SQL:
        return Refusal(
            "illegal_transition", f"only an sql or opportunity can be lost, not {current}"
        )
    if action is Action.CONVERT and (current is S.SQL or amount is not None):
        target = S.OPPORTUNITY  # an amount makes it an opportunity
    refusal = check_transition(current, target)
    if refusal is not None:
        return refusal
    return StageChange(
        current,
        target,
        now,
        reason or action.value,
        actor,
        definition_version,
        action=action.value,
    )
