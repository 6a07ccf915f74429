"""Marketing spend: CSV import (column mapping) and upsert per channel/campaign/month.

The CSV needs a channel (or campaign), a month (``YYYY-MM`` or any date in the month) and an
amount; currency defaults to USD. Re-importing a month replaces its amount (no doubling).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, select

from mqlengine.domain.funnel import parse_month
from mqlengine.errors import ValidationError
from mqlengine.store.tables_reports import spend

TARGETS = ("channel", "campaign", "month", "amount", "currency")


@dataclass
class SpendImport:
    rows: int = 0
    loaded: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)
    total: dict[str, float] = field(default_factory=dict)  # per currency


@dataclass(frozen=True)
class SpendRow:
    channel: str
    campaign: str
    month: date
    amount: float
    currency: str


def parse_spend_row(values: Mapping[str, Any]) -> SpendRow:
    """One spend row from a mapping with the target names; ValueError says what is wrong."""
    channel = str(values.get("channel") or "").strip().lower()
    campaign = str(values.get("campaign") or "").strip()
    if not channel and not campaign:
        raise ValueError("needs a channel or a campaign")
    raw_month = str(values.get("month") or "").strip()
    if not raw_month:
        raise ValueError("month is empty")
    month = parse_month(raw_month).date()
    raw_amount = str(values.get("amount") if values.get("amount") is not None else "")
    cleaned = raw_amount.replace(",", "").replace("$", "").replace("€", "").strip()
    try:
        amount = float(cleaned)
    except ValueError:
        raise ValueError(f"amount {raw_amount!r} is not a number") from None
    if amount < 0:
        raise ValueError("amount must not be negative")
    currency = str(values.get("currency") or "USD").strip().upper()
    if len(currency) != 3 or not currency.isalpha():
        raise ValueError(f"currency {currency!r} is not a 3-letter code")
    return SpendRow(channel or "unknown", campaign, month, round(amount, 2), currency)


def upsert_spend(
    connection: Connection, rows: Iterable[SpendRow], *, source: str, now: datetime
) -> int:
    """Insert or replace spend per (channel, campaign, month, currency); the same key twice
    in one import adds up (a file may list a campaign's spend in several lines)."""
    merged: dict[tuple[str, str, date, str], float] = {}
    for row in rows:
        key = (row.channel, row.campaign, row.month, row.currency)
        merged[key] = merged.get(key, 0.0) + row.amount
    for (channel, campaign, month, currency), amount in merged.items():
        connection.execute(
            delete(spend).where(
                spend.c.channel == channel,
                spend.c.campaign == campaign,
                spend.c.month == month,
                spend.c.currency == currency,
            )
        )
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
    return len(merged)


def import_spend_csv(
    connection: Connection, path: Path, mapping: Mapping[str, str], *, now: datetime
) -> SpendImport:
    """Load a spend CSV; bad rows are reported with their row number, good rows load."""
    report = SpendImport()
    good: list[SpendRow] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        lowered = {c.strip().lower(): c for c in columns}
        effective = {t: lowered[t] for t in TARGETS if t in lowered}
        effective.update(mapping)
        unknown = [f"{t}={s}" for t, s in mapping.items() if t not in TARGETS]
        if unknown:
            raise ValidationError(
                f"unknown spend field(s) {', '.join(unknown)} (use: {', '.join(TARGETS)})"
            )
        missing = [src for src in effective.values() if src not in columns]
        if missing:
            raise ValidationError(
                f"{path}: no column(s) {', '.join(missing)} (has: {', '.join(columns)})"
            )
        for needed in ("month", "amount"):
            if needed not in effective:
                raise ValidationError(
                    f"{path}: map a column to '{needed}' (e.g. --map {needed}=Column)"
                )
        for number, raw in enumerate(reader, start=2):
            report.rows += 1
            values = {t: raw.get(s) for t, s in effective.items()}
            try:
                row = parse_spend_row(values)
            except ValueError as error:
                report.problems.append((number, str(error)))
                continue
            good.append(row)
            report.total[row.currency] = report.total.get(row.currency, 0.0) + row.amount
    report.loaded = upsert_spend(connection, good, source=path.name, now=now)
    return report


def load_spend_dicts(
    connection: Connection, rows: Iterable[Mapping[str, Any]], *, source: str, now: datetime
) -> int:
    """Spend rows as dicts with the target names (the demo generator's ``spend``)."""
    return upsert_spend(connection, [parse_spend_row(r) for r in rows], source=source, now=now)


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
