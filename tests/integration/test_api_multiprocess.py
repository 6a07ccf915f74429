"""Two `mql serve` processes on one database (SQLite file or PostgreSQL): deliveries of the
same messages to both are stored once, and a lead becomes MQL (and is assigned) exactly once
even when both servers qualify it at the same moment."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from mqlengine.store.db import Database
from mqlengine.store.tables import events, identities, stage_history
from mqlengine.store.tables_handoff import assignments
from support.localserver import LocalServer, local_server
from support.paths import EXAMPLE

pytestmark = pytest.mark.slow

VP = {
    "email": "ana@northwind.io",
    "title": "VP Marketing",
    "company": {"employees": 800, "industry": "software"},
    "country": "US",
}


@pytest.fixture
def servers(tmp_path: Path, database_url: str) -> Iterator[tuple[LocalServer, LocalServer]]:
    definition = tmp_path / "mql.yaml"
    definition.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    with (
        local_server(database_url, definition, log=tmp_path / "a.log") as first,
        local_server(database_url, definition, log=tmp_path / "b.log") as second,
    ):
        yield first, second


def scalar(database_url: str, query: Any) -> int:
    database = Database(database_url)
    try:
        with database.read() as connection:
            return int(connection.execute(query).scalar_one())
    finally:
        database.dispose()


def person_of(database_url: str, user_id: str) -> int:
    return scalar(
        database_url,
        select(identities.c.person_id).where(
            identities.c.kind == "user_id", identities.c.value == user_id
        ),
    )


def post_all(jobs: list[tuple[LocalServer, dict[str, Any]]]) -> list[int]:
    """Send every (server, batch) at the same moment; return the status codes."""
    barrier = threading.Barrier(len(jobs))
    codes: list[int] = [0] * len(jobs)

    def send(index: int, server: LocalServer, body: dict[str, Any]) -> None:
        with httpx.Client(auth=(server.write_key, ""), timeout=60) as client:
            barrier.wait()
            codes[index] = client.post(f"{server.url}/v1/batch", json=body).status_code

    threads = [
        threading.Thread(target=send, args=(i, server, body))
        for i, (server, body) in enumerate(jobs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes


def stamp(days_ago: float = 0) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()


def test_same_batch_to_both_servers_is_stored_once_and_qualifies_once(
    servers: tuple[LocalServer, LocalServer], database_url: str
) -> None:
    first, second = servers
    batch: list[dict[str, Any]] = [
        {
            "type": "identify",
            "userId": "u-ana",
            "traits": VP,
            "messageId": "m-id",
            "timestamp": stamp(1),
        },
        {
            "type": "page",
            "userId": "u-ana",
            "properties": {"path": "/pricing"},
            "messageId": "m-p",
            "timestamp": stamp(1),
        },
        {
            "type": "track",
            "userId": "u-ana",
            "event": "Demo Requested",
            "messageId": "m-d",
            "timestamp": stamp(0.5),
        },
    ]
    batch += [
        {
            "type": "page",
            "anonymousId": f"v-{i}",
            "properties": {"path": "/blog/a"},
            "messageId": f"m-v{i}",
            "timestamp": stamp(0.1),
        }
        for i in range(40)
    ]
    body = {"batch": batch}
    codes = post_all([(first, body), (second, body), (first, body), (second, body)])
    assert codes == [200, 200, 200, 200]
    assert scalar(database_url, select(func.count()).select_from(events)) == len(batch)
    ana = person_of(database_url, "u-ana")
    mql_rows = (
        select(func.count())
        .select_from(stage_history)
        .where(stage_history.c.person_id == ana, stage_history.c.to_stage == "mql")
    )
    assert scalar(database_url, mql_rows) == 1
    assigned = select(func.count()).select_from(assignments).where(assignments.c.person_id == ana)
    assert scalar(database_url, assigned) == 1


def test_two_servers_qualifying_one_lead_at_once_make_one_stage_change(
    servers: tuple[LocalServer, LocalServer], database_url: str
) -> None:
    first, second = servers
    post_all(
        [
            (
                first,
                {
                    "batch": [
                        {
                            "type": "identify",
                            "userId": "u-bo",
                            "traits": {**VP, "email": "bo@northwind.io"},
                            "messageId": "b-id",
                            "timestamp": stamp(2),
                        }
                    ]
                },
            )
        ]
    )
    bo = person_of(database_url, "u-bo")
    # two different signals, each enough on its own, arrive at both servers at once
    jobs = [
        (
            server,
            {
                "batch": [
                    {
                        "type": "track",
                        "userId": "u-bo",
                        "event": "Demo Requested",
                        "messageId": f"b-{uuid.uuid4()}",
                        "timestamp": stamp(0),
                    }
                ]
            },
        )
        for server in (first, second, first, second)
    ]
    assert post_all(jobs) == [200, 200, 200, 200]
    mql_rows = (
        select(func.count())
        .select_from(stage_history)
        .where(stage_history.c.person_id == bo, stage_history.c.to_stage == "mql")
    )
    assert scalar(database_url, mql_rows) == 1
    assigned = select(func.count()).select_from(assignments).where(assignments.c.person_id == bo)
    assert scalar(database_url, assigned) == 1
