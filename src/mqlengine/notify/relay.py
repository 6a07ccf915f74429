"""The outbox relay: claim due rows, deliver them concurrently, record each result.

Deliveries happen outside any database transaction. Results are recorded afterwards, so a
relay killed between sending and recording re-sends later — with the same message id.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mqlengine.notify.senders import DeliveryError, SendOptions, send
from mqlengine.services import outbox
from mqlengine.store.db import Database


@dataclass
class RelayStats:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0

    def add(self, other: RelayStats) -> None:
        self.claimed += other.claimed
        self.delivered += other.delivered
        self.retried += other.retried
        self.dead += other.dead


Sender = Callable[[dict[str, Any], SendOptions], int | None]


def _attempt(
    sender: Sender, row: dict[str, Any], options: SendOptions
) -> tuple[bool, int | None, str]:
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
    """One relay pass. The lease must outlast the pass (default: every wave timing out)."""
    options = options or SendOptions()
    waves = math.ceil(limit / max(concurrency, 1))
    lease = lease or timedelta(seconds=max(60.0, options.timeout * waves + 30))
    with db.begin() as connection:
        rows = outbox.claim(connection, now=clock(), worker=worker, limit=limit, lease=lease)
    stats = RelayStats(claimed=len(rows))
    if not rows:
        return stats
    if pool is not None:
        results = list(pool.map(lambda r: _attempt(sender, r, options), rows))
    elif len(rows) == 1 or concurrency <= 1:
        results = [_attempt(sender, r, options) for r in rows]
    else:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(rows))) as own:
            results = list(own.map(lambda r: _attempt(sender, r, options), rows))
    with db.begin() as connection:
        now = clock()
        for row, (ok, status, error) in zip(rows, results, strict=True):
            if ok:
                outbox.mark_delivered(connection, row["id"], now=now, status_code=status)
                stats.delivered += 1
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
            if state == "dead":
                stats.dead += 1
            else:
                stats.retried += 1
    return stats
