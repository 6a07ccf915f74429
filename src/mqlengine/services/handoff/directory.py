"""The reps and teams as routing values: read once per transaction, calendars compiled once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, RowMapping, select

from mqlengine.definition.handoff import compile_calendar
from mqlengine.definition.schema import CalendarSpec
from mqlengine.domain.calendar import BusinessCalendar
from mqlengine.domain.routing import Rep
from mqlengine.services import txcache
from mqlengine.store.tables_handoff import rep_absences, reps, teams

_TEAMS = select(teams.c.id, teams.c.name, teams.c.manager_email)
_ABSENCES = select(rep_absences)
_REPS = select(reps).order_by(reps.c.key)

_DIRECTORY = "handoff.reps"  # transaction memo name (see mqlengine.services.txcache)

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
