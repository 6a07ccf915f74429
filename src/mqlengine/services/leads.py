"""Read models for leads: lists and the full detail of one person (with a live score card)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, true

from mqlengine.domain.consent import person_consent
from mqlengine.domain.rules import Definition
from mqlengine.domain.scoring import ScoreCard, score
from mqlengine.errors import NotFoundError, ValidationError
from mqlengine.ingest.lookup import IDENTITY_KINDS, find_person_id
from mqlengine.predict.serving import explain_card
from mqlengine.store import repo
from mqlengine.store.tables import accounts, events, identities, persons

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


def list_leads(
    connection: Connection,
    *,
    stage: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    if stage is not None and stage not in STAGES:
        raise ValidationError(f"unknown stage '{stage}' (use one of: {', '.join(STAGES)})")
    query = select(persons).where(persons.c.merged_into.is_(None))
    if stage is not None:
        query = query.where(persons.c.stage == stage)
    if since is not None:
        query = query.where(persons.c.stage_changed_at >= since)
    query = query.order_by(persons.c.total_score.desc(), persons.c.id).limit(limit).offset(offset)
    return [lead_row(r) for r in connection.execute(query).mappings()]


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
    connection: Connection, definition: Definition, person_id: int, *, as_of: datetime
) -> PersonDetail:
    live_id = repo.live_person_id(connection, person_id)
    row = repo.get_person(connection, live_id)
    if row is None:
        raise NotFoundError(f"person {person_id} does not exist")
    events = repo.load_events(connection, [live_id]).get(live_id, [])
    card = score(definition, row["profile"] or {}, events, as_of)
    card = explain_card(connection, definition, live_id, events, card, as_of)
    person = lead_row(row)
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
) -> tuple[list[dict[str, Any]], bool]:
    """Persons in stage-change order (oldest first), keyset-paginated: stable under ingest.
    ``ids``: only these persons (an identity lookup)."""
    query = select(persons).where(persons.c.merged_into.is_(None))
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
    rows = [lead_row(r) for r in connection.execute(query).mappings()]
    return rows[:limit], len(rows) > limit
