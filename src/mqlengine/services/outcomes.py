"""Bulk import of sales outcomes from a CRM export (CSV), through the feedback service.

Each row names a person (email or person id) and a CRM status; the status maps to a
feedback action (``Closed Won`` → won, ``Closed - Not Converted`` → reject, …). When the
lead is not yet where the action can start, the shortest legal path is taken (an MQL that
is ``Closed Won`` is converted first). Rows already at their target stage are skipped, so
importing the same export twice changes nothing. HubSpot and Salesforce lead/opportunity
export column names are recognised without a mapping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mqlengine.domain.lifecycle import ACTION_TARGET, Action, Stage
from mqlengine.domain.rules import Definition
from mqlengine.errors import MqlError, NotFoundError, ValidationError
from mqlengine.ingest.csvread import (
    Columns,
    CsvEncodingError,
    CsvFile,
    CsvOptions,
    RowProblem,
    parse_amount,
    parse_datetime,
)
from mqlengine.ingest.csvread import resolve_columns as resolve
from mqlengine.ingest.lookup import find_person_id
from mqlengine.services.feedback import apply_feedback
from mqlengine.store import repo
from mqlengine.store.db import Database
from mqlengine.store.tables import persons

FIELDS = (
    "email",
    "user_id",
    "external_id",
    "person_id",
    "status",
    "reason",
    "amount",
    "date",
    "actor",
)
PERSON_FIELDS = ("person_id", "user_id", "external_id", "email")
# Column names of HubSpot (contacts, deals) and Salesforce (leads, opportunities) exports.
PRESETS: dict[str, tuple[str, ...]] = {
    "email": ("Email", "Email Address", "Contact: Email", "Associated Email", "email"),
    "user_id": ("user_id", "User ID", "userId"),
    "external_id": ("external_id", "External ID", "CRM ID", "Lead ID", "Contact ID"),
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


def resolve_columns(
    header: list[str], mapping: Mapping[str, str], *, strict: bool = False
) -> Columns:
    """Target field → CSV column: explicit ``mapping`` first, then the presets."""
    columns = resolve(header, FIELDS, mapping, aliases=PRESETS, strict=strict, what="outcome field")
    if "status" not in columns.mapped:
        raise ValidationError("no status column found (map one with --map status='Column')")
    if not any(f in columns.mapped for f in PERSON_FIELDS):
        raise ValidationError(
            "no email, user id, external id or person id column found "
            "(map one with --map email='Column')"
        )
    return columns


@dataclass
class OutcomeReport:
    """``rows = applied + skipped + rejected``; ``actions`` counts committed actions only."""

    rows: int = 0
    applied: int = 0
    skipped: int = 0  # nothing to do: the lead is already there, or the status moves nothing
    problems: list[RowProblem] = field(default_factory=list)
    actions: dict[str, int] = field(default_factory=dict)
    columns: Columns | None = None

    @property
    def rejected(self) -> int:
        return sum(1 for p in self.problems if not p.warning)


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


def import_outcomes(
    db: Database,
    definition: Definition,
    path: Path,
    *,
    now: datetime,
    mapping: Mapping[str, str] | None = None,
    default_actor: str = "crm-import",
    options: CsvOptions | None = None,
    lost_reason: str | None = None,
) -> OutcomeReport:
    """Apply each row as feedback, one transaction a row. ``lost_reason``: the reason of a
    lost deal whose row names none (without it such a row is refused, as feedback is)."""
    options = options or CsvOptions()
    report = OutcomeReport()
    with CsvFile(path, options) as reader:
        report.columns = columns = resolve_columns(
            reader.header, dict(mapping or {}), strict=options.strict
        )
        try:
            for raw in reader.rows():
                report.rows += 1
                if raw.problem is not None:
                    report.problems.append(RowProblem(raw.number, raw.problem))
                    continue
                warnings: list[str] = []
                try:
                    done = _apply_row(
                        db,
                        definition,
                        raw.values,
                        columns.mapped,
                        now=now,
                        options=options,
                        default_actor=default_actor,
                        lost_reason=lost_reason,
                        warnings=warnings,
                    )
                except (MqlError, ValueError) as error:
                    message = error.message if isinstance(error, MqlError) else str(error)
                    report.problems.append(RowProblem(raw.number, message))
                    continue
                report.problems.extend(RowProblem(raw.number, w, True) for w in warnings)
                if not done:
                    report.skipped += 1
                    continue
                report.applied += 1
                for step in done:
                    report.actions[step] = report.actions.get(step, 0) + 1
        except CsvEncodingError as error:
            raise error.after(report.applied + report.skipped) from None
    return report


def _apply_row(
    db: Database,
    definition: Definition,
    row: Mapping[str, str],
    columns: Mapping[str, str],
    *,
    now: datetime,
    options: CsvOptions,
    default_actor: str,
    lost_reason: str | None,
    warnings: list[str],
) -> list[str]:
    """The actions applied for one row (committed when this returns), empty when there was
    nothing to do."""

    def get(name: str) -> str | None:
        column = columns.get(name)
        value = row.get(column) if column else None
        return value.strip() if isinstance(value, str) and value.strip() else None

    status = get("status") or ""
    action, known = action_for(status)
    if not known:
        raise ValueError(f"unknown status '{status}'")
    if action is None:
        return []
    amount_text = get("amount")
    amount = parse_amount(amount_text, decimal=options.decimal) if amount_text else None
    date_text = get("date")
    at = parse_datetime(date_text, tz=options.zone, name="date") if date_text else now
    if at > now:
        if action in ("won", "lost"):
            raise ValueError(f"date: {date_text!r} is in the future")
        # an open deal's close date is a forecast: the step is taken now
        warnings.append(
            f"date {date_text!r} is in the future (a forecast close date?): {action} recorded now"
        )
        at = now
    reason_text = get("reason")
    reason = _code(reason_text) if reason_text else DEFAULT_REASONS.get(_norm(status))
    if reason is None and action == "lost":
        reason = lost_reason
        codes = definition.reason_codes("lost")
        if reason is None and codes:
            raise ValueError(
                "a lost deal without a reason: add a loss reason column or name a default "
                f"with --lost-reason (one of {', '.join(codes)})"
            )
    actor = get("actor") or default_actor
    applied: list[str] = []
    with db.begin() as connection:
        person_id = _person(
            connection,
            {f: get(f) for f in PERSON_FIELDS},
            gmail_normalize=definition.identity.gmail_normalize,
        )
        current = Stage(
            connection.execute(
                select(persons.c.stage).where(persons.c.id == person_id)
            ).scalar_one()
        )
        for step in plan(current, action, amount):
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
            applied.append(step)
    return applied


def _person(connection: Any, ids: Mapping[str, str | None], *, gmail_normalize: bool) -> int:
    """The person a row names: a person id, else the first of user id, external id and
    e-mail that the identity lookup knows."""
    if ids.get("person_id"):
        text = ids["person_id"] or ""
        try:
            return repo.live_person_id(connection, int(text))
        except ValueError:
            raise ValidationError(f"not a person id: {text!r}") from None
    named = [(kind, ids[kind]) for kind in ("user_id", "external_id", "email") if ids.get(kind)]
    if not named:
        raise ValidationError("no email, user id, external id or person id in this row")
    for kind, value in named:
        found = find_person_id(connection, kind, value or "", gmail_normalize=gmail_normalize)
        if found is not None:
            return found
    raise NotFoundError("no person with " + " or ".join(f"{k} {v}" for k, v in named))
