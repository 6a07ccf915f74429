"""The handoff shell: routes new MQLs, keeps the SLA clock, records touches and breaches,
and writes the outbox rows — always on the caller's transaction.

:func:`on_stage_change` is called by :func:`mqlengine.services.qualify.apply_stage_change`
for every stage change it makes, so scoring and feedback share one path. The domain
(:mod:`mqlengine.domain.routing`, :mod:`mqlengine.domain.sla`) decides; this module loads
the inputs and persists the decisions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Connection,
    Integer,
    RowMapping,
    Select,
    String,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    null,
    or_,
    select,
    union_all,
    update,
)

from mqlengine.definition.handoff import compile_calendar
from mqlengine.definition.schema import CalendarSpec
from mqlengine.domain.calendar import BusinessCalendar
from mqlengine.domain.lifecycle import Stage, StageChange
from mqlengine.domain.routing import (
    Lead,
    Rep,
    RouteDecision,
    RoutingRule,
    RoutingState,
    day_start,
    match_rule,
    route,
    state_needs,
)
from mqlengine.domain.rules import Definition
from mqlengine.domain.scoring import ScoreCard
from mqlengine.domain.sla import Escalation, check_breach, due_at, select_policy
from mqlengine.services import outbox, txcache
from mqlengine.store.tables import Id, persons
from mqlengine.store.tables_handoff import (
    assignments,
    rep_absences,
    reps,
    route_cursors,
    sla_breaches,
    teams,
    touches,
)
from mqlengine.store.types import UTCDateTime

RECENT = timedelta(days=2)
TOP_CONTRIBUTIONS = 3

# What the handoff reads of a person (a caller that holds the row after the stage change
# may hand it in: see ``on_stage_change``).
PERSON_COLUMNS = (
    persons.c.id,
    persons.c.email,
    persons.c.profile,
    persons.c.fit_score,
    persons.c.intent_score,
    persons.c.total_score,
    persons.c.mql_at,
    persons.c.mql_type,
    persons.c.account_id,
    persons.c.first_touch_at,
)

# Statements of the per-MQL path, built once so SQLAlchemy's compiled cache always hits.
_PERSON = select(*PERSON_COLUMNS).where(persons.c.id == bindparam("person_id"))
_TEAMS = select(teams.c.id, teams.c.name, teams.c.manager_email)
_ABSENCES = select(rep_absences)
_REPS = select(reps).order_by(reps.c.key)
_LOCK_TEAMS = select(teams.c.id).order_by(teams.c.id).with_for_update()
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
_CLOSE_WAITING = (
    update(assignments)
    .where(assignments.c.person_id == bindparam("b_person_id"), assignments.c.status == "waiting")
    .values(status="closed", closed_at=bindparam("b_closed_at"))
)
_ADVANCE_CURSOR = (
    update(route_cursors)
    .where(route_cursors.c.team == bindparam("b_team"))
    .values(last_rep_key=bindparam("b_last_rep_key"), updated_at=bindparam("b_updated_at"))
)
_INSERT_CURSOR = route_cursors.insert()

_DIRECTORY = "handoff.reps"  # transaction memo names (see mqlengine.services.txcache)
_LOCKED = "handoff.routing_locked"


# --- inputs ----------------------------------------------------------------------------------

_CALENDARS: dict[tuple[str, str, bytes], BusinessCalendar] = {}


def _calendar(key: str, timezone: str, hours: Any) -> BusinessCalendar:
    """A rep's working hours, compiled once per distinct (key, time zone, hours)."""
    memo = (key, timezone, orjson.dumps(hours))
    found = _CALENDARS.get(memo)
    if found is None:
        found = compile_calendar(key, CalendarSpec(timezone=timezone, hours=hours))
        if len(_CALENDARS) >= 1024:
            _CALENDARS.clear()
        _CALENDARS[memo] = found
    return found


def rep_from_row(
    row: Mapping[Any, Any], team: str, absences: list[tuple[datetime, datetime]]
) -> Rep:
    hours = row["working_hours"]
    calendar = None
    if hours:
        calendar = _calendar(row["key"], row["timezone"], hours)
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


@dataclass(frozen=True, slots=True)
class RepDirectory:
    """The reps as routing values and as rows, and the teams' managers."""

    reps: list[Rep]  # by key
    rows: dict[str, RowMapping]  # by key (names, e-mails, ids)
    by_key: dict[str, Rep]
    key_of: dict[int, str]  # rep id → key
    managers: dict[str, str | None]  # team name → manager e-mail


def _read_directory(connection: Connection) -> RepDirectory:
    team_rows = connection.execute(_TEAMS).all()
    team_names = {r.id: r.name for r in team_rows}
    absences: dict[int, list[tuple[datetime, datetime]]] = {}
    for a in connection.execute(_ABSENCES).mappings():
        absences.setdefault(a["rep_id"], []).append((a["starts_at"], a["ends_at"]))
    rows = {r["key"]: r for r in connection.execute(_REPS).mappings()}
    values = [
        rep_from_row(row, team_names.get(row["team_id"], "?"), absences.get(row["id"], []))
        for row in rows.values()
    ]
    return RepDirectory(
        values,
        rows,
        {r.key: r for r in values},
        {row["id"]: key for key, row in rows.items()},
        {r.name: r.manager_email for r in team_rows},
    )


def rep_directory(connection: Connection) -> RepDirectory:
    """The reps and teams, read once per transaction: routing several MQLs in one
    transaction reads them once. Writers of reps, teams and absences on the same
    transaction call :func:`forget_reps` (:mod:`mqlengine.services.reps` does)."""
    return txcache.cached(connection, _DIRECTORY, lambda: _read_directory(connection))


def forget_reps(connection: Connection) -> None:
    txcache.forget(connection, _DIRECTORY)


def load_reps(connection: Connection) -> tuple[list[Rep], dict[str, RowMapping]]:
    """Every rep as a routing value, plus the rows by key (for names and e-mails)."""
    directory = _read_directory(connection)
    return directory.reps, directory.rows


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


# --- the reads of one routing decision, in one statement ------------------------------------
#
# Each part yields rows (kind, ref, at, key, n): "e" an assignment that already exists for
# this MQL episode, "o" the account's owner, "r" recent assignments (rep, time), "l" open
# loads (rep, count), "c" the team's round-robin cursor (last rep key).

_OWNER = (
    select(persons.c.owner_rep_id)
    .where(
        persons.c.account_id == bindparam("o_account_id"),
        persons.c.id != bindparam("o_person_id"),
        persons.c.owner_rep_id.is_not(None),
        persons.c.merged_into.is_(None),
    )
    .order_by(persons.c.mql_at.desc(), persons.c.id.desc())
    .limit(1)
)


def _columns(
    kind: str, *, ref: Any = None, at: Any = None, key: Any = None, n: Any = None
) -> list[Any]:
    """One part's columns, typed alike: the database matches the parts' types (PostgreSQL
    needs typed NULLs) and the first part's types decode every row."""
    return [
        literal_column(f"'{kind}'", String()).label("kind"),
        (ref if ref is not None else cast(null(), Id)).label("ref"),
        (at if at is not None else cast(null(), UTCDateTime())).label("at"),
        (key if key is not None else cast(null(), String())).label("key"),
        (n if n is not None else cast(null(), Integer())).label("n"),
    ]


def _ids(prefix: str, count: int) -> list[Any]:
    # one parameter per id (not an "expanding" IN, which is re-rendered at each execution)
    return [bindparam(f"{prefix}{i}") for i in range(count)]


def _id_params(prefix: str, ids: list[int]) -> dict[str, int]:
    return {f"{prefix}{i}": rep_id for i, rep_id in enumerate(ids)}


_Reads = Select[Any] | CompoundSelect[Any]


def _build_reads(parts: tuple[str, ...], n_recent: int, n_load: int) -> _Reads:
    selects: list[Select[Any]] = []
    if "e" in parts:
        selects.append(
            select(*_columns("e", ref=assignments.c.id)).where(
                assignments.c.person_id == bindparam("e_person_id"),
                assignments.c.mql_at == bindparam("e_mql_at"),
                assignments.c.seq == bindparam("e_seq"),
            )
        )
    if "o" in parts:
        owner = _OWNER.subquery("owner")
        selects.append(select(*_columns("o", ref=owner.c.owner_rep_id)).select_from(owner))
    if "r" in parts or "ro" in parts:
        reps_wanted: ColumnElement[bool] = assignments.c.rep_id.in_(_ids("r_", n_recent))
        if "ro" in parts:  # and the account owner's, whoever that is
            reps_wanted = or_(reps_wanted, assignments.c.rep_id == _OWNER.scalar_subquery())
        selects.append(
            select(*_columns("r", ref=assignments.c.rep_id, at=assignments.c.assigned_at)).where(
                reps_wanted,
                assignments.c.assigned_at >= bindparam("r_since"),
                assignments.c.assigned_at <= bindparam("r_until"),
            )
        )
    if "l" in parts:
        selects.append(
            select(*_columns("l", ref=persons.c.owner_rep_id, n=func.count()))
            .where(
                persons.c.stage == Stage.MQL.value,
                persons.c.owner_rep_id.in_(_ids("l_", n_load)),
            )
            .group_by(persons.c.owner_rep_id)
        )
    if "c" in parts:
        selects.append(
            select(*_columns("c", key=route_cursors.c.last_rep_key)).where(
                route_cursors.c.team == bindparam("c_team")
            )
        )
    return selects[0] if len(selects) == 1 else union_all(*selects)


_READS: dict[tuple[tuple[str, ...], int, int], _Reads] = {}


def _reads(parts: tuple[str, ...], n_recent: int, n_load: int) -> _Reads:
    """The statement for these parts (and numbers of reps), built once so its compiled
    form is reused."""
    shape = (parts, n_recent, n_load)
    statement = _READS.get(shape)
    if statement is None:
        if len(_READS) >= 512:
            _READS.clear()
        statement = _READS[shape] = _build_reads(parts, n_recent, n_load)
    return statement


def _read_for_routing(
    connection: Connection,
    directory: RepDirectory,
    rule: RoutingRule | None,
    *,
    person_id: int,
    account_id: int | None,
    now: datetime,
    episode: tuple[datetime, int] | None = None,
) -> tuple[bool, RoutingState]:
    """Whether an assignment exists for the ``episode`` (MQL time, seq), and the part of
    :func:`routing_state` that :func:`~mqlengine.domain.routing.route` reads when ``rule``
    matched (:func:`~mqlengine.domain.routing.state_needs`) — the same decision, without
    reading every rep's assignments and open load for each MQL."""
    parts: list[str] = []
    params: dict[str, Any] = {}
    n_recent = n_load = 0
    if episode is not None:
        parts.append("e")
        params.update(e_person_id=person_id, e_mql_at=episode[0], e_seq=episode[1])
    if rule is not None:  # no rule: the fallback queue, nothing to look at
        needs = state_needs(rule, directory.reps)
        with_owner = needs.account_owner and account_id is not None
        if with_owner:
            parts.append("o")
            params.update(o_account_id=account_id, o_person_id=person_id)
        # The owner (not known yet, of any team) comes with its assignments ("ro"), which
        # count if it has a daily capacity; the rows start at the earliest local midnight
        # of the reps whose "today" counts (and never more than two days ago).
        recent_for = [directory.by_key[k] for k in sorted(needs.recent_for)]
        day_of = recent_for + (
            [r for r in directory.reps if r.capacity_per_day is not None] if with_owner else []
        )
        if day_of:
            parts.append("ro" if with_owner else "r")
            since = max(now - RECENT, min(day_start(z, now) for z in {r.timezone for r in day_of}))
            ids = [directory.rows[r.key]["id"] for r in recent_for]
            n_recent = len(ids)
            params.update(_id_params("r_", ids), r_since=since, r_until=now)
        if needs.open_load_for:
            parts.append("l")
            ids = [directory.rows[k]["id"] for k in sorted(needs.open_load_for)]
            n_load = len(ids)
            params.update(_id_params("l_", ids))
        parts.append("c")
        params["c_team"] = needs.team
    if not parts:
        return False, RoutingState()
    key_of = directory.key_of
    existing = False
    owner = None
    recent: dict[str, list[datetime]] = {}
    open_load: dict[str, int] = {}
    last: dict[str, str] = {}
    rows: Iterable[Any] = connection.execute(_reads(tuple(parts), n_recent, n_load), params)
    for kind, ref, at, key, n in rows:
        if kind == "e":
            existing = True
        elif kind == "o":
            owner = key_of.get(ref)
        elif kind == "r":
            rep_key = key_of.get(ref)
            if rep_key is not None:
                recent.setdefault(rep_key, []).append(at)
        elif kind == "l":
            open_load[key_of[ref]] = int(n)
        elif kind == "c" and rule is not None:
            last[rule.team] = key
    state = RoutingState({k: tuple(v) for k, v in recent.items()}, open_load, last, owner)
    return existing, state


def routing_state_for(
    connection: Connection,
    directory: RepDirectory,
    rule: RoutingRule | None,
    *,
    person_id: int,
    account_id: int | None,
    now: datetime,
) -> RoutingState:
    """What :func:`~mqlengine.domain.routing.route` reads of :func:`routing_state` when
    ``rule`` matched, in one statement."""
    _existing, state = _read_for_routing(
        connection, directory, rule, person_id=person_id, account_id=account_id, now=now
    )
    return state


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
        # the lock holds until the transaction (or savepoint) ends: once is enough
        txcache.cached(connection, _LOCKED, lambda: connection.execute(_LOCK_TEAMS).all())


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
    person: Mapping[Any, Any] | None = None,
) -> None:
    """Everything a committed stage change sets off, on the same transaction.

    ``person``: the person's row as it stands after the change (at least
    :data:`PERSON_COLUMNS`), when the caller holds it; read otherwise."""
    if person is None:
        person = connection.execute(_PERSON, {"person_id": person_id}).mappings().one()
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
    rows = outbox.prepare(
        connection, "person.stage_changed", data, now=recorded_at, person_id=person_id
    )
    if change.to_stage is Stage.MQL and definition.routing is not None:
        # the notification is written with the assignment's (one INSERT, same order)
        assign(
            connection,
            definition,
            person,
            change,
            card=card,
            recorded_at=recorded_at,
            outbox_rows=rows,
        )
        return
    outbox.write(connection, rows)
    if change.to_stage is not Stage.MQL and change.from_stage is Stage.MQL:
        # left MQL (sales acted, or the score dropped): the first-touch clock stops
        connection.execute(_CLOSE_WAITING, {"b_person_id": person_id, "b_closed_at": change.at})


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
    _lock_routing(connection)
    directory = rep_directory(connection)
    lead = lead_of(person, card, change.mql_type or person["mql_type"])
    rule = match_rule(definition.routing, lead, moment, only_rule=only_rule)
    existing, state = _read_for_routing(
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
    manager = (
        managers.get(decision.team)
        if managers is not None
        else _manager_email(connection, decision.team)
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
