"""Import historical leads with their outcomes (a CRM export) so the funnel has a past.

One CSV row = one lead: an e-mail (or user id), where it came from (channel, source,
campaign), when it was created, and the date of each stage it reached (``mql_at``,
``sal_at``, ``sql_at``, ``opportunity_at``, ``customer_at``) or left through
(``rejected_at``, ``recycled_at``, ``disqualified_at``, ``lost_at``, each with an optional
``*_reason``); ``amount`` is the opportunity's pipeline, ``revenue`` the won amount.
Columns are mapped with ``--map target=Column``; same-named columns map themselves.

The history is the CRM's truth, so it is written as stage history (actor ``import``)
rather than re-derived by scoring. Persons are matched by e-mail / user id identity; a lead
whose history was already imported is left alone, so importing a file twice adds nothing.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from mqlengine.domain.consent import ConsentValueError, parse_consent
from mqlengine.errors import ValidationError
from mqlengine.ingest.lookup import find_person_id
from mqlengine.store import repo
from mqlengine.store.db import Database
from mqlengine.store.tables import identities, persons, stage_history

ACTOR = "import"
BATCH = 500
TIME_FIELDS = (
    "created_at",
    "mql_at",
    "sal_at",
    "sql_at",
    "opportunity_at",
    "customer_at",
    "rejected_at",
    "recycled_at",
    "disqualified_at",
    "lost_at",
)
TEXT_FIELDS = (
    "email",
    "user_id",
    "channel",
    "source",
    "campaign",
    "mql_type",
    "reject_reason",
    "recycle_reason",
    "disqualify_reason",
    "lost_reason",
)
NUMBER_FIELDS = ("amount", "revenue")
# consent the CRM holds, kept as the person's traits of the same name; read as booleans
CONSENT_FIELDS = ("consent_marketing", "consent_tracking")
TARGETS = (*TIME_FIELDS, *TEXT_FIELDS, *NUMBER_FIELDS, *CONSENT_FIELDS)

# (time field, stage entered, action, reason field, amount field)
STEPS: tuple[tuple[str, str, str | None, str | None, str | None], ...] = (
    ("mql_at", "mql", None, None, None),
    ("sal_at", "sal", "accept", None, None),
    ("sql_at", "sql", "convert", None, None),
    ("opportunity_at", "opportunity", "convert", None, "amount"),
    ("customer_at", "customer", "won", None, "revenue"),
    ("rejected_at", "nurture", "reject", "reject_reason", None),
    ("recycled_at", "nurture", "recycle", "recycle_reason", None),
    ("disqualified_at", "disqualified", "disqualify", "disqualify_reason", None),
    ("lost_at", "nurture", "lost", "lost_reason", None),
)


@dataclass
class HistoryImport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    stage_changes: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)


def _time(value: str, name: str) -> datetime:
    text = value.strip().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not an ISO date/time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # dates without offset are UTC
    return moment.astimezone(UTC)


def parse_row(values: Mapping[str, str | None]) -> dict[str, Any]:
    """Typed values of one row; ValueError says what is wrong."""
    row: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        text = (values.get(name) or "").strip()
        row[name] = text or None
    for name in TIME_FIELDS:
        text = (values.get(name) or "").strip()
        row[name] = _time(text, name) if text else None
    for name in NUMBER_FIELDS:
        text = (values.get(name) or "").strip().replace(",", "")
        if text:
            try:
                row[name] = float(text)
            except ValueError:
                raise ValueError(f"{name}: {text!r} is not a number") from None
        else:
            row[name] = None
    consent: dict[str, bool] = {}
    for name in CONSENT_FIELDS:
        text = (values.get(name) or "").strip()
        if text:
            try:
                consent[name] = parse_consent(text)
            except ConsentValueError as error:
                raise ValueError(f"{name}: {error}") from None
    row["consent"] = consent
    if row["email"]:
        row["email"] = row["email"].lower()
    if not row["email"] and not row["user_id"]:
        raise ValueError("no email or user_id")
    if row["channel"]:
        row["channel"] = row["channel"].lower()
    dates = [row[n] for n in TIME_FIELDS if row[n] is not None]
    if not dates:
        raise ValueError("no dates: give created_at and the dates of stages reached")
    created = row["created_at"] or min(dates)
    if any(d < created for d in dates):
        raise ValueError("a stage date lies before created_at")
    row["created_at"] = created
    return row


def stage_steps(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The stage changes a row describes, in time order, chained from ``lead``."""
    found = []
    for order, (name, stage, action, reason_field, amount_field) in enumerate(STEPS):
        at = row.get(name)
        if at is None:
            continue
        reason = (row.get(reason_field) if reason_field else None) or (
            f"imported:{row.get('mql_type') or 'mql'}" if stage == "mql" else action or stage
        )
        amount = row.get(amount_field) if amount_field else None
        found.append((at, order, stage, action, reason, amount))
    found.sort(key=lambda item: (item[0], item[1]))
    steps = []
    current = "lead"
    for at, _, stage, action, reason, amount in found:
        steps.append(
            {
                "from_stage": current,
                "to_stage": stage,
                "changed_at": at,
                "action": action,
                "reason": reason,
                "amount": amount,
            }
        )
        current = stage
    return steps


def _find_person(connection: Connection, row: Mapping[str, Any]) -> int | None:
    for kind, value in (("user_id", row["user_id"]), ("email", row["email"])):
        found = find_person_id(connection, kind, value) if value else None
        if found is not None:
            return found
    return None


def _already_imported(connection: Connection, person_id: int) -> bool:
    return (
        connection.execute(
            select(stage_history.c.id)
            .where(stage_history.c.person_id == person_id, stage_history.c.actor == ACTOR)
            .limit(1)
        ).first()
        is not None
    )


def _apply(
    connection: Connection, row: dict[str, Any], now: datetime, report: HistoryImport
) -> None:
    steps = stage_steps(row)
    person_id = _find_person(connection, row)
    final = steps[-1] if steps else None
    mql_steps = [s for s in steps if s["to_stage"] == "mql"]
    values: dict[str, Any] = {}
    if final is not None:
        values.update(stage=final["to_stage"], stage_changed_at=final["changed_at"])
    if mql_steps:
        values.update(mql_at=mql_steps[-1]["changed_at"], mql_type=row["mql_type"] or "imported")
    nurture = [s for s in steps if s["to_stage"] == "nurture"]
    if nurture:
        values["recycled_at"] = nurture[-1]["changed_at"]
    if person_id is None:
        created = row["created_at"]
        base = {"email": row["email"]} if row["email"] else {}
        result = connection.execute(
            persons.insert().values(
                traits={**base, **row["consent"]},
                profile={**base, **row["consent"]},
                flags=[],
                email=row["email"],
                channel=row["channel"],
                source=row["source"],
                campaign=row["campaign"],
                first_seen_at=created,
                last_seen_at=max([created, *(s["changed_at"] for s in steps)]),
                stage="lead",
                stage_changed_at=created,
                created_at=now,
                updated_at=now,
            )
        )
        person_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        for kind in ("user_id", "email"):
            if row[kind]:
                connection.execute(
                    identities.insert().values(
                        person_id=person_id, kind=kind, value=row[kind], created_at=now
                    )
                )
        repo.record_stage_change(
            connection,
            person_id,
            from_stage=None,
            to_stage="lead",
            changed_at=created,
            reason="created",
            actor=ACTOR,
            recorded_at=now,
        )
        report.created += 1
    else:
        if _already_imported(connection, person_id):
            report.skipped += 1
            return
        existing = repo.get_person(connection, person_id)
        if existing is not None:
            for column in ("channel", "source", "campaign"):
                if row[column] and not existing[column]:
                    values[column] = row[column]
            if row["created_at"] < existing["first_seen_at"]:
                values["first_seen_at"] = row["created_at"]
            if row["consent"]:
                values["traits"] = {**(existing["traits"] or {}), **row["consent"]}
                values["profile"] = {**(existing["profile"] or {}), **row["consent"]}
        report.updated += 1
    for step in steps:
        repo.record_stage_change(
            connection,
            person_id,
            from_stage=step["from_stage"],
            to_stage=step["to_stage"],
            changed_at=step["changed_at"],
            reason=step["reason"],
            actor=ACTOR,
            recorded_at=now,
            action=step["action"],
            mql_type=(row["mql_type"] or "imported") if step["to_stage"] == "mql" else None,
            amount=step["amount"],
        )
        report.stage_changes += 1
    if values:
        values["updated_at"] = now
        repo.bump_person(connection, person_id, values)


def import_history_csv(
    database: Database, path: Path, mapping: Mapping[str, str], *, now: datetime
) -> HistoryImport:
    """Load a CRM history CSV; bad rows are reported with their row number, good rows load."""
    report = HistoryImport()
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        unknown = [t for t in mapping if t not in TARGETS]
        if unknown:
            raise ValidationError(
                f"unknown history field(s) {', '.join(unknown)} (use: {', '.join(TARGETS)})"
            )
        lowered = {c.strip().lower(): c for c in columns}
        effective = {t: lowered[t] for t in TARGETS if t in lowered}
        effective.update(mapping)
        missing = [s for s in effective.values() if s not in columns]
        if missing:
            raise ValidationError(
                f"{path}: no column(s) {', '.join(missing)} (has: {', '.join(columns)})"
            )
        batch: list[tuple[int, dict[str, Any]]] = []

        def flush() -> None:
            if not batch:
                return
            with database.begin() as connection:
                for _, parsed in batch:
                    _apply(connection, parsed, now, report)
            batch.clear()

        for number, raw in enumerate(reader, start=2):
            report.rows += 1
            try:
                parsed = parse_row({t: raw.get(s) for t, s in effective.items()})
            except ValueError as error:
                report.problems.append((number, str(error)))
                continue
            batch.append((number, parsed))
            if len(batch) >= BATCH:
                flush()
        flush()
    return report
