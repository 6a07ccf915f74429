"""`mql worker`: delivers the outbox and runs the SLA clock, until told to stop.

One loop, two duties: outbox rows are delivered as soon as they are due (polling fast while
idle, without pause while there is work); SLA breaches are checked every ``sla_every``
seconds. Several workers may run at once: rows are leased (briefly, renewed while they are
delivered, so a dead worker's rows go to another within seconds), breaches recorded once.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mqlengine.domain.rules import Definition
from mqlengine.notify.relay import RelayStats, deliver_due
from mqlengine.notify.senders import SendOptions
from mqlengine.services import outbox
from mqlengine.store.db import Database


@dataclass
class WorkerStats:
    relay: RelayStats = field(default_factory=RelayStats)
    breaches: int = 0
    passes: int = 0


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:64]


def run_worker(
    database: Database,
    definition: Callable[[], Definition],
    *,
    clock: Callable[[], datetime],
    stop: threading.Event | None = None,
    once: bool = False,
    poll: float = 0.2,
    sla_every: float = 30.0,
    options: SendOptions | None = None,
    worker_id: str | None = None,
    limit: int = 50,
    concurrency: int = 8,
    max_attempts: int = outbox.MAX_ATTEMPTS,
    on_pass: Callable[[WorkerStats], None] | None = None,
    lease: timedelta | None = None,
) -> WorkerStats:
    from mqlengine.services.handoff.sla import check_breaches

    stop = stop or threading.Event()
    worker = worker_id or default_worker_id()
    stats = WorkerStats()
    last_sla: float | None = None
    with ThreadPoolExecutor(max_workers=max(concurrency, 1)) as pool:
        while not stop.is_set():
            now = clock()
            if last_sla is None or now.timestamp() - last_sla >= sla_every:
                with database.begin() as connection:
                    found = check_breaches(connection, definition(), now=now)
                stats.breaches += len(found)
                last_sla = now.timestamp()
            relay = deliver_due(
                database,
                worker=worker,
                clock=clock,
                options=options,
                limit=limit,
                concurrency=concurrency,
                max_attempts=max_attempts,
                pool=pool,
                lease=lease,
            )
            stats.relay.add(relay)
            stats.passes += 1
            if on_pass is not None:
                on_pass(stats)
            if once:
                if relay.claimed:
                    continue  # drain what is due now, then stop
                break
            if not relay.claimed:
                stop.wait(poll)
    return stats
