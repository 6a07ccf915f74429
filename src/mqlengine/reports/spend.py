"""Marketing spend: CSV import (column mapping) and upsert per channel/campaign/month.

The CSV needs a channel (or campaign), a month (``YYYY-MM`` or any date in the month) and an
amount; currency defaults to USD. Re-importing a month replaces its amount (no doubling).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, select

from mqlengine.domain.funnel import parse_month
from mqlengine.errors import ValidationError
from mqlengine.ingest.csvread import (
    Columns,
    CsvFile,
    CsvOptions,
    RowProblem,
    parse_amount,
    parse_datetime,
    resolve_columns,
)
from mqlengine.store.tables_reports import spend

TARGETS = ("channel", "campaign", "month", "amount", "currency")
ALIASES: dict[str, tuple[str, ...]] = {
    "amount": ("cost", "spend", "spent"),
    "month": ("period", "date"),
}
HINTS = {"source": "channel", "medium": "channel", "utm_campaign": "campaign", "budget": "amount"}


@dataclass
class SpendImport:
    rows: int = 0
    loaded: int = 0  # channel/campaign-months written (new or replaced)
    created: int = 0  # rows that made a new channel/campaign-month
    updated: int = 0  # rows that replaced a stored month's amount
    unchanged: int = 0  # rows whose month was stored with the same amount
    rejected: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    total: dict[str, float] = field(default_factory=dict)  # per currency
    columns: Columns | None = None


@dataclass(frozen=True)
class SpendRow:
    channel: str
    campaign: str
    month: date
    amount: float
    currency: str


def _month(text: str, options: CsvOptions) -> date:
    if re.fullmatch(r"\d{4}-\d{1,2}", text):
        return parse_month(text).date()
    moment = parse_datetime(text, tz=options.zone, name="month").astimezone(options.zone)
    return date(moment.year, moment.month, 1)


def parse_spend_row(values: Mapping[str, Any], options: CsvOptions | None = None) -> SpendRow:
    """One spend row from a mapping with the target names; ValueError says what is wrong."""
    options = options or CsvOptions()
    channel = str(values.get("channel") or "").strip().lower()
    campaign = str(values.get("campaign") or "").strip()
    if not channel and not campaign:
        raise ValueError("needs a channel or a campaign")
    raw_month = str(values.get("month") or "").strip()
    if not raw_month:
        raise ValueError("month is empty")
    month = _month(raw_month, options)
    raw = values.get("amount")
    if isinstance(raw, int | float):
        amount = float(raw)
        if amount < 0:
            raise ValueError(f"amount: {raw!r} is negative")
    else:
        amount = parse_amount(str(raw or ""), decimal=options.decimal, name="amount")
    currency = str(values.get("currency") or "USD").strip().upper()
    if len(currency) != 3 or not currency.isalpha():
        raise ValueError(f"currency {currency!r} is not a 3-letter code")
    return SpendRow(channel or "unknown", campaign, month, round(amount, 2), currency)


Key = tuple[str, str, date, str]


def upsert_spend(
    connection: Connection, rows: Iterable[SpendRow], *, source: str, now: datetime
) -> dict[Key, str]:
    """Insert or replace spend per (channel, campaign, month, currency); the same key twice
    in one import adds up (a file may list a campaign's spend in several lines). Returns
    each key's fate: ``created``, ``updated`` or ``unchanged`` (the same amount stored)."""
    merged: dict[Key, float] = {}
    for row in rows:
        key = (row.channel, row.campaign, row.month, row.currency)
        merged[key] = merged.get(key, 0.0) + row.amount
    fates: dict[Key, str] = {}
    for (channel, campaign, month, currency), amount in merged.items():
        where = (
            spend.c.channel == channel,
            spend.c.campaign == campaign,
            spend.c.month == month,
            spend.c.currency == currency,
        )
        stored = connection.execute(select(spend.c.amount).where(*where)).scalars().all()
        key = (channel, campaign, month, currency)
        if len(stored) == 1 and round(float(stored[0]), 2) == round(amount, 2):
            fates[key] = "unchanged"
            continue
        fates[key] = "updated" if stored else "created"
        connection.execute(delete(spend).where(*where))
        connection.execute(
            spend.insert().values(
                channel=channel,
                campaign=campaign,
                month=month,
                amount=round(amount, 2),
                currency=currency,
                source=source[:255],
                imported_at=now,
            )
        )
    return fates


def import_spend_csv(
    connection: Connection,
    path: Path,
    mapping: Mapping[str, str],
    *,
    now: datetime,
    options: CsvOptions | None = None,
) -> SpendImport:
    """Load a spend CSV; bad rows are reported with their row number, good rows load.
    ``rows = created + updated + unchanged + rejected`` (rows that add up to one month
    share its fate)."""
    options = options or CsvOptions()
    report = SpendImport()
    good: list[SpendRow] = []
    with CsvFile(path, options) as reader:
        report.columns = columns = resolve_columns(
            reader.header,
            TARGETS,
            mapping,
            aliases=ALIASES,
            hints=HINTS,
            strict=options.strict,
            what="spend field",
        )
        for needed in ("month", "amount"):
            if needed not in columns.mapped:
                raise ValidationError(
                    f"{path}: map a column to '{needed}' (e.g. --map {needed}=Column)"
                )
        this_month = date(now.year, now.month, 1)
        for raw in reader.rows():
            report.rows += 1
            if raw.problem is not None:
                report.rejected += 1
                report.problems.append(RowProblem(raw.number, raw.problem))
                continue
            values = {t: raw.values.get(s) for t, s in columns.mapped.items()}
            try:
                row = parse_spend_row(values, options)
            except ValueError as error:
                report.rejected += 1
                report.problems.append(RowProblem(raw.number, str(error)))
                continue
            if row.month > this_month:
                report.problems.append(
                    RowProblem(raw.number, f"month {row.month:%Y-%m} is in the future", True)
                )
            good.append(row)
            report.total[row.currency] = report.total.get(row.currency, 0.0) + row.amount
    fates = upsert_spend(connection, good, source=path.name, now=now)
    report.loaded = sum(1 for fate in fates.values() if fate != "unchanged")
    for row in good:
        fate = fates[(row.channel, row.campaign, row.month, row.currency)]
        setattr(report, fate, getattr(report, fate) + 1)
    return report


def load_spend_dicts(
    connection: Connection, rows: Iterable[Mapping[str, Any]], *, source: str, now: datetime
) -> int:
    """Spend rows as dicts with the target names (the demo generator's ``spend``)."""
    fates = upsert_spend(connection, [parse_spend_row(r) for r in rows], source=source, now=now)
    return len(fates)


def spend_summary(connection: Connection) -> list[dict[str, Any]]:
    query = select(
        spend.c.channel, spend.c.campaign, spend.c.month, spend.c.amount, spend.c.currency
    )
    return [
        {
            "channel": r.channel,
            "campaign": r.campaign,
            "month": r.month.isoformat()[:7],
            "amount": r.amount,
            "currency": r.currency,
        }
        for r in connection.execute(
            query.order_by(spend.c.month, spend.c.channel, spend.c.campaign)
        )
    ]
