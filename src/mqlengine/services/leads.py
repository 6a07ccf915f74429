"""Read models for leads: the one lead list and the full detail of one person (with a live
score card).

The lead list every shell shows (``mql leads``, ``GET /v1/persons``, the dashboard's Leads
page and its CSV export) is one filter model (:class:`LeadFilter`; the page's sort and size
in :class:`LeadView`), one query builder (:func:`lead_select` over
:func:`lead_conditions`), one count (:func:`count_leads`, exact or bounded) and one row
(:func:`list_row`): :func:`query_leads` pages by offset, :func:`list_page` by key (stable
under ingest), :func:`iter_leads` walks every match. The list reads the list's columns of
``persons`` and the owner rep, through the indexes of migrations 0014/0015 (score order;
stage, team and channel in score order; owner; deadline). Each row carries its owner (a
rep's key and name, or the team's queue), the first-touch deadline, the first touch and the
SLA state (:func:`mqlengine.domain.sla.sla_state`), and, when asked, why it is not an MQL
(:func:`explain_waiting`, from a live score card). :func:`score_timeline` is a person's
score over time with the events that moved it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, func, or_, select, true

from mqlengine.domain.consent import person_consent
from mqlengine.domain.sla import DUE_SOON, sla_state
from mqlengine.errors import NotFoundError, ValidationError
from mqlengine.services.leadfilter import COUNT_CAP, NO_CHANNEL, QUEUE, UNASSIGNED
from mqlengine.services.leadfilter import PAGE_SIZES as PAGE_SIZES  # (re-exported)
from mqlengine.services.leadfilter import STAGES as STAGES
from mqlengine.services.leadfilter import LeadFilter as LeadFilter
from mqlengine.services.leadfilter import LeadPage as LeadPage
from mqlengine.services.leadfilter import LeadView as LeadView
from mqlengine.store.tables import accounts, events, identities, persons, score_snapshots
from mqlengine.store.tables_handoff import reps

if TYPE_CHECKING:  # scoring and the store's repository are imported where used
    from mqlengine.domain.rules import Definition
    from mqlengine.domain.scoring import ScoreCard


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def lead_row(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "email": row["email"],
        "stage": row["stage"],
        "mql_type": row["mql_type"],
        "fit": round(row["fit_score"], 2),
        "intent": round(row["intent_score"], 2),
        "total": round(row["total_score"], 2),
        "channel": row["channel"],
        "account_id": row["account_id"],
        "stage_changed_at": _iso(row["stage_changed_at"]),
        "mql_at": _iso(row["mql_at"]),
        "scored_at": _iso(row["scored_at"]),
        "definition_version": row["definition_version"],
    }


# -- the lead list ----------------------------------------------------------------------------

# sort → column (ties: the id in the same direction)
SORT_COLUMNS = {
    "total": persons.c.total_score,
    "fit": persons.c.fit_score,
    "intent": persons.c.intent_score,
    "mql_at": persons.c.mql_at,
    "created": persons.c.first_seen_at,
    "stage_changed": persons.c.stage_changed_at,
    "sla_due": persons.c.sla_due_at,
    "id": persons.c.id,
}
# the CLI's and the API's names of three of them, with their direction
SORT_ALIASES = {
    "score": ("total", "desc"),
    "changed": ("stage_changed", "desc"),
    "sla": ("sla_due", "asc"),
}
SORTS = (*SORT_COLUMNS, *SORT_ALIASES)


def _owner_label(row: Any) -> str | None:
    if row["owner_rep_id"] is not None:
        return str(row["owner_key"] or f"rep {row['owner_rep_id']}")
    return QUEUE if row["owner_team"] else None


def desk_fields(row: Any, now: datetime) -> dict[str, Any]:
    """Owner, team, deadline, first touch and SLA state of a person row joined with its
    owner rep (``owner_key``, ``owner_name``). ``owner`` names the rep (its key), or the
    team's ``queue``; ``owner_key`` is the rep's key alone."""
    state = sla_state(row["sla_due_at"], row["first_touch_at"], now)
    return {
        "owner": _owner_label(row),
        "owner_key": row["owner_key"],
        "owner_name": row["owner_name"],
        "team": row["owner_team"],
        "sla_due_at": _iso(row["sla_due_at"]),
        "first_touch_at": _iso(row["first_touch_at"]),
        "sla_state": state.value if state is not None else None,
    }


def _rep_id(connection: Connection, owner: str | None) -> int | None:
    """The id of the rep named by key or e-mail (-1: none has it, so nothing matches)."""
    if owner is None or owner in (QUEUE, UNASSIGNED):
        return None
    found = connection.execute(
        select(reps.c.id).where(or_(reps.c.key == owner, reps.c.email == owner)).limit(1)
    ).scalar()
    return -1 if found is None else int(found)


def lead_conditions(connection: Connection, f: LeadFilter, now: datetime) -> list[Any]:
    """The WHERE clauses of ``f`` over ``persons`` (live persons only). A rep named by
    ``owner`` is looked up first, so the list walks the (owner, score) index."""
    p = persons.c
    where: list[Any] = [p.merged_into.is_(None)]
    if f.stage is not None:
        where.append(p.stage == f.stage)
    if f.since is not None:
        where.append(p.stage_changed_at >= f.since)
    if f.owner == QUEUE:
        where += [p.owner_rep_id.is_(None), p.owner_team.is_not(None)]
    elif f.owner == UNASSIGNED:
        where.append(p.owner_rep_id.is_(None))
    elif f.owner is not None:
        where.append(p.owner_rep_id == _rep_id(connection, f.owner))
    if f.team is not None:
        where.append(p.owner_team == f.team)
    if f.channel is not None:
        where.append(p.channel.is_(None) if f.channel == NO_CHANNEL else p.channel == f.channel)
    if f.mql_type is not None:
        where.append(p.mql_type == f.mql_type)
    if f.score_min is not None:
        where.append(p.total_score >= f.score_min)
    if f.score_max is not None:
        where.append(p.total_score <= f.score_max)
    if f.created_from is not None:
        where.append(p.first_seen_at >= f.created_from)
    if f.created_to is not None:
        where.append(p.first_seen_at < f.created_to)
    if f.mql_from is not None:
        where.append(p.mql_at >= f.mql_from)
    if f.mql_to is not None:
        where.append(p.mql_at < f.mql_to)
    if f.sla is not None:
        where.append(_sla_condition(f.sla, now))
    return where


def _sla_condition(sla: str, now: datetime) -> Any:
    """The persons in SLA state ``sla`` at ``now`` (see :func:`sla_state`), in SQL."""
    due, touched = persons.c.sla_due_at, persons.c.first_touch_at
    if sla == "none":
        return due.is_(None)
    if sla == "breached":
        # a late touch lies in the past, so every breach has its deadline before now:
        # that range is what the sla_due_at index reads
        return and_(due < now, or_(and_(touched.is_not(None), touched > due), touched.is_(None)))
    if sla == "due":
        return and_(touched.is_(None), due >= now)
    if sla == "due_soon":
        return and_(due >= now, due <= now + DUE_SOON, touched.is_(None))
    return or_(  # on_time
        and_(touched.is_not(None), touched <= due), and_(touched.is_(None), due > now + DUE_SOON)
    )


def _sort(sort: str, order: str | None) -> tuple[str, str]:
    if sort in SORT_ALIASES:
        name, direction = SORT_ALIASES[sort]
        return name, order or direction
    if sort not in SORT_COLUMNS:
        raise ValidationError(f"unknown sort '{sort}' (use one of: {', '.join(SORTS)})")
    if order not in (None, "asc", "desc"):
        raise ValidationError(f"unknown order '{order}' (use asc or desc)")
    return sort, order or "desc"


def _order_by(f: LeadFilter, sort: str, order: str) -> list[Any]:
    """Each order walks an index of migrations 0014/0015 (ties: the id, same direction)."""
    key: Any = SORT_COLUMNS[sort]
    if f.deadline_only and sort in ("total", "fit", "intent", "id"):
        # the deadline range is the selective part: `+ 0` (numbers only) keeps SQLite
        # from walking the whole score index instead (PostgreSQL plans by cost anyway)
        key = key + 0
    direction = key.desc() if order == "desc" else key.asc()
    tie = persons.c.id.desc() if order == "desc" else persons.c.id.asc()
    if sort == "mql_at" or (sort == "sla_due" and not f.deadline_only):
        return [key.is_(None), direction, tie]  # no MQL date, no deadline: last either way
    return [direction, tie]


_LIST_COLUMNS = (
    persons.c.id,
    persons.c.email,
    persons.c.stage,
    persons.c.mql_type,
    persons.c.fit_score,
    persons.c.intent_score,
    persons.c.total_score,
    persons.c.channel,
    persons.c.account_id,
    persons.c.first_seen_at,
    persons.c.stage_changed_at,
    persons.c.mql_at,
    persons.c.scored_at,
    persons.c.definition_version,
    persons.c.owner_rep_id,
    persons.c.owner_team,
    persons.c.sla_due_at,
    persons.c.first_touch_at,
)


def _with_owner(query: Any) -> Any:
    return query.add_columns(
        reps.c.key.label("owner_key"), reps.c.name.label("owner_name")
    ).select_from(persons.outerjoin(reps, reps.c.id == persons.c.owner_rep_id))


def lead_select(
    connection: Connection,
    f: LeadFilter,
    *,
    now: datetime,
    sort: str = "total",
    order: str | None = None,
) -> Any:
    """The lead list's query: the list's columns and each row's owner rep, filtered and
    sorted (no page)."""
    name, direction = _sort(sort, order)
    return (
        _with_owner(select(*_LIST_COLUMNS))
        .where(*lead_conditions(connection, f, now))
        .order_by(*_order_by(f, name, direction))
    )


def list_row(row: Any, now: datetime) -> dict[str, Any]:
    """A lead as every list shows it: :func:`lead_row`'s fields, when it was first seen
    (``created_at``) and :func:`desk_fields`."""
    return {
        **lead_row(row),
        "created_at": _iso(row["first_seen_at"]),
        **desk_fields(row, now),
    }


def count_leads(
    connection: Connection, f: LeadFilter, *, now: datetime, cap: int | None = None
) -> int:
    """How many leads ``f`` matches; with ``cap``, at most ``cap + 1`` are counted."""
    where = lead_conditions(connection, f, now)
    if cap is None:
        query = select(func.count()).select_from(persons).where(*where)
    else:
        counted = select(persons.c.id).where(*where).limit(cap + 1)
        query = select(func.count()).select_from(counted.subquery())
    return int(connection.execute(query).scalar_one())


def query_leads(
    connection: Connection,
    filters: LeadFilter | None = None,
    *,
    now: datetime,
    sort: str = "total",
    order: str | None = None,
    offset: int = 0,
    limit: int = 50,
    count: bool = True,
    count_cap: int | None = None,
) -> LeadPage:
    """One page of the leads ``filters`` match, and how many match in all: the lead list
    of every shell (``mql leads``, the dashboard's Leads page; ``GET /v1/persons`` pages by
    :func:`list_page` over the same filters and rows).

    ``sort``: a column of :data:`SORT_COLUMNS` in ``order`` (default descending), or
    ``score`` (highest first), ``changed`` (latest stage change first) or ``sla``
    (earliest deadline first); :func:`explain_waiting` adds why each waiting lead on the page
    is not an MQL. ``count=False`` skips the count (``total`` is then the
    rows seen so far); ``count_cap`` bounds it (``capped`` says it was reached)."""
    filters = filters or LeadFilter()
    if limit < 0 or offset < 0:
        raise ValidationError("limit and offset must not be negative")
    query = lead_select(connection, filters, now=now, sort=sort, order=order)
    found = connection.execute(query.limit(limit + 1).offset(offset)).mappings().all()
    rows = [list_row(r, now) for r in found[:limit]]
    capped = False
    if count:
        total = count_leads(connection, filters, now=now, cap=count_cap)
        if count_cap is not None and total > count_cap:
            total, capped = count_cap, True
    else:
        total = offset + len(rows)
    return LeadPage(rows, total, offset, limit, more=len(found) > limit, capped=capped)


def lead_page(connection: Connection, view: LeadView, *, now: datetime) -> LeadPage:
    """The Leads page: page ``view.page`` of ``view.size`` rows, the count bounded by
    :data:`COUNT_CAP`."""
    return query_leads(
        connection,
        view,
        now=now,
        sort=view.sort,
        order=view.order,
        offset=(view.page - 1) * view.size,
        limit=view.size,
        count_cap=COUNT_CAP,
    )


def iter_leads(
    connection: Connection,
    f: LeadFilter,
    *,
    now: datetime,
    sort: str | None = None,
    order: str | None = None,
    chunk: int = 2000,
) -> Iterator[dict[str, Any]]:
    """Every lead ``f`` matches, in the list's order (exports: no page, no cap). The sort
    defaults to the view's (``f`` a :class:`LeadView`), else the highest score first."""
    if sort is None:
        sort, order = (f.sort, f.order) if isinstance(f, LeadView) else ("total", order)
    query = lead_select(connection, f, now=now, sort=sort, order=order)
    result = connection.execution_options(stream_results=True, yield_per=chunk).execute(query)
    for r in result.mappings():
        yield list_row(r, now)


def explain_waiting(
    connection: Connection, definition: Definition, rows: list[dict[str, Any]], now: datetime
) -> None:
    """Set each row's ``why_not``: why a lead still waiting (lead, nurture) is not an MQL,
    from a live score card as of ``now``; None for the others."""
    from mqlengine.domain.explain import why_not_mql
    from mqlengine.domain.scoring import score
    from mqlengine.store import repo

    waiting = [r["id"] for r in rows if r["stage"] in ("lead", "nurture")]
    reasons: dict[int, str | None] = {}
    if waiting:
        profiles = {
            r.id: r.profile
            for r in connection.execute(
                select(persons.c.id, persons.c.profile).where(persons.c.id.in_(waiting))
            )
        }
        loaded = repo.load_events(connection, waiting)
        reasons = {
            pid: why_not_mql(score(definition, profiles.get(pid) or {}, loaded.get(pid, []), now))
            for pid in waiting
        }
    for row in rows:
        row["why_not"] = reasons.get(row["id"])


def person_desk(connection: Connection, person_id: int, now: datetime) -> dict[str, Any]:
    """Owner, team, deadline, first touch and SLA state of one person."""
    query = _with_owner(select(persons)).where(persons.c.id == person_id)
    row = connection.execute(query).mappings().first()
    if row is None:
        raise NotFoundError(f"person {person_id} does not exist")
    return desk_fields(row, now)


def score_timeline(
    connection: Connection, person_id: int, *, limit: int = 500
) -> list[dict[str, Any]]:
    """A person's score snapshots, oldest first, each with the events since the one before
    (what moved it), the rules whose points changed, and the stage changes in between."""
    from mqlengine.store import repo

    live_id = repo.live_person_id(connection, person_id)
    if repo.get_person(connection, live_id) is None:
        raise NotFoundError(f"person {person_id} does not exist")
    snaps = list(
        connection.execute(
            select(score_snapshots)
            .where(score_snapshots.c.person_id == live_id)
            .order_by(score_snapshots.c.as_of, score_snapshots.c.id)
            .limit(limit)
        ).mappings()
    )
    scored = list(
        connection.execute(
            select(events.c.timestamp, events.c.type, events.c.name)
            .where(events.c.person_id == live_id)
            .order_by(events.c.timestamp, events.c.id)
        )
    )
    history = repo.stage_history_of(connection, live_id)
    result: list[dict[str, Any]] = []
    previous: datetime | None = None
    before: dict[str, float] = {}
    for snap in snaps:
        moment = snap["as_of"]
        moved = [
            {"at": e.timestamp.isoformat(), "type": e.type, "name": e.name}
            for e in scored
            if (previous is None or e.timestamp > previous) and e.timestamp <= moment
        ]
        points = {str(k): float(v) for k, v in (snap["rule_points"] or {}).items()}
        changed = {
            rule: round(points.get(rule, 0.0) - before.get(rule, 0.0), 2)
            for rule in sorted(set(points) | set(before))
            if abs(points.get(rule, 0.0) - before.get(rule, 0.0)) >= 0.005
        }
        stages = [
            f"{h['from_stage'] or '-'} → {h['to_stage']}"
            for h in history
            if (previous is None or h["changed_at"] > previous) and h["changed_at"] <= moment
        ]
        result.append(
            {
                "as_of": moment.isoformat(),
                "definition_version": snap["definition_version"],
                "fit": round(snap["fit"], 2),
                "intent": round(snap["intent"], 2),
                "total": round(snap["total"], 2),
                "qualifies": bool(snap["qualifies"]),
                "rules_changed": changed,
                "events": moved[-20:],
                "events_count": len(moved),
                "stage_changes": stages,
            }
        )
        previous, before = moment, points
    return result


def resolve_person_ref(connection: Connection, ref: str, *, gmail_normalize: bool = False) -> int:
    """A person named by id (``42``), ``kind:value`` (``user_id:u-1``, ``email:a@b.io``,
    ``anonymous_id:…``, ``phone:+44…``, ``external_id:…``) or a bare e-mail address."""
    from mqlengine.ingest.lookup import IDENTITY_KINDS, find_person_id

    text = ref.strip()
    if text.isdigit():
        return int(text)
    kind, sep, value = text.partition(":")
    if not sep or kind not in IDENTITY_KINDS:
        if "@" not in text:
            raise NotFoundError(
                f"'{ref}' is not a person id, an e-mail address or kind:value with kind one "
                f"of {', '.join(IDENTITY_KINDS)}"
            )
        kind, value = "email", text
    found = find_person_id(connection, kind, value, gmail_normalize=gmail_normalize)
    if found is None:
        raise NotFoundError(f"no person has {kind} '{value}'")
    return found


@dataclass
class PersonDetail:
    person: dict[str, Any]
    identities: list[dict[str, str]]
    card: ScoreCard
    history: list[dict[str, Any]]
    consent: dict[str, Any] = field(default_factory=dict)


def consent_detail(
    connection: Connection, definition: Definition, person_id: int, profile: dict[str, Any]
) -> dict[str, Any]:
    """The person's consent as the definition reads it, and what it changed (``notes``,
    shown by ``mql explain`` and the API)."""
    policy = definition.consent
    standing = person_consent(profile, policy)
    untracked = connection.execute(
        select(func.count())
        .select_from(events)
        .where(events.c.person_id == person_id, events.c.consent_withdrawn == true())
    ).scalar_one()
    notes: list[str] = []
    if standing.tracking is False:
        notes.append(
            f"tracking consent withdrawn ({policy.tracking_trait} = false): "
            "no event earns intent points"
        )
    if untracked:
        notes.append(
            f"{untracked} event(s) sent without tracking consent: stored without IP, user "
            "agent or free text, and earn no intent points"
        )
    if standing.marketing is False:
        notes.append(
            f"marketing consent withdrawn ({policy.marketing_trait} = false): "
            "not routed to sales and no notifications sent"
        )
    return {
        "tracking": standing.tracking,
        "marketing": standing.marketing,
        "untracked_events": untracked,
        "notes": notes,
    }


def person_detail(
    connection: Connection,
    definition: Definition,
    person_id: int,
    *,
    as_of: datetime,
    now: datetime | None = None,
) -> PersonDetail:
    """``now``: the moment the SLA state is judged at (default ``as_of``)."""
    from mqlengine.domain.explain import why_not_mql
    from mqlengine.domain.scoring import score
    from mqlengine.predict.serving import explain_card
    from mqlengine.store import repo

    live_id = repo.live_person_id(connection, person_id)
    row = repo.get_person(connection, live_id)
    if row is None:
        raise NotFoundError(f"person {person_id} does not exist")
    events = repo.load_events(connection, [live_id]).get(live_id, [])
    card = score(definition, row["profile"] or {}, events, as_of)
    card = explain_card(connection, definition, live_id, events, card, as_of)
    person = lead_row(row)
    person.update(person_desk(connection, live_id, now or as_of))
    person["why_not"] = why_not_mql(card) if row["stage"] in ("lead", "nurture") else None
    person.update(
        traits=row["traits"],
        profile=row["profile"],
        flags=row["flags"],
        first_seen_at=_iso(row["first_seen_at"]),
        last_seen_at=_iso(row["last_seen_at"]),
        merged_from=person_id if person_id != live_id else None,
    )
    ids = [
        {"kind": r.kind, "value": r.value}
        for r in connection.execute(
            select(identities.c.kind, identities.c.value)
            .where(identities.c.person_id == live_id)
            .order_by(identities.c.id)
        )
    ]
    history = [
        {
            "from_stage": h["from_stage"],
            "to_stage": h["to_stage"],
            "changed_at": h["changed_at"].isoformat(),
            "reason": h["reason"],
            "actor": h["actor"],
            "action": h["action"],
            "definition_version": h["definition_version"],
            "mql_type": h["mql_type"],
            "reactivated": h["reactivated"],
            "amount": h["amount"],
            "score_card": h["score_card"],
        }
        for h in repo.stage_history_of(connection, live_id)
    ]
    consent = consent_detail(connection, definition, live_id, row["profile"] or {})
    return PersonDetail(person, ids, card, history, consent)


def account_summary(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "domain": row["domain"],
        "group_id": row["group_id"],
        "name": row["name"],
        "traits": row["traits"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def person_account(connection: Connection, account_id: int | None) -> dict[str, Any] | None:
    """The summary of a person's account, or None."""
    if account_id is None:
        return None
    from mqlengine.store import repo

    row = repo.accounts_by_id(connection, [account_id]).get(account_id)
    return account_summary(row) if row is not None else None


def account_detail(connection: Connection, account_id: int) -> dict[str, Any]:
    """An account, its live persons (highest score first) and how many are at each stage."""
    account = connection.execute(select(accounts).where(accounts.c.id == account_id))
    row = account.mappings().first()
    if row is None:
        raise NotFoundError(f"account {account_id} does not exist")
    members = [
        lead_row(r)
        for r in connection.execute(
            select(persons)
            .where(persons.c.account_id == account_id, persons.c.merged_into.is_(None))
            .order_by(persons.c.total_score.desc(), persons.c.id)
        ).mappings()
    ]
    stages: dict[str, int] = {}
    for member in members:
        stages[member["stage"]] = stages.get(member["stage"], 0) + 1
    return {"account": account_summary(row), "persons": members, "stages": stages}


def list_page(
    connection: Connection,
    filters: LeadFilter | None = None,
    *,
    after: tuple[datetime, int] | None,
    limit: int,
    ids: list[int] | None = None,
    now: datetime,
) -> tuple[list[dict[str, Any]], bool]:
    """Leads in stage-change order (oldest first), keyset-paginated: stable under ingest
    (``GET /v1/persons``). ``ids``: only these persons (an identity lookup)."""
    filters = filters or LeadFilter()
    query = _with_owner(select(*_LIST_COLUMNS)).where(*lead_conditions(connection, filters, now))
    if ids is not None:
        query = query.where(persons.c.id.in_(ids))
    if after is not None:
        moment, person_id = after
        query = query.where(
            or_(
                persons.c.stage_changed_at > moment,
                and_(persons.c.stage_changed_at == moment, persons.c.id > person_id),
            )
        )
    query = query.order_by(persons.c.stage_changed_at, persons.c.id).limit(limit + 1)
    rows = [list_row(r, now) for r in connection.execute(query).mappings()]
    return rows[:limit], len(rows) > limit
