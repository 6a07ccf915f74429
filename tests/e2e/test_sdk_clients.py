"""Real SDK clients (Segment's and RudderStack's Python libraries) against a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from mqlengine.store.db import Database
from mqlengine.store.tables import events, persons
from support.localserver import LocalServer, local_server
from support.paths import EXAMPLE

pytestmark = pytest.mark.slow
TRAITS = {
    "email": "ana@northwind.io",
    "title": "VP Marketing",
    "company": {"employees": 800, "industry": "software"},
    "country": "US",
}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/sdk.db"


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[LocalServer]:
    with local_server(db_url, EXAMPLE, log=tmp_path / "server.log") as running:
        yield running


def _stored(db_url: str) -> tuple[int, int, list[str]]:
    database = Database(db_url)
    try:
        with database.read() as connection:
            n_events = connection.execute(select(func.count()).select_from(events)).scalar_one()
            live = connection.execute(
                select(persons.c.stage).where(persons.c.merged_into.is_(None))
            ).all()
            ids = [r.message_id for r in connection.execute(select(events.c.message_id))]
        return int(n_events), len(live), [r.stage for r in live] + ids
    finally:
        database.dispose()


def _journey(client: object, prefix: str) -> None:
    """An anonymous visitor browses, identifies, and asks for a demo; one retry."""
    anon = f"{prefix}-anon"
    client.page(anonymous_id=anon, name="Home", properties={"path": "/"}, message_id=f"{prefix}-1")  # type: ignore[attr-defined]
    client.page(  # type: ignore[attr-defined]
        anonymous_id=anon, name="Pricing", properties={"path": "/pricing"}, message_id=f"{prefix}-2"
    )
    client.identify(
        user_id=f"{prefix}-user", anonymous_id=anon, traits=TRAITS, message_id=f"{prefix}-3"
    )  # type: ignore[attr-defined]
    client.track(user_id=f"{prefix}-user", event="Demo Requested", message_id=f"{prefix}-4")  # type: ignore[attr-defined]
    # an SDK retry after a timeout resends the same message id
    client.track(user_id=f"{prefix}-user", event="Demo Requested", message_id=f"{prefix}-4")  # type: ignore[attr-defined]
    client.group(
        user_id=f"{prefix}-user",
        group_id=f"{prefix}-acct",
        traits={"name": "Northwind", "industry": "software"},
        message_id=f"{prefix}-5",
    )  # type: ignore[attr-defined]
    client.flush()  # type: ignore[attr-defined]


def _check(server: LocalServer, db_url: str, prefix: str) -> None:
    n_events, n_live, rest = _stored(db_url)
    assert n_events == 5  # 6 calls, one a retry
    assert n_live == 1
    assert rest[0] == "mql"
    with httpx.Client(base_url=server.url, auth=(server.read_key, "")) as http:
        mqls = http.get("/v1/persons", params={"stage": "mql"}).json()["data"]
        assert len(mqls) == 1
        detail = http.get(f"/v1/persons/{mqls[0]['id']}").json()
    kinds = {(i["kind"], i["value"]) for i in detail["identities"]}
    assert ("anonymous_id", f"{prefix}-anon") in kinds
    assert ("user_id", f"{prefix}-user") in kinds
    assert detail["person"]["mql_type"] == "hand_raiser"
    assert detail["account"]["group_id"] == f"{prefix}-acct"
    assert detail["score_card"]["qualifies"] is True


def test_segment_python_sdk(server: LocalServer, db_url: str) -> None:
    from segment.analytics import Client

    errors: list[Exception] = []
    client = Client(
        write_key=server.write_key,
        host=server.url,
        sync_mode=True,
        gzip=True,
        on_error=lambda error, _batch: errors.append(error),
    )
    _journey(client, "seg")  # sync mode: every call is one request, answered or raised
    assert errors == []
    _check(server, db_url, "seg")


def test_rudderstack_python_sdk(server: LocalServer, db_url: str) -> None:
    from rudderstack.analytics import Client

    errors: list[Exception] = []
    client = Client(
        write_key=server.write_key,
        host=server.url,
        sync_mode=True,
        gzip=True,
        on_error=lambda error, _batch: errors.append(error),
    )
    _journey(client, "rs")
    assert errors == []
    _check(server, db_url, "rs")


def test_segment_sdk_batches_asynchronously(server: LocalServer, db_url: str) -> None:
    """The default (threaded, batching) mode: many events, every one stored once."""
    from segment.analytics import Client

    errors: list[Exception] = []
    client = Client(
        write_key=server.write_key,
        host=server.url,
        on_error=lambda error, _batch: errors.append(error),
        upload_size=100,
    )
    for i in range(1000):
        client.track(anonymous_id=f"v{i % 50}", event="Content Downloaded", message_id=f"bulk-{i}")
    client.flush()
    client.shutdown()
    assert errors == []
    n_events, n_live, _ = _stored(db_url)
    assert n_events == 1000
    assert n_live == 50
