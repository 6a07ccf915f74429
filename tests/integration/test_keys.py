"""API keys for real: hashing, the verifier's cache, revocation and expiry, last use, the
CLI (`mql keys`, `mql audit`), and a running server that stops accepting a revoked key
within seconds and, in server-side-only mode, ingests only from server-side keys."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from mqlengine.cli.app import app as cli
from mqlengine.errors import ValidationError
from mqlengine.services.audit import list_audit, record_audit
from mqlengine.services.keys import (
    KeyHasher,
    KeyVerifier,
    create_key,
    list_keys,
    parse_key,
    revoke_key,
)
from mqlengine.store.db import Database
from mqlengine.store.tables_access import api_keys
from support.localserver import local_server
from support.paths import EXAMPLE

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


Verifiers = Callable[..., KeyVerifier]


@pytest.fixture
def verifiers(db: Database) -> Iterator[Verifiers]:
    """Makes key verifiers on the test's database; each one's background writer finishes
    before the database is disposed of."""
    made: list[KeyVerifier] = []

    def make(*, secret: str | None = None, ttl: float = 5.0) -> KeyVerifier:
        made.append(
            KeyVerifier(
                db,
                KeyHasher(secret),
                env_keys={"write": ["w-env"], "read": ["r-env"], "admin": ["a-env", "r-env"]},
                clock=lambda: NOW,
                ttl=ttl,
            )
        )
        return made[-1]

    yield make
    for one in made:
        one.close()


def test_hash_is_keyed_salted_and_never_the_secret(db: Database, verifiers: Verifiers) -> None:
    with db.begin() as c:
        made = create_key(c, KeyHasher(None), scopes=["read"], name="bi", now=NOW)
        peppered = create_key(c, KeyHasher("s3cret"), scopes=["read"], name="p", now=NOW)
    key_id, secret = parse_key(made.secret) or ("", "")
    assert key_id == made.key_id and len(secret) >= 43  # 256 random bits
    with db.read() as c:
        stored = dict(c.execute(select(api_keys.c.key_id, api_keys.c.secret_hash)).all())
    assert secret not in stored[made.key_id]
    assert stored[made.key_id].startswith("hmac-sha256$")
    assert stored[peppered.key_id].startswith("hmac-sha256+pepper$")
    # a peppered key needs the installation secret it was made under
    assert verifiers(secret="s3cret").resolve(peppered.secret) is not None
    assert verifiers().resolve(peppered.secret) is None
    assert verifiers(secret="other").resolve(peppered.secret) is None
    # keys made without a pepper keep working once one is configured
    assert verifiers(secret="s3cret").resolve(made.secret) is not None


def test_scopes_are_checked_and_admin_implies_read_and_feedback(
    db: Database, verifiers: Verifiers
) -> None:
    with db.begin() as c:
        with pytest.raises(ValidationError, match="unknown scope 'reader'"):
            create_key(c, KeyHasher(None), scopes=["reader"], now=NOW)
        with pytest.raises(ValidationError, match="at least one scope"):
            create_key(c, KeyHasher(None), scopes=[], now=NOW)
        with pytest.raises(ValidationError, match="no other scope"):
            create_key(c, KeyHasher(None), scopes=["write", "read"], now=NOW)
        with pytest.raises(ValidationError, match="not in the future"):
            create_key(c, KeyHasher(None), scopes=["read"], now=NOW, expires_at=NOW)
        admin = create_key(c, KeyHasher(None), scopes=["admin"], now=NOW)
    principal = verifiers().resolve(admin.secret)
    assert principal is not None
    assert principal.scopes == {"admin", "read", "feedback"} and not principal.allows("write")
    env = verifiers()
    assert env.resolve("w-env").scopes == {"write"}  # type: ignore[union-attr]
    # one key under two variables has both scopes
    assert env.resolve("r-env").scopes == {"admin", "read", "feedback"}  # type: ignore[union-attr]
    assert env.resolve("nope") is None and env.resolve(None) is None


def test_cache_revocation_expiry_and_last_use(db: Database, verifiers: Verifiers) -> None:
    with db.begin() as c:
        made = create_key(c, KeyHasher(None), scopes=["write"], name="site", now=NOW)
        expiring = create_key(
            c, KeyHasher(None), scopes=["read"], now=NOW - timedelta(days=1), expires_at=NOW
        )
    keys = verifiers(ttl=0.3)
    assert keys.cached(made.secret) == (False, None)  # needs one read of the store
    principal = keys.resolve(made.secret)
    assert principal is not None and principal.name == "site"
    assert keys.cached(made.secret) == (True, principal)  # then the cache answers
    wrong = made.secret[:-4] + "AAAA"
    assert keys.cached(wrong) == (True, None) and keys.resolve(wrong) is None
    assert keys.resolve(expiring.secret) is None  # expires_at == now: expired
    with db.begin() as c:
        revoke_key(c, made.key_id, now=NOW)
    time.sleep(0.35)
    assert keys.resolve(made.secret) is None  # within the cache's lifetime
    # last use is written in the background, at most once a minute per key
    keys.close()
    with db.read() as c:
        rows = {r["key_id"]: r for r in list_keys(c, now=NOW)}
    assert rows[made.key_id]["last_used_at"] == NOW
    assert rows[made.key_id]["status"] == "revoked"
    assert rows[expiring.key_id]["status"] == "expired"
    assert "secret_hash" not in rows[made.key_id]


def test_verification_from_the_cache_is_cheap(db: Database, verifiers: Verifiers) -> None:
    with db.begin() as c:
        made = create_key(c, KeyHasher("pepper"), scopes=["write"], now=NOW)
    keys = verifiers(secret="pepper")
    assert keys.resolve(made.secret) is not None
    rounds = 20_000
    started = time.perf_counter()
    for _ in range(rounds):
        keys.cached(made.secret)
    per_call = (time.perf_counter() - started) / rounds
    print(f"cached verification: {per_call * 1e6:.1f} µs")
    assert per_call < 0.001  # far below a millisecond: no slow hash on the hot path


def test_record_audit_and_list(db: Database) -> None:
    with db.begin() as c:
        record_audit(
            c, actor="ops", key_id="k1", action="rep.put", target="dee", details={"a": 1}, at=NOW
        )
        record_audit(
            c,
            actor="ana",
            key_id=None,
            action="feedback.touch",
            target="person:1",
            details=None,
            address="10.0.0.1",
            at=NOW + timedelta(minutes=1),
        )
    with db.read() as c:
        entries = list_audit(c)
        only = list_audit(c, action="rep.put")
    assert [e["actor"] for e in entries] == ["ana", "ops"]
    assert entries[0]["address"] == "10.0.0.1"
    assert only[0]["details"] == {"a": 1} and only[0]["key_id"] == "k1"


# -- the CLI -------------------------------------------------------------------------------

runner = CliRunner()


def mql(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    monkeypatch.setenv("MQL_DATABASE_URL", url)
    monkeypatch.delenv("MQL_SECRET_KEY", raising=False)
    return url


def test_cli_create_list_revoke_and_audit(cli_db: str) -> None:
    code, out, err = mql(
        "keys", "create", "--scope", "read,feedback", "--name", "ana", "--expires", "30d"
    )
    assert code == 0, err
    key = out.strip()
    assert key.startswith("mql_") and "\n" not in key
    assert "shown only now" in err
    key_id = (parse_key(key) or ("", ""))[0]
    code, out, _ = mql("keys", "list", "--json")
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["key_id"] == key_id and row["scopes"] == ["read", "feedback"]
    assert row["status"] == "active" and row["expires_at"] is not None
    assert "hash" not in out and (parse_key(key) or ("", ""))[1] not in out
    code, table, _ = mql("keys", "list")
    assert code == 0 and "1 key(s)" in table and key not in table
    code, _, err = mql("keys", "create", "--scope", "superuser")
    assert code == 4 and "unknown scope 'superuser'" in err
    code, _, err = mql("keys", "create", "--scope", "read", "--expires", "someday")
    assert code == 2 and "--expires" in err
    code, out, _ = mql("keys", "revoke", key_id)
    assert code == 0 and f"revoked key {key_id}" in out
    code, _, err = mql("keys", "revoke", "000000000000")
    assert code == 5 and "no key" in err
    code, out, _ = mql("audit", "--json")
    actions = [json.loads(line)["action"] for line in out.splitlines()]
    assert actions == ["key.revoke", "key.create"]
    code, table, _ = mql("audit")
    assert code == 0 and "audit log, newest first" in table


# -- a running server ----------------------------------------------------------------------


def _migrated(url: str) -> None:
    database = Database(url)
    database.migrate()
    database.dispose()


def _create(url: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "mqlengine", "--database", url, "keys", "create", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


@pytest.mark.slow
def test_a_revoked_key_stops_working_within_seconds(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    with local_server(url, EXAMPLE, log=tmp_path / "server.log") as server:
        key = _create(url, "--scope", "read", "--name", "analyst")
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{server.url}/v1/reports/funnel", headers=headers).status_code == 200
        key_id = (parse_key(key) or ("", ""))[0]
        subprocess.run(
            [sys.executable, "-m", "mqlengine", "--database", url, "keys", "revoke", key_id],
            check=True,
            capture_output=True,
            timeout=60,
        )
        revoked_at = time.monotonic()
        while httpx.get(f"{server.url}/v1/reports/funnel", headers=headers).status_code == 200:
            assert time.monotonic() - revoked_at < 10, "the revoked key still works"
            time.sleep(0.2)
        took = time.monotonic() - revoked_at
        print(f"revocation took effect after {took:.1f} s")
        answer = httpx.get(f"{server.url}/v1/reports/funnel", headers=headers)
        assert answer.status_code == 401 and answer.json()["code"] == "unauthorized"


@pytest.mark.slow
def test_server_side_only_ingests_only_from_server_side_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sso.db'}"
    _migrated(url)
    server_key = _create(url, "--scope", "write", "--server-side", "--name", "backend")
    browser_key = _create(url, "--scope", "write", "--name", "site")
    message = {"userId": "u-1", "event": "Signed Up"}
    with local_server(
        url, EXAMPLE, log=tmp_path / "server.log", extra_args=("--server-side-only",)
    ) as server:
        track = f"{server.url}/v1/track"
        assert httpx.post(track, json=message, auth=(server_key, "")).status_code == 200
        refused = httpx.post(track, json=message, auth=(browser_key, ""))
        assert refused.status_code == 403 and "server-side" in refused.json()["message"]
        env_key = httpx.post(track, json={**message, "writeKey": server.write_key})
        assert env_key.status_code == 403
        from_a_page = httpx.post(
            track, json=message, auth=(server_key, ""), headers={"Origin": "https://example.com"}
        )
        assert from_a_page.status_code == 403 and "browsers" in from_a_page.json()["message"]
    # without the mode, the browser key is fine
    with local_server(url, EXAMPLE, log=tmp_path / "server2.log") as server:
        track = f"{server.url}/v1/track"
        assert httpx.post(track, json=message, auth=(browser_key, "")).status_code == 200


@pytest.mark.slow
def test_serve_starts_with_only_a_stored_write_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stored.db'}"
    _migrated(url)
    key = _create(url, "--scope", "write", "--name", "site")
    environment = {"MQL_READ_KEYS": "", "MQL_ADMIN_KEYS": ""}
    with local_server(url, EXAMPLE, write_key="", log=tmp_path / "s.log", env=environment) as s:
        ok = httpx.post(f"{s.url}/v1/track", json={"userId": "u", "event": "E"}, auth=(key, ""))
        assert ok.status_code == 200


def test_cli_admin_commands_are_audited(cli_db: str) -> None:
    code, _, err = mql("reps", "team", "emea", "--manager-email", "lead@example.com")
    assert code == 0, err
    code, _, err = mql("reps", "set", "dee", "--team", "emea", "--tz", "Europe/Berlin")
    assert code == 0, err
    code, out, _ = mql("audit", "--json")
    entries = [json.loads(line) for line in out.splitlines()]
    assert [(e["action"], e["target"]) for e in entries] == [
        ("rep.put", "dee"),
        ("team.put", "emea"),
    ]
    assert entries[0]["actor"].startswith("cli") and entries[0]["key_id"] is None


@pytest.mark.slow
def test_revoking_a_key_ends_its_dashboard_sessions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    _migrated(url)
    key = _create(url, "--scope", "read", "--name", "analyst")
    env = {"MQL_PUBLIC_URL": "https://mql.example.com"}
    with (
        local_server(url, EXAMPLE, log=tmp_path / "server.log", env=env) as server,
        httpx.Client(base_url=server.url, timeout=30) as browser,
    ):
        login = browser.post("/login", data={"key": key})
        assert login.status_code == 303
        cookie = login.headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie  # the public address is https
        assert key not in cookie and (parse_key(key) or ("", ""))[1] not in cookie
        # a browser sends a Secure cookie over https only: carry it by hand over plain http
        session = {"Cookie": cookie.split(";")[0]}
        browser.cookies.clear()
        assert browser.get("/definition", headers=session).status_code == 200
        key_id = (parse_key(key) or ("", ""))[0]
        subprocess.run(
            [sys.executable, "-m", "mqlengine", "--database", url, "keys", "revoke", key_id],
            check=True,
            capture_output=True,
            timeout=60,
        )
        page = browser.get("/definition", headers=session)
        assert page.status_code == 401 and 'id="login"' in page.text
