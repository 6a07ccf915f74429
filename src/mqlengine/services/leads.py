"""Read models for leads: lists and the full detail of one person (with a live score card)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from mqlengine.domain.rules import Definition
from mqlengine.domain.scoring import ScoreCard, score
from mqlengine.errors import NotFoundError, ValidationError
from mqlengine.ingest.identity import email_identity
from mqlengine.ingest.signals import normalize_phone
from mqlengine.store import repo
from mqlengine.store.tables import identities, persons

IDENTITY_KINDS = ("email", "user_id", "anonymous_id", "phone", "external_id")
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


def normalize_identity(kind: str, value: str, *, gmail_normalize: bool = False) -> str:
    """``value`` as ingest stores an identity of ``kind``: e-mails trimmed and lower-cased
    (and Gmail-normalised when the definition says so), phones in E.164, ids trimmed.
    Raises :class:`ValidationError` for an unknown kind or a phone that is no number."""
    text = value.strip()
    if kind not in IDENTITY_KINDS:
        raise ValidationError(
            f"unknown identity kind '{kind}' (use one of: {', '.join(IDENTITY_KINDS)})"
        )
    if not text:
        raise ValidationError(f"{kind}: empty value")
    if kind == "email":
        return email_identity(text, gmail_normalize) or text.lower()
    if kind == "phone":
        phone = normalize_phone(text)
        if phone is None:
            raise ValidationError(f"phone: {value!r} is not a phone number in E.164 (+CC…)")
        return phone
    return text


def find_person_id(
    connection: Connection, kind: str, value: str, *, gmail_normalize: bool = False
) -> int | None:
    """The person that carries this identity (an identity is unique per kind and always
    points at a live person), or None."""
    normalized = normalize_identity(kind, value, gmail_normalize=gmail_normalize)
    query = select(identities.c.person_id).where(
        identities.c.kind == kind, identities.c.value == normalized
    )
    found = connection.execute(query).scalar_one_or_none()
    return None if found is None else int(found)


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


def person_detail(
    connection: Connection, definition: Definition, person_id: int, *, as_of: datetime
) -> PersonDetail:
    live_id = repo.live_person_id(connection, person_id)
    row = repo.get_person(connection, live_id)
    if row is None:
        raise NotFoundError(f"person {person_id} does not exist")
    events = repo.load_events(connection, [live_id]).get(live_id, [])
    card = score(definition, row["profile"] or {}, events, as_of)
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
    return PersonDetail(person, ids, card, history)
