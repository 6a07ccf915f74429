"""Privacy over the wire, against a real `mql serve` on SQLite and PostgreSQL: export and
erase by HTTP, an erasure by another process (`mql erase`) that the server's writer
notices, consent headers (Sec-GPC honoured by the example definition, DNT not), and an
access log that names no e-mail address and no key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from mqlengine.store.db import Database
from mqlengine.store.tables import events
from support.localserver import local_server
from support.paths import EXAMPLE

pytestmark = pytest.mark.slow

EMAIL = "grace.hopper@example-clinic.org"
KEY = "wk-privacy-4417"


def post(url: str, messages: list[dict[str, Any]], headers: dict[str, str] | None = None) -> None:
    answer = httpx.post(
        f"{url}/v1/batch", json={"batch": messages}, auth=(KEY, ""), headers=headers or {}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"success": True}


def person_by_email(url: str, key: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{url}/v1/persons", params={"email": EMAIL}, headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status_code == 200, answer.text
    (found,) = answer.json()["data"]
    return found  # type: ignore[no-any-return]


def stored_event(database_url: str, message_id: str) -> Any:
    database = Database(database_url)
    try:
        with database.read() as c:
            return c.execute(select(events).where(events.c.message_id == message_id)).one()
    finally:
        database.dispose()


def test_export_erase_and_consent_over_http(migrated_database_url: str, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with local_server(
        migrated_database_url,
        EXAMPLE,
        write_key=KEY,
        log=log,
        extra_args=("--access-log", "--log-level", "info"),
    ) as server:
        url = server.url
        auth = {"Authorization": f"Bearer {server.admin_key}"}  # erase and export: admin
        post(url, [{"userId": "gh-1", "type": "identify", "traits": {"email": EMAIL}}])
        visit = {
            "type": "page",
            "userId": "gh-1",
            "properties": {"path": "/pricing", "title": "Pricing", "q": "free text", "n": 3},
            "context": {"ip": "198.51.100.23", "userAgent": "Mozilla/5.0"},
        }
        post(url, [{**visit, "messageId": "gpc-visit"}], {"Sec-GPC": "1"})
        post(url, [{**visit, "messageId": "dnt-visit"}], {"DNT": "1"})

        gpc = stored_event(migrated_database_url, "gpc-visit")
        assert gpc.consent_withdrawn is True
        assert gpc.properties == {"path": "/pricing", "n": 3}
        assert "ip" not in gpc.context and "userAgent" not in gpc.context
        dnt = stored_event(migrated_database_url, "dnt-visit")  # not honoured by the example
        assert dnt.consent_withdrawn is False and dnt.context["ip"] == "198.51.100.23"

        first = person_by_email(url, server.admin_key)
        detail = httpx.get(f"{url}/v1/persons/{first['id']}", headers=auth).json()
        assert "earn no intent points" in " ".join(detail["consent"]["notes"])
        with httpx.Client(base_url=url) as browser:  # the dashboard says it too
            browser.post("/login", data={"key": server.read_key})
            page = browser.get(f"/persons/{first['id']}")
        assert page.status_code == 200 and "earn no intent points" in page.text
        exported = httpx.get(f"{url}/v1/persons/{first['id']}/export", headers=auth)
        assert exported.status_code == 200
        data = exported.json()
        assert data["person"]["email"] == EMAIL
        assert {e["message_id"] for e in data["events"]} >= {"gpc-visit", "dnt-visit"}
        assert httpx.get(f"{url}/v1/persons/{first['id']}/export").status_code == 401
        assert httpx.delete(f"{url}/v1/persons/{first['id']}").status_code == 401
        for weaker in (KEY, server.read_key):  # the write key and a read key may not
            bearer = {"Authorization": f"Bearer {weaker}"}
            path = f"{url}/v1/persons/{first['id']}"
            assert httpx.delete(path, headers=bearer).status_code == 403
            assert httpx.get(f"{path}/export", headers=bearer).status_code == 403
        # a reader's key in the URL and an e-mail in a query: both must stay out of the log
        httpx.get(f"{url}/v1/persons", params={"email": EMAIL, "key": KEY})

        # another process erases: the server's writer must forget what it remembered
        erased = subprocess.run(
            [
                sys.executable,
                "-m",
                "mqlengine",
                "--database",
                migrated_database_url,
                "--definition",
                str(EXAMPLE),
                "erase",
                EMAIL,
                "--yes",
            ],
            capture_output=True,
            text=True,
            env={**os.environ},
            timeout=60,
        )
        assert erased.returncode == 0, erased.stderr
        assert "erased" in erased.stdout
        post(url, [{"userId": "gh-1", "type": "track", "event": "Webinar Attended"}])
        post(url, [{"userId": "gh-1", "type": "identify", "traits": {"email": EMAIL}}])
        second = person_by_email(
            url, server.admin_key
        )  # a fresh person (SQLite may give it the same id)
        again = httpx.get(f"{url}/v1/persons/{second['id']}/export", headers=auth).json()
        assert {e["name"] for e in again["events"]} == {"Webinar Attended", "Identify"}

        # and an erasure through the API itself
        answer = httpx.delete(f"{url}/v1/persons/{second['id']}", headers=auth)
        assert answer.status_code == 200, answer.text
        record = answer.json()
        assert record["counts"]["events"] == 2
        assert record["actor"] == "MQL_ADMIN_KEYS#1"  # the key's name, never the key
        audit = httpx.get(f"{url}/v1/audit", headers=auth).json()["entries"]
        actions = [entry["action"] for entry in audit]
        assert "person.erase" in actions and "person.export" in actions
        assert EMAIL not in str(audit)
        assert EMAIL not in answer.text
        assert httpx.get(f"{url}/v1/persons/{second['id']}", headers=auth).status_code == 404
        post(url, [{"userId": "gh-1", "type": "identify", "traits": {"email": EMAIL}}])
        third = person_by_email(url, server.admin_key)["id"]
        last = httpx.get(f"{url}/v1/persons/{third}/export", headers=auth).json()
        assert [e["name"] for e in last["events"]] == ["Identify"]

    text = log.read_text()
    assert "GET /v1/persons" in text and "DELETE /v1/persons" in text  # the access log ran
    assert EMAIL not in text and "grace.hopper" not in text
    assert KEY not in text and server.admin_key not in text
