"""The handoff shell: routes new MQLs, keeps the SLA clock, records touches and breaches,
and writes the outbox rows — always on the caller's transaction.

:func:`on_stage_change` is called by :func:`mqlengine.services.qualify.apply_stage_change`
for every stage change it makes, so scoring and feedback share one path. The domain
(:mod:`mqlengine.domain.routing`, :mod:`mqlengine.domain.sla`) decides; this module loads
the inputs and persists the decisions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, func, select, update

from mqlengine.definition.handoff import compile_calendar
from mqlengine.definition.schema import CalendarSpec
from mqlengine.domain.lifecycle import Stage, StageChange
from mqlengine.domain.routing import (
    Lead,
    Rep,
    RouteDecision,
    RoutingState,
    route,
)
from mqlengine.domain.rules import Definition
from mqlengine.domain.scoring import ScoreCard
from mqlengine.domain.sla import Escalation, check_breach, due_at, select_policy
from mqlengine.services import outbox
from mqlengine.store.tables import persons
from mqlengine.store.tables_handoff import (
    assignments,
    rep_absences,
    reps,
    route_cursors,
    sla_breaches,
    teams,
    touches,
)

RECENT = timedelta(days=2)
TOP_CONTRIBUTIONS = 3


# --- inputs ----------------------------------------------------------------------------------


def rep_from_row(
    row: Mapping[Any, Any], team: str, absences: list[tuple[datetime, datetime]]
) -> Rep:
    hours = row["working_hours"]
    calendar = None
    if hours:
        calendar = compile_calendar(row["key"], CalendarSpec(timezone=row["timezone"], hours=hours))
    return Rep(
        key=row["key"],
        team=team,
        timezone=row["timezone"],
        capacity_per_day=row["capacity_per_day"],
        working_hours=calendar,
        out_of_office=tuple(absences),
        territories=tuple(row["territories"] or ()),
        active=bool(row["active"]),
    )


def load_reps(connection: Connection) -> tuple[list[Rep], dict[str, RowMapping]]:
    """Every rep as a routing value, plus the rows by key (for names and e-mails)."""
    team_names = {r.id: r.name for r in connection.execute(select(teams.c.id, teams.c.name))}
    absences: dict[int, list[tuple[datetime, datetime]]] = {}
    for a in connection.execute(select(rep_absences)).mappings():
        absences.setdefault(a["rep_id"], []).append((a["starts_at"], a["ends_at"]))
    rows = {r["key"]: r for r in connection.execute(select(reps).order_by(reps.c.key)).mappings()}
    values = [
        rep_from_row(row, team_names.get(row["team_id"], "?"), absences.get(row["id"], []))
        for row in rows.values()
    ]
    return values, rows


def routing_state(
    connection: Connection,
    rep_rows: Mapping[str, RowMapping],
    *,
    person_id: int,
    account_id: int | None,
    now: datetime,
) -> RoutingState:
    key_of = {row["id"]: key for key, row in rep_rows.items()}
    recent: dict[str, list[datetime]] = {}
    query = select(assignments.c.rep_id, assignments.c.assigned_at).where(
        assignments.c.rep_id.is_not(None),
        assignments.c.assigned_at >= now - RECENT,
        assignments.c.assigned_at <= now,
    )
    for row in connection.execute(query):
        if row.rep_id in key_of:
            recent.setdefault(key_of[row.rep_id], []).append(row.assigned_at)
    load_query = (
        select(persons.c.owner_rep_id, func.count())
        .where(persons.c.stage == Stage.MQL.value, persons.c.owner_rep_id.is_not(None))
        .group_by(persons.c.owner_rep_id)
    )
    open_load = {key_of[r[0]]: int(r[1]) for r in connection.execute(load_query) if r[0] in key_of}
    last = {r.team: r.last_rep_key for r in connection.execute(select(route_cursors))}
    owner = None
    if account_id is not None:
        found = connection.execute(
            select(persons.c.owner_rep_id)
            .where(
                persons.c.account_id == account_id,
                persons.c.id != person_id,
                persons.c.owner_rep_id.is_not(None),
                persons.c.merged_into.is_(None),
            )
            .order_by(persons.c.mql_at.desc(), persons.c.id.desc())
            .limit(1)
        ).first()
        if found is not None:
            owner = key_of.get(found.owner_rep_id)
    return RoutingState({k: tuple(v) for k, v in recent.items()}, open_load, last, owner)


def lead_of(person: Mapping[Any, Any], card: ScoreCard | None, mql_type: str | None) -> Lead:
    earned: frozenset[str] = frozenset()
    fit, intent, total = person["fit_score"], person["intent_score"], person["total_score"]
    if card is not None:
        earned = frozenset(c.rule_id for c in card.contributions if c.earned > 0)
        fit, intent, total = card.fit, card.intent, card.total
    return Lead(
        person_id=person["id"],
        mql_type=mql_type,
        traits=person["profile"] or {},
        fit=fit,
        intent=intent,
        total=total,
        earned_rules=earned,
        account_id=person["account_id"],
    )


def _lock_routing(connection: Connection) -> None:
    """Serialise routing decisions between writers (PostgreSQL; SQLite's writer lock
    already does): capacity and round-robin cursors are read-modify-write."""
    if connection.dialect.name == "postgresql":
        connection.execute(select(teams.c.id).order_by(teams.c.id).with_for_update())


# --- payloads --------------------------------------------------------------------------------


def _person_summary(person: Mapping[Any, Any]) -> dict[str, Any]:
    profile = person["profile"] or {}
    company = profile.get("company")
    name = " ".join(str(profile[k]) for k in ("first_name", "last_name") if profile.get(k))
    return {
        "id": person["id"],
        "email": person["email"],
        "name": name or profile.get("name"),
        "title": profile.get("title"),
        "company": (company.get("name") if isinstance(company, Mapping) else company)
        or profile.get("company_name"),
        "country": profile.get("country"),
    }


def _top(card: ScoreCard | None) -> list[dict[str, Any]]:
    if card is None:
        return []
    ranked = sorted((c for c in card.contributions if c.points > 0), key=lambda c: -c.points)
    return [
        {"rule": c.rule_id, "kind": c.kind, "points": round(c.points, 2)}
        for c in ranked[:TOP_CONTRIBUTIONS]
    ]


def _rep_summary(rep_rows: Mapping[str, RowMapping], key: str | None) -> dict[str, Any] | None:
    if key is None or key not in rep_rows:
        return None
    row = rep_rows[key]
    return {"key": key, "name": row["name"], "email": row["email"]}


def _manager_email(connection: Connection, team: str) -> str | None:
    row = connection.execute(select(teams.c.manager_email).where(teams.c.name == team)).first()
    return row.manager_email if row is not None else None


# --- the hook --------------------------------------------------------------------------------


def on_stage_change(
    connection: Connection,
    definition: Definition,
    person_id: int,
    change: StageChange,
    *,
    recorded_at: datetime,
    card: ScoreCard | None = None,
) -> None:
    """Everything a committed stage change sets off, on the same transaction."""
    person = connection.execute(select(persons).where(persons.c.id == person_id)).mappings().one()
    data: dict[str, Any] = {
        "person": _person_summary(person),
        "from_stage": change.from_stage.value,
        "to_stage": change.to_stage.value,
        "reason": change.reason,
        "actor": change.actor,
        "action": change.action,
        "changed_at": change.at.isoformat(),
        "definition_version": change.definition_version,
    }
    if change.to_stage is Stage.MQL:
        data["mql_type"] = change.mql_type
        data["score"] = {
            "fit": round(person["fit_score"] if card is None else card.fit, 2),
            "intent": round(person["intent_score"] if card is None else card.intent, 2),
            "total": round(person["total_score"] if card is None else card.total, 2),
        }
        data["top_contributions"] = _top(card)
    outbox.enqueue(connection, "person.stage_changed", data, now=recorded_at, person_id=person_id)
    if change.to_stage is Stage.MQL:
        if definition.routing is not None:
            assign(connection, definition, person, change, card=card, recorded_at=recorded_at)
    elif change.from_stage is Stage.MQL:
        # left MQL (sales acted, or the score dropped): the first-touch clock stops
        status = "closed"
        connection.execute(
            update(assignments)
            .where(assignments.c.person_id == person_id, assignments.c.status == "waiting")
            .values(status=status, closed_at=change.at)
        )


def assign(
    connection: Connection,
    definition: Definition,
    person: Mapping[Any, Any],
    change: StageChange,
    *,
    card: ScoreCard | None,
    recorded_at: datetime,
    seq: int = 0,
    exclude: frozenset[str] = frozenset(),
    only_rule: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any] | None:
    """Route one MQL and record the assignment (exactly once per MQL episode and seq)."""
    assert definition.routing is not None
    moment = at or change.at
    mql_at = person["mql_at"] or change.at
    existing = connection.execute(
        select(assignments.c.id).where(
            assignments.c.person_id == person["id"],
            assignments.c.mql_at == mql_at,
            assignments.c.seq == seq,
        )
    ).first()
    if existing is not None:
        return None  # already assigned for this MQL
    _lock_routing(connection)
    rep_values, rep_rows = load_reps(connection)
    lead = lead_of(person, card, change.mql_type or person["mql_type"])
    state = routing_state(
        connection, rep_rows, person_id=person["id"], account_id=person["account_id"], now=moment
    )
    decision = route(
        definition.routing, rep_values, lead, state, moment, exclude=exclude, only_rule=only_rule
    )
    policy = select_policy(definition.sla, lead, moment) if definition.sla is not None else None
    due = due_at(definition.sla, policy, moment) if definition.sla and policy else None
    return record_assignment(
        connection,
        person,
        decision,
        rep_rows,
        lead=lead,
        card=card,
        mql_at=mql_at,
        seq=seq,
        at=moment,
        recorded_at=recorded_at,
        policy_id=policy.id if policy else None,
        due=due,
    )


def record_assignment(
    connection: Connection,
    person: Mapping[Any, Any],
    decision: RouteDecision,
    rep_rows: Mapping[str, RowMapping],
    *,
    lead: Lead,
    card: ScoreCard | None,
    mql_at: datetime,
    seq: int,
    at: datetime,
    recorded_at: datetime,
    policy_id: str | None,
    due: datetime | None,
) -> dict[str, Any]:
    rep_id = rep_rows[decision.rep]["id"] if decision.rep is not None else None
    result = connection.execute(
        assignments.insert().values(
            person_id=person["id"],
            mql_at=mql_at,
            seq=seq,
            rep_id=rep_id,
            team=decision.team,
            rule_id=decision.rule_id,
            strategy=decision.strategy,
            reason=decision.reason[:500],
            assigned_at=at,
            sla_policy=policy_id,
            sla_due_at=due,
            status="waiting",
            recorded_at=recorded_at,
        )
    )
    assignment_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    connection.execute(
        update(persons)
        .where(persons.c.id == person["id"])
        .values(
            owner_rep_id=rep_id,
            owner_team=decision.team,
            sla_due_at=due,
            first_touch_at=None if seq == 0 else person["first_touch_at"],
        )
    )
    if decision.rep is not None and decision.strategy not in ("account_owner", "fallback"):
        _advance_cursor(connection, decision.team, decision.rep, recorded_at)
    assignment = {
        "id": assignment_id,
        "rep": _rep_summary(rep_rows, decision.rep),
        "team": decision.team,
        "queue": decision.is_queue,
        "rule": decision.rule_id,
        "strategy": decision.strategy,
        "reason": decision.reason,
        "assigned_at": at.isoformat(),
        "reassignment": seq,
    }
    data = {
        "person": _person_summary(person),
        "mql_type": lead.mql_type,
        "score": {
            "fit": round(lead.fit, 2),
            "intent": round(lead.intent, 2),
            "total": round(lead.total, 2),
        },
        "top_contributions": _top(card),
        "assignment": assignment,
        "sla": {"policy": policy_id, "due_at": due.isoformat() if due else None},
    }
    owner_email = rep_rows[decision.rep]["email"] if decision.rep is not None else None
    outbox.enqueue(
        connection,
        "mql.assigned",
        data,
        now=recorded_at,
        person_id=person["id"],
        recipients={"owner": owner_email, "manager": _manager_email(connection, decision.team)},
    )
    return assignment


def _advance_cursor(connection: Connection, team: str, rep_key: str, now: datetime) -> None:
    updated = connection.execute(
        update(route_cursors)
        .where(route_cursors.c.team == team)
        .values(last_rep_key=rep_key, updated_at=now)
    )
    if not updated.rowcount:
        connection.execute(
            route_cursors.insert().values(team=team, last_rep_key=rep_key, updated_at=now)
        )


# --- touches ---------------------------------------------------------------------------------


def current_assignment(connection: Connection, person_id: int) -> RowMapping | None:
    return (
        connection.execute(
            select(assignments)
            .where(assignments.c.person_id == person_id)
            .order_by(assignments.c.mql_at.desc(), assignments.c.seq.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )


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
        "person": _person_summary(person),
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
    manager = _manager_email(connection, assignment["team"])
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
        select(assignments)
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
    _lock_routing(connection)
    rep_values, rep_rows = load_reps(connection)
    lead = lead_of(person, None, person["mql_type"])
    state = routing_state(connection, rep_rows, person_id=person["id"], account_id=None, now=now)
    exclude = frozenset({current_key}) if current_key else frozenset()
    decision = (
        route(
            definition.routing,
            rep_values,
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
        rep_rows,
        lead=lead,
        card=None,
        mql_at=row["mql_at"],
        seq=row["seq"] + 1,
        at=now,
        recorded_at=now,
        policy_id=row["sla_policy"],
        due=due,
    )
    new = current_assignment(connection, person["id"])
    return int(new["id"]) if new is not None else None


def breaches(connection: Connection, *, limit: int = 100) -> list[dict[str, Any]]:
    query = select(sla_breaches).order_by(sla_breaches.c.detected_at.desc()).limit(limit)
    return [dict(r) for r in connection.execute(query).mappings()]


def open_assignments_due(connection: Connection, now: datetime) -> int:
    return int(
        connection.execute(
            select(func.count()).where(
                and_(assignments.c.status == "waiting", assignments.c.sla_due_at < now)
            )
        ).scalar_one()
    )
