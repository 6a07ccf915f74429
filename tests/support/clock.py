"""The suite's reference moment, and a clock tests move by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class Clock:
    """A ``now()`` callable that stands still until the test advances it, so deadlines,
    retries and leases are reached without sleeping."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)
