"""Token buckets on a hand-moved monotonic clock: refill, debt, the real Retry-After, and
bounded memory."""

from __future__ import annotations

import pytest

from mqlengine.api.ratelimit import (
    RateLimitConfig,
    RateLimited,
    RateLimits,
    TokenBuckets,
    retry_after,
)
from mqlengine.settings import WebSettings


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_burst_then_refill_at_the_rate() -> None:
    clock = Monotonic()
    buckets = TokenBuckets(2, 4, clock=clock)
    assert [buckets.take("k") for _ in range(4)] == [0, 0, 0, 0]
    assert buckets.take("k") == pytest.approx(0.5)  # one token at 2/s
    clock.advance(0.5)
    assert buckets.take("k") == 0
    assert buckets.take("k") == pytest.approx(0.5)
    assert buckets.take("other") == 0  # each key has its own bucket


def test_a_refusal_takes_nothing() -> None:
    clock = Monotonic()
    buckets = TokenBuckets(10, 10, clock=clock)
    assert buckets.take("k", 8) == 0
    assert buckets.take("k", 5) == pytest.approx(0.3)  # 2 held, 3 missing
    clock.advance(0.3)
    assert buckets.take("k", 5) == 0


def test_a_batch_over_the_burst_passes_once_and_the_wait_is_the_real_one() -> None:
    """500 events at 10 events/s: the batch passes on a full bucket, then the key waits
    about 49 s — and says so (the old limiter answered Retry-After: 1)."""
    clock = Monotonic()
    buckets = TokenBuckets(10, 10, clock=clock)
    assert buckets.take("k", 500) == 0
    wait = buckets.take("k", 1)
    assert wait == pytest.approx(49.1)
    assert retry_after(wait) == 50
    clock.advance(49)
    assert buckets.take("k", 1) > 0  # 0.9 tokens: not yet
    clock.advance(0.1)
    assert buckets.take("k", 1) == 0


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    assert retry_after(0.01) == 1
    assert retry_after(1.0) == 1
    assert retry_after(1.2) == 2
    assert retry_after(49.1) == 50


def test_refilled_buckets_are_forgotten() -> None:
    clock = Monotonic()
    buckets = TokenBuckets(1, 2, clock=clock, sweep_every=10)
    for address in range(1000):
        buckets.take(f"10.0.{address // 256}.{address % 256}")
    assert len(buckets) == 1000
    clock.advance(3)  # every bucket is full again, but no sweep is due yet
    buckets.take("late")
    assert len(buckets) == 1001
    clock.advance(10)
    buckets.take("later")  # the first take after sweep_every sweeps
    assert len(buckets) == 1
    # a forgotten bucket is a full one: nothing was lost by forgetting it
    assert buckets.take("10.0.0.1", 2) == 0


def test_memory_is_bounded_even_when_nothing_refills() -> None:
    clock = Monotonic()
    buckets = TokenBuckets(0.001, 1, clock=clock, max_buckets=100)
    for n in range(10_000):
        buckets.take(f"key-{n}")
    assert len(buckets) <= 100
    # the most recently used survive
    assert buckets.take("key-9999") > 0


def test_limits_per_key_and_per_address_are_separate() -> None:
    clock = Monotonic()
    limits = RateLimits(RateLimitConfig(ingest_per_key=100, ingest_per_address=10), clock=clock)
    limits.ingest("key-a", "10.0.0.1", 20)  # address burst is 20 (two seconds' worth)
    with pytest.raises(RateLimited) as refused:
        limits.ingest("key-a", "10.0.0.1", 5)
    assert "address" in refused.value.message
    assert refused.value.status == 429
    assert refused.value.headers == {"Retry-After": "1"}
    # the refusal charged neither bucket; another address with the same key passes
    limits.ingest("key-a", "10.0.0.2", 20)
    # the key has 200 - 40 left: a third address may send 160 more, not 161
    limits.ingest("key-a", "10.0.0.3", 20)
    limits.ingest("key-a", "10.0.0.4", 20)
    with pytest.raises(RateLimited) as by_key:
        for n in range(5, 20):
            limits.ingest("key-a", f"10.0.0.{n}", 20)
    assert "write key" in by_key.value.message


def test_before_the_body_a_key_or_address_in_debt_is_refused() -> None:
    clock = Monotonic()
    limits = RateLimits(RateLimitConfig(ingest_per_key=10, ingest_per_address=None), clock=clock)
    limits.check_ingest("k", "a")
    limits.ingest("k", "a", 500)
    with pytest.raises(RateLimited) as refused:
        limits.check_ingest("k", "a")
    assert refused.value.retry_after == 49  # (1 - (20 - 500)) / 10 = 48.1 s
    limits.check_ingest(None, "a")  # no key in a header: only the address is known


def test_failed_authentications_run_out_per_address() -> None:
    clock = Monotonic()
    limits = RateLimits(RateLimitConfig(auth_failures_per_address=1), clock=clock)
    for _ in range(10):  # a burst of ten seconds' worth
        limits.check_auth_failures("10.0.0.1")
        limits.auth_failed("10.0.0.1")
    with pytest.raises(RateLimited) as refused:
        limits.check_auth_failures("10.0.0.1")
    assert refused.value.retry_after == 1
    limits.check_auth_failures("10.0.0.2")
    clock.advance(1)
    limits.check_auth_failures("10.0.0.1")


def test_reads_per_key_and_address() -> None:
    clock = Monotonic()
    limits = RateLimits(RateLimitConfig(read_per_key=2, read_per_address=100), clock=clock)
    for n in range(10):  # burst: five seconds' worth
        limits.read("reader", f"10.0.0.{n}")
    with pytest.raises(RateLimited):
        limits.read("reader", "10.0.1.1")
    limits.read(None, "10.0.1.1")  # open reads: the address alone


def test_everything_off_and_the_defaults_on() -> None:
    off = RateLimits(RateLimitConfig())
    for _ in range(1000):
        off.ingest("k", "a", 10_000)
        off.read("k", "a")
        off.auth_failed("a")
        off.check_auth_failures("a")
    defaults = RateLimitConfig.from_settings(WebSettings())
    assert all(
        rate and rate > 0
        for rate in (
            defaults.ingest_per_key,
            defaults.ingest_per_address,
            defaults.read_per_key,
            defaults.read_per_address,
            defaults.auth_failures_per_address,
        )
    )
    zero = RateLimitConfig.from_settings(WebSettings(rate_read_per_address=0))
    assert RateLimits(zero).read_address is None


def test_when_both_limits_refuse_the_longer_wait_is_given() -> None:
    clock = Monotonic()
    limits = RateLimits(RateLimitConfig(ingest_per_key=1, ingest_per_address=10), clock=clock)
    limits.ingest("k", "a", 100)  # key: 2 - 100 = -98 at 1/s; address: 20 - 100 at 10/s
    with pytest.raises(RateLimited) as refused:
        limits.ingest("k", "a", 1)
    assert refused.value.retry_after == 99
    assert "write key" in refused.value.message
