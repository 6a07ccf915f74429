"""The SLA clock: touches that stop it, breaches that escalate (notify, reassign)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from mqlengine.domain.consent import marketing_withdrawn
from mqlengine.domain.lifecycle import Stage
from mqlengine.domain.routing import RouteDecision, match_rule, route
from mqlengine.domain.rules import Definition
from mqlengine.domain.sla import Escalation, check_breach, due_at
from mqlengine.services import outbox
from mqlengine.services.handoff.assign import current_assignment, lock_routing, record_assignment
from mqlengine.services.handoff.directory import rep_directory
from mqlengine.services.handoff.payloads import manager_email, person_summary
from mqlengine.services.handoff.reads import lead_of, routing_state_for
from mqlengine.store.tables import persons
from mqlengine.store.tables_handoff import assignments, reps, sla_breaches, touches

# --- touches ---------------------------------------------------------------------------------


def record_touch(
    connection: Connection,
    definition: Definition,
    person_id: int,
    *,
    actor: str,
    action: str,
    at: datetime,
    now: datetime,
) -> bool:
    """Record sales working a lead; the first touch stops the SLA clock. True when this was
    the first touch of the current assignment."""
    current = current_assignment(connection, person_id)
    assignment_id = current["id"] if current is not None else None
    connection.execute(
        touches.insert().values(
            person_id=person_id,
            assignment_id=assignment_id,
            actor=actor,
            action=action,
            touched_at=at,
            recorded_at=now,
        )
    )
    connection.execute(
        update(persons)
        .where(persons.c.id == person_id, persons.c.first_touch_at.is_(None))
        .values(first_touch_at=at)
    )
    if current is None or current["status"] != "waiting":
        return False
    connection.execute(
        update(assignments)
        .where(assignments.c.id == current["id"], assignments.c.status == "waiting")
        .values(status="touched", first_touch_at=at)
    )
    due = current["sla_due_at"]
    already = connection.execute(
        select(sla_breaches.c.id).where(sla_breaches.c.assignment_id == current["id"])
    ).first()
    if due is not None and at > due and definition.sla is not None and already is None:
        policy = definition.sla.policy(current["sla_policy"])
        if policy is not None:
            decision = check_breach(
                policy, due=due, first_touch_at=at, reassignments=current["seq"], now=now
            )
            if decision is not None:
                _record_breach(
                    connection, current, decision.actions, late=True, detected=at, now=now
                )
    return True


# --- SLA breaches ----------------------------------------------------------------------------


def _record_breach(
    connection: Connection,
    assignment: Mapping[Any, Any],
    actions: tuple[Escalation, ...],
    *,
    late: bool,
    detected: datetime,
    now: datetime,
    reassigned_to: int | None = None,
) -> None:
    connection.execute(
        sla_breaches.insert().values(
            assignment_id=assignment["id"],
            person_id=assignment["person_id"],
            policy_id=assignment["sla_policy"] or "",
            due_at=assignment["sla_due_at"],
            detected_at=detected,
            late_touch=late,
            actions=[a.value for a in actions],
            reassigned_to=reassigned_to,
        )
    )
    person = (
        connection.execute(select(persons).where(persons.c.id == assignment["person_id"]))
        .mappings()
        .one()
    )
    rep_email = None
    rep_key = None
    if assignment["rep_id"] is not None:
        rep = connection.execute(
            select(reps.c.key, reps.c.email).where(reps.c.id == assignment["rep_id"])
        ).first()
        if rep is not None:
            rep_key, rep_email = rep.key, rep.email
    data = {
        "person": person_summary(person),
        "mql_type": person["mql_type"],
        "assignment": {
            "id": assignment["id"],
            "team": assignment["team"],
            "rep": {"key": rep_key, "email": rep_email} if rep_key else None,
        },
        "breach": {
            "policy": assignment["sla_policy"],
            "due_at": assignment["sla_due_at"].isoformat(),
            "detected_at": detected.isoformat(),
            "late_touch": late,
            "actions": [a.value for a in actions],
        },
        "sla": {"policy": assignment["sla_policy"], "due_at": assignment["sla_due_at"].isoformat()},
    }
    manager = manager_email(connection, assignment["team"])
    if Escalation.NOTIFY_MANAGER in actions or late:
        outbox.enqueue(
            connection,
            "sla.breached",
            data,
            now=now,
            person_id=assignment["person_id"],
            recipients={
                "owner": rep_email,
                "manager": manager if Escalation.NOTIFY_MANAGER in actions else None,
            },
        )


def check_breaches(
    connection: Connection, definition: Definition, *, now: datetime, limit: int = 500
) -> list[dict[str, Any]]:
    """Find waiting assignments past their deadline, record each breach once, escalate."""
    if definition.sla is None:
        return []
    query = (
        select(assignments, persons.c.profile.label("person_profile"))
        .outerjoin(sla_breaches, sla_breaches.c.assignment_id == assignments.c.id)
        .join(persons, persons.c.id == assignments.c.person_id)
        .where(
            assignments.c.status == "waiting",
            assignments.c.sla_due_at.is_not(None),
            assignments.c.sla_due_at < now,
            sla_breaches.c.id.is_(None),
            persons.c.stage == Stage.MQL.value,
        )
        .order_by(assignments.c.sla_due_at)
        .limit(limit)
    )
    found: list[dict[str, Any]] = []
    for row in connection.execute(query).mappings().all():
        if marketing_withdrawn(row["person_profile"], definition.consent):
            # consent withdrawn since the assignment: nobody is chased about this person
            connection.execute(
                update(assignments)
                .where(assignments.c.id == row["id"])
                .values(status="closed", closed_at=now)
            )
            continue
        policy = definition.sla.policy(row["sla_policy"])
        if policy is None:
            continue
        decision = check_breach(
            policy, due=row["sla_due_at"], first_touch_at=None, reassignments=row["seq"], now=now
        )
        if decision is None:
            continue
        reassigned_to = None
        actions = decision.actions
        if Escalation.REASSIGN in actions and definition.routing is not None:
            reassigned_to = _reassign(connection, definition, row, now=now)
            if reassigned_to is None:
                actions = tuple(a for a in actions if a is not Escalation.REASSIGN)
        _record_breach(
            connection, row, actions, late=False, detected=now, now=now, reassigned_to=reassigned_to
        )
        found.append(
            {
                "assignment_id": row["id"],
                "person_id": row["person_id"],
                "policy": policy.id,
                "due_at": row["sla_due_at"],
                "actions": [a.value for a in actions],
                "reassigned_to": reassigned_to,
            }
        )
    return found


def _reassign(
    connection: Connection, definition: Definition, row: Mapping[Any, Any], *, now: datetime
) -> int | None:
    person = (
        connection.execute(select(persons).where(persons.c.id == row["person_id"])).mappings().one()
    )
    current_key = None
    if row["rep_id"] is not None:
        found = connection.execute(select(reps.c.key).where(reps.c.id == row["rep_id"])).first()
        current_key = found.key if found else None
    # Reassignment keeps to the original rule's team, without stickiness to the late owner.
    assert definition.routing is not None
    lock_routing(connection)
    directory = rep_directory(connection)
    lead = lead_of(person, None, person["mql_type"])
    rule = (
        match_rule(definition.routing, lead, now, only_rule=row["rule_id"])
        if row["rule_id"]
        else None
    )
    state = routing_state_for(
        connection, directory, rule, person_id=person["id"], account_id=None, now=now
    )
    exclude = frozenset({current_key}) if current_key else frozenset()
    decision = (
        route(
            definition.routing,
            directory.reps,
            lead,
            state,
            now,
            exclude=exclude,
            only_rule=row["rule_id"],
        )
        if row["rule_id"]
        else None
    )
    if decision is None or decision.rep is None:
        return None
    policy = definition.sla.policy(row["sla_policy"]) if definition.sla else None
    due = due_at(definition.sla, policy, now) if definition.sla and policy else None
    connection.execute(
        update(assignments)
        .where(assignments.c.id == row["id"])
        .values(status="reassigned", closed_at=now)
    )
    decision = RouteDecision(
        decision.team,
        decision.rep,
        decision.rule_id,
        decision.strategy,
        f"reassigned after SLA breach: {decision.reason}",
        decision.skipped,
    )
    record_assignment(
        connection,
        person,
        decision,
        directory.rows,
        lead=lead,
        card=None,
        mql_at=row["mql_at"],
        seq=row["seq"] + 1,
        at=now,
        recorded_at=now,
        policy_id=row["sla_policy"],
        due=due,
        managers=directory.managers,
    )
    new = current_assignment(connection, person["id"])
    return int(new["id"]) if new is not None else None
