"""Crash safety of the ingest API: a server killed with SIGKILL in the middle of a load
(SQLite file and PostgreSQL).

A ``200`` means the request's events are committed together with what they caused
(identities, persons, scores, stage changes, assignments). So after the kill every
acknowledged event is stored, no request is half stored, every stored person is scored,
and a restarted server that receives every request again (what SDKs do after a failure)
stores each event exactly once and ends where an uninterrupted run ends.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from mqlengine.definition.compiler import load_definition
from mqlengine.services.qualify import rescore
from mqlengine.store.db import Database
from mqlengine.store.tables import events, persons, stage_history
from mqlengine.store.tables_handoff import assignments
from support.localserver import LocalServer, local_server
from support.paths import EXAMPLE

pytestmark = pytest.mark.slow

BATCHES = 60
BATCH_SIZE = 50
VISITORS = 150
TITLES = ["VP Marketing", "Head of Sales", "Data Analyst", "CTO"]
DOMAINS = ["northwind.io", "globex.com", "initech.io"]


def make_batches(seed: int) -> list[list[dict[str, Any]]]:
    """Journeys over a pool of visitors: page views, identifies with a business e-mail,
    strong tracks (demo requests) — enough for many persons to become MQL."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=2)
    batches: list[list[dict[str, Any]]] = []
    for b in range(BATCHES):
        batch: list[dict[str, Any]] = []
        for i in range(BATCH_SIZE):
            visitor = rng.randrange(VISITORS)
            message: dict[str, Any] = {
                "anonymousId": f"anon-{visitor}",
                "messageId": f"crash-{b}-{i}",
                "timestamp": (start + timedelta(seconds=b * BATCH_SIZE + i)).isoformat(),
            }
            roll = rng.random()
            if roll < 0.5:
                message.update(type="page", name="Pricing", properties={"path": "/pricing"})
            elif roll < 0.75:
                message.update(
                    type="identify",
                    userId=f"user-{visitor}",
                    traits={
                        "email": f"p{visitor}@{DOMAINS[visitor % len(DOMAINS)]}",
                        "title": TITLES[visitor % len(TITLES)],
                        "company": {"employees": 800, "industry": "software"},
                        "country": "US",
                    },
                )
            else:
                message.update(type="track", event="Demo Requested", properties={})
            batch.append(message)
        batches.append(batch)
    return batches


def send_until_killed(
    server: LocalServer, batches: list[list[dict[str, Any]]], clients: int
) -> tuple[set[int], list[str]]:
    """Each client sends its share of the batches in order until the server is gone.
    Returns the acknowledged batch numbers and any answer that was neither 200 nor a
    broken connection."""
    acknowledged: set[int] = set()
    unexpected: list[str] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        with httpx.Client(base_url=server.url, auth=(server.write_key, ""), timeout=30) as http:
            for index in range(number, len(batches), clients):
                try:
                    response = http.post("/v1/batch", json={"batch": batches[index]})
                except httpx.TransportError:
                    return  # the server died under this request: not acknowledged
                with lock:
                    if response.status_code == 200:
                        acknowledged.add(index)
                    else:
                        unexpected.append(f"{response.status_code}: {response.text[:200]}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < BATCHES // 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    server.process.kill()  # SIGKILL: no shutdown, no flush, no goodbye
    server.process.wait(10)
    for thread in threads:
        thread.join(60)
    return acknowledged, unexpected


def stored_ids(database_url: str) -> list[str]:
    database = Database(database_url)
    try:
        with database.read() as connection:
            return list(connection.execute(select(events.c.message_id)).scalars())
    finally:
        database.dispose()


def check_consistent(database_url: str) -> set[str]:
    """Every live person with events is scored, its stored score is what scoring its
    stored events gives at the time it was scored, and each MQL has one history row and
    one assignment. Returns the visitors (anonymous ids) who are MQL."""
    definition = load_definition(EXAMPLE).definition
    database = Database(database_url)
    try:
        with database.engine.connect() as connection:
            transaction = connection.begin()
            rows = connection.execute(
                select(
                    persons.c.id,
                    persons.c.scored_at,
                    persons.c.total_score,
                    persons.c.stage,
                ).where(
                    persons.c.merged_into.is_(None),
                    persons.c.id.in_(select(events.c.person_id)),
                )
            ).all()
            assert rows
            assert all(row.scored_at is not None for row in rows)
            outcomes = rescore(
                connection,
                definition,
                [row.id for row in rows],
                now=datetime.now(UTC),
                as_of={row.id: row.scored_at for row in rows},
                lifecycle=False,
            )
            again = {o.person_id: o.card.total for o in outcomes}
            for row in rows:
                assert again[row.id] == pytest.approx(row.total_score, abs=1e-6), row.id
            mqls = [row.id for row in rows if row.stage == "mql"]
            assert mqls, "the journeys should have made MQLs"
            for pid in mqls:
                to_mql = connection.execute(
                    select(func.count())
                    .select_from(stage_history)
                    .where(stage_history.c.person_id == pid, stage_history.c.to_stage == "mql")
                ).scalar_one()
                assigned = connection.execute(
                    select(func.count())
                    .select_from(assignments)
                    .where(assignments.c.person_id == pid)
                ).scalar_one()
                assert (to_mql, assigned) == (1, 1), pid
            visitors = set(
                connection.execute(
                    select(events.c.anonymous_id).where(events.c.person_id.in_(mqls))
                ).scalars()
            )
            transaction.rollback()  # the check rescored inside it: leave nothing behind
            return visitors
    finally:
        database.dispose()


def test_killed_server_loses_no_acknowledged_event_and_the_resend_completes_the_run(
    tmp_path: Path, database_url: str
) -> None:
    batches = make_batches(seed=11)
    definition = tmp_path / "mql.yaml"
    definition.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")

    with local_server(database_url, definition, log=tmp_path / "first.log") as server:
        acknowledged, unexpected = send_until_killed(server, batches, clients=4)
    assert unexpected == []
    assert BATCHES // 3 <= len(acknowledged) < BATCHES, "the kill should land mid-load"

    # every acknowledged event is there; no request is half stored
    stored = set(stored_ids(database_url))
    for index, batch in enumerate(batches):
        ids = {m["messageId"] for m in batch}
        if index in acknowledged:
            assert ids <= stored, f"batch {index} was acknowledged but is not all stored"
        else:
            assert len(ids & stored) in (0, len(ids)), f"batch {index} is half stored"
    check_consistent(database_url)

    # the SDKs resend everything they are unsure of (here: everything) to a new server
    with (
        local_server(database_url, definition, log=tmp_path / "second.log") as server,
        httpx.Client(base_url=server.url, auth=(server.write_key, ""), timeout=30) as http,
    ):
        for batch in batches:
            response = http.post("/v1/batch", json={"batch": batch})
            assert response.status_code == 200, response.text
    ids = stored_ids(database_url)
    assert len(ids) == len(set(ids)) == BATCHES * BATCH_SIZE
    recovered = check_consistent(database_url)

    # the same requests to a server that never crashed qualify the same visitors
    fresh_url = _sibling_url(database_url, tmp_path)
    if fresh_url is None:
        return
    with (
        local_server(fresh_url, definition, log=tmp_path / "fresh.log") as server,
        httpx.Client(base_url=server.url, auth=(server.write_key, ""), timeout=30) as http,
    ):
        for batch in batches:
            assert http.post("/v1/batch", json={"batch": batch}).status_code == 200
    assert check_consistent(fresh_url) == recovered


def _sibling_url(database_url: str, tmp_path: Path) -> str | None:
    """A second, empty SQLite database beside the first (PostgreSQL runs compare only the
    recovered store: one database per test there)."""
    if not database_url.startswith("sqlite"):
        return None
    return f"sqlite:///{tmp_path}/fresh.db"
