"""MQL to delivered webhook: latency from the ingest call that creates an MQL to the signed
``mql.assigned`` webhook arriving at a loopback receiver, through the transactional outbox
and a real ``mql worker`` process (SQLite in WAL mode, default settings otherwise).

    python -m bench webhook_latency          # or: python -m bench.webhook_latency [N]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection

from bench.common import report
from mqlengine.definition.compiler import load_definition
from mqlengine.ingest.pipeline import Pipeline
from mqlengine.notify import signing
from mqlengine.services import outbox, reps
from mqlengine.services.qualify import HANDOFF
from mqlengine.store.db import Database
from support.paths import EXAMPLE, ROOT
from support.secrets import TEST_BOX, TEST_SECRET_KEY

SECRET = signing.generate_secret()


@contextmanager
def receiver(arrivals: dict[Any, float], by_delivery: bool = False) -> Iterator[str]:
    """A loopback webhook receiver that verifies each signature and records the first
    arrival per person (or, with ``by_delivery``, per delivery: the ``webhook-id``)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            now = time.perf_counter()
            signing.verify(SECRET, dict(self.headers.items()), body, now=time.time())
            payload = orjson.loads(body)
            key = self.headers["webhook-id"] if by_delivery else payload["data"]["person"]["id"]
            arrivals.setdefault(key, now)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            return

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # the default (5) drops SYNs under concurrent deliveries

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def setup_handoff(
    connection: Connection, hook: str, *, now: datetime, capacity_per_day: int
) -> None:
    """A team of four reps and a webhook destination for ``mql.assigned``."""
    reps.upsert_team(connection, "enterprise", now=now)
    for k in range(4):
        reps.upsert_rep(
            connection, f"rep{k}", now=now, team="enterprise", capacity_per_day=capacity_per_day
        )
    outbox.add_destination(
        connection,
        box=TEST_BOX,
        name="hook",
        kind="webhook",
        url=hook,
        now=now,
        secret=SECRET,
        topics=["mql.assigned"],
    )


@contextmanager
def worker(url: str, definition: Path, *options: str) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``mql worker`` process on ``url`` (SLA checks hourly), stopped afterwards."""
    command = [sys.executable, "-m", "mqlengine", "--database", url]
    command += ["--definition", str(definition), "worker", "--sla-every", "3600", *options]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "MQL_SECRET_KEY": TEST_SECRET_KEY},
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(30)


def _messages(i: int, now: datetime) -> list[dict[str, Any]]:
    traits = {
        "email": f"lead{i}@company{i}.com",
        "seniority": "vp",
        "department": "marketing",
        "company": {"employees": 2000, "industry": "software"},
        "country": "US",
    }
    stamp = now.isoformat()
    return [
        {
            "type": "identify",
            "messageId": f"b{i}-id",
            "userId": f"b{i}",
            "traits": traits,
            "timestamp": stamp,
        },
        {
            "type": "track",
            "messageId": f"b{i}-demo",
            "userId": f"b{i}",
            "event": "Demo Requested",
            "timestamp": stamp,
        },
    ]


def run(n: int, poll: float, spacing: float = 0.02) -> dict[str, Any]:
    definition = load_definition(EXAMPLE).definition
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        db = Database(url)
        db.migrate()
        now = datetime.now(UTC)
        arrivals: dict[int, float] = {}
        started: dict[int, float] = {}
        with receiver(arrivals) as hook:
            with db.begin() as c:
                setup_handoff(c, hook, now=now, capacity_per_day=10_000)
            with worker(url, EXAMPLE, "--poll", str(poll)):
                pipeline = Pipeline(definition, handoff=HANDOFF)
                with db.begin() as c:  # warm-up: wait until the worker delivers at all
                    (warm,) = pipeline.ingest(c, _messages(-1, now), now=datetime.now(UTC)).persons
                deadline = time.time() + 60
                while warm not in arrivals and time.time() < deadline:
                    time.sleep(0.05)
                arrivals.clear()
                for i in range(n):
                    at = datetime.now(UTC) - timedelta(seconds=1)
                    t0 = time.perf_counter()
                    with db.begin() as c:
                        result = pipeline.ingest(c, _messages(i, at), now=datetime.now(UTC))
                    (person_id,) = result.persons
                    started[person_id] = t0
                    time.sleep(spacing)
                deadline = time.time() + 30
                while len(arrivals) < n and time.time() < deadline:
                    time.sleep(0.05)
        db.dispose()
    latencies = sorted((arrivals[p] - started[p]) * 1000 for p in started if p in arrivals)

    def pct(q: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(q * len(latencies)))]
            if latencies
            else float("nan")
        )

    return {
        "worker_poll_s": poll,
        "mqls": n,
        "delivered": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else float("nan"),
        "p90_ms": round(pct(0.90), 1),
        "p99_ms": round(pct(0.99), 1),
        "max_ms": round(latencies[-1], 1) if latencies else float("nan"),
    }


def main(n: int = 300) -> None:
    rows = [run(n, poll) for poll in (0.2, 0.05)]
    report(
        "webhook_latency",
        rows,
        notes="MQL-creating ingest call → signed mql.assigned webhook received on 127.0.0.1, via "
        "the outbox and a separate `mql worker` process (SQLite WAL); target p99 < 1000 ms.",
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
