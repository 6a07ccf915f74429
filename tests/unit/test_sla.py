"""SLA maths on business-hours calendars: weekends, holidays, DST changes (injected clock)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqlengine.definition.handoff import compile_calendar
from mqlengine.definition.schema import CalendarSpec
from mqlengine.domain.calendar import add_business_time, business_time_between, is_open
from mqlengine.domain.routing import Lead
from mqlengine.domain.sla import (
    Escalation,
    SlaConfig,
    SlaPolicy,
    check_breach,
    due_at,
    select_policy,
)

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK_HOURS = compile_calendar(
    "ny",
    CalendarSpec(
        timezone="America/New_York",
        hours={"weekdays": ["09:00-17:00"]},
        holidays=[date(2026, 11, 26)],
    ),
)
BERLIN_HOURS = compile_calendar(
    "de", CalendarSpec(timezone="Europe/Berlin", hours={"weekdays": ["09:00-12:00", "13:00-17:00"]})
)
HOT = SlaPolicy(
    "hot",
    timedelta(minutes=15),
    "ny",
    ("hand_raiser",),
    escalate=(Escalation.NOTIFY_MANAGER, Escalation.REASSIGN),
)
STANDARD = SlaPolicy("standard", timedelta(hours=2), "ny")
CONFIG = SlaConfig((HOT, STANDARD), {"ny": NEW_YORK_HOURS, "de": BERLIN_HOURS})


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)  # type: ignore[misc]


def test_friday_evening_lead_is_due_monday_morning() -> None:
    friday = local(NY, 2026, 11, 13, 16, 55)
    assert add_business_time(NEW_YORK_HOURS, friday, timedelta(minutes=15)) == local(
        NY, 2026, 11, 16, 9, 10
    )
    saturday = local(NY, 2026, 11, 14, 11, 0)
    assert add_business_time(NEW_YORK_HOURS, saturday, timedelta(hours=2)) == local(
        NY, 2026, 11, 16, 11, 0
    )


def test_holiday_is_closed() -> None:
    wednesday = local(NY, 2026, 11, 25, 16, 30)  # Thanksgiving (26th) is a holiday
    assert add_business_time(NEW_YORK_HOURS, wednesday, timedelta(hours=1)) == local(
        NY, 2026, 11, 27, 9, 30
    )


def test_lunch_break_is_skipped() -> None:
    start = local(BERLIN, 2026, 11, 16, 11, 50)
    assert add_business_time(BERLIN_HOURS, start, timedelta(minutes=20)) == local(
        BERLIN, 2026, 11, 16, 13, 10
    )


def test_dst_fall_back_weekend_new_york() -> None:
    # 2026-11-01: clocks go back in New York (UTC-4 → UTC-5), on a Sunday
    friday = local(NY, 2026, 10, 30, 16, 30)
    due = add_business_time(NEW_YORK_HOURS, friday, timedelta(hours=1))
    assert due == local(NY, 2026, 11, 2, 9, 30)
    assert due.astimezone(UTC) == datetime(2026, 11, 2, 14, 30, tzinfo=UTC)  # EST now
    assert friday.astimezone(UTC) == datetime(2026, 10, 30, 20, 30, tzinfo=UTC)  # still EDT


def test_dst_spring_forward_berlin() -> None:
    # 2027-03-28: Berlin moves to CEST on a Sunday; business hours stay 09:00 local
    friday = local(BERLIN, 2027, 3, 26, 16, 0)
    due = add_business_time(BERLIN_HOURS, friday, timedelta(hours=2))
    assert due == local(BERLIN, 2027, 3, 29, 10, 0)
    assert due.astimezone(UTC) == datetime(2027, 3, 29, 8, 0, tzinfo=UTC)
    assert business_time_between(BERLIN_HOURS, friday, due) == timedelta(hours=2)


def test_is_open() -> None:
    assert is_open(NEW_YORK_HOURS, local(NY, 2026, 11, 16, 9, 0))
    assert not is_open(NEW_YORK_HOURS, local(NY, 2026, 11, 16, 17, 0))
    assert not is_open(NEW_YORK_HOURS, local(NY, 2026, 11, 15, 12, 0))


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    minutes=st.integers(1, 5 * 24 * 60),
)
def test_business_time_round_trips(start: datetime, minutes: int) -> None:
    for calendar in (NEW_YORK_HOURS, BERLIN_HOURS):
        due = add_business_time(calendar, start, timedelta(minutes=minutes))
        assert due > start
        assert business_time_between(calendar, start, due) == timedelta(minutes=minutes)


def test_policy_selection_and_due() -> None:
    hot = Lead(1, "hand_raiser", {})
    other = Lead(2, "engagement", {})
    monday = local(NY, 2026, 11, 16, 10, 0)
    assert select_policy(CONFIG, hot, monday) is HOT
    assert select_policy(CONFIG, other, monday) is STANDARD
    assert due_at(CONFIG, HOT, monday) == monday + timedelta(minutes=15)


@pytest.mark.parametrize(
    ("touch", "now", "reassignments", "expected"),
    [
        (None, 14, 0, None),  # not due yet
        (10, 20, 0, None),  # touched in time
        (None, 16, 0, ("notify_manager", "reassign")),  # breached, untouched
        (None, 16, 1, ("notify_manager",)),  # already reassigned once: only notify
        (16, 20, 0, ("notify_manager",)),  # touched late: record, don't reassign
    ],
)
def test_check_breach(
    touch: int | None, now: int, reassignments: int, expected: tuple[str, ...] | None
) -> None:
    base = local(NY, 2026, 11, 16, 9, 0)
    due = base + timedelta(minutes=15)
    decision = check_breach(
        HOT,
        due=due,
        first_touch_at=base + timedelta(minutes=touch) if touch is not None else None,
        reassignments=reassignments,
        now=base + timedelta(minutes=now),
    )
    if expected is None:
        assert decision is None
    else:
        assert decision is not None and tuple(a.value for a in decision.actions) == expected
