"""Durable ingest throughput over HTTP: ``/v1/batch`` with 100 events per request.

A real ``mql serve`` process on SQLite (fresh file, WAL, synchronous=FULL on the writer),
several concurrent clients in this process (asyncio + httpx, bodies pre-serialised so the
load generator stays cheap). Every 200 means the events are committed and their persons
rescored, and new MQLs routed. Events: a B2B mix — page views, tracks, identifies with
e-mail — over a pool of visitors, about a quarter of them identified. The mix is hot on
purpose: most visitors qualify within the run (thousands of MQLs, each routed inside its
request), far more than real traffic makes. The server's CPU time per event is reported
too (from /proc): on a shared machine it moves less than the wall-clock rate.

    python -m bench.ingest_http [--events 200000] [--clients 8] [--batch 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import func, select

from bench.common import report
from mqlengine.api.localserver import local_server
from mqlengine.store.db import Database
from mqlengine.store.tables import events, stage_history

DEFINITION = Path(__file__).resolve().parents[1] / "src/mqlengine/definition/templates/mql.yaml"
PATHS = [
    "/",
    "/pricing",
    "/blog/a",
    "/blog/b",
    "/product",
    "/docs",
    "/careers",
    "/pricing/enterprise",
]
TRACKS = ["Content Downloaded", "Webinar Attended", "Email Link Clicked", "Trial Started"]
DOMAINS = ["northwind.io", "acme-analytics.com", "globex.com", "initech.io", "umbrella.co"]


def make_message(rng: random.Random, visitors: int) -> dict[str, Any]:
    visitor = rng.randrange(visitors)
    now = datetime.now(UTC).isoformat()
    base: dict[str, Any] = {
        "anonymousId": f"anon-{visitor}",
        "messageId": str(uuid.uuid4()),
        "timestamp": now,
        "context": {"userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", "ip": "10.0.0.1"},
    }
    roll = rng.random()
    if roll < 0.6:
        path = rng.choice(PATHS)
        base.update(type="page", name=path, properties={"path": path, "url": "https://x.io" + path})
    elif roll < 0.9:
        base.update(type="track", event=rng.choice(TRACKS), properties={"plan": "pro"})
    else:
        domain = DOMAINS[visitor % len(DOMAINS)]
        base.update(
            type="identify",
            userId=f"user-{visitor}",
            traits={
                "email": f"p{visitor}@{domain}",
                "title": rng.choice(["VP Marketing", "Data Analyst", "Head of Sales", "CTO"]),
                "country": "US",
                "company": {"employees": 450, "industry": "software"},
            },
        )
    return base


def _mqls(connection: Any) -> int:
    query = select(func.count()).select_from(stage_history).where(stage_history.c.to_stage == "mql")
    return int(connection.execute(query).scalar_one())


def make_bodies(total: int, batch: int, visitors: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    bodies = []
    for _ in range(total // batch):
        bodies.append(orjson.dumps({"batch": [make_message(rng, visitors) for _ in range(batch)]}))
    return bodies


async def drive(url: str, key: str, bodies: list[bytes], clients: int) -> list[float]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    headers = {"content-type": "application/json"}

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, auth=(key, ""), timeout=60) as http:
            while True:
                try:
                    body = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started = time.perf_counter()
                response = await http.post("/v1/batch", content=body, headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
                latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(
    events_total: int = 200_000, clients: int = 8, batch: int = 100, visitors: int = 20_000
) -> dict[str, Any]:
    bodies = make_bodies(events_total, batch, visitors, seed=7)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        with local_server(url, DEFINITION, log=Path(tmp) / "server.log") as server:
            warm = make_bodies(batch * 20, batch, visitors, seed=1)
            asyncio.run(drive(server.url, server.write_key, warm, clients))
            before = Database(url)
            with before.read() as connection:
                mqls_before = _mqls(connection)
            before.dispose()
            cpu_before = cpu_seconds(server.process.pid)
            started = time.perf_counter()
            latencies = asyncio.run(drive(server.url, server.write_key, bodies, clients))
            elapsed = time.perf_counter() - started
            cpu_after = cpu_seconds(server.process.pid)
        database = Database(url)
        with database.read() as connection:
            stored = int(connection.execute(select(func.count()).select_from(events)).scalar_one())
            mqls = _mqls(connection) - mqls_before
        database.dispose()
    server_cpu = None if cpu_before is None or cpu_after is None else (cpu_after - cpu_before)
    sent = len(bodies) * batch
    result = {
        "events": sent,
        "requests": len(bodies),
        "clients": clients,
        "batch_size": batch,
        "visitors": visitors,
        "seconds": round(elapsed, 3),
        "events_per_second": round(sent / elapsed, 1),
        "request_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "request_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "stored_events": stored,
        "mqls_made": mqls,
        "server_cpu_us_per_event": (
            None if server_cpu is None else round(server_cpu / (len(bodies) * batch) * 1e6, 1)
        ),
        "server_cores_busy": None if server_cpu is None else round(server_cpu / elapsed, 2),
        "target_events_per_second": 20_000,
    }
    report(
        "ingest_http",
        [result],
        notes=f"durable ingest over HTTP: {sent / elapsed:,.0f} events/s "
        f"(target ≥ 20,000 events/s); request p50 {result['request_p50_ms']} ms, "
        f"p99 {result['request_p99_ms']} ms; {mqls:,} persons became MQL during the run; "
        f"server CPU {result['server_cpu_us_per_event']} µs per event "
        f"({result['server_cores_busy']} cores busy)",
    )
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--visitors", type=int, default=20_000)
    args = parser.parse_args(argv if argv is not None else [])
    run(args.events, args.clients, args.batch, args.visitors)


if __name__ == "__main__":
    main(sys.argv[1:])
