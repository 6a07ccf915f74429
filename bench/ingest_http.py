"""Durable ingest throughput over HTTP: ``/v1/batch`` with 100 events per request.

Real ``mql serve`` processes on each store side by side: SQLite (fresh file, WAL,
synchronous=FULL on the writer), PostgreSQL with one server process, and PostgreSQL with
two server processes sharing the load (the clients alternate between them). The
PostgreSQL server is a throw-away cluster started for the run (``tests/support/pg.py``), durable
like SQLite (fsync and synchronous commit on); the deadlocks it logged during the run are
counted. Several concurrent clients in this process (asyncio + httpx, bodies pre-serialised so the
load generator stays cheap). Every 200 means the events are committed and their persons
rescored, and new MQLs routed. Events: a B2B mix — page views, tracks, identifies with
e-mail — over a pool of visitors. Two mixes are run: "hot" (30 % strong tracks: about half
the visitors qualify within the run, each new MQL routed inside its request — far more
than real traffic makes) and "typical" (mostly page views, strong signals rare). The
server's CPU time per event is reported too (from /proc): on a shared machine it moves
less than the wall-clock rate.

    python -m bench.ingest_http [--events 200000] [--clients 8] [--batch 100]
                                [--mix hot|typical|both]
                                [--store sqlite,pg1,pg2] [--repeat 1]
    python -m bench.ingest_http --duration 300 [--visitors 150000] [--idle 60]
                                [--writer-memory-mb N]

``--duration`` runs one SQLite server for that long with freshly made batches and reports,
per minute, the events/s, the server's RSS and the persons stored, then its RSS after
``--idle`` seconds without requests: whether memory and throughput stay flat as the base
grows, and whether an idle server gives memory back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import func, select

from bench.common import report
from mqlengine.store.db import Database
from mqlengine.store.tables import events, stage_history
from support.localserver import BENCH_LIMITS, local_server
from support.paths import EXAMPLE

STORES = ("sqlite", "pg1", "pg2")  # pgN: PostgreSQL with N server processes
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


# Shares of page views and tracks (the rest identify) and the tracks' weights, per mix:
# "hot" has most visitors qualify within the run; "typical" is closer to a B2B site, where
# most traffic is reading and the strong signals (trials, webinars) are rare.
MIXES: dict[str, tuple[float, float, list[int]]] = {
    "hot": (0.6, 0.3, [1, 1, 1, 1]),
    "typical": (0.85, 0.1, [25, 10, 60, 5]),
}


def make_message(rng: random.Random, visitors: int, mix: str = "hot") -> dict[str, Any]:
    pages, tracks, weights = MIXES[mix]
    visitor = rng.randrange(visitors)
    now = datetime.now(UTC).isoformat()
    base: dict[str, Any] = {
        "anonymousId": f"anon-{visitor}",
        "messageId": str(uuid.uuid4()),
        "timestamp": now,
        "context": {"userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", "ip": "10.0.0.1"},
    }
    roll = rng.random()
    if roll < pages:
        path = rng.choice(PATHS)
        base.update(type="page", name=path, properties={"path": path, "url": "https://x.io" + path})
    elif roll < pages + tracks:
        event = rng.choices(TRACKS, weights)[0]
        base.update(type="track", event=event, properties={"plan": "pro"})
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


def make_bodies(total: int, batch: int, visitors: int, seed: int, mix: str = "hot") -> list[bytes]:
    rng = random.Random(seed)
    return [
        orjson.dumps({"batch": [make_message(rng, visitors, mix) for _ in range(batch)]})
        for _ in range(total // batch)
    ]


async def drive(url: str | list[str], key: str, bodies: list[bytes], clients: int) -> list[float]:
    """Send every body with ``clients`` concurrent clients; with several server URLs the
    clients are spread over them in turn."""
    urls = [url] if isinstance(url, str) else url
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    headers = {"content-type": "application/json"}

    async def client(number: int) -> None:
        base = urls[number % len(urls)]
        async with httpx.AsyncClient(base_url=base, auth=(key, ""), timeout=60) as http:
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

    await asyncio.gather(*(client(n) for n in range(clients)))
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


@contextlib.contextmanager
def postgres_cluster() -> Iterator[tuple[str, Path]]:
    """A throw-away PostgreSQL cluster (as the tests start one), durable like the SQLite
    bench: fsync, full page writes and synchronous commit on. Yields its admin URL and
    its server log."""
    from support import pg

    settings = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
    pg.SERVER_SETTINGS = {**pg.SERVER_SETTINGS, **settings}
    bindir = pg.find_bindir()
    if bindir is None:
        raise RuntimeError("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
    cluster = pg.Cluster(bindir)
    try:
        yield cluster.start(), cluster.log
    finally:
        cluster.stop()


def _deadlocks(log: Path | None, offset: int) -> int | None:
    if log is None:
        return None
    with log.open("rb") as handle:
        handle.seek(offset)
        return handle.read().count(b"deadlock detected")


def measure(
    events_total: int,
    clients: int,
    batch: int,
    visitors: int,
    mix: str,
    store: str = "sqlite",
    postgres: tuple[str, Path] | None = None,
) -> dict[str, Any]:
    bodies = make_bodies(events_total, batch, visitors, seed=7, mix=mix)
    processes = 1 if store == "sqlite" else int(store.removeprefix("pg"))
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        pg_log: Path | None = None
        if store == "sqlite":
            url = f"sqlite:///{tmp}/bench.db"
        else:
            if postgres is None:
                raise ValueError(f"store {store!r} needs a PostgreSQL cluster")
            admin_url, pg_log = postgres
            url = _create_database(admin_url)
        setup = Database(url)
        setup.migrate()  # once, before several servers start on it
        setup.dispose()
        servers = [
            stack.enter_context(
                local_server(
                    url,
                    EXAMPLE,
                    log=Path(tmp) / f"server{number}.log",
                    extra_args=BENCH_LIMITS,
                )
            )
            for number in range(processes)
        ]
        urls = [server.url for server in servers]
        key = servers[0].write_key
        warm = make_bodies(batch * 20, batch, visitors, seed=1, mix=mix)
        asyncio.run(drive(urls, key, warm, clients))
        before = Database(url)
        with before.read() as connection:
            mqls_before = _mqls(connection)
        before.dispose()
        log_offset = pg_log.stat().st_size if pg_log is not None else 0
        cpu_before = [cpu_seconds(server.process.pid) for server in servers]
        started = time.perf_counter()
        latencies = asyncio.run(drive(urls, key, bodies, clients))
        elapsed = time.perf_counter() - started
        cpu_after = [cpu_seconds(server.process.pid) for server in servers]
        deadlocks = _deadlocks(pg_log, log_offset)
        stack.close()  # stop the servers
        database = Database(url)
        with database.read() as connection:
            stored = int(connection.execute(select(func.count()).select_from(events)).scalar_one())
            mqls = _mqls(connection) - mqls_before
        database.dispose()
    server_cpu: float | None = None
    if None not in cpu_before and None not in cpu_after:
        server_cpu = sum(a - b for a, b in zip(cpu_after, cpu_before, strict=True))  # type: ignore[operator]
    sent = len(bodies) * batch
    return {
        "store": store,
        "mix": mix,
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
            None if server_cpu is None else round(server_cpu / sent * 1e6, 1)
        ),
        "server_cores_busy": None if server_cpu is None else round(server_cpu / elapsed, 2),
        "deadlocks": deadlocks,
        "target_events_per_second": 20_000,
    }


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MB (Linux), else None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _persons(url: str) -> int:
    from mqlengine.store.tables import persons

    database = Database(url)
    try:
        with database.read() as connection:
            return int(connection.execute(select(func.count()).select_from(persons)).scalar_one())
    finally:
        database.dispose()


async def drive_for(
    url: str,
    key: str,
    seconds: float,
    clients: int,
    batch: int,
    visitors: int,
    mix: str,
    on_request: Callable[[int], None],
) -> None:
    """Send freshly made batches with ``clients`` concurrent clients for ``seconds``;
    ``on_request(events)`` after each acknowledged one."""
    deadline = time.perf_counter() + seconds
    headers = {"content-type": "application/json"}

    async def client(number: int) -> None:
        rng = random.Random(1000 + number)
        async with httpx.AsyncClient(base_url=url, auth=(key, ""), timeout=60) as http:
            while time.perf_counter() < deadline:
                body = orjson.dumps(
                    {"batch": [make_message(rng, visitors, mix) for _ in range(batch)]}
                )
                response = await http.post("/v1/batch", content=body, headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
                on_request(batch)

    await asyncio.gather(*(client(n) for n in range(clients)))


def _span(
    number: int | str, at: float, events: int, length: float, pid: int, cpu: float | None = None
) -> dict[str, Any]:
    rss = rss_mb(pid)
    return {
        "minute": number,
        "seconds": round(at, 1),
        "events": events,
        "events_per_second": round(events / length, 1) if length > 0 else 0.0,
        "server_cpu_us_per_event": (
            round(cpu / events * 1e6, 1) if cpu is not None and events else None
        ),
        "rss_mb": None if rss is None else round(rss, 1),
        "rss_max_mb": None,
        "persons": 0,
    }


@dataclass
class _Span:
    start: float
    events: int = 0
    peak: float = 0.0
    number: int = 0
    cpu: float | None = None  # the server's CPU seconds when the span started


def measure_for(
    seconds: float,
    clients: int,
    batch: int,
    visitors: int,
    mix: str,
    *,
    idle: float = 0.0,
    env: dict[str, str] | None = None,
    every: float = 60.0,
) -> list[dict[str, Any]]:
    """Ingest for ``seconds`` into one SQLite server and report every ``every`` seconds
    (a minute by default) the throughput in that span, the server's RSS at its end (and the
    largest sampled in it) and the persons stored; then, after ``idle`` seconds without
    requests, the server's RSS again (what it gave back)."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        setup = Database(url)
        setup.migrate()
        setup.dispose()
        with local_server(url, EXAMPLE, log=Path(tmp) / "server.log", env=env) as server:
            pid = server.process.pid
            sent = [0]
            started = time.perf_counter()
            rows.append(_span(0, 0.0, 0, 0.0, pid))

            span = _Span(started, cpu=cpu_seconds(pid))

            def close_span(now: float) -> None:
                span.number += 1
                events = sent[0] - span.events
                cpu_now = cpu_seconds(pid)
                cpu = None if cpu_now is None or span.cpu is None else cpu_now - span.cpu
                row = _span(span.number, now - started, events, now - span.start, pid, cpu)
                span.cpu = cpu_now
                row["rss_max_mb"] = round(max(span.peak, row["rss_mb"] or 0.0), 1)
                row["persons"] = _persons(url)
                rows.append(row)
                print(row, flush=True)
                span.start, span.events, span.peak = now, sent[0], 0.0

            async def sample() -> None:
                while True:
                    await asyncio.sleep(min(2.0, every))
                    now = time.perf_counter()
                    span.peak = max(span.peak, rss_mb(pid) or 0.0)
                    if now - span.start >= every - 0.01:
                        await asyncio.to_thread(close_span, now)

            def on_request(events: int) -> None:
                sent[0] += events

            async def load() -> None:
                sampler = asyncio.create_task(sample())
                try:
                    await drive_for(
                        server.url,
                        server.write_key,
                        seconds,
                        clients,
                        batch,
                        visitors,
                        mix,
                        on_request,
                    )
                finally:
                    sampler.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await sampler

            asyncio.run(load())
            loaded = time.perf_counter() - started
            if sent[0] > span.events and loaded - (span.start - started) >= 1.0:
                close_span(time.perf_counter())  # the last, shorter span
            if idle > 0:
                time.sleep(idle)
                row = _span("idle", loaded + idle, 0, 0.0, pid)
                row["persons"] = _persons(url)
                rows.append(row)
    return rows


def run_for(
    seconds: float,
    clients: int = 8,
    batch: int = 100,
    visitors: int = 150_000,
    mix: str = "typical",
    idle: float = 0.0,
    every: float = 60.0,
    env: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """``measure_for`` with a printed table and ``bench/results/ingest_http_duration.json``."""
    rows = measure_for(seconds, clients, batch, visitors, mix, idle=idle, env=env, every=every)
    spans = [r for r in rows if isinstance(r["minute"], int) and r["minute"] > 0]
    change = "n/a"
    if len(spans) >= 2 and spans[0]["events_per_second"]:
        ratio = spans[-1]["events_per_second"] / spans[0]["events_per_second"]
        change = f"{(ratio - 1) * 100:+.1f} %"
    cpu_change = "n/a"
    if (
        len(spans) >= 2
        and spans[0]["server_cpu_us_per_event"]
        and spans[-1]["server_cpu_us_per_event"]
    ):
        ratio = spans[-1]["server_cpu_us_per_event"] / spans[0]["server_cpu_us_per_event"]
        cpu_change = f"{(ratio - 1) * 100:+.1f} %"
    peak = max((r["rss_max_mb"] or r["rss_mb"] or 0.0) for r in rows)
    notes = (
        f"SQLite, {mix} mix, {visitors:,} visitors, {clients} clients × {batch} events, "
        f"{seconds:.0f} s: throughput of the last span against the first {change} "
        f"(server CPU per event {cpu_change}), largest "
        f"RSS {peak:,.0f} MB, {spans[-1]['persons'] if spans else 0:,} persons; "
        f"MQL_WRITER_MEMORY_MB={(env or {}).get('MQL_WRITER_MEMORY_MB', 'default')}"
    )
    report("ingest_http_duration", rows, notes=notes)
    return rows


def _create_database(admin_url: str) -> str:
    from support import pg

    return str(pg.create_database(admin_url))


def run(
    events_total: int = 200_000,
    clients: int = 8,
    batch: int = 100,
    visitors: int = 20_000,
    mixes: tuple[str, ...] = ("hot", "typical"),
    stores: tuple[str, ...] = ("sqlite",),
    repeat: int = 1,
) -> list[dict[str, Any]]:
    """Each store × mix ``repeat`` times, interleaved (sqlite, pg1, pg2, sqlite, …) so a
    noisy neighbour on a shared machine weighs on every store alike."""
    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        postgres = None
        if any(store != "sqlite" for store in stores):
            postgres = stack.enter_context(postgres_cluster())
        for _ in range(repeat):
            for mix in mixes:
                for store in stores:
                    rows.append(
                        measure(events_total, clients, batch, visitors, mix, store, postgres)
                    )
    notes = "; ".join(
        f"{r['store']} {r['mix']} mix: {r['events_per_second']:,.0f} events/s, request p50 "
        f"{r['request_p50_ms']} ms / p99 {r['request_p99_ms']} ms, {r['mqls_made']:,} new "
        f"MQLs, server CPU {r['server_cpu_us_per_event']} µs per event "
        f"({r['server_cores_busy']} cores busy)"
        + (f", {r['deadlocks']} deadlocks" if r["deadlocks"] is not None else "")
        for r in rows
    )
    report(
        "ingest_http",
        rows,
        notes=f"durable ingest over HTTP (target ≥ 20,000 events/s): {notes}",
    )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--visitors", type=int, default=20_000)
    parser.add_argument("--mix", choices=[*MIXES, "both"], default="both")
    parser.add_argument(
        "--store",
        default=",".join(STORES),
        help="comma-separated: sqlite, pg1 (PostgreSQL, one server), pg2 (two servers)",
    )
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds: ingest for this long into one SQLite server (typical mix unless "
        "--mix says otherwise; 150,000 visitors unless --visitors says otherwise) and "
        "report, per minute, throughput, the server's RSS and the persons stored",
    )
    parser.add_argument(
        "--idle",
        type=float,
        default=60.0,
        help="with --duration: seconds without requests after the load, then RSS once more",
    )
    parser.add_argument(
        "--every", type=float, default=60.0, help="with --duration: seconds per reported span"
    )
    parser.add_argument(
        "--writer-memory-mb",
        type=int,
        default=None,
        help="with --duration: the server's MQL_WRITER_MEMORY_MB (default: its own default)",
    )
    args = parser.parse_args(argv if argv is not None else [])
    if args.duration is not None:
        given = argv or []
        visitors = args.visitors if any(a.startswith("--visitors") for a in given) else 150_000
        env = (
            {"MQL_WRITER_MEMORY_MB": str(args.writer_memory_mb)}
            if args.writer_memory_mb is not None
            else None
        )
        mix = "typical" if args.mix == "both" else args.mix
        run_for(args.duration, args.clients, args.batch, visitors, mix, args.idle, args.every, env)
        return
    mixes = tuple(MIXES) if args.mix == "both" else (args.mix,)
    stores = tuple(s.strip() for s in args.store.split(",") if s.strip())
    unknown = [s for s in stores if s not in STORES]
    if unknown:
        parser.error(f"unknown store(s) {unknown}: choose from {', '.join(STORES)}")
    run(args.events, args.clients, args.batch, args.visitors, mixes, stores, args.repeat)


if __name__ == "__main__":
    main(sys.argv[1:])
