"""Teams, reps and absences (the people routing chooses from), plus the routing simulator."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, func, select, update

from mqlengine.definition.handoff import compile_calendar
from mqlengine.definition.schema import CalendarSpec
from mqlengine.domain.routing import RoutingState, advance, fairness, prune, route
from mqlengine.domain.rules import Definition
from mqlengine.errors import ConfigError, NotFoundError, ValidationError
from mqlengine.services.handoff.directory import forget_reps, load_reps
from mqlengine.services.handoff.reads import lead_of, routing_state
from mqlengine.store.tables import persons, stage_history
from mqlengine.store.tables_handoff import rep_absences, reps, teams


def upsert_team(
    connection: Connection,
    name: str,
    *,
    now: datetime,
    manager_name: str | None = None,
    manager_email: str | None = None,
) -> dict[str, Any]:
    row = connection.execute(select(teams).where(teams.c.name == name)).mappings().first()
    values = {"manager_name": manager_name, "manager_email": manager_email, "updated_at": now}
    if row is None:
        connection.execute(teams.insert().values(name=name, created_at=now, **values))
    else:
        values = {k: v for k, v in values.items() if v is not None}
        connection.execute(update(teams).where(teams.c.name == name).values(**values))
    forget_reps(connection)
    return dict(connection.execute(select(teams).where(teams.c.name == name)).mappings().one())


def list_teams(connection: Connection) -> list[dict[str, Any]]:
    members: dict[int, int] = dict(
        connection.execute(select(reps.c.team_id, func.count()).group_by(reps.c.team_id)).all()
    )
    return [
        {**dict(r), "reps": int(members.get(r["id"], 0))}
        for r in connection.execute(select(teams).order_by(teams.c.name)).mappings()
    ]


def _check_rep_fields(timezone: str | None, working_hours: Any, capacity: int | None) -> None:
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError(f"unknown time zone '{timezone}' (use an IANA name)") from None
    if capacity is not None and capacity < 0:
        raise ValidationError("capacity must not be negative")
    if working_hours:
        try:
            compile_calendar("hours", CalendarSpec(timezone=timezone or "UTC", hours=working_hours))
        except Exception as error:
            raise ValidationError(f"invalid working hours: {error}") from None


def upsert_rep(
    connection: Connection,
    key: str,
    *,
    now: datetime,
    team: str | None = None,
    name: str | None = None,
    email: str | None = None,
    timezone: str | None = None,
    capacity_per_day: int | None = None,
    working_hours: Mapping[str, Sequence[str]] | None = None,
    territories: Sequence[str] | None = None,
    active: bool | None = None,
) -> dict[str, Any]:
    """Create a rep (team required) or change the given fields of an existing one."""
    existing = connection.execute(select(reps).where(reps.c.key == key)).mappings().first()
    _check_rep_fields(
        timezone or (existing["timezone"] if existing else "UTC"), working_hours, capacity_per_day
    )
    values: dict[str, Any] = {"updated_at": now}
    if team is not None:
        team_row = connection.execute(select(teams.c.id).where(teams.c.name == team)).first()
        if team_row is None:
            team_row_map = upsert_team(connection, team, now=now)
            values["team_id"] = team_row_map["id"]
        else:
            values["team_id"] = team_row.id
    for field, value in (
        ("name", name),
        ("email", email),
        ("timezone", timezone),
        ("capacity_per_day", capacity_per_day),
        ("working_hours", dict(working_hours) if working_hours is not None else None),
        ("territories", [t.strip() for t in territories] if territories is not None else None),
        ("active", active),
    ):
        if value is not None:
            values[field] = value
    if existing is None:
        if "team_id" not in values:
            raise ValidationError(f"new rep '{key}' needs a team")
        values.setdefault("name", key)
        values.setdefault("timezone", "UTC")
        values.setdefault("territories", [])
        values.setdefault("active", True)
        connection.execute(reps.insert().values(key=key, created_at=now, **values))
    else:
        connection.execute(update(reps).where(reps.c.key == key).values(**values))
    forget_reps(connection)
    return rep_detail(connection, key, now=now)


def add_absence(
    connection: Connection,
    key: str,
    *,
    starts_at: datetime,
    ends_at: datetime,
    note: str | None = None,
) -> dict[str, Any]:
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise ValidationError("absence times need a time zone (e.g. 2026-12-01T00:00:00Z)")
    if ends_at <= starts_at:
        raise ValidationError("an absence must end after it starts")
    rep = connection.execute(select(reps.c.id).where(reps.c.key == key)).first()
    if rep is None:
        raise NotFoundError(f"no rep '{key}'")
    connection.execute(
        rep_absences.insert().values(rep_id=rep.id, starts_at=starts_at, ends_at=ends_at, note=note)
    )
    forget_reps(connection)
    return {
        "rep": key,
        "starts_at": starts_at.isoformat(),
        "ends_at": ends_at.isoformat(),
        "note": note,
    }


def rep_detail(connection: Connection, key: str, *, now: datetime) -> dict[str, Any]:
    for row in list_reps(connection, now=now):
        if row["key"] == key:
            return row
    raise NotFoundError(f"no rep '{key}'")


def list_reps(connection: Connection, *, now: datetime) -> list[dict[str, Any]]:
    from mqlengine.domain.routing import assigned_today, on_shift, unavailable_because

    values, rows = load_reps(connection)
    state = routing_state(connection, rows, person_id=-1, account_id=None, now=now)
    team_names = {r.id: r.name for r in connection.execute(select(teams.c.id, teams.c.name))}
    result = []
    for rep in values:
        row = rows[rep.key]
        absences = [
            {"starts_at": a.isoformat(), "ends_at": b.isoformat()}
            for a, b in rep.out_of_office
            if b > now
        ]
        result.append(
            {
                "key": rep.key,
                "name": row["name"],
                "email": row["email"],
                "team": team_names.get(row["team_id"]),
                "timezone": rep.timezone,
                "capacity_per_day": rep.capacity_per_day,
                "working_hours": row["working_hours"],
                "territories": list(rep.territories),
                "active": rep.active,
                "assigned_today": assigned_today(rep, state, now),
                "open_mqls": state.open_load.get(rep.key, 0),
                "available": unavailable_because(rep, state, now) is None,
                "unavailable_because": unavailable_because(rep, state, now),
                "on_shift": on_shift(rep, now),
                "absences": absences,
            }
        )
    return result


def simulate(
    connection: Connection, definition: Definition, *, since: datetime, now: datetime
) -> dict[str, Any]:
    """Replay the MQLs that entered since ``since`` through today's routing rules and reps.

    The reps' current absences and capacities apply at each MQL's own time; loads start at
    zero and open load is counted as if nobody ever worked a lead (an upper bound).
    """
    if definition.routing is None:
        raise ConfigError("the definition has no routing section")
    values, _rows = load_reps(connection)
    history = connection.execute(
        select(
            stage_history.c.person_id,
            stage_history.c.changed_at,
            stage_history.c.mql_type,
            stage_history.c.score_card,
            persons.c.id,
            persons.c.profile,
            persons.c.account_id,
            persons.c.fit_score,
            persons.c.intent_score,
            persons.c.total_score,
        )
        .join(persons, persons.c.id == stage_history.c.person_id)
        .where(stage_history.c.to_stage == "mql", stage_history.c.changed_at >= since)
        .order_by(stage_history.c.changed_at, stage_history.c.id)
    ).mappings()
    state = RoutingState()
    owners: dict[int, str] = {}  # account → simulated owner
    per_rep: Counter[str] = Counter()
    per_team: Counter[str] = Counter()
    per_strategy: Counter[str] = Counter()
    queued = 0
    total = 0
    last_prune = since
    for h in history:
        total += 1
        card = h["score_card"] or {}
        lead = lead_of(h, None, h["mql_type"])
        if card:
            earned = frozenset(
                c["rule"] for c in card.get("contributions", []) if c.get("earned", 0) > 0
            )
            lead = type(lead)(
                lead.person_id,
                lead.mql_type,
                lead.traits,
                card.get("fit", 0.0),
                card.get("intent", 0.0),
                card.get("total", 0.0),
                earned,
                lead.account_id,
            )
        at = h["changed_at"]
        if at - last_prune > timedelta(days=1):
            state, last_prune = prune(state, at), at
        state = RoutingState(
            state.recent_assignments,
            state.open_load,
            state.last_assigned,
            owners.get(h["account_id"]) if h["account_id"] is not None else None,
        )
        decision = route(definition.routing, values, lead, state, at)
        state = advance(state, decision, at)
        per_strategy[decision.strategy] += 1
        per_team[decision.team] += 1
        if decision.rep is None:
            queued += 1
        else:
            per_rep[decision.rep] += 1
            if h["account_id"] is not None:
                owners.setdefault(h["account_id"], decision.rep)
    days = max((now - since).total_seconds() / 86400, 1e-9)
    rows = []
    team_fairness: dict[str, float] = {}
    for team in sorted({r.team for r in values}):
        members = [r for r in values if r.team == team and r.active]
        weights = {r.key: float(r.weight) for r in members}
        team_fairness[team] = round(fairness({r.key: per_rep[r.key] for r in members}, weights), 4)
        for r in members:
            rows.append(
                {
                    "rep": r.key,
                    "team": team,
                    "mqls": per_rep[r.key],
                    "per_day": round(per_rep[r.key] / days, 2),
                    "capacity_per_day": r.capacity_per_day,
                    "share": round(per_rep[r.key] / total, 4) if total else 0.0,
                }
            )
    overall = fairness(
        {r.key: per_rep[r.key] for r in values if r.active},
        {r.key: float(r.weight) for r in values if r.active},
    )
    return {
        "since": since.isoformat(),
        "mqls": total,
        "queued": queued,
        "by_team": dict(per_team),
        "by_strategy": dict(per_strategy),
        "reps": rows,
        "fairness": round(overall, 4),
        "team_fairness": team_fairness,
    }
