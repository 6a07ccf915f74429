"""Input that once answered 500, against a real server: a bad message is rejected alone
(listed, quarantined) while the rest of its batch commits; bad parameters get 400 or 422
in the error shape ``{code, message, details}``; nothing reaches the database that would
overflow a column."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from mqlengine.store.db import Database
from mqlengine.store.tables import events
from mqlengine.store.tables_ingest import quarantine
from support.localserver import LocalServer, local_server
from support.paths import EXAMPLE

pytestmark = pytest.mark.slow

DEEP = '{"a":' * 300 + "1" + "}" * 300


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('bad-input')}/api.db"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> Iterator[LocalServer]:
    log = tmp_path_factory.mktemp("bad-input-log") / "server.log"
    with local_server(db_url, EXAMPLE, log=log) as running:
        yield running


class ScopedKeys(httpx.Auth):
    """The write key for ingest, the admin key (read and feedback included) otherwise."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        ingest = request.method == "POST" and request.url.path in INGEST_PATHS
        key = self.server.write_key if ingest else self.server.admin_key
        request.headers["Authorization"] = f"Bearer {key}"
        yield request


INGEST_PATHS = {f"/v1/{name}" for name in ("batch", "identify", "track", "page", "group")}


@pytest.fixture
def client(server: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, auth=ScopedKeys(server), timeout=30) as http:
        yield http


def _rows(db_url: str, table: Any, *where: Any) -> list[Any]:
    database = Database(db_url)
    try:
        with database.read() as connection:
            return list(connection.execute(select(table).where(*where)).mappings())
    finally:
        database.dispose()


def _good(message_id: str) -> str:
    return (
        f'{{"type":"track","userId":"u-{message_id}","event":"Demo Requested","messageId":"{message_id}",'
        '"context":{"campaign":{"source":"google","medium":"cpc","name":"brand"}}}'
    )


BAD_MESSAGES = {
    "deep properties": (
        f'{{"type":"track","userId":"u","event":"E","properties":{DEEP}}}',
        "properties",
    ),
    "deep context": (f'{{"type":"page","anonymousId":"a","context":{DEEP}}}', "context"),
    "year 1 with an offset": (
        '{"type":"track","userId":"u","event":"E","timestamp":"0001-01-01T00:00:00+01:00"}',
        "timestamp",
    ),
    "year 9999 with an offset": (
        '{"type":"track","userId":"u","event":"E","timestamp":"9999-12-31T23:59:59-01:00"}',
        "timestamp",
    ),
    "sentAt whose correction overflows": (
        '{"type":"track","userId":"u","event":"E","timestamp":"1900-01-02T00:00:00Z",'
        '"sentAt":"8999-12-30T00:00:00Z"}',
        "sentAt",
    ),
    "group name that is a list": (
        '{"type":"group","userId":"u","groupId":"g","traits":{"name":["a","b"]}}',
        "traits.name",
    ),
    "group name longer than its column": (
        '{"type":"group","userId":"u","groupId":"g","traits":{"name":"%s"}}' % ("n" * 300),
        "traits.name",
    ),
    "a NUL character": (
        '{"type":"track","userId":"u","event":"E","properties":{"note":"a\\u0000b"}}',
        "properties",
    ),
    "e-mail longer than its column": (
        '{"type":"identify","userId":"u","traits":{"email":"%s@x.io"}}' % ("a" * 400),
        "traits.email",
    ),
}


@pytest.mark.parametrize("case", list(BAD_MESSAGES))
def test_a_bad_message_is_rejected_alone_and_quarantined(
    case: str, client: httpx.Client, db_url: str
) -> None:
    bad, field = BAD_MESSAGES[case]
    key = case.replace(" ", "-")
    tagged = bad.replace("{", f'{{"messageId":"{key}-bad",', 1)
    body = '{"batch":[' + ",".join([_good(f"{key}-0"), tagged, _good(f"{key}-2")]) + "]}"
    response = client.post("/v1/batch", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["success"] is True
    assert [(r["index"], r["field"], r["messageId"]) for r in answer["rejected"]] == [
        (1, field, f"{key}-bad")
    ]
    stored = {r["message_id"] for r in _rows(db_url, events, events.c.message_id.like(f"{key}-%"))}
    assert stored == {f"{key}-0", f"{key}-2"}
    kept = _rows(db_url, quarantine, quarantine.c.message_id == f"{key}-bad")
    assert [(r["message_index"], r["field"]) for r in kept] == [(1, field)]


def test_a_single_message_endpoint_refuses_with_400_and_quarantines(
    client: httpx.Client, db_url: str
) -> None:
    response = client.post(
        "/v1/track",
        json={
            "userId": "u",
            "event": "E",
            "messageId": "single-bad",
            "timestamp": "0001-01-01T00:00:00+01:00",
        },
    )
    assert response.status_code == 400
    assert set(response.json()) == {"code", "message", "details"}
    assert "timestamp" in response.json()["message"]
    assert len(_rows(db_url, quarantine, quarantine.c.message_id == "single-bad")) == 1


def test_huge_integer_ids_in_messages_are_text(client: httpx.Client, db_url: str) -> None:
    body = (
        '{"batch":[{"type":"track","userId":100000000000000000000000000000,"event":"E",'
        '"messageId":"huge-1"},{"type":"group","userId":"u","groupId":18446744073709551615,'
        '"messageId":"huge-2","traits":{"name":18446744073709551615}}]}'
    )
    response = client.post("/v1/batch", content=body, headers={"content-type": "application/json"})
    assert response.json() == {"success": True}
    assert len(_rows(db_url, events, events.c.message_id.like("huge-%"))) == 2


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("path", "status", "where"),
    [
        ("/v1/reports/funnel?tz=Nowhere/Land", 400, "tz"),
        ("/v1/reports/channels?tz=localtime", 400, "tz"),
        ("/v1/reports/funnel?since=0001-01-01T00:00:00%2B01:00", 400, "since"),
        ("/v1/reports/cohorts?until=9999-12-31T23:59:59-01:00", 400, "until"),
        ("/v1/reports/volume?since=0001-01-01", 400, "since"),
        ("/v1/reports/open-mqls?until=9999-12-31", 400, "until"),
        ("/v1/persons?since=0001-01-01T00:00:00%2B01:00", 400, "since"),
        (f"/v1/persons?cursor={_cursor('9999-12-31T23:59:59-01:00|1')}", 400, "cursor"),
        (
            f"/v1/persons?cursor={_cursor('2026-01-01T00:00:00|99999999999999999999')}",
            400,
            "cursor",
        ),
        ("/v1/persons/99999999999999999999", 422, "person_id"),
        ("/v1/accounts/9223372036854775808", 422, "account_id"),
    ],
)
def test_bad_query_parameters_answer_in_the_error_shape(
    path: str, status: int, where: str, client: httpx.Client
) -> None:
    client.post("/v1/batch", json={"batch": [_reported_message()]})  # data to report on
    response = client.get(path)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "details"}
    assert where in response.text


def _reported_message() -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": "reported",
        "messageId": "reported-1",
        "traits": {"email": "ada@northwind.io", "title": "VP Marketing"},
    }


def test_rep_capacity_that_would_overflow_its_column_is_refused(client: httpx.Client) -> None:
    assert client.put("/v1/teams/emea", json={}).status_code == 200
    for capacity in (2**63, 2**31):
        response = client.put("/v1/reps/ann", json={"team": "emea", "capacity_per_day": capacity})
        assert response.status_code == 422, response.text
        assert response.json()["details"][0]["loc"] == ["body", "capacity_per_day"]
    response = client.put("/v1/reps/ann", json={"team": "emea", "capacity_per_day": 2**31 - 1})
    assert response.status_code == 200
    response = client.post(
        "/v1/reps/ann/absences",
        json={"starts_at": "0001-01-01T00:00:00+01:00", "ends_at": "2026-12-01T00:00:00Z"},
    )
    assert response.status_code == 422
    assert response.json()["details"][0]["loc"] == ["body", "starts_at"]


def test_feedback_dated_year_1_is_refused(client: httpx.Client, db_url: str) -> None:
    client.post("/v1/identify", json={"userId": "fb", "messageId": "fb-1"})
    person_id = _rows(db_url, events, events.c.message_id == "fb-1")[0]["person_id"]
    for at in ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00"):
        response = client.post(
            f"/v1/persons/{person_id}/feedback", json={"action": "touch", "at": at}
        )
        assert response.status_code == 422, response.text
        assert response.json()["details"][0]["loc"] == ["body", "at"]
    response = client.post("/v1/persons/99999999999999999999/feedback", json={"action": "touch"})
    assert response.status_code == 422


def test_the_server_logged_no_unexpected_error(server: LocalServer) -> None:
    assert "Traceback" not in Path(server.log).read_text()
