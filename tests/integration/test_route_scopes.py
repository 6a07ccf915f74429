"""Every route declares its scope, and refuses what it should: a table over ``app.routes``.

A route added without a scope dependency fails here, unless it is on the short public list
below. For every other route and method, a real server (``mql serve`` on a SQLite file) must
answer
401 to no key, to unknown keys, to a revoked and to an expired key, and 403 to a valid key
of every scope that is not enough; the key that is enough must get past (any answer but
401/403). Keys are presented the way each route reads them: headers for the API, the
session cookie for the dashboard; both are sent every time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

from mqlengine.api.app import create_app
from mqlengine.api.auth import SCOPE_ATTRIBUTE, session_secret
from mqlengine.dashboard.routes import COOKIE, _sign
from mqlengine.services.keys import SCOPES, KeyHasher, create_key, create_session, revoke_key
from mqlengine.settings import Settings
from mqlengine.wiring import Wiring
from support.localserver import LocalServer, local_server
from support.paths import EXAMPLE

pytestmark = pytest.mark.slow
SECRET = "route-scopes-installation-secret"

# (path, methods) that need no key: liveness, the API's docs, the login form, static files.
PUBLIC: dict[str, set[str]] = {
    "/healthz": {"GET"},
    "/openapi.json": {"GET", "HEAD"},
    "/docs": {"GET", "HEAD"},
    "/docs/oauth2-redirect": {"GET", "HEAD"},
    "/redoc": {"GET", "HEAD"},
    "/login": {"GET", "POST"},
    "/logout": {"POST"},
    "/static/{name}": {"GET"},
}
# which scopes satisfy a declared scope (admin implies read and feedback, never write)
SATISFIES = {
    "write": {"write"},
    "read": {"read", "admin"},
    "feedback": {"feedback", "admin"},
    "admin": {"admin"},
}


@dataclass
class Creds:
    key: str
    cookie: str | None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass
class Endpoint:
    path: str
    methods: set[str]
    scopes: set[str]  # declared by its dependencies (with the router's and the include's)


def endpoints(app: FastAPI) -> list[Endpoint]:
    """Every route of the app, routers included, with what its dependencies declare."""
    found: list[Endpoint] = []
    for route in iter_route_contexts(app.routes):
        assert not isinstance(route.original_route, Mount), (
            f"mount {route.path}: a mount hides its routes from this test"
        )
        scopes: set[str] = set()
        dependant = getattr(route, "dependant", None)
        stack = [dependant] if dependant is not None else []
        while stack:
            current = stack.pop()
            scope = getattr(current.call, SCOPE_ATTRIBUTE, None)
            if scope is not None:
                scopes.add(scope)
            stack.extend(current.dependencies)
        found.append(Endpoint(str(route.path), set(route.methods or ()), scopes))
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


Setup = tuple[FastAPI, dict[str, Any], LocalServer]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """The app's routes (built in-process, not started), keys of every kind in its store,
    a session per key, and the same app running as a real server."""
    tmp: Path = tmp_path_factory.mktemp("scopes")
    url = f"sqlite:///{tmp / 'scopes.db'}"
    eng = Wiring(Settings(url, EXAMPLE, secret_key=SECRET))
    eng.definition()
    app = create_app(eng, write_keys=["env-write-key"])
    signing = session_secret(SECRET)
    now = datetime.now(UTC)
    hasher = KeyHasher(None)
    made: dict[str, Any] = {}
    with eng.db.begin() as c:
        for scope in SCOPES:
            made[scope] = create_key(c, hasher, scopes=[scope], name=f"only-{scope}", now=now)
        made["revoked"] = create_key(c, hasher, scopes=list(SCOPES[1:]), name="gone", now=now)
        revoke_key(c, made["revoked"].key_id, now=now)
        made["expired"] = create_key(
            c,
            hasher,
            scopes=list(SCOPES[1:]),
            name="old",
            now=now - timedelta(days=2),
            expires_at=now - timedelta(days=1),
        )
        creds: dict[str, Creds] = {}
        for label, key in made.items():
            token, _ = create_session(c, key.key_id, now=now, address=None)
            cookie = f"{token}.{_sign(signing, token)}"
            creds[label] = Creds(key.secret, cookie)
    creds["unknown"] = Creds("mql_0123456789ab_" + "x" * 43, "nosuchtoken.badsignature")
    creds["garbage"] = Creds("not-a-key", "garbage")
    eng.close()
    with local_server(
        url,
        EXAMPLE,
        write_key="env-write-key",
        log=tmp / "server.log",
        env={"MQL_SECRET_KEY": SECRET},
        # hundreds of refused keys from one address: this test is about scopes, not limits
        extra_args=("--rate-auth-failures", "0", "--rate-read-per-address", "0"),
    ) as server:
        yield app, creds, server


def call(client: httpx.Client, method: str, path: str, creds: Creds | None) -> int:
    headers = creds.headers() if creds else {}
    client.cookies.clear()
    if creds is not None and creds.cookie is not None:
        client.cookies.set(COOKIE, creds.cookie)
    kwargs: dict[str, Any] = {"headers": headers}
    if method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = {}
    return client.request(method, path, **kwargs).status_code


def test_every_route_declares_a_scope_or_is_public(setup: Setup) -> None:
    app, _, _ = setup
    seen_public: set[str] = set()
    missing: list[str] = []
    for route in endpoints(app):
        if route.path in PUBLIC:
            assert route.methods <= PUBLIC[route.path], (route.path, route.methods)
            seen_public.add(route.path)
            continue
        if len(route.scopes) != 1:
            missing.append(f"{sorted(route.methods)} {route.path}: {sorted(route.scopes)}")
    assert missing == [], f"routes without exactly one declared scope: {missing}"
    assert seen_public == set(PUBLIC), "the public list names routes that no longer exist"


def test_every_route_refuses_missing_wrong_and_insufficient_keys(setup: Setup) -> None:
    app, creds, server = setup
    checked = 0
    wrong: list[str] = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for route in endpoints(app):
            if route.path in PUBLIC:
                continue
            (scope,) = route.scopes
            path = concrete(route.path)
            for method in sorted(route.methods):
                expect: list[tuple[str, Creds | None, set[int]]] = [
                    ("no key", None, {401}),
                    ("unknown key", creds["unknown"], {401}),
                    ("malformed key", creds["garbage"], {401}),
                    ("revoked key", creds["revoked"], {401}),
                    ("expired key", creds["expired"], {401}),
                ]
                for other in SCOPES:
                    if other not in SATISFIES[scope]:
                        expect.append((f"{other} key", creds[other], {403}))
                for label, given, statuses in expect:
                    status = call(client, method, path, given)
                    if status not in statuses:
                        wrong.append(f"{method} {route.path} with {label}: {status}")
                for enough in SATISFIES[scope]:
                    status = call(client, method, path, creds[enough])
                    if status in (401, 403):
                        wrong.append(f"{method} {route.path} refused a {enough} key: {status}")
                checked += 1
    assert wrong == [], "\n".join(wrong)
    assert checked >= 30  # ingest, persons, reports, feedback, reps, keys, audit, dashboard


def test_ingest_accepts_the_env_write_key_and_refuses_body_keys_without_the_scope(
    setup: Setup,
) -> None:
    _, creds, server = setup
    message = {"anonymousId": "a-1", "event": "Viewed", "messageId": "m-1"}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        ok = client.post("/v1/track", json=message, auth=("env-write-key", ""))
        assert ok.status_code == 200, ok.text
        stored = client.post("/v1/track", json={**message, "writeKey": creds["write"].key})
        assert stored.status_code == 200, stored.text
        as_reader = client.post("/v1/track", json={**message, "writeKey": creds["read"].key})
        assert as_reader.status_code == 403
        assert as_reader.json()["code"] == "forbidden"
        revoked = client.post("/v1/track", json={**message, "writeKey": creds["revoked"].key})
        assert revoked.status_code == 401
