"""What a routing decision reads: the routing state (recent assignments, open loads,
round-robin cursors, the account's owner) and the lead.

Two readers of the same state: :func:`routing_state` reads all of it (the simulator and
the reps' page show it); :func:`read_for_routing` reads, in one statement, only what the
matched rule looks at. A test holds them to the same decisions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Connection,
    Integer,
    RowMapping,
    Select,
    String,
    bindparam,
    cast,
    func,
    literal_column,
    null,
    or_,
    select,
    union_all,
)

from mqlengine.domain.lifecycle import Stage
from mqlengine.domain.routing import Lead, RoutingRule, RoutingState, day_start, state_needs
from mqlengine.domain.scoring import ScoreCard
from mqlengine.services.handoff.directory import RepDirectory
from mqlengine.store.tables import Id, persons
from mqlengine.store.tables_handoff import assignments, route_cursors
from mqlengine.store.types import UTCDateTime

RECENT = timedelta(days=2)


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


def read_for_routing(
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
    _existing, state = read_for_routing(
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
