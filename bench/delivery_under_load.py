"""Everybody else's writes while ingest runs flat out (SQLite).

A real ``mql serve`` takes the ``ingest_http`` hot mix (100 events per request, 8
clients) while, on the same database file:

- a real ``mql worker`` delivers every new MQL's signed ``mql.assigned`` webhook to a
  loopback receiver;
- a client changes a team through the API (``PUT /v1/teams/…``) every 0.1 s, as a sales
  manager or the feedback loop would.

SQLite has one writer at a time; this measures whether the others get their turn:
webhooks delivered during the load (against MQLs made), the delivery backlog's drain
time after it, and the API writes' latency.

    python -m bench.delivery_under_load [--events 60000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from bench.common import report
from bench.ingest_http import drive, make_bodies, percentile
from bench.webhook_latency import receiver, setup_handoff, worker
from mqlengine.store.db import Database
from mqlengine.store.tables_handoff import outbox as outbox_table
from support.localserver import BENCH_LIMITS, local_server
from support.paths import EXAMPLE


def _setup(url: str, hook: str) -> None:
    database = Database(url)
    database.migrate()
    with database.begin() as connection:
        setup_handoff(connection, hook, now=datetime.now(UTC), capacity_per_day=1_000_000)
    database.dispose()


def _rows(url: str) -> int:
    database = Database(url)
    try:
        with database.read() as connection:
            return int(
                connection.execute(select(func.count()).select_from(outbox_table)).scalar_one()
            )
    finally:
        database.dispose()


def measure(events_total: int) -> dict[str, Any]:
    bodies = make_bodies(events_total, 100, 20_000, seed=7)
    arrivals: dict[str, float] = {}  # per delivery: a person may be handed off twice
    with tempfile.TemporaryDirectory() as tmp, receiver(arrivals, by_delivery=True) as hook:
        url = f"sqlite:///{tmp}/bench.db"
        _setup(url, hook)
        with (
            worker(url, EXAMPLE),
            local_server(
                url, EXAMPLE, log=Path(tmp) / "server.log", extra_args=BENCH_LIMITS
            ) as server,
        ):
            latencies: list[float] = []
            done = threading.Event()

            def manager() -> None:
                with httpx.Client(  # changing a team takes an admin key
                    base_url=server.url, auth=(server.admin_key, ""), timeout=60
                ) as http:
                    n = 0
                    while not done.is_set():
                        started = time.perf_counter()
                        response = http.put(f"/v1/teams/team{n % 5}", json={})
                        latencies.append(time.perf_counter() - started)
                        if response.status_code != 200:
                            raise RuntimeError(f"{response.status_code}: {response.text}")
                        n += 1
                        done.wait(0.1)

            thread = threading.Thread(target=manager)
            thread.start()
            started = time.perf_counter()
            asyncio.run(drive(server.url, server.write_key, bodies, 8))
            elapsed = time.perf_counter() - started
            during = len(arrivals)
            done.set()
            thread.join()
            due = _rows(url)
            drain_started = time.perf_counter()
            while len(arrivals) < due and time.perf_counter() - drain_started < 120:
                time.sleep(0.02)
            drained = time.perf_counter() - drain_started
    return {
        "events": len(bodies) * 100,
        "events_per_second": round(len(bodies) * 100 / elapsed, 1),
        "webhooks_due": due,
        "delivered_during_load": during,
        "delivered_per_second": round(during / elapsed, 1),
        "backlog_drain_s": round(drained, 2),
        "delivered_in_all": len(arrivals),
        "api_writes": len(latencies),
        "api_write_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "api_write_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "api_write_max_ms": round(max(latencies) * 1000, 1),
    }


def run(events_total: int = 60_000) -> dict[str, Any]:
    row = measure(events_total)
    report(
        "delivery_under_load",
        [row],
        notes=(
            f"under {row['events_per_second']:,.0f} events/s of ingest: "
            f"{row['delivered_during_load']:,} of {row['webhooks_due']:,} webhooks delivered "
            f"during the load ({row['delivered_per_second']:,.0f}/s), the rest within "
            f"{row['backlog_drain_s']} s; API writes p50 {row['api_write_p50_ms']} ms, "
            f"max {row['api_write_max_ms']} ms"
        ),
    )
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=60_000)
    args = parser.parse_args(argv if argv is not None else [])
    run(args.events)


if __name__ == "__main__":
    main(sys.argv[1:])
