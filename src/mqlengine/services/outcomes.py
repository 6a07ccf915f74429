"""Bulk import of sales outcomes from a CRM export (CSV), through the feedback service.

Each row names a person (email or person id) and a CRM status; the status maps to a
feedback action (``Closed Won`` → won, ``Closed - Not Converted`` → reject, …). When the
lead is not yet where the action can start, the shortest legal path is taken (an MQL that
is ``Closed Won`` is converted first). Rows already at their target stage are skipped, so
importing the same export twice changes nothing. HubSpot and Salesforce lead/opportunity
export column names are recognised without a mapping.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mqlengine.domain.lifecycle import ACTION_TARGET, Action, Stage
from mqlengine.domain.rules import Definition
from mqlengine.errors import MqlError, ValidationError
from mqlengine.services.feedback import apply_feedback
from mqlengine.store import repo
from mqlengine.store.db import Database
from mqlengine.store.tables import persons

FIELDS = ("email", "person_id", "status", "reason", "amount", "date", "actor")
# Column names of HubSpot (contacts, deals) and Salesforce (leads, opportunities) exports.
PRESETS: dict[str, tuple[str, ...]] = {
    "email": ("Email", "Email Address", "Contact: Email", "Associated Email", "email"),
    "person_id": ("person_id", "Person ID", "MQL Person ID"),
    "status": (
        "Deal Stage",
        "Stage",
        "Lead Status",
        "Lifecycle Stage",
        "status",
        "action",
    ),
    "reason": (
        "Closed Lost Reason",
        "Loss Reason",
        "Unqualified Reason",
        "Disqualification Reason",
        "reason",
    ),
    "amount": ("Amount", "Opportunity Amount", "Deal Amount", "amount"),
    "date": ("Close Date", "Closed Date", "Converted Date", "Last Modified Date", "date"),
    "actor": ("Deal owner", "Contact owner", "Opportunity Owner", "Lead Owner", "Owner", "actor"),
}
_OPEN_OPPORTUNITY = {
    "prospecting",
    "qualification",
    "needsanalysis",
    "valueproposition",
    "iddecisionmakers",
    "perceptionanalysis",
    "proposalpricequote",
    "negotiationreview",
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
}
STATUS_ACTIONS: dict[str, str | None] = {
    # HubSpot lifecycle stages
    "subscriber": None,
    "lead": None,
    "marketingqualifiedlead": None,
    "salesqualifiedlead": "convert",
    "opportunity": "convert",
    "customer": "won",
    "evangelist": "won",
    "other": None,
    # HubSpot lead status
    "new": None,
    "open": None,
    "inprogress": "accept",
    "attemptedtocontact": "touch",
    "connected": "accept",
    "opendeal": "convert",
    "unqualified": "disqualify",
    "badtiming": "recycle",
    # HubSpot deal stages / Salesforce opportunity stages
    "closedwon": "won",
    "closedlost": "lost",
    # Salesforce lead status
    "opennotcontacted": None,
    "workingcontacted": "accept",
    "closedconverted": "convert",
    "closednotconverted": "reject",
    # our own words
    **{a.value: a.value for a in Action},
    "sal": "accept",
    "sql": "convert",
    "won": "won",
    "lost": "lost",
}
DEFAULT_REASONS = {"badtiming": "timing"}


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _code(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")


def action_for(status: str) -> tuple[str | None, bool]:
    """(action, known) for a CRM status; open opportunity stages convert."""
    key = _norm(status)
    if key in STATUS_ACTIONS:
        return STATUS_ACTIONS[key], True
    if key in _OPEN_OPPORTUNITY:
        return "convert", True
    return None, False


def resolve_columns(header: list[str], mapping: Mapping[str, str]) -> dict[str, str]:
    """Target field → CSV column: explicit ``mapping`` first, then the presets."""
    unknown = [k for k in mapping if k not in FIELDS]
    if unknown:
        raise ValidationError(
            f"unknown mapping target(s) {', '.join(unknown)} (use: {', '.join(FIELDS)})"
        )
    lower = {h.strip().lower(): h for h in header}
    columns: dict[str, str] = {}
    for target in FIELDS:
        if target in mapping:
            if mapping[target] not in header:
                raise ValidationError(
                    f"column '{mapping[target]}' (for {target}) is not in the file"
                )
            columns[target] = mapping[target]
            continue
        for candidate in PRESETS[target]:
            if candidate.lower() in lower:
                columns[target] = lower[candidate.lower()]
                break
    if "status" not in columns:
        raise ValidationError("no status column found (map one with --map status='Column')")
    if "email" not in columns and "person_id" not in columns:
        raise ValidationError(
            "no email or person id column found (map one with --map email='Column')"
        )
    return columns


@dataclass
class OutcomeReport:
    rows: int = 0
    applied: int = 0
    skipped: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)
    actions: dict[str, int] = field(default_factory=dict)


def _amount(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    cleaned = re.sub(r"[^0-9.\-]", "", text.replace(",", ""))
    try:
        return float(cleaned)
    except ValueError:
        raise ValueError(f"not an amount: {text!r}") from None


def _date(text: str | None, default: datetime) -> datetime:
    if text is None or not text.strip():
        return default
    from mqlengine.ingest.messages import MessageError, parse_time

    value = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        value += "T00:00:00Z"
    elif re.fullmatch(r"\d{1,2}/\d{1,2}/\d{4}", value):  # US exports: M/D/YYYY
        month, day, year = value.split("/")
        value = f"{year}-{int(month):02d}-{int(day):02d}T00:00:00Z"
    try:
        return min(parse_time(value, "date"), default)
    except MessageError as error:
        raise ValueError(error.reason) from None


def plan(current: Stage, action: str, amount: float | None) -> list[str]:
    """Actions that take a lead from ``current`` through ``action`` (empty: already there)."""
    verb = Action(action)
    later = (Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER)
    if verb is Action.CONVERT:
        if current is Stage.SQL and amount is not None:
            return [action]  # sql → opportunity
        return [] if current in later else [action]
    if verb is Action.ACCEPT and (current is Stage.SAL or current in later):
        return []
    if verb is Action.TOUCH and current is not Stage.MQL:
        return []
    if verb in (Action.WON, Action.LOST):
        if current in (Stage.CUSTOMER, Stage.NURTURE, Stage.DISQUALIFIED):
            return []  # a finished lead: nothing left to do
        if current not in (Stage.SQL, Stage.OPPORTUNITY):
            return ["convert", action]
        return [action]
    if ACTION_TARGET[verb] is current:
        return []
    return [action]


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        yield 0, {h: h for h in reader.fieldnames or []}
        yield from enumerate(reader, start=2)


def import_outcomes(
    db: Database,
    definition: Definition,
    path: Path,
    *,
    now: datetime,
    mapping: Mapping[str, str] | None = None,
    default_actor: str = "crm-import",
) -> OutcomeReport:
    report = OutcomeReport()
    rows = _rows(path)
    _, header_row = next(rows)
    columns = resolve_columns(list(header_row), mapping or {})
    for number, row in rows:
        report.rows += 1

        def get(name: str, row: dict[str, str] = row) -> str | None:
            column = columns.get(name)
            value = row.get(column) if column else None
            return value.strip() if isinstance(value, str) and value.strip() else None

        try:
            status = get("status") or ""
            action, known = action_for(status)
            if not known:
                raise ValueError(f"unknown status '{status}'")
            if action is None:
                report.skipped += 1
                continue
            amount = _amount(get("amount"))
            at = _date(get("date"), now)
            reason_text = get("reason")
            reason = _code(reason_text) if reason_text else DEFAULT_REASONS.get(_norm(status))
            actor = get("actor") or default_actor
            with db.begin() as connection:
                person_id = _person(
                    connection,
                    get("email"),
                    get("person_id"),
                    gmail_normalize=definition.identity.gmail_normalize,
                )
                current = Stage(
                    connection.execute(
                        select(persons.c.stage).where(persons.c.id == person_id)
                    ).scalar_one()
                )
                steps = plan(current, action, amount)
                if not steps:
                    report.skipped += 1
                    continue
                for step in steps:
                    apply_feedback(
                        connection,
                        definition,
                        person_id,
                        step,
                        actor=actor,
                        at=at,
                        now=now,
                        reason=reason if step == action else None,
                        amount=amount if step in ("convert", "won") else None,
                    )
                    report.actions[step] = report.actions.get(step, 0) + 1
            report.applied += 1
        except (MqlError, ValueError) as error:
            message = error.message if isinstance(error, MqlError) else str(error)
            report.problems.append((number, message))
    return report


def _person(
    connection: Any, email: str | None, person_id: str | None, *, gmail_normalize: bool
) -> int:
    from mqlengine.errors import NotFoundError
    from mqlengine.ingest.lookup import find_person_id

    if person_id:
        try:
            return repo.live_person_id(connection, int(person_id))
        except ValueError:
            raise ValidationError(f"not a person id: {person_id!r}") from None
    if not email:
        raise ValidationError("no email or person id in this row")
    found = find_person_id(connection, "email", email, gmail_normalize=gmail_normalize)
    if found is None:
        raise NotFoundError(f"no person with email {email}")
    return found
