"""What the HTTP and storage stack alone costs: the floor under ``bench/ingest_http``.

Two stripped-down servers on the same stack as ``mql serve`` (uvicorn with uvloop and
httptools, FastAPI, orjson, SQLite in WAL mode) receive the same ``/v1/batch`` bodies
from the same load generator (100 events per request, 8 clients):

- ``http``: read the body, parse the JSON, answer ``200``. Nothing is stored.
- ``store``: also write every event as a row of the real ``events`` table (same columns,
  same unique and secondary indexes) through one writer thread that commits concurrent
  requests together (group commit, ``synchronous=FULL``), answering after the commit.
  No validation, no identity resolution, no persons, no scoring, no qualification.

Neither is a product: they measure how much of the per-event budget the stack spends
before MQL Engine does any of its own work, so ``ingest_http``'s figure can be read
against it on the machine at hand.

    python -m bench.ingest_floor [--events 100000] [--clients 8]
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from bench.common import report
from bench.ingest_http import cpu_seconds, drive, make_bodies, percentile
from support.localserver import free_port

INSERT = (
    "INSERT OR IGNORE INTO events (message_id, person_id, type, name, anonymous_id, user_id,"
    " properties, context, timestamp, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _create_events_table(path: str) -> None:
    """The ``events`` table exactly as MQL Engine declares it (its indexes included)."""
    from sqlalchemy import create_engine

    from mqlengine.store.tables import events

    engine = create_engine(f"sqlite:///{path}")
    events.create(engine)  # the persons foreign key is declared, not enforced here
    engine.dispose()


class _Writer:
    """One thread, one connection; every commit takes all requests waiting for it."""

    def __init__(self, path: str) -> None:
        self.connection = sqlite3_connect(path)
        self.jobs: queue.Queue[tuple[list[tuple[Any, ...]], Future[None]]] = queue.Queue()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            group = [self.jobs.get()]
            while True:
                try:
                    group.append(self.jobs.get_nowait())
                except queue.Empty:
                    break
            self.connection.execute("BEGIN IMMEDIATE")
            for rows, _ in group:
                self.connection.executemany(INSERT, rows)
            self.connection.execute("COMMIT")
            for _, future in group:
                future.set_result(None)


def sqlite3_connect(path: str) -> Any:
    import sqlite3

    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    return connection


def build_app(mode: str, path: str | None) -> Any:
    app = FastAPI()
    writer = _Writer(path) if mode == "store" and path else None
    persons: dict[str, int] = {}
    answer = b'{"success":true}'

    @app.post("/v1/batch")
    async def batch(request: Request) -> Response:
        body = orjson.loads(await request.body())
        if writer is not None:
            rows = []
            for m in body["batch"]:
                visitor = m.get("anonymousId")
                person = persons.setdefault(visitor, len(persons) + 1)
                rows.append(
                    (
                        m["messageId"],
                        person,
                        m["type"],
                        m.get("event") or m.get("name"),
                        visitor,
                        m.get("userId"),
                        orjson.dumps(m.get("properties") or m.get("traits")).decode(),
                        orjson.dumps(m.get("context")).decode(),
                        m["timestamp"],
                        m["timestamp"],
                    )
                )
            done: Future[None] = Future()
            writer.jobs.put((rows, done))
            await asyncio.wrap_future(done)
        return Response(answer, media_type="application/json")

    return app


def serve(mode: str, port: int, path: str | None) -> None:
    import uvicorn

    uvicorn.run(build_app(mode, path), host="127.0.0.1", port=port, log_level="warning")


def measure(mode: str, events_total: int, clients: int) -> dict[str, Any]:
    bodies = make_bodies(events_total, 100, 20_000, seed=7)
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/floor.db"
        _create_events_table(path)
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.ingest_floor", "--serve", mode, str(port), path],
            cwd=Path(__file__).resolve().parents[1],
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(url + "/docs", timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError("the floor server did not start") from None
                    time.sleep(0.1)
            asyncio.run(drive(url, "key", make_bodies(2_000, 100, 20_000, seed=1), clients))
            cpu_before = cpu_seconds(process.pid)
            started = time.perf_counter()
            latencies = asyncio.run(drive(url, "key", bodies, clients))
            elapsed = time.perf_counter() - started
            cpu_after = cpu_seconds(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)
    sent = len(bodies) * 100
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return {
        "server": mode,
        "events": sent,
        "clients": clients,
        "events_per_second": round(sent / elapsed, 1),
        "request_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "server_cpu_us_per_event": None if cpu is None else round(cpu / sent * 1e6, 1),
    }


def run(events_total: int = 100_000, clients: int = 8) -> list[dict[str, Any]]:
    rows = [measure(mode, events_total, clients) for mode in ("http", "store")]
    notes = "; ".join(
        f"{r['server']}: {r['events_per_second']:,.0f} events/s, "
        f"{r['server_cpu_us_per_event']} µs server CPU per event"
        for r in rows
    )
    report("ingest_floor", rows, notes=f"the stack without MQL Engine's work: {notes}")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--serve", nargs=3, metavar=("MODE", "PORT", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv if argv is not None else [])
    if args.serve:
        mode, port, path = args.serve
        serve(mode, int(port), path)
        return
    run(args.events, args.clients)


if __name__ == "__main__":
    main(sys.argv[1:])
