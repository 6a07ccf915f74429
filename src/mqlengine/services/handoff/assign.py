"""Routing one MQL and recording its assignment, exactly once per MQL episode."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, bindparam, select, update

from mqlengine.domain.lifecycle import StageChange
from mqlengine.domain.routing import Lead, RouteDecision, match_rule, route
from mqlengine.domain.rules import Definition
from mqlengine.domain.scoring import ScoreCard
from mqlengine.domain.sla import due_at, select_policy
from mqlengine.services import outbox, txcache
from mqlengine.services.handoff.directory import rep_directory
from mqlengine.services.handoff.payloads import (
    manager_email,
    person_summary,
    rep_summary,
    top_contributions,
)
from mqlengine.services.handoff.reads import lead_of, read_for_routing
from mqlengine.store.dialect import lock_rows
from mqlengine.store.tables import persons
from mqlengine.store.tables_handoff import assignments, route_cursors, teams

# Statements of the per-MQL path, built once so SQLAlchemy's compiled cache always hits.
_TEAMS_IN_ORDER = select(teams.c.id).order_by(teams.c.id)
_INSERT_ASSIGNMENT = assignments.insert()
_SET_OWNER = (
    update(persons)
    .where(persons.c.id == bindparam("b_person_id"))
    .values(
        owner_rep_id=bindparam("b_owner_rep_id"),
        owner_team=bindparam("b_owner_team"),
        sla_due_at=bindparam("b_sla_due_at"),
        first_touch_at=bindparam("b_first_touch_at"),
    )
)
_ADVANCE_CURSOR = (
    update(route_cursors)
    .where(route_cursors.c.team == bindparam("b_team"))
    .values(last_rep_key=bindparam("b_last_rep_key"), updated_at=bindparam("b_updated_at"))
)
_INSERT_CURSOR = route_cursors.insert()

_LOCKED = "handoff.routing_locked"  # transaction memo name (see mqlengine.services.txcache)


def lock_routing(connection: Connection) -> None:
    """Serialise routing decisions between writers: capacity and round-robin cursors are
    read-modify-write. The teams' rows stand for the routing state (SQLite's writer lock
    already serialises writers, see :func:`~mqlengine.store.dialect.lock_rows`)."""
    # the lock holds until the transaction (or savepoint) ends: once is enough
    txcache.cached(connection, _LOCKED, lambda: lock_rows(connection, _TEAMS_IN_ORDER))


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
    outbox_rows: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any] | None:
    """Route one MQL and record the assignment (exactly once per MQL episode and seq).

    ``outbox_rows`` (from :func:`outbox.prepare`) are written first, in the same INSERT
    as the assignment's notification."""
    assert definition.routing is not None
    moment = at or change.at
    mql_at = person["mql_at"] or change.at
    lock_routing(connection)
    directory = rep_directory(connection)
    lead = lead_of(person, card, change.mql_type or person["mql_type"])
    rule = match_rule(definition.routing, lead, moment, only_rule=only_rule)
    existing, state = read_for_routing(
        connection,
        directory,
        rule,
        person_id=person["id"],
        account_id=person["account_id"],
        now=moment,
        episode=(mql_at, seq),
    )
    if existing:
        outbox.write(connection, outbox_rows)
        return None  # already assigned for this MQL
    decision = route(
        definition.routing,
        directory.reps,
        lead,
        state,
        moment,
        exclude=exclude,
        only_rule=only_rule,
    )
    policy = select_policy(definition.sla, lead, moment) if definition.sla is not None else None
    due = due_at(definition.sla, policy, moment) if definition.sla and policy else None
    return record_assignment(
        connection,
        person,
        decision,
        directory.rows,
        lead=lead,
        card=card,
        mql_at=mql_at,
        seq=seq,
        at=moment,
        recorded_at=recorded_at,
        policy_id=policy.id if policy else None,
        due=due,
        managers=directory.managers,
        outbox_rows=outbox_rows,
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
    managers: Mapping[str, str | None] | None = None,
    outbox_rows: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """``managers``: team name → manager e-mail, when the caller has them (read otherwise).
    ``outbox_rows``: notifications to write first, in the same INSERT."""
    rep_id = rep_rows[decision.rep]["id"] if decision.rep is not None else None
    result = connection.execute(
        _INSERT_ASSIGNMENT,
        {
            "person_id": person["id"],
            "mql_at": mql_at,
            "seq": seq,
            "rep_id": rep_id,
            "team": decision.team,
            "rule_id": decision.rule_id,
            "strategy": decision.strategy,
            "reason": decision.reason[:500],
            "assigned_at": at,
            "sla_policy": policy_id,
            "sla_due_at": due,
            "status": "waiting",
            "recorded_at": recorded_at,
        },
    )
    assignment_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    connection.execute(
        _SET_OWNER,
        {
            "b_person_id": person["id"],
            "b_owner_rep_id": rep_id,
            "b_owner_team": decision.team,
            "b_sla_due_at": due,
            "b_first_touch_at": None if seq == 0 else person["first_touch_at"],
        },
    )
    if decision.rep is not None and decision.strategy not in ("account_owner", "fallback"):
        _advance_cursor(connection, decision.team, decision.rep, recorded_at)
    assignment = {
        "id": assignment_id,
        "rep": rep_summary(rep_rows, decision.rep),
        "team": decision.team,
        "queue": decision.is_queue,
        "rule": decision.rule_id,
        "strategy": decision.strategy,
        "reason": decision.reason,
        "assigned_at": at.isoformat(),
        "reassignment": seq,
    }
    data = {
        "person": person_summary(person),
        "mql_type": lead.mql_type,
        "score": {
            "fit": round(lead.fit, 2),
            "intent": round(lead.intent, 2),
            "total": round(lead.total, 2),
        },
        "top_contributions": top_contributions(card),
        "assignment": assignment,
        "sla": {"policy": policy_id, "due_at": due.isoformat() if due else None},
    }
    owner_email = rep_rows[decision.rep]["email"] if decision.rep is not None else None
    manager = (
        managers.get(decision.team)
        if managers is not None
        else manager_email(connection, decision.team)
    )
    assigned = outbox.prepare(
        connection,
        "mql.assigned",
        data,
        now=recorded_at,
        person_id=person["id"],
        recipients={"owner": owner_email, "manager": manager},
    )
    outbox.write(connection, [*outbox_rows, *assigned])
    return assignment


def _advance_cursor(connection: Connection, team: str, rep_key: str, now: datetime) -> None:
    updated = connection.execute(
        _ADVANCE_CURSOR, {"b_team": team, "b_last_rep_key": rep_key, "b_updated_at": now}
    )
    if not updated.rowcount:
        connection.execute(
            _INSERT_CURSOR, {"team": team, "last_rep_key": rep_key, "updated_at": now}
        )


def current_assignment(connection: Connection, person_id: int) -> RowMapping | None:
    """The person's latest assignment (its latest MQL episode, latest reassignment): the
    one a touch stops the clock of."""
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
