"""Token buckets: how fast a key or a client address may send events, read, or fail to
authenticate.

A bucket holds up to ``burst`` tokens and gains ``rate`` tokens a second. A request of
``cost`` tokens passes when the bucket holds that many — or when it is full: a batch larger
than the burst is let through once and leaves the bucket in debt, so a 500-event batch at
10 events/s is followed by about 49 s of refusals. A refusal says how long to wait: the
seconds until the bucket holds what the request needs, rounded up (``Retry-After``).

Memory is bounded: a bucket that has refilled is the same as no bucket and is forgotten at
the next sweep, and past ``max_buckets`` the least recently used ones go first (down to
nine tenths of the bound, so a flood of new addresses costs one sweep per thousands).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from mqlengine.api.limits import ApiError
from mqlengine.settings import WebSettings

Clock = Callable[[], float]
EPSILON = 1e-9  # refills are float arithmetic: 0.3 s at 10/s is 3 tokens


class TokenBuckets:
    """One token bucket per key (a write key, a client address …), all with the same rate."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Clock = time.monotonic,
        max_buckets: int = 50_000,
        sweep_every: float = 10.0,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate)
        if self.burst <= 0:
            raise ValueError("burst must be positive")
        self._clock = clock
        self._max = max_buckets
        self._sweep_every = sweep_every
        self._next_sweep = clock() + sweep_every
        # key -> (tokens, when); insertion order is recency of use (oldest first)
        self._buckets: dict[Hashable, tuple[float, float]] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def _tokens(self, key: Hashable, now: float) -> float:
        held = self._buckets.get(key)
        if held is None:
            return self.burst
        tokens, at = held
        return min(self.burst, tokens + max(0.0, now - at) * self.rate)

    def wait(self, key: Hashable, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens would pass (0: now), without taking any."""
        now = self._clock()
        tokens = self._tokens(key, now)
        needed = min(cost, self.burst)
        if tokens + EPSILON >= needed:
            return 0.0
        return (needed - tokens) / self.rate

    def take(self, key: Hashable, cost: float = 1.0) -> float:
        """Take ``cost`` tokens when they are there and return 0; otherwise take nothing
        and return the seconds to wait."""
        now = self._clock()
        tokens = self._tokens(key, now)
        needed = min(cost, self.burst)
        if tokens + EPSILON < needed:
            self._store(key, tokens, now)
            return (needed - tokens) / self.rate
        self._store(key, tokens - cost, now)
        return 0.0

    def charge(self, key: Hashable, cost: float = 1.0) -> None:
        """Take ``cost`` tokens whatever the bucket holds (it may go into debt)."""
        now = self._clock()
        self._store(key, self._tokens(key, now) - cost, now)

    def _store(self, key: Hashable, tokens: float, now: float) -> None:
        self._buckets.pop(key, None)
        if tokens < self.burst:
            self._buckets[key] = (tokens, now)
        if now >= self._next_sweep or len(self._buckets) > self._max:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Forget full buckets; past the bound, the least recently used ones too."""
        self._next_sweep = now + self._sweep_every
        full = [
            key
            for key, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self.rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]
        excess = len(self._buckets) - self._max
        if excess > 0:
            excess = len(self._buckets) - self._max * 9 // 10
            for key in list(self._buckets)[:excess]:
                del self._buckets[key]


def retry_after(wait: float) -> int:
    """``Retry-After`` in whole seconds: the wait rounded up, at least 1."""
    return max(1, math.ceil(wait - EPSILON))


@dataclass(frozen=True)
class RateLimitConfig:
    """Rates of the API's limits, per second; ``0`` or None switches one off (all are off
    here; :meth:`from_settings` gives the configured ones, on by default).

    Bursts: ingest two seconds' worth, reads five, failed authentications ten.
    """

    ingest_per_key: float | None = None
    ingest_per_address: float | None = None
    read_per_key: float | None = None
    read_per_address: float | None = None
    auth_failures_per_address: float | None = None

    @classmethod
    def from_settings(cls, web: WebSettings) -> RateLimitConfig:
        return cls(
            ingest_per_key=web.rate_ingest_per_key,
            ingest_per_address=web.rate_ingest_per_address,
            read_per_key=web.rate_read_per_key,
            read_per_address=web.rate_read_per_address,
            auth_failures_per_address=web.rate_auth_failures,
        )


class RateLimited(ApiError):
    """``429`` with ``Retry-After``: the whole seconds until the request would pass."""

    def __init__(self, message: str, wait: float) -> None:
        seconds = retry_after(wait)
        super().__init__(
            429,
            "rate_limited",
            message,
            {"retry_after_seconds": seconds},
            headers={"Retry-After": str(seconds)},
        )
        self.retry_after = seconds


class RateLimits:
    """The API's limits, per write or read key and per client address."""

    def __init__(self, config: RateLimitConfig, *, clock: Clock = time.monotonic) -> None:
        self.config = config

        def buckets(rate: float | None, burst_seconds: float) -> TokenBuckets | None:
            return TokenBuckets(rate, rate * burst_seconds, clock=clock) if rate else None

        self.ingest_key = buckets(config.ingest_per_key, 2)
        self.ingest_address = buckets(config.ingest_per_address, 2)
        self.read_key = buckets(config.read_per_key, 5)
        self.read_address = buckets(config.read_per_address, 5)
        self.auth_failures = buckets(config.auth_failures_per_address, 10)

    def check_auth_failures(self, address: str) -> None:
        """Refuse an address that has used up its failed authentications."""
        if self.auth_failures is not None:
            wait = self.auth_failures.wait(address)
            if wait > 0:
                raise RateLimited("too many failed authentications from this address", wait)

    def auth_failed(self, address: str) -> None:
        if self.auth_failures is not None:
            self.auth_failures.charge(address)

    def check_ingest(self, key: str | None, address: str) -> None:
        """Before the body is read: refuse a key or address already in debt."""
        _refuse_longest(
            (f"events for {what}", buckets.wait(name, 1))
            for what, buckets, name in (
                ("this write key", self.ingest_key, key),
                ("this address", self.ingest_address, address),
            )
            if buckets is not None and name is not None
        )

    def ingest(self, key: str, address: str, events: int) -> None:
        """Take ``events`` from the key's and the address's buckets, or refuse (neither
        bucket is charged then)."""
        _refuse_longest(
            (f"events for {what}", buckets.wait(name, events))
            for what, buckets, name in (
                ("this write key", self.ingest_key, key),
                ("this address", self.ingest_address, address),
            )
            if buckets is not None
        )
        for buckets, name in ((self.ingest_key, key), (self.ingest_address, address)):
            if buckets is not None:
                buckets.take(name, events)

    def read(self, key: str | None, address: str) -> None:
        """One read request for the address (and the key, when one was presented)."""
        checks = [("this address", self.read_address, address)]
        if key is not None:
            checks.insert(0, ("this key", self.read_key, key))
        _refuse_longest(
            (f"requests for {what}", b.wait(name)) for what, b, name in checks if b is not None
        )
        for _what, b, name in checks:
            if b is not None:
                b.take(name)


def _refuse_longest(waits: Iterable[tuple[str, float]]) -> None:
    """Refuse with the longest of the waits, if any is due."""
    what, wait = max(waits, key=lambda item: item[1], default=("", 0.0))
    if wait > 0:
        raise RateLimited(f"too many {what}", wait)
