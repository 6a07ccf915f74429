"""The outbox relay: claim due rows, deliver them concurrently, record each result.

Deliveries happen outside any database transaction. A pass claims up to ``limit`` due rows
with a short lease (:data:`DEFAULT_LEASE`) and renews that lease every third of it while
the rows are being delivered, so a relay that dies lets go of its rows within one lease:
another worker claims them a few seconds later, whatever the receivers' timeouts. Each
result is recorded as soon as it is known (results that arrive together share one
transaction), so a relay killed mid-pass re-sends only what it had sent and not yet
recorded — at most the pass's ``limit`` rows, in practice about ``concurrency`` — and
always with the same message id.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mqlengine.notify.senders import DeliveryError, SendOptions, send
from mqlengine.services import outbox
from mqlengine.store.db import Database

DEFAULT_LEASE = outbox.DEFAULT_LEASE
# One line per delivery, retry and dead letter (`mql worker` prints them; --quiet silences)
log = logging.getLogger("mqlengine.outbox")


@dataclass
class RelayStats:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    renewals: int = 0  # lease renewals (one statement each, for the rows not yet recorded)
    records: int = 0  # transactions that recorded results

    def add(self, other: RelayStats) -> None:
        self.claimed += other.claimed
        self.delivered += other.delivered
        self.retried += other.retried
        self.dead += other.dead
        self.renewals += other.renewals
        self.records += other.records


Sender = Callable[[dict[str, Any], SendOptions], int | None]
Result = tuple[bool, int | None, str]


def _attempt(sender: Sender, row: dict[str, Any], options: SendOptions) -> Result:
    try:
        return True, sender(row, options), ""
    except DeliveryError as error:
        return False, error.status, str(error)
    except Exception as error:  # a sender bug must not kill the relay
        return False, None, f"{type(error).__name__}: {error}"


def deliver_due(
    db: Database,
    *,
    worker: str,
    clock: Callable[[], datetime],
    options: SendOptions | None = None,
    limit: int = 50,
    concurrency: int = 8,
    max_attempts: int = outbox.MAX_ATTEMPTS,
    sender: Sender = send,
    rng: random.Random | None = None,
    pool: ThreadPoolExecutor | None = None,
    lease: timedelta | None = None,
) -> RelayStats:
    """One relay pass: claim up to ``limit`` due rows leased for ``lease`` (renewed while
    they are delivered), deliver them ``concurrency`` at a time on ``pool`` (or a pool of
    its own), and record each result as it arrives."""
    options = options or SendOptions()
    lease = lease or DEFAULT_LEASE
    with db.begin() as connection:
        rows = outbox.claim(connection, now=clock(), worker=worker, limit=limit, lease=lease)
    stats = RelayStats(claimed=len(rows))
    if not rows:
        return stats
    if pool is not None:
        _deliver(db, rows, pool, worker, clock, options, sender, lease, max_attempts, rng, stats)
    else:
        workers = max(1, min(concurrency, len(rows)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mql-send") as own:
            _deliver(db, rows, own, worker, clock, options, sender, lease, max_attempts, rng, stats)
    return stats


def _deliver(
    db: Database,
    rows: list[dict[str, Any]],
    pool: ThreadPoolExecutor,
    worker: str,
    clock: Callable[[], datetime],
    options: SendOptions,
    sender: Sender,
    lease: timedelta,
    max_attempts: int,
    rng: random.Random | None,
    stats: RelayStats,
) -> None:
    """Deliver the claimed ``rows`` on ``pool`` (whose size bounds the deliveries in
    flight), recording results as they arrive and renewing the lease of the others."""
    outstanding: dict[Future[Result], dict[str, Any]] = {
        pool.submit(_attempt, sender, row, options): row for row in rows
    }
    renew_every = max(lease.total_seconds() / 3.0, 0.01)
    next_renewal = time.monotonic() + renew_every
    while outstanding:
        timeout = max(0.0, next_renewal - time.monotonic())
        done, _ = wait(outstanding, timeout=timeout, return_when=FIRST_COMPLETED)
        if done:
            finished = [(outstanding.pop(future), future.result()) for future in done]
            _record(db, finished, clock, max_attempts, rng, stats)
        if outstanding and time.monotonic() >= next_renewal:
            _renew(db, (row["id"] for row in outstanding.values()), worker, clock, lease)
            stats.renewals += 1
            next_renewal = time.monotonic() + renew_every


def _renew(
    db: Database,
    ids: Iterable[int],
    worker: str,
    clock: Callable[[], datetime],
    lease: timedelta,
) -> None:
    with db.begin() as connection:
        outbox.renew(connection, list(ids), worker=worker, until=clock() + lease)


def _record(
    db: Database,
    finished: list[tuple[dict[str, Any], Result]],
    clock: Callable[[], datetime],
    max_attempts: int,
    rng: random.Random | None,
    stats: RelayStats,
) -> None:
    lines: list[tuple[int, str]] = []
    with db.begin() as connection:
        now = clock()
        for row, (ok, status, error) in finished:
            what = (
                f"#{row['id']} {row.get('topic', '?')} to destination "
                f"{row.get('destination_id', '?')}"
            )
            if ok:
                outbox.mark_delivered(connection, row["id"], now=now, status_code=status)
                stats.delivered += 1
                lines.append((logging.INFO, f"delivered {what} ({status or 'ok'})"))
                continue
            state = outbox.mark_failed(
                connection,
                row["id"],
                now=now,
                attempts=row["attempts"],
                error=error,
                status_code=status,
                max_attempts=max_attempts,
                rng=rng,
            )
            attempt = int(row.get("attempts") or 0) + 1
            if state == "dead":
                stats.dead += 1
                lines.append(
                    (logging.ERROR, f"dead letter {what} after {attempt} attempt(s): {error}")
                )
            else:
                stats.retried += 1
                lines.append((logging.WARNING, f"retry {what} (attempt {attempt}): {error}"))
    stats.records += 1
    for level, line in lines:  # once committed: a logged result is a recorded one
        log.log(level, line)
