"""Read models for leads: lists and the full detail of one person (with a live score card).

The lead list every shell shows (``mql leads``, ``GET /v1/persons``, the dashboard's Leads
page) is :func:`query_leads`: filters (:class:`LeadFilter`), a sort, offset and limit in,
the page's rows and the total that matched out. Each row carries its owner (a rep's key and
name, or the team's queue), the first-touch deadline, the first touch and the SLA state
(:func:`mqlengine.domain.sla.sla_state`), and, when asked, why it is not an MQL (from a live
score card). :func:`score_timeline` is a person's score over time with the events that
moved it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, true

from mqlengine.domain.consent import person_consent
from mqlengine.domain.explain import why_not_mql
from mqlengine.domain.rules import Definition
from mqlengine.domain.scoring import ScoreCard, score
from mqlengine.domain.sla import sla_state
from mqlengine.errors import NotFoundError, ValidationError
from mqlengine.ingest.lookup import IDENTITY_KINDS, find_person_id
from mqlengine.predict.serving import explain_card
from mqlengine.store import repo
from mqlengine.store.tables import accounts, events, identities, persons, score_snapshots
from mqlengine.store.tables_handoff import reps

STAGES = ("lead", "mql", "sal", "sql", "opportunity", "customer", "nurture", "disqualified")


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


SLA_FILTERS = ("breached", "due")
SORTS = ("score", "changed", "sla")
QUEUE = "queue"  # --owner queue: assigned to a team's queue, no rep


@dataclass(frozen=True, slots=True)
class LeadFilter:
    """Which leads a list shows. ``owner``: a rep's key, or ``queue`` (a team's queue);
    ``sla``: ``breached`` (not touched by the deadline, or touched after it) or ``due``
    (waiting for a first touch, deadline not passed)."""

    stage: str | None = None
    since: datetime | None = None
    owner: str | None = None
    team: str | None = None
    min_score: float | None = None
    sla: str | None = None

    def check(self) -> None:
        if self.stage is not None and self.stage not in STAGES:
            raise ValidationError(f"unknown stage '{self.stage}' (use one of: {', '.join(STAGES)})")
        if self.sla is not None and self.sla not in SLA_FILTERS:
            raise ValidationError(
                f"unknown SLA filter '{self.sla}' (use one of: {', '.join(SLA_FILTERS)})"
            )


@dataclass(frozen=True, slots=True)
class LeadPage:
    rows: list[dict[str, Any]]
    total: int  # how many leads match the filters (the rows are one page of them)
    offset: int
    limit: int

    @property
    def cut(self) -> bool:
        """More leads match than this page shows."""
        return self.offset + len(self.rows) < self.total


def _owner_label(row: Any) -> str | None:
    if row["owner_rep_id"] is not None:
        return str(row["owner_key"] or f"rep {row['owner_rep_id']}")
    return QUEUE if row["owner_team"] else None


def desk_fields(row: Any, now: datetime) -> dict[str, Any]:
    """Owner, team, deadline, first touch and SLA state of a person row joined with its
    owner rep (``owner_key``, ``owner_name``)."""
    state = sla_state(row["sla_due_at"], row["first_touch_at"], now)
    return {
        "owner": _owner_label(row),
        "owner_name": row["owner_name"],
        "team": row["owner_team"],
        "sla_due_at": _iso(row["sla_due_at"]),
        "first_touch_at": _iso(row["first_touch_at"]),
        "sla_state": state.value if state is not None else None,
    }


def _rep_id(connection: Connection, owner: str | None) -> int | None:
    """The id of the rep named by key or e-mail (-1: none has it, so nothing matches)."""
    if owner is None or owner == QUEUE:
        return None
    found = connection.execute(
        select(reps.c.id).where(or_(reps.c.key == owner, reps.c.email == owner)).limit(1)
    ).scalar()
    return -1 if found is None else int(found)


def _filtered(query: Any, filters: LeadFilter, now: datetime, owner_id: int | None = None) -> Any:
    """``owner_id``: the rep ``filters.owner`` names (:func:`_rep_id`), looked up first so
    the list walks the (owner, score) index."""
    query = query.where(persons.c.merged_into.is_(None))
    if filters.stage is not None:
        query = query.where(persons.c.stage == filters.stage)
    if filters.since is not None:
        query = query.where(persons.c.stage_changed_at >= filters.since)
    if filters.min_score is not None:
        query = query.where(persons.c.total_score >= filters.min_score)
    if filters.team is not None:
        query = query.where(persons.c.owner_team == filters.team)
    if filters.owner == QUEUE:
        query = query.where(persons.c.owner_rep_id.is_(None), persons.c.owner_team.is_not(None))
    elif filters.owner is not None:
        query = query.where(persons.c.owner_rep_id == owner_id)
    if filters.sla == "breached":
        untouched = and_(persons.c.first_touch_at.is_(None), persons.c.sla_due_at < now)
        late = persons.c.first_touch_at > persons.c.sla_due_at
        query = query.where(persons.c.sla_due_at.is_not(None), or_(untouched, late))
    elif filters.sla == "due":
        query = query.where(persons.c.first_touch_at.is_(None), persons.c.sla_due_at >= now)
    return query


def _order(sort: str, filters: LeadFilter) -> tuple[Any, ...]:
    """Each order walks an index of migration 0014 (ties: newest id first)."""
    if sort == "changed":
        return (persons.c.stage_changed_at.desc(), persons.c.id.desc())
    if sort == "sla":
        if filters.sla is not None:  # only leads with a deadline
            return (persons.c.sla_due_at, persons.c.id)
        return (persons.c.sla_due_at.is_(None), persons.c.sla_due_at, persons.c.id)
    return (persons.c.total_score.desc(), persons.c.id.desc())


def _with_owner(query: Any) -> Any:
    return query.add_columns(
        reps.c.key.label("owner_key"), reps.c.name.label("owner_name")
    ).select_from(persons.outerjoin(reps, reps.c.id == persons.c.owner_rep_id))


def query_leads(
    connection: Connection,
    filters: LeadFilter | None = None,
    *,
    now: datetime,
    sort: str = "score",
    offset: int = 0,
    limit: int = 50,
    definition: Definition | None = None,
    count: bool = True,
) -> LeadPage:
    """One page of leads matching ``filters`` and how many match in all.

    ``sort``: ``score`` (highest first), ``changed`` (latest stage change first) or ``sla``
    (earliest deadline first). ``definition``: also say why each lead on the page is not an
    MQL (``why_not``, from a live score card as of ``now``; None for MQLs and beyond).
    ``count=False`` skips the count (``total`` is then the rows seen so far)."""
    filters = filters or LeadFilter()
    filters.check()
    if sort not in SORTS:
        raise ValidationError(f"unknown sort '{sort}' (use one of: {', '.join(SORTS)})")
    if limit < 0 or offset < 0:
        raise ValidationError("limit and offset must not be negative")
    owner_id = _rep_id(connection, filters.owner)
    query = _filtered(_with_owner(select(persons)), filters, now, owner_id)
    query = query.order_by(*_order(sort, filters)).limit(limit).offset(offset)
    found = list(connection.execute(query).mappings())
    rows = [{**lead_row(r), **desk_fields(r, now)} for r in found]
    if definition is not None:
        _add_why_not(connection, definition, found, rows, now)
    if count:
        total = connection.execute(
            _filtered(select(func.count()).select_from(persons), filters, now, owner_id)
        ).scalar_one()
    else:
        total = offset + len(rows)
    return LeadPage(rows, int(total), offset, limit)


def _add_why_not(
    connection: Connection,
    definition: Definition,
    found: Sequence[Any],
    rows: list[dict[str, Any]],
    now: datetime,
) -> None:
    waiting = [r for r in found if r["stage"] in ("lead", "nurture")]
    loaded = repo.load_events(connection, [r["id"] for r in waiting]) if waiting else {}
    reasons = {
        r["id"]: why_not_mql(score(definition, r["profile"] or {}, loaded.get(r["id"], []), now))
        for r in waiting
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
    *,
    stage: str | None,
    since: datetime | None,
    after: tuple[datetime, int] | None,
    limit: int,
    ids: list[int] | None = None,
    now: datetime,
) -> tuple[list[dict[str, Any]], bool]:
    """Persons in stage-change order (oldest first), keyset-paginated: stable under ingest.
    ``ids``: only these persons (an identity lookup). Rows carry their owner and SLA state
    as of ``now``."""
    query = _with_owner(select(persons)).where(persons.c.merged_into.is_(None))
    if ids is not None:
        query = query.where(persons.c.id.in_(ids))
    if stage is not None:
        query = query.where(persons.c.stage == stage)
    if since is not None:
        query = query.where(persons.c.stage_changed_at >= since)
    if after is not None:
        moment, person_id = after
        query = query.where(
            or_(
                persons.c.stage_changed_at > moment,
                and_(persons.c.stage_changed_at == moment, persons.c.id > person_id),
            )
        )
    query = query.order_by(persons.c.stage_changed_at, persons.c.id).limit(limit + 1)
    rows = [{**lead_row(r), **desk_fields(r, now)} for r in connection.execute(query).mappings()]
    return rows[:limit], len(rows) > limit
