"""Business-hours calendars: weekly opening hours in a time zone, minus holidays.

Why wall-clock maths: an SLA of "15 minutes of business time" means minutes while the team
is at work, in *their* time zone. Opening intervals are built per local date and only then
converted to UTC, so a daylight-saving change shortens or lengthens the real day exactly
as it does for the people working it. Pure: callers pass every instant in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
# Search horizon: a calendar open one hour a week still answers within this many days.
HORIZON_DAYS = 800

Interval = tuple[int, int]  # minutes since local midnight, [start, end), end <= 1440


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Opening hours per weekday (Monday first) in ``timezone``; holidays are closed."""

    name: str
    timezone: str
    weekly: tuple[tuple[Interval, ...], ...]  # 7 entries
    holidays: frozenset[date] = frozenset()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_always_open(self) -> bool:
        return not self.holidays and all(day == ((0, MINUTES_PER_DAY),) for day in self.weekly)


ALWAYS = BusinessCalendar("always", "UTC", tuple(((0, MINUTES_PER_DAY),) for _ in range(7)))


def parse_hours(text: str) -> Interval:
    """``"09:00-17:30"`` → (540, 1050). ``24:00`` is allowed as an end."""
    try:
        start_text, end_text = (part.strip() for part in text.split("-"))
        start, end = _minutes(start_text), _minutes(end_text)
    except ValueError:
        raise ValueError(f"not an opening interval: {text!r} (use HH:MM-HH:MM)") from None
    if not 0 <= start < end <= MINUTES_PER_DAY:
        raise ValueError(f"opening interval {text!r} must start before it ends, within one day")
    return start, end


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    if len(minutes) != 2:
        raise ValueError(text)
    value = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60:
        raise ValueError(text)
    return value


def _local(day: date, minute: int, zone: ZoneInfo) -> datetime:
    if minute >= MINUTES_PER_DAY:
        day, minute = day + timedelta(days=1), minute - MINUTES_PER_DAY
    return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone).astimezone(UTC)


def open_intervals(
    calendar: BusinessCalendar, start: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """UTC opening intervals in time order, from the local day of ``start`` onwards."""
    zone = calendar.zone
    day = start.astimezone(zone).date() - timedelta(days=1)
    for _ in range(HORIZON_DAYS):
        if day not in calendar.holidays:
            for begin, end in calendar.weekly[day.weekday()]:
                a, b = _local(day, begin, zone), _local(day, end, zone)
                if b > start and b > a:
                    yield max(a, start), b
        day += timedelta(days=1)


def add_business_time(calendar: BusinessCalendar, start: datetime, duration: timedelta) -> datetime:
    """The instant when ``duration`` of open time has passed since ``start``."""
    if calendar.is_always_open() or duration <= timedelta(0):
        return start + max(duration, timedelta(0))
    remaining = duration
    last = start
    for a, b in open_intervals(calendar, start):
        span = b - a
        if span >= remaining:
            return a + remaining
        remaining -= span
        last = b
    return last + remaining  # a calendar that (almost) never opens: fall back to wall time


def business_time_between(calendar: BusinessCalendar, start: datetime, end: datetime) -> timedelta:
    """Open time in [start, end)."""
    if end <= start:
        return timedelta(0)
    if calendar.is_always_open():
        return end - start
    total = timedelta(0)
    for a, b in open_intervals(calendar, start):
        if a >= end:
            break
        total += min(b, end) - a
    return total


def is_open(calendar: BusinessCalendar, at: datetime) -> bool:
    for a, _b in open_intervals(calendar, at):
        return a <= at
    return False
