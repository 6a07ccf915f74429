"""The parts of the notification payloads that assignments and breaches share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, RowMapping, select

from mqlengine.domain.scoring import ScoreCard
from mqlengine.store.tables_handoff import teams

TOP_CONTRIBUTIONS = 3


def person_summary(person: Mapping[Any, Any]) -> dict[str, Any]:
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


def top_contributions(card: ScoreCard | None) -> list[dict[str, Any]]:
    if card is None:
        return []
    ranked = sorted((c for c in card.contributions if c.points > 0), key=lambda c: -c.points)
    return [
        {"rule": c.rule_id, "kind": c.kind, "points": round(c.points, 2)}
        for c in ranked[:TOP_CONTRIBUTIONS]
    ]


def rep_summary(rep_rows: Mapping[str, RowMapping], key: str | None) -> dict[str, Any] | None:
    if key is None or key not in rep_rows:
        return None
    row = rep_rows[key]
    return {"key": key, "name": row["name"], "email": row["email"]}


def manager_email(connection: Connection, team: str) -> str | None:
    row = connection.execute(select(teams.c.manager_email).where(teams.c.name == team)).first()
    return row.manager_email if row is not None else None
