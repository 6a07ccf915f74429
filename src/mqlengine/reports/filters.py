"""Report filters from the strings a user types (query parameters, CLI options).

Shared by the API, the dashboard and the CLI so that one spelling means one filter.
"""

from __future__ import annotations

from datetime import UTC, datetime

from mqlengine.errors import ValidationError
from mqlengine.reports.query import Filters


def parse_moment(value: str | None, name: str) -> datetime | None:
    """ISO date or date-time; a date or a time without offset is UTC."""
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{name}: {value!r} is not an ISO date or date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def filters_from(
    since: str | None = None,
    until: str | None = None,
    channel: str | None = None,
    source: str | None = None,
    campaign: str | None = None,
    mql_type: str | None = None,
    definition_version: str | None = None,
    team: str | None = None,
    rep: str | None = None,
    tz: str = "UTC",
) -> Filters:
    def clean(value: str | None) -> str | None:
        return value if value not in (None, "", "all") else None

    return Filters(
        since=parse_moment(since, "since"),
        until=parse_moment(until, "until"),
        channel=clean(channel),
        source=clean(source),
        campaign=clean(campaign),
        mql_type=clean(mql_type),
        definition_version=clean(definition_version),
        team=clean(team),
        rep=clean(rep),
        tz=tz or "UTC",
    )
