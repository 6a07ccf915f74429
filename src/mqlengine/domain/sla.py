"""SLA maths: which policy applies to an MQL, its first-touch deadline, and what a breach
sets off. Pure; the worker passes ``now`` in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from mqlengine.domain.calendar import ALWAYS, BusinessCalendar, add_business_time
from mqlengine.domain.conditions import Condition
from mqlengine.domain.routing import Lead, lead_matches


class Escalation(StrEnum):
    NOTIFY_MANAGER = "notify_manager"
    REASSIGN = "reassign"


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    id: str
    first_touch_within: timedelta
    calendar: str = "always"
    mql_types: tuple[str, ...] = ()
    when: Condition | None = None
    escalate: tuple[Escalation, ...] = (Escalation.NOTIFY_MANAGER,)
    max_reassignments: int = 1


@dataclass(frozen=True, slots=True)
class SlaConfig:
    policies: tuple[SlaPolicy, ...]
    calendars: Mapping[str, BusinessCalendar] = field(default_factory=dict)

    def calendar(self, name: str) -> BusinessCalendar:
        return self.calendars.get(name, ALWAYS)

    def policy(self, policy_id: str | None) -> SlaPolicy | None:
        for policy in self.policies:
            if policy.id == policy_id:
                return policy
        return None


def select_policy(config: SlaConfig, lead: Lead, now: datetime) -> SlaPolicy | None:
    """The first policy whose ``mql_types``/``when`` match (None: no SLA)."""
    for policy in config.policies:
        if lead_matches(policy.mql_types, policy.when, lead, now):
            return policy
    return None


def due_at(config: SlaConfig, policy: SlaPolicy, start: datetime) -> datetime:
    """First-touch deadline for an assignment made at ``start``."""
    return add_business_time(config.calendar(policy.calendar), start, policy.first_touch_within)


@dataclass(frozen=True, slots=True)
class BreachDecision:
    breached_at: datetime  # the deadline that passed
    actions: tuple[Escalation, ...]
    late_touch: bool  # touched, but after the deadline (record, don't reassign)


def check_breach(
    policy: SlaPolicy,
    *,
    due: datetime,
    first_touch_at: datetime | None,
    reassignments: int,
    now: datetime,
) -> BreachDecision | None:
    """Has this assignment breached its SLA as of ``now``, and what follows?"""
    if first_touch_at is not None and first_touch_at <= due:
        return None
    if first_touch_at is None and now <= due:
        return None
    late = first_touch_at is not None
    actions = tuple(
        a
        for a in policy.escalate
        if not (a is Escalation.REASSIGN and (late or reassignments >= policy.max_reassignments))
    )
    return BreachDecision(due, actions, late)


class SlaState(StrEnum):
    ON_TIME = "on_time"  # touched by the deadline, or the deadline is more than `soon` away
    DUE_SOON = "due_soon"  # not touched, the deadline within `soon`
    BREACHED = "breached"  # not touched by the deadline (or touched after it)


DUE_SOON = timedelta(hours=1)


def sla_state(
    due: datetime | None,
    first_touch_at: datetime | None,
    now: datetime,
    *,
    soon: timedelta = DUE_SOON,
) -> SlaState | None:
    """Where a lead's first-touch SLA stands at ``now`` (None: no SLA clock)."""
    if due is None:
        return None
    if first_touch_at is not None:
        return SlaState.ON_TIME if first_touch_at <= due else SlaState.BREACHED
    if now > due:
        return SlaState.BREACHED
    return SlaState.DUE_SOON if due - now <= soon else SlaState.ON_TIME
