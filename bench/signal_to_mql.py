"""Signal-to-MQL latency: from sending the qualifying event to the person being MQL in the
store, under a steady background load of ``/v1/batch`` traffic (default 2,000 events/s).

For each probe, a known VP (identified beforehand, not yet MQL) sends "Demo Requested";
the clock stops when a separate reader sees ``stage = 'mql'`` in the database (checked
right after the 200, then polled every millisecond — the API commits before answering,
so the first check normally succeeds).

On PostgreSQL (``--store pg``) the bench starts a throw-away durable cluster (as
``bench.ingest_http`` does). The slowest background request is reported too: no request
should wait more than a few seconds.

    python -m bench.signal_to_mql [--probes 200] [--load 2000] [--store sqlite|pg]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import select

from bench.common import report
from bench.ingest_http import (
    _create_database,
    _deadlocks,
    make_message,
    percentile,
    postgres_cluster,
)
from mqlengine.store.db import Database
from mqlengine.store.tables import identities, persons
from support.localserver import BENCH_LIMITS, local_server
from support.paths import EXAMPLE

VP = {
    "email": "probe@northwind.io",
    "title": "VP Marketing",
    "company": {"employees": 800, "industry": "software"},
    "country": "US",
}


def background(
    url: str,
    key: str,
    rate: int,
    stop: threading.Event,
    sent: list[int],
    waits: list[float] | None = None,
) -> None:
    """Paced load: batches of 100 every 100/rate seconds; ``waits`` gets each request's
    time to its answer."""
    rng = random.Random(3)
    interval = 100 / rate

    async def timed(http: httpx.AsyncClient, body: bytes) -> None:
        started = time.perf_counter()
        await http.post("/v1/batch", content=body, headers={"content-type": "application/json"})
        if waits is not None:
            waits.append(time.perf_counter() - started)

    async def loop() -> None:
        async with httpx.AsyncClient(base_url=url, auth=(key, ""), timeout=60) as http:
            next_at = time.perf_counter()
            pending: set[asyncio.Task[Any]] = set()
            while not stop.is_set():
                body = orjson.dumps({"batch": [make_message(rng, 20_000) for _ in range(100)]})
                task = asyncio.create_task(timed(http, body))
                pending.add(task)
                task.add_done_callback(pending.discard)
                sent[0] += 100
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            await asyncio.gather(*pending)

    asyncio.run(loop())


def run(probes: int = 200, load: int = 2000, store: str = "sqlite") -> dict[str, Any]:
    latencies: list[float] = []
    waits: list[float] = []
    deadlocks: int | None = None
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        pg_log: Path | None = None
        if store == "sqlite":
            url = f"sqlite:///{tmp}/bench.db"
        else:
            admin_url, pg_log = stack.enter_context(postgres_cluster())
            url = _create_database(admin_url)
        with local_server(
            url, EXAMPLE, log=Path(tmp) / "server.log", extra_args=BENCH_LIMITS
        ) as server:
            http = httpx.Client(base_url=server.url, auth=(server.write_key, ""), timeout=30)
            for i in range(probes):  # known, fitting, not yet qualified
                traits = {**VP, "email": f"probe{i}@northwind.io"}
                http.post("/v1/identify", json={"userId": f"probe-{i}", "traits": traits})
            stop = threading.Event()
            sent = [0]
            loader = threading.Thread(
                target=background, args=(server.url, server.write_key, load, stop, sent, waits)
            )
            loader.start()
            time.sleep(2.0)  # reach steady state
            database = Database(url)
            started_load = time.perf_counter()
            sent_at_start = sent[0]
            with database.read() as connection:
                ids = dict(
                    connection.execute(
                        select(identities.c.value, identities.c.person_id).where(
                            identities.c.kind == "user_id",
                            identities.c.value.like("probe-%"),
                        )
                    ).all()
                )
            for i in range(probes):
                person_id = ids[f"probe-{i}"]
                t0 = time.perf_counter()
                response = http.post(
                    "/v1/track", json={"userId": f"probe-{i}", "event": "Demo Requested"}
                )
                assert response.status_code == 200, response.text
                while True:
                    with database.read() as connection:
                        stage = connection.execute(
                            select(persons.c.stage).where(persons.c.id == person_id)
                        ).scalar_one()
                    if stage == "mql":
                        break
                    time.sleep(0.001)
                latencies.append(time.perf_counter() - t0)
                time.sleep(0.02)
            achieved = (sent[0] - sent_at_start) / (time.perf_counter() - started_load)
            stop.set()
            loader.join()
            http.close()
            database.dispose()
            deadlocks = _deadlocks(pg_log, 0)
    result = {
        "store": store,
        "probes": probes,
        "background_target_events_per_second": load,
        "background_achieved_events_per_second": round(achieved, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p90_ms": round(percentile(latencies, 90) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
        "background_request_p99_ms": round(percentile(waits, 99) * 1000, 1) if waits else None,
        "background_request_max_ms": round(max(waits) * 1000, 1) if waits else None,
        "deadlocks": deadlocks,
        "target_p99_ms": 100,
    }
    report(
        "signal_to_mql",
        [result],
        notes=f"{store}: signal → MQL in store: p50 {result['p50_ms']} ms, p99 "
        f"{result['p99_ms']} ms, max {result['max_ms']} ms under {achieved:,.0f} events/s "
        f"background load (target p99 < 100 ms at 2,000/s); slowest background request "
        f"{result['background_request_max_ms']} ms",
    )
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--load", type=int, default=2000)
    parser.add_argument("--store", choices=["sqlite", "pg"], default="sqlite")
    args = parser.parse_args(argv if argv is not None else [])
    run(args.probes, args.load, args.store)


if __name__ == "__main__":
    main(sys.argv[1:])
