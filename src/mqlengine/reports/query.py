"""The query builder the report families share: the period and attribute filters, the
breakdown dimensions, and WHERE clauses whose values travel as named parameters (never in
the SQL text), run over the report tables (:class:`~mqlengine.reports.source.ReportSource`)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mqlengine.domain.attribution import NO_CHANNEL
from mqlengine.errors import ValidationError

if TYPE_CHECKING:  # DuckDB is imported by the data, when a report has any to read
    from mqlengine.reports.source import ReportSource


def _label(column: str) -> str:
    """A channel/source/campaign as reports show it: blank or missing → ``(none)``, its own
    row, never merged with a value literally called ``unknown``."""
    return f"coalesce(nullif(trim({column}), ''), '{NO_CHANNEL}')"


# Dimension → (SQL over entries, SQL over leads or None when leads have no such attribute).
DIMENSIONS: dict[str, tuple[str, str | None]] = {
    "channel": (_label("channel"), _label("channel")),
    "source": (_label("source"), _label("source")),
    "campaign": (_label("campaign"), _label("campaign")),
    "mql_type": ("mql_type", None),
    "definition_version": ("definition_version", None),
    "team": ("coalesce(team, 'unassigned')", "coalesce(team, 'unassigned')"),
    "rep": ("coalesce(owner, 'unassigned')", "coalesce(owner, 'unassigned')"),
    "cohort": (
        "strftime(date_trunc('month', timezone($tz, mql_at)), '%Y-%m')",
        "strftime(date_trunc('month', timezone($tz, first_seen_at)), '%Y-%m')",
    ),
    "week": (
        "strftime(date_trunc('week', timezone($tz, mql_at)), '%Y-%m-%d')",
        "strftime(date_trunc('week', timezone($tz, first_seen_at)), '%Y-%m-%d')",
    ),
    # Lead cohorts: leads and their MQLs both by the month the lead was first seen.
    "lead_cohort": (
        "strftime(date_trunc('month', timezone($tz, first_seen_at)), '%Y-%m')",
        "strftime(date_trunc('month', timezone($tz, first_seen_at)), '%Y-%m')",
    ),
}
# Breakdowns whose entry key and lead key are different attributes (MQL month vs month
# first seen): their rows cannot hold lead counts beside MQL counts.
MQL_TIME_DIMENSIONS = ("cohort", "week")
FILTER_COLUMNS = ("channel", "source", "campaign", "mql_type", "definition_version", "team", "rep")
FILTER_SQL = {
    "channel": _label("channel"),
    "source": _label("source"),
    "campaign": _label("campaign"),
    "mql_type": "mql_type",
    "definition_version": "definition_version",
    "team": "coalesce(team, 'unassigned')",
    "rep": "coalesce(owner, 'unassigned')",
}


@dataclass(frozen=True)
class Filters:
    """The period ``[since, until)`` and attribute filters every report accepts."""

    since: datetime | None = None
    until: datetime | None = None
    channel: str | None = None
    source: str | None = None
    campaign: str | None = None
    mql_type: str | None = None
    definition_version: str | None = None
    team: str | None = None
    rep: str | None = None
    tz: str = "UTC"

    def __post_init__(self) -> None:
        check_tz(self.tz)
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValidationError(
                f"since ({self.since.isoformat()}) must be before until "
                f"({self.until.isoformat()}): the period is empty"
            )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("since", "until"):
            data[key] = data[key].isoformat() if data[key] is not None else None
        return data


def check_tz(tz: str) -> str:
    """An IANA time zone name (``Europe/Berlin``, ``UTC``); anything else is refused."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"tz: unknown time zone {tz!r} (use an IANA name such as UTC or Europe/Berlin)"
        ) from None
    return tz


def check_dimension(by: str | None) -> str | None:
    if by is None or by in ("", "none", "total"):
        return None
    if by not in DIMENSIONS:
        raise ValidationError(f"unknown breakdown '{by}' (use one of: {', '.join(DIMENSIONS)})")
    return by


class Query:
    """Builds WHERE clauses with named parameters (values never enter the SQL text)."""

    def __init__(self, filters: Filters) -> None:
        self.filters = filters
        self.params: dict[str, Any] = {"tz": filters.tz}

    def where(self, time_column: str, *, on_leads: bool = False) -> str:
        parts = ["TRUE"]
        f = self.filters
        if f.since is not None:
            self.params["since"] = f.since
            parts.append(f"{time_column} >= $since")
        if f.until is not None:
            self.params["until"] = f.until
            parts.append(f"{time_column} < $until")
        for name in FILTER_COLUMNS:
            value = getattr(f, name)
            if value is None:
                continue
            if on_leads and name in ("mql_type", "definition_version"):
                continue
            self.params[f"f_{name}"] = value
            parts.append(f"{FILTER_SQL[name]} = $f_{name}")
        return " AND ".join(parts)

    def used(self, sql: str) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if re.search(rf"\${k}\b", sql)}


def fetch_rows(
    data: ReportSource, sql: str, params: dict[str, Any], *, keyed: bool = False
) -> list[dict[str, Any]]:
    """The rows of ``sql``. ``keyed``: the query yields one row per breakdown key (its rows
    come from grouping), so over empty tables it yields none: not asked of DuckDB."""
    if keyed and data.empty:
        return []
    cursor = data.cursor()
    try:
        result = cursor.execute(sql, params)
        names = [d[0] for d in result.description or ()]
        return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    finally:
        cursor.close()


def rounded(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float):
        return round(value, 6)
    return value
