"""Report filters from the strings a user types (query parameters, CLI options).

Shared by the API, the dashboard and the CLI so that one spelling means one filter.
"""

from __future__ import annotations

import functools
import zoneinfo
from datetime import datetime

from mqlengine.domain.bounds import OutOfBounds, utc_moment
from mqlengine.errors import ValidationError
from mqlengine.reports.query import Filters


def parse_moment(value: str | None, name: str) -> datetime | None:
    """ISO date or date-time; a date or a time without offset is UTC. Moments outside
    the engine's range (:mod:`mqlengine.domain.bounds`) are refused."""
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"{name}: {value!r} is not an ISO date or date-time", details={"parameter": name}
        ) from None
    try:
        return utc_moment(moment)
    except OutOfBounds as error:
        raise ValidationError(f"{name}: {error}", details={"parameter": name}) from None


@functools.cache
def _zones() -> frozenset[str]:
    # "localtime" names the machine's zone, which the report engine does not know.
    return frozenset(zoneinfo.available_timezones() - {"localtime"})


def check_zone(tz: str) -> str:
    """An IANA time zone name the reports can group by, or :class:`ValidationError`."""
    if tz != "UTC" and tz not in _zones():  # (listing the zones reads the whole zone folder)
        raise ValidationError(
            f"tz: unknown time zone {tz!r} (use an IANA name such as Europe/Berlin)",
            details={"parameter": "tz"},
        )
    return tz


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
        tz=check_zone(tz or "UTC"),
    )
