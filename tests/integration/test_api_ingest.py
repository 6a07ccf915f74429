"""The ingest API against a real server process (uvicorn on a loopback port, SQLite)."""

from __future__ import annotations

import gzip
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from mqlengine.store.db import Database
from mqlengine.store.tables import events, identities, persons
from mqlengine.store.tables_ingest import quarantine
from support.localserver import LocalServer, local_server
from support.paths import EXAMPLE

pytestmark = pytest.mark.slow


def _definition(tmp_path: Path, replace: dict[str, str] | None = None) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    for old, new in (replace or {}).items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "mql.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/api.db"


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[LocalServer]:
    with local_server(db_url, _definition(tmp_path), log=tmp_path / "server.log") as running:
        yield running


@pytest.fixture
def client(server: LocalServer) -> Iterator[httpx.Client]:
    """Sends events with the write key (which reads nothing)."""
    with httpx.Client(base_url=server.url, auth=(server.write_key, ""), timeout=30) as http:
        yield http


@pytest.fixture
def reader(server: LocalServer) -> Iterator[httpx.Client]:
    """Reads persons and accounts with a read key."""
    headers = {"Authorization": f"Bearer {server.read_key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
        yield http


def count(db_url: str, table: Any, *where: Any) -> int:
    database = Database(db_url)
    try:
        with database.read() as connection:
            query = select(func.count()).select_from(table)
            for clause in where:
                query = query.where(clause)
            return int(connection.execute(query).scalar_one())
    finally:
        database.dispose()


VP = {
    "email": "ana@northwind.io",
    "title": "VP Marketing",
    "company": {"employees": 800, "industry": "software"},
    "country": "US",
}


def test_anonymous_journey_is_linked_scored_and_qualified(
    client: httpx.Client, reader: httpx.Client, db_url: str
) -> None:
    for i, path in enumerate(["/", "/pricing", "/pricing/enterprise"]):
        page = {"anonymousId": "anon-1", "messageId": f"p{i}", "properties": {"path": path}}
        response = client.post("/v1/page", json=page)
        assert response.status_code == 200
        assert response.json() == {"success": True}
    # identify links the anonymous history to the known person
    identify = {"userId": "u-1", "anonymousId": "anon-1", "traits": VP, "messageId": "i1"}
    assert client.post("/v1/identify", json=identify).status_code == 200
    assert client.post(
        "/v1/track", json={"userId": "u-1", "event": "Demo Requested", "messageId": "t1"}
    ).json() == {"success": True}

    assert count(db_url, persons, persons.c.merged_into.is_(None)) == 1
    listing = reader.get("/v1/persons", params={"stage": "mql"}).json()
    assert len(listing["data"]) == 1
    person_id = listing["data"][0]["id"]
    detail = reader.get(f"/v1/persons/{person_id}").json()
    assert detail["person"]["stage"] == "mql"
    assert detail["person"]["mql_type"] == "hand_raiser"
    assert {"kind": "anonymous_id", "value": "anon-1"} in detail["identities"]
    assert {"kind": "email", "value": "ana@northwind.io"} in detail["identities"]
    assert detail["person"]["profile"]["seniority"] == "vp"
    assert detail["person"]["profile"]["enriched"]["seniority"] == "title"
    rules = {c["rule"] for c in detail["score_card"]["contributions"]}
    assert {"demo_request", "pricing_page", "senior_buyer"} <= rules
    assert [h["to_stage"] for h in detail["stage_history"]] == ["lead", "mql"]
    assert detail["stage_history"][-1]["reason"] == "qualified:hand_raiser"
    assert detail["account"]["domain"] == "northwind.io"
    account = reader.get(f"/v1/accounts/{detail['account']['id']}").json()
    assert [p["id"] for p in account["persons"]] == [person_id]

    # the SDK's ids find the person: e-mail normalised as ingest stores it, ids as sent
    def lookup(**params: str) -> list[int]:
        response = reader.get("/v1/persons", params=params)
        assert response.status_code == 200, response.text
        return [p["id"] for p in response.json()["data"]]

    assert lookup(email="  Ana@Northwind.IO ") == [person_id]
    assert lookup(userId="u-1") == [person_id]
    assert lookup(anonymousId="anon-1", stage="mql") == [person_id]
    assert lookup(anonymousId="anon-1", stage="lead") == []
    assert lookup(userId="u-1", email="someone@else.io") == []
    assert lookup(userId="nobody") == []
    bad = reader.get("/v1/persons", params={"phone": "not a number"})
    assert bad.status_code == 400 and bad.json()["details"] == {"parameter": "phone"}


def test_retries_with_the_same_message_ids_count_once(
    client: httpx.Client, reader: httpx.Client, db_url: str
) -> None:
    batch = {
        "batch": [
            {"type": "identify", "userId": "u-2", "traits": VP, "messageId": "m-1"},
            {"type": "track", "userId": "u-2", "event": "Webinar Attended", "messageId": "m-2"},
        ]
    }
    first = client.post("/v1/batch", json=batch)
    second = client.post("/v1/batch", json=batch)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert count(db_url, events) == 2
    person = reader.get("/v1/persons", params={"stage": "lead"}).json()["data"][0]
    assert person["intent"] == 10.0  # one webinar, not two


def test_gzip_body_and_write_key_in_body(server: LocalServer, db_url: str) -> None:
    body = {
        "writeKey": server.write_key,
        "batch": [{"type": "track", "anonymousId": "a-9", "event": "X", "messageId": "g1"}],
    }
    response = httpx.post(
        f"{server.url}/v1/batch",
        content=gzip.compress(orjson.dumps(body)),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert count(db_url, events) == 1


def test_wrong_or_missing_key_is_401(server: LocalServer, db_url: str) -> None:
    message = {"anonymousId": "a", "event": "X"}
    wrong = httpx.post(f"{server.url}/v1/track", json=message, auth=("nope", ""))
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "unauthorized"
    missing = httpx.post(f"{server.url}/v1/track", json=message)
    assert missing.status_code == 401
    in_body = httpx.post(f"{server.url}/v1/track", json={**message, "writeKey": "nope"})
    assert in_body.status_code == 401
    assert httpx.get(f"{server.url}/v1/persons").status_code == 401
    # the write key is public (web pages embed it): it reads nothing
    as_writer = httpx.get(f"{server.url}/v1/persons", auth=(server.write_key, ""))
    assert as_writer.status_code == 403
    assert as_writer.json()["code"] == "forbidden"
    # and a read key sends no events
    as_reader = httpx.post(f"{server.url}/v1/track", json=message, auth=(server.read_key, ""))
    assert as_reader.status_code == 403
    assert count(db_url, events) == 0
    assert count(db_url, quarantine) == 0  # strangers cannot fill the quarantine


def test_bad_json_is_400_and_quarantined(client: httpx.Client, db_url: str) -> None:
    response = client.post(
        "/v1/batch", content=b'{"batch": [', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
    assert set(response.json()) == {"code", "message", "details"}
    assert count(db_url, quarantine, quarantine.c.code == "invalid_json") == 1
    shape = client.post("/v1/batch", json={"batch": "nope"})
    assert shape.status_code == 422


def test_oversize_body_is_413_and_oversize_message_is_rejected_alone(
    client: httpx.Client, db_url: str
) -> None:
    huge = {
        "batch": [
            {"type": "track", "anonymousId": "a", "event": "X", "properties": {"x": "y" * 600_000}}
        ]
    }
    response = client.post("/v1/batch", json=huge)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    single = client.post(
        "/v1/track", json={"anonymousId": "a", "event": "X", "properties": {"x": "y" * 40_000}}
    )
    assert single.status_code == 413
    mixed = {
        "batch": [
            {
                "type": "track",
                "anonymousId": "a",
                "event": "Big",
                "properties": {"x": "y" * 40_000},
            },
            {"type": "track", "anonymousId": "a", "event": "Small", "messageId": "ok-1"},
        ]
    }
    answer = client.post("/v1/batch", json=mixed)
    assert answer.status_code == 200
    assert [(r["index"], r["code"]) for r in answer.json()["rejected"]] == [(0, "too_large")]
    assert count(db_url, events) == 1
    assert count(db_url, quarantine, quarantine.c.code == "too_large") == 1


def test_mixed_batch_stores_good_and_reports_bad_per_index(
    client: httpx.Client, db_url: str
) -> None:
    batch = {
        "batch": [
            {"type": "track", "anonymousId": "a", "event": "Good", "messageId": "g-1"},
            {"type": "track", "event": "No identity", "messageId": "b-1"},
            {"type": "track", "anonymousId": "a", "messageId": "b-2"},
            {"type": "shout", "anonymousId": "a", "messageId": "b-3"},
            {"type": "page", "anonymousId": "a", "messageId": "g-2"},
        ]
    }
    response = client.post("/v1/batch", json=batch)
    assert response.status_code == 200
    rejected = response.json()["rejected"]
    assert [(r["index"], r["messageId"], r["field"]) for r in rejected] == [
        (1, "b-1", "userId"),
        (2, "b-2", "event"),
        (3, "b-3", "type"),
    ]
    assert count(db_url, events) == 2
    assert count(db_url, quarantine) == 3
    all_bad = client.post("/v1/batch", json={"batch": [{"type": "track"}]})
    assert all_bad.status_code == 400
    assert all_bad.json()["details"][0]["index"] == 0
    single_bad = client.post("/v1/track", json={"anonymousId": "a"})
    assert single_bad.status_code == 400
    assert single_bad.json()["message"].startswith("event:")


def _merge_ids(db_url: str) -> list[int]:
    from mqlengine.store.tables import merges

    database = Database(db_url)
    try:
        with database.read() as connection:
            return [r.id for r in connection.execute(select(merges.c.id).order_by(merges.c.id))]
    finally:
        database.dispose()


def test_email_merge_recomputes_from_union_and_unmerge_restores(
    client: httpx.Client, reader: httpx.Client, db_url: str, tmp_path: Path
) -> None:
    # Two devices, each anonymous with its own history, then the same e-mail on both.
    batch = [
        {"type": "track", "anonymousId": "laptop", "event": "Webinar Attended", "messageId": "w1"},
        {"type": "track", "anonymousId": "phone", "event": "Content Downloaded", "messageId": "c1"},
    ]
    assert client.post("/v1/batch", json={"batch": batch}).status_code == 200
    assert count(db_url, persons) == 2
    for device, mid in (("laptop", "e1"), ("phone", "e2")):
        traits = {"email": "Ana@Northwind.io ", "country": "US"}
        message = {"anonymousId": device, "traits": traits, "messageId": mid}
        assert client.post("/v1/identify", json=message).status_code == 200
    live = reader.get("/v1/persons").json()["data"]
    assert len(live) == 1
    assert live[0]["intent"] == pytest.approx(18.0, abs=0.1)  # 10 + 8: the union, once each
    assert count(db_url, persons, persons.c.merged_into.is_not(None)) == 1
    merge_ids = _merge_ids(db_url)
    assert len(merge_ids) == 1

    env_db = ["--database", db_url, "--definition", str(tmp_path / "mql.yaml")]
    listing = subprocess.run(
        [sys.executable, "-m", "mqlengine", *env_db, "unmerge", "--list"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "identities" in listing.stdout
    undo = subprocess.run(
        [sys.executable, "-m", "mqlengine", *env_db, "unmerge", str(merge_ids[0])],
        capture_output=True,
        text=True,
    )
    assert undo.returncode == 0, undo.stderr
    live = sorted(reader.get("/v1/persons").json()["data"], key=lambda p: p["id"])
    assert [p["intent"] for p in live] == [
        pytest.approx(10.0, abs=0.1),
        pytest.approx(8.0, abs=0.1),
    ]
    # the unmerge is sticky: the same proof does not merge them again
    message = {"anonymousId": "phone", "event": "Email Link Clicked", "messageId": "x1"}
    assert client.post("/v1/track", json=message).status_code == 200
    assert len(reader.get("/v1/persons").json()["data"]) == 2
    again = subprocess.run(
        [sys.executable, "-m", "mqlengine", *env_db, "unmerge", str(merge_ids[0])],
        capture_output=True,
        text=True,
    )
    assert again.returncode != 0
    assert "already undone" in again.stderr


def test_alias_merges_previous_id(client: httpx.Client, reader: httpx.Client, db_url: str) -> None:
    client.post(
        "/v1/track", json={"userId": "old-id", "event": "Webinar Attended", "messageId": "a1"}
    )
    client.post("/v1/track", json={"userId": "new-id", "event": "Trial Started", "messageId": "a2"})
    assert count(db_url, persons, persons.c.merged_into.is_(None)) == 2
    response = client.post(
        "/v1/alias", json={"userId": "new-id", "previousId": "old-id", "messageId": "al"}
    )
    assert response.status_code == 200
    assert count(db_url, persons, persons.c.merged_into.is_(None)) == 1
    assert count(db_url, identities, identities.c.kind == "user_id") == 2
    person = reader.get("/v1/persons").json()["data"][0]
    assert person["intent"] == pytest.approx(35.0, abs=0.1)


def test_traits_under_context_traits_count(client: httpx.Client, reader: httpx.Client) -> None:
    message = {
        "userId": "rs-1",
        "event": "Demo Requested",
        "context": {"traits": VP},
        "messageId": "rs-t1",
    }
    assert client.post("/v1/track", json=message).status_code == 200
    person = reader.get("/v1/persons", params={"stage": "mql"}).json()["data"]
    assert [p["email"] for p in person] == ["ana@northwind.io"]


def test_pagination_and_not_found(client: httpx.Client, reader: httpx.Client) -> None:
    batch = [
        {"type": "track", "anonymousId": f"v{i}", "event": "X", "messageId": f"pg{i}"}
        for i in range(7)
    ]
    client.post("/v1/batch", json={"batch": batch})
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = reader.get("/v1/persons", params=params).json()
        seen.extend(p["id"] for p in page["data"])
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 7
    missing = reader.get("/v1/persons/9999")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    assert reader.get("/v1/persons", params={"stage": "nope"}).status_code == 400
    assert reader.get("/healthz").json()["status"] == "ok"
    assert "/v1/batch" in reader.get("/openapi.json").json()["paths"]


def test_validation_policy_rejects_and_flags(tmp_path: Path, db_url: str) -> None:
    definition = _definition(
        tmp_path,
        {"disposable: flag": "disposable: reject", "role_account: flag": "role_account: ignore"},
    )
    with local_server(db_url, definition, log=tmp_path / "server.log") as server:
        http = httpx.Client(base_url=server.url, auth=(server.write_key, ""))
        rejected = http.post(
            "/v1/identify", json={"userId": "d1", "traits": {"email": "x@mailinator.com"}}
        )
        assert rejected.status_code == 400
        assert "disposable" in rejected.json()["message"]
        http.post("/v1/identify", json={"userId": "r1", "traits": {"email": "info@acme.com"}})
        bot = {
            "userId": "r1",
            "event": "Webinar Attended",
            "context": {"userAgent": "Googlebot/2.1 (+http://www.google.com/bot.html)"},
        }
        http.post("/v1/track", json=bot)
        read = {"Authorization": f"Bearer {server.read_key}"}
        person = httpx.get(f"{server.url}/v1/persons", headers=read).json()["data"][0]
        detail = httpx.get(f"{server.url}/v1/persons/{person['id']}", headers=read).json()
        detail = detail["person"]
        assert "role_account" not in detail["profile"]["flags"]
        assert "bot" in detail["flags"]
        assert "spam" in detail["profile"]["flags"]
        http.close()
    assert count(db_url, quarantine, quarantine.c.code == "rejected_by_check") == 1


def test_server_refuses_to_start_without_a_write_key(tmp_path: Path, db_url: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mqlengine",
            "--database",
            db_url,
            "--definition",
            str(_definition(tmp_path)),
            "serve",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in __import__("os").environ.items() if k != "MQL_WRITE_KEYS"},
    )
    assert result.returncode != 0
    assert "no write key" in result.stderr
