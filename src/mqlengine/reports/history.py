"""Import historical leads with their outcomes (a CRM export) so the funnel has a past.

One CSV row = one lead: an e-mail, user id or external id, where it came from (channel,
source, campaign), when it was created, the date of each stage it reached (``mql_at``,
``sal_at``, ``sql_at``, ``opportunity_at``, ``customer_at``) or left through
(``rejected_at``, ``recycled_at``, ``disqualified_at``, ``lost_at``, each with an optional
``*_reason``); ``amount`` is the opportunity's pipeline, ``revenue`` the won amount,
``owner`` the owning rep (key or e-mail). A CRM deal export (``stage`` Won/Lost/Open,
``close_date``, ``amount``) imports as it is. Columns are matched by name (case and
punctuation aside) or mapped with ``--map field=Column``; columns nothing reads are named.

The history is the CRM's truth, so it is written as stage history (actor ``import``)
rather than re-derived by scoring. Persons are found or created by the identity graph
(:class:`mqlengine.ingest.lookup.PersonFinder`), as every message is. A later file
adds the stage dates it brings to what earlier files stored; a date that contradicts a
stored one rejects its row; importing a file twice adds nothing. Stage dates that run
backwards (a deal won before the MQL date) are kept in funnel order, recorded at the
earlier stage's date, and reported as warnings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from mqlengine.domain.consent import ConsentValueError, parse_consent
from mqlengine.errors import ValidationError
from mqlengine.ingest.csvread import (
    Columns,
    CsvEncodingError,
    CsvFile,
    CsvOptions,
    RowProblem,
    parse_amount,
    parse_datetime,
    resolve_columns,
)
from mqlengine.ingest.lookup import PersonFinder
from mqlengine.store import repo
from mqlengine.store.db import Database
from mqlengine.store.tables import persons, stage_history
from mqlengine.store.tables_handoff import assignments, reps, teams

ACTOR = "import"
BATCH = 500
PROGRESSION = ("mql_at", "sal_at", "sql_at", "opportunity_at", "customer_at")
EXITS = ("rejected_at", "recycled_at", "disqualified_at", "lost_at")
TIME_FIELDS = ("created_at", *PROGRESSION, *EXITS, "close_date")
ID_FIELDS = ("email", "user_id", "external_id")
TEXT_FIELDS = (
    *ID_FIELDS,
    "channel",
    "source",
    "campaign",
    "mql_type",
    "owner",
    "stage",
    "reject_reason",
    "recycle_reason",
    "disqualify_reason",
    "lost_reason",
)
NUMBER_FIELDS = ("amount", "revenue")
# consent the CRM holds, kept as the person's traits of the same name; read as booleans
CONSENT_FIELDS = ("consent_marketing", "consent_tracking")
TARGETS = (*TIME_FIELDS, *TEXT_FIELDS, *NUMBER_FIELDS, *CONSENT_FIELDS)
# Other names CRMs give these columns (matched like the field names themselves).
ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("e_mail", "email_address", "contact_email"),
    "external_id": ("crm_id", "record_id", "contact_id", "lead_id"),
    "stage": ("deal_stage", "opportunity_stage"),
    "close_date": ("closed_date", "close_at", "closed_at"),
    "owner": ("owner_email", "deal_owner", "lead_owner", "contact_owner", "rep"),
}
# Columns that probably mean a field but are not read as it without a --map.
HINTS = {
    "origin": "channel",
    "lead_source": "channel",
    "utm_medium": "channel",
    "medium": "channel",
    "utm_source": "source",
    "utm_campaign": "campaign",
    "won_at": "customer_at",
    "won_date": "customer_at",
    "won": "customer_at",
    "closed_won_at": "customer_at",
    "converted_at": "customer_at",
    "lost_date": "lost_at",
    "mql_date": "mql_at",
    "created": "created_at",
    "created_date": "created_at",
    "pipeline": "amount",
    "deal_amount": "amount",
    "value": "amount",
    "loss_reason": "lost_reason",
}

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
_EMPTY_PERSON: dict[str, Any] = {column.name: None for column in persons.c}
FIELD_OF = {(stage, action): name for name, stage, action, _, _ in STEPS}
DEAL_STAGES = {
    "won": "won",
    "closedwon": "won",
    "closed_won": "won",
    "lost": "lost",
    "closedlost": "lost",
    "closed_lost": "lost",
    "open": "open",
}


@dataclass
class HistoryImport:
    rows: int = 0
    created: int = 0  # leads created with their history
    updated: int = 0  # existing leads given history or new stage dates
    skipped: int = 0  # rows whose history was already stored (unchanged duplicates)
    rejected: int = 0
    stage_changes: int = 0
    committed_rows: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    columns: Columns | None = None

    @property
    def warnings(self) -> list[RowProblem]:
        return [p for p in self.problems if p.warning]

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.skipped,
            "rejected": self.rejected,
            "stage_changes": self.stage_changes,
            "ignored_columns": [c for c, _ in self.columns.ignored] if self.columns else [],
            "problems": [
                {"row": p.row, "reason": p.reason, "warning": p.warning} for p in self.problems
            ],
        }


@dataclass
class HistoryRow:
    number: int
    values: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def dates(self) -> dict[str, datetime]:
        return {n: self.values[n] for n in (*PROGRESSION, *EXITS) if self.values.get(n)}


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")


def _days(later: datetime, earlier: datetime) -> str:
    return f"{(later - earlier).total_seconds() / 86400:.1f} days"


def parse_row(
    values: Mapping[str, str | None],
    *,
    options: CsvOptions | None = None,
    now: datetime | None = None,
    lost_reason: str | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Typed values of one row and its warnings; ValueError says what is wrong."""
    options = options or CsvOptions()
    warnings: list[str] = []
    row: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        text = (values.get(name) or "").strip()
        row[name] = text or None
    deal = row["stage"]
    for name in TIME_FIELDS:
        text = (values.get(name) or "").strip()
        # an open deal's close date is a forecast: it may lie ahead and is not stored
        check = None if name == "close_date" and deal and _norm(deal) == "open" else now
        row[name] = parse_datetime(text, tz=options.zone, name=name, now=check) if text else None
    for name in NUMBER_FIELDS:
        text = (values.get(name) or "").strip()
        row[name] = parse_amount(text, decimal=options.decimal, name=name) if text else None
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
    if not any(row[n] for n in ID_FIELDS):
        raise ValueError("no email, user_id or external_id")
    if row["channel"]:
        row["channel"] = row["channel"].lower()
    if deal:
        kind = DEAL_STAGES.get(_norm(deal).replace("_", ""), DEAL_STAGES.get(_norm(deal)))
        if kind is None:
            raise ValueError(f"stage: {deal!r} is not Won, Lost or Open")
        if kind == "won":
            row["customer_at"] = row["customer_at"] or row["close_date"]
            if row["customer_at"] is None:
                raise ValueError("stage Won needs close_date (or customer_at)")
            if row["revenue"] is None:
                row["revenue"] = row["amount"]
        elif kind == "lost":
            row["lost_at"] = row["lost_at"] or row["close_date"]
            if row["lost_at"] is None:
                raise ValueError("stage Lost needs close_date (or lost_at)")
        else:
            earlier = [row[n] for n in ("sql_at", "sal_at", "mql_at", "created_at") if row[n]]
            if row["opportunity_at"] is None and earlier:
                row["opportunity_at"] = earlier[0]
    if row["lost_at"] and not row["lost_reason"]:
        row["lost_reason"] = lost_reason
    dates = [row[n] for n in (*PROGRESSION, *EXITS) if row[n] is not None]
    if not dates and row["created_at"] is None:
        raise ValueError("no dates: give created_at and the dates of stages reached")
    return row, warnings


def ordered_dates(
    dates: Mapping[str, datetime], warnings: list[str] | None = None
) -> dict[str, datetime]:
    """Stage dates in funnel order: a stage dated before the stage it follows (a deal won
    before its MQL date) is taken at that stage's date; exits never come before the MQL."""
    result = dict(dates)
    previous: tuple[str, datetime] | None = None
    for name in PROGRESSION:
        at = result.get(name)
        if at is None:
            continue
        if previous is not None and at < previous[1]:
            if warnings is not None:
                warnings.append(
                    f"{name} {at.isoformat()} is {_days(previous[1], at)} before "
                    f"{previous[0]} {previous[1].isoformat()}: recorded at {previous[0]}"
                )
            at = result[name] = previous[1]
        previous = (name, at)
    mql = result.get("mql_at")
    for name in EXITS:
        at = result.get(name)
        if at is not None and mql is not None and at < mql:
            if warnings is not None:
                warnings.append(
                    f"{name} {at.isoformat()} is {_days(mql, at)} before mql_at "
                    f"{mql.isoformat()}: recorded at mql_at"
                )
            result[name] = mql
    return result


def stage_steps(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The stage changes a row describes, in time order (funnel order on ties), chained
    from ``lead``."""
    found = []
    for order, (name, stage, action, reason_field, amount_field) in enumerate(STEPS):
        at = row.get(name)
        if at is None:
            continue
        reason = (row.get(reason_field) if reason_field else None) or (
            f"imported:{row.get('mql_type') or 'mql'}" if stage == "mql" else action or stage
        )
        amount = row.get(amount_field) if amount_field else None
        found.append((at, order, stage, action, reason, amount, name))
    found.sort(key=lambda item: (item[0], item[1]))
    steps = []
    current = "lead"
    for at, _, stage, action, reason, amount, name in found:
        steps.append(
            {
                "field": name,
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


def _stored(connection: Connection, person_id: int) -> tuple[list[Any], dict[str, Any]]:
    """The person's stage history and what earlier imports stored, by field."""
    history = repo.stage_history_of(connection, person_id)
    stored: dict[str, Any] = {}
    for entry in history:
        if entry["actor"] != ACTOR:
            continue
        name = FIELD_OF.get((entry["to_stage"], entry["action"]))
        if name is None:
            continue
        stored[name] = entry["changed_at"]
        _, _, _, reason_field, amount_field = next(s for s in STEPS if s[0] == name)
        if reason_field and entry["reason"] not in (None, entry["action"]):
            stored[reason_field] = entry["reason"]
        if amount_field and entry["amount"] is not None:
            stored[amount_field] = entry["amount"]
        if name == "mql_at" and entry["mql_type"]:
            stored["mql_type"] = entry["mql_type"]
    return history, stored


def _owner(connection: Connection, owner: str) -> tuple[int, str] | None:
    found = connection.execute(
        select(reps.c.id, teams.c.name)
        .select_from(reps.join(teams, teams.c.id == reps.c.team_id))
        .where((reps.c.key == owner) | (func.lower(reps.c.email) == owner.lower()))
        .limit(1)
    ).first()
    return None if found is None else (int(found[0]), str(found[1]))


def _apply(
    connection: Connection,
    parsed: HistoryRow,
    now: datetime,
    report: HistoryImport,
    finder: PersonFinder,
) -> None:
    row = parsed.values
    file_dates = parsed.dates
    first = min([*file_dates.values(), *([row["created_at"]] if row["created_at"] else [])])
    try:
        person_id, made = finder.find_or_create({n: row[n] for n in ID_FIELDS}, at=first)
    except ValidationError as error:
        report.rejected += 1
        report.problems.append(RowProblem(parsed.number, error.message))
        return
    # a person made now has only its "created" entry: nothing stored to compare with
    history, stored = ([], {}) if made is not None else _stored(connection, person_id)
    stored_dates = {n: v for n, v in stored.items() if n in PROGRESSION or n in EXITS}
    # What this row says, ordered together with what is stored, compared with what is stored.
    merged_view = ordered_dates({**stored_dates, **file_dates})
    conflicts = [
        f"{n} {file_dates[n].isoformat()} conflicts with the stored {stored_dates[n].isoformat()}"
        for n in file_dates
        if n in stored_dates
        and file_dates[n] != stored_dates[n]
        and merged_view[n] != stored_dates[n]
    ]
    if conflicts:
        report.rejected += 1
        report.problems.append(
            RowProblem(parsed.number, f"person {person_id}: " + "; ".join(conflicts))
        )
        return
    new = {n: v for n, v in file_dates.items() if n not in stored_dates}
    warnings = list(parsed.warnings)
    merged = ordered_dates({**stored_dates, **new}, warnings)
    created = made is not None
    stored_row = repo.get_person(connection, person_id) if made is None else None
    existing: Mapping[Any, Any] | None = (
        {**_EMPTY_PERSON, **made} if made is not None else stored_row
    )
    assert existing is not None
    live = [h for h in history if h["actor"] != ACTOR and h["reason"] != "created"]
    values: dict[str, Any] = {}
    created_at = min([first, *merged.values()])
    if row["created_at"] and file_dates and row["created_at"] > min(file_dates.values()):
        warnings.append(
            f"created_at {row['created_at'].isoformat()} is after the first stage date "
            f"{min(file_dates.values()).isoformat()}: the lead is taken as created then"
        )
    if created_at < existing["first_seen_at"]:
        values["first_seen_at"] = created_at
        # the "created" entry moves with it, so the history stays in time order
        connection.execute(
            update(stage_history)
            .where(
                stage_history.c.person_id == person_id,
                stage_history.c.from_stage.is_(None),
                stage_history.c.changed_at > created_at,
            )
            .values(changed_at=created_at)
        )
    for column in ("channel", "source", "campaign"):
        if created:
            values[column] = row[column]  # no channel: stored as none
        elif row[column] and not existing[column]:
            values[column] = row[column]
    if row["email"] and not existing["email"]:
        values["email"] = row["email"]
    if created and row["email"]:
        values["traits"] = {**(existing["traits"] or {}), "email": row["email"]}
        values["profile"] = {**(existing["profile"] or {}), "email": row["email"]}
    if row["consent"]:  # the CRM's consent, as the person's traits of the same names
        values["traits"] = {**(values.get("traits") or existing["traits"] or {}), **row["consent"]}
        values["profile"] = {
            **(values.get("profile") or existing["profile"] or {}),
            **row["consent"],
        }
    owner = None
    if row["owner"]:
        owner = _owner(connection, row["owner"])
        if owner is None:
            warnings.append(f"owner {row['owner']!r} is no rep (see `mql reps`): not stored")
        elif existing["owner_rep_id"] != owner[0]:
            values.update(owner_rep_id=owner[0], owner_team=owner[1])
    full = {**row, **stored, **{k: v for k, v in row.items() if v is not None}, **merged}
    steps: list[dict[str, Any]] = []
    if live and new:
        # The person has a live history (scoring, sales feedback): add only what follows it.
        last = max(h["changed_at"] for h in history)
        late = {n for n in new if merged[n] >= last}
        for name in sorted(set(new) - late):
            warnings.append(
                f"{name} {merged[name].isoformat()} is before the person's latest stage "
                f"change ({last.isoformat()}): not added"
            )
        dates = {n: (merged[n] if n in late else None) for n in (*PROGRESSION, *EXITS)}
        steps = stage_steps({**full, **dates})
        if steps:
            steps[0]["from_stage"] = existing["stage"]
    elif new:
        # Only imported history: written again as one chain with the new dates in place.
        steps = stage_steps(full)
        connection.execute(
            delete(stage_history).where(
                stage_history.c.person_id == person_id, stage_history.c.actor == ACTOR
            )
        )
    for text in warnings:
        report.problems.append(RowProblem(parsed.number, text, warning=True))
    if not steps and not values:
        if new:  # every new date lay before the live history
            report.rejected += 1
            report.problems.append(RowProblem(parsed.number, "nothing of this row could be added"))
        else:
            report.skipped += 1
        return
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
            mql_type=(full.get("mql_type") or "imported") if step["to_stage"] == "mql" else None,
            amount=step["amount"],
        )
    report.stage_changes += sum(1 for s in steps if s["field"] in new)
    if steps:
        final = steps[-1]
        values.update(stage=final["to_stage"], stage_changed_at=final["changed_at"])
        mqls = [s for s in steps if s["to_stage"] == "mql"]
        if mqls:
            values.update(
                mql_at=mqls[-1]["changed_at"], mql_type=full.get("mql_type") or "imported"
            )
        nurture = [s for s in steps if s["to_stage"] == "nurture"]
        if nurture:
            values["recycled_at"] = nurture[-1]["changed_at"]
        latest = max(s["changed_at"] for s in steps)
        if latest > existing["last_seen_at"]:
            values["last_seen_at"] = latest
    mql_at = values.get("mql_at") or existing["mql_at"]
    if owner is not None and mql_at is not None:
        _assign(connection, person_id, mql_at, owner, now)
    if values:
        values["updated_at"] = now
        repo.bump_person(connection, person_id, values)
    if created:
        report.created += 1
    else:
        report.updated += 1


def _assign(
    connection: Connection, person_id: int, mql_at: datetime, owner: tuple[int, str], now: datetime
) -> None:
    """The imported owner as the (closed) assignment of the MQL episode, so reports by rep
    see it; an episode already assigned keeps its assignment."""
    exists = connection.execute(
        select(assignments.c.id).where(
            assignments.c.person_id == person_id, assignments.c.mql_at == mql_at
        )
    ).first()
    if exists is not None:
        return
    connection.execute(
        assignments.insert().values(
            person_id=person_id,
            mql_at=mql_at,
            seq=0,
            rep_id=owner[0],
            team=owner[1],
            rule_id=None,
            strategy="import",
            reason="owner in the imported history",
            assigned_at=mql_at,
            status="closed",
            closed_at=mql_at,
            recorded_at=now,
        )
    )


def import_history_csv(
    database: Database,
    path: Path,
    mapping: Mapping[str, str],
    *,
    now: datetime,
    options: CsvOptions | None = None,
    lost_reason: str | None = None,
    gmail_normalize: bool = False,
) -> HistoryImport:
    """Load a CRM history CSV; bad rows are reported with their row number, good rows load.
    ``rows = created + updated + skipped + rejected``."""
    options = options or CsvOptions()
    report = HistoryImport()
    with CsvFile(path, options) as reader:
        report.columns = columns = resolve_columns(
            reader.header,
            TARGETS,
            mapping,
            aliases=ALIASES,
            hints=HINTS,
            strict=options.strict,
            what="history field",
        )
        if not any(t in columns.mapped for t in ID_FIELDS):
            raise ValidationError(
                f"{path}: no email, user_id or external_id column "
                f"(has: {', '.join(reader.header)}; map one with --map email=Column)"
            )
        batch: list[HistoryRow] = []

        def flush() -> None:
            if not batch:
                return
            with database.begin() as connection:
                finder = PersonFinder(connection, now, gmail_normalize=gmail_normalize)
                finder.prefetch([{n: p.values[n] for n in ID_FIELDS} for p in batch])
                for parsed in batch:
                    _apply(connection, parsed, now, report, finder)
            report.committed_rows += len(batch)
            batch.clear()

        try:
            for raw in reader.rows():
                report.rows += 1
                if raw.problem is not None:
                    report.rejected += 1
                    report.problems.append(RowProblem(raw.number, raw.problem))
                    continue
                try:
                    values, warnings = parse_row(
                        {t: raw.values.get(s) for t, s in columns.mapped.items()},
                        options=options,
                        now=now,
                        lost_reason=lost_reason,
                    )
                except ValueError as error:
                    report.rejected += 1
                    report.problems.append(RowProblem(raw.number, str(error)))
                    continue
                batch.append(HistoryRow(raw.number, values, warnings))
                if len(batch) >= BATCH:
                    flush()
            flush()
        except CsvEncodingError as error:
            raise error.after(report.committed_rows) from None
    report.problems.sort(key=lambda p: (p.row, p.warning))
    return report
