"""The API's web protections against real `mql serve` processes: security headers, CORS
for the ingest endpoints, rate limits per key and per address (with the real
Retry-After), failed-authentication limits, the write key before the body, and the header
and body timeouts that cut slow clients off."""

from __future__ import annotations

import base64
import math
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from support.localserver import LocalServer, local_server
from support.paths import EXAMPLE

pytestmark = pytest.mark.slow

ORIGIN = "https://www.shop.example"
LIMITED_KEY = "limited-key"  # every key has its own bucket: only this one is spent
OTHER_KEY = "other-key"


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """Small limits and timeouts; loopback is a trusted proxy, so each test picks its
    client addresses with X-Forwarded-For."""
    tmp = tmp_path_factory.mktemp("strict")
    args = (
        "--write-key", LIMITED_KEY,
        "--write-key", OTHER_KEY,
        "--cors-origin", ORIGIN,
        "--trusted-proxy", "127.0.0.1",
        "--rate-ingest-per-key", "10",
        "--rate-ingest-per-address", "1000",
        "--rate-read-per-address", "0.2",
        "--rate-auth-failures", "0.2",
        "--header-timeout", "1",
        "--body-timeout", "1",
    )  # fmt: skip
    with local_server(
        f"sqlite:///{tmp}/web.db", EXAMPLE, log=tmp / "server.log", extra_args=args
    ) as running:
        yield running


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    tmp = tmp_path_factory.mktemp("default")
    with local_server(f"sqlite:///{tmp}/web.db", EXAMPLE, log=tmp / "server.log") as running:
        yield running


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def track(n: int = 0) -> dict[str, object]:
    return {
        "type": "track",
        "anonymousId": f"visitor-{n}",
        "event": "Page Viewed",
        "messageId": f"m-{n}",
    }


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    started = time.monotonic()
    sock.settimeout(limit)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        raise AssertionError(f"still open after {limit} s; got {data!r}") from None
    except ConnectionResetError:
        pass
    return data, time.monotonic() - started


# -- security headers -------------------------------------------------------------------


def test_security_headers_on_every_response(default: LocalServer) -> None:
    key, reader = default.write_key, default.read_key
    with httpx.Client(base_url=default.url, timeout=30) as http:
        responses = {
            "health": http.get("/healthz"),
            "dashboard unauthorised": http.get("/reps"),
            "login": http.post("/login", data={"key": reader}),
            "dashboard": http.get("/"),
            "person": http.get("/v1/persons/1", auth=(reader, "")),
            "persons": http.get("/v1/persons", params={"stage": "mql"}, auth=(reader, "")),
            "report": http.get("/v1/reports/funnel", auth=(reader, "")),
            "ingest": http.post("/v1/track", json=track(), auth=(key, "")),
            "refused": http.post("/v1/track", json=track(), auth=("wrong", "")),
            "unknown route": http.get("/nowhere"),
            "asset": http.get("/static/dashboard.css"),
        }
    for name, response in responses.items():
        assert response.status_code < 500, name
        headers = response.headers
        assert headers["referrer-policy"] == "no-referrer", name
        assert headers["x-frame-options"] == "DENY", name
        assert headers["content-security-policy"] == "frame-ancestors 'none'", name
        assert headers["x-content-type-options"] == "nosniff", name
        if name == "asset":
            assert headers["cache-control"] == "max-age=3600"
        else:
            assert headers["cache-control"] == "no-store", name
    assert responses["dashboard"].status_code == 200
    assert responses["person"].status_code == 404  # nothing stored yet, and still no-store
    assert responses["persons"].status_code == 200


# -- CORS ----------------------------------------------------------------------------------


def preflight(http: httpx.Client, path: str, origin: str) -> httpx.Response:
    """What a browser sends before RudderStack's JavaScript SDK posts an event."""
    return http.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,anonymousid",
        },
    )


def test_cors_for_the_configured_origin_on_ingest_only(strict: LocalServer) -> None:
    with httpx.Client(base_url=strict.url, timeout=30) as http:
        allowed = preflight(http, "/v1/track", ORIGIN)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in allowed.headers["access-control-allow-methods"]
        allowed_headers = allowed.headers["access-control-allow-headers"].lower()
        assert {"authorization", "content-type", "anonymousid"} <= set(
            h.strip() for h in allowed_headers.split(",")
        )
        assert allowed.headers["x-frame-options"] == "DENY"
        batch = preflight(http, "/v1/batch", ORIGIN)
        assert batch.headers["access-control-allow-origin"] == ORIGIN

        other = preflight(http, "/v1/track", "https://evil.example")
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers
        # a sub-domain or another scheme is another origin
        assert (
            "access-control-allow-origin"
            not in preflight(http, "/v1/track", "http://www.shop.example").headers
        )

        # reads are not for browsers of other sites
        persons = preflight(http, "/v1/persons/1", ORIGIN)
        assert "access-control-allow-origin" not in persons.headers

        # the actual request (RudderStack: Basic auth, JSON) carries the header; so does
        # Segment's analytics.js style (text/plain, writeKey in the body)
        sent = http.post(
            "/v1/track",
            content=orjson.dumps(track(1)),
            headers={
                "Origin": ORIGIN,
                "Authorization": basic(OTHER_KEY),
                "Content-Type": "application/json;charset=UTF-8",
            },
        )
        assert sent.status_code == 200, sent.text
        assert sent.headers["access-control-allow-origin"] == ORIGIN
        plain = http.post(
            "/v1/track",
            content=orjson.dumps({**track(2), "writeKey": OTHER_KEY}),
            headers={"Origin": ORIGIN, "Content-Type": "text/plain"},
        )
        assert plain.status_code == 200, plain.text
        assert plain.headers["access-control-allow-origin"] == ORIGIN


def test_cors_is_off_by_default(default: LocalServer) -> None:
    with httpx.Client(base_url=default.url, timeout=30) as http:
        response = preflight(http, "/v1/track", ORIGIN)
        assert "access-control-allow-origin" not in response.headers
        sent = http.post(
            "/v1/track", json=track(3), headers={"Origin": ORIGIN}, auth=(default.write_key, "")
        )
        assert sent.status_code == 200
        assert "access-control-allow-origin" not in sent.headers


# -- rate limits ---------------------------------------------------------------------------


def test_ingest_per_key_gives_the_real_retry_after(strict: LocalServer) -> None:
    """10 events/s per key, burst 20: a 100-event batch passes on a full bucket and leaves
    it 80 in debt, so the next event waits (1 + 80) / 10 = 8.1 s: Retry-After 9."""
    batch = {"batch": [track(100 + n) for n in range(100)]}
    with httpx.Client(base_url=strict.url, auth=(LIMITED_KEY, ""), timeout=30) as http:
        started = time.monotonic()
        assert http.post("/v1/batch", json=batch).status_code == 200
        refused = http.post("/v1/track", json=track(200))
        between = time.monotonic() - started  # at most this much refilled meanwhile
        assert refused.status_code == 429
        body = refused.json()
        assert body["code"] == "rate_limited"
        assert "write key" in body["message"]
        retry = int(refused.headers["retry-after"])
        assert math.ceil(8.1 - between) <= retry <= 9
        assert body["details"] == {"retry_after_seconds": retry}
        assert refused.headers["x-frame-options"] == "DENY"
        # another key is not held back by this one
        other = http.post("/v1/track", json=track(201), auth=(OTHER_KEY, ""))
        assert other.status_code == 200
        time.sleep(retry)
        assert http.post("/v1/track", json=track(202)).status_code == 200


def test_reads_per_client_address_behind_a_trusted_proxy(strict: LocalServer) -> None:
    """0.2 requests/s per address, burst 1; the proxy's X-Forwarded-For tells them apart."""
    with httpx.Client(base_url=strict.url, timeout=30) as http:

        def read(address: str) -> httpx.Response:
            return http.get(
                "/v1/persons/999999",
                headers={"X-Forwarded-For": address, "Authorization": basic(strict.read_key)},
            )

        assert read("198.51.100.1").status_code == 404
        refused = read("198.51.100.1")
        assert refused.status_code == 429
        assert refused.json()["code"] == "rate_limited"
        assert "address" in refused.json()["message"]
        assert 1 <= int(refused.headers["retry-after"]) <= 5
        assert read("198.51.100.2").status_code == 404


def test_forwarded_for_is_ignored_without_a_trusted_proxy(tmp_path: Path) -> None:
    args = ("--rate-read-per-address", "0.2")  # burst 1, then one request per 5 s
    with (
        local_server(
            f"sqlite:///{tmp_path}/web.db", EXAMPLE, log=tmp_path / "s.log", extra_args=args
        ) as server,
        httpx.Client(base_url=server.url, auth=(server.read_key, ""), timeout=30) as http,
    ):
        statuses = [
            http.get(
                "/v1/persons/999999", headers={"X-Forwarded-For": f"203.0.113.{n}"}
            ).status_code
            for n in range(3)
        ]
    assert statuses == [404, 429, 429]  # one address however many it claims to be


def test_failed_authentications_are_slowed_per_address(strict: LocalServer) -> None:
    """0.2 failures/s, burst 2: after two wrong keys, even the right key waits."""
    address = {"X-Forwarded-For": "192.0.2.50"}
    with httpx.Client(base_url=strict.url, timeout=30, headers=address) as http:
        guesses = [
            http.post("/v1/track", json=track(300), auth=(f"guess-{n}", "")).status_code
            for n in range(2)
        ]
        assert guesses == [401, 401]
        blocked = http.post("/v1/track", json=track(301), auth=(OTHER_KEY, ""))
        assert blocked.status_code == 429
        assert "failed authentications" in blocked.json()["message"]
        wait = int(blocked.headers["retry-after"])
        assert 1 <= wait <= 5
        # a wrong read key costs the same; another address is not affected
        other = {"X-Forwarded-For": "192.0.2.51"}
        assert http.get("/v1/persons/1", auth=("guess", ""), headers=other).status_code == 401
        wrong = http.post("/v1/track", json=track(303), auth=("guess", ""), headers=other)
        assert wrong.status_code == 401
        right = http.post("/v1/track", json=track(304), auth=(OTHER_KEY, ""), headers=other)
        assert right.status_code == 429
        time.sleep(wait)
        assert http.post("/v1/track", json=track(302), auth=(OTHER_KEY, "")).status_code == 200


# -- the key before the body -----------------------------------------------------------


def test_wrong_header_key_is_refused_before_the_body_is_sent(strict: LocalServer) -> None:
    """The server answers 401 to the headers of a 500 KB batch without waiting for (or
    reading) a byte of its body; with the right key it waits for the body."""
    head = (
        "POST /v1/batch HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {500 * 1024}\r\nX-Forwarded-For: 192.0.2.60\r\n"
    )
    with connect(strict.url) as sock:
        sock.sendall(f"{head}Authorization: {basic('wrong')}\r\n\r\n".encode())
        sock.settimeout(5)
        answer = b""
        while b'"code":"unauthorized"' not in answer and (chunk := sock.recv(65536)):
            answer += chunk  # headers and body may come in two segments
        assert answer.startswith(b"HTTP/1.1 401"), answer
    with connect(strict.url) as sock:
        sock.sendall(f"{head}Authorization: {basic(OTHER_KEY)}\r\n\r\n".encode())
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(65536)  # waiting for the body
    # and a client that does send the whole 500 KB gets its 401 too
    big = {"batch": [{**track(400 + n), "properties": {"pad": "x" * 330}} for n in range(1100)]}
    body = orjson.dumps(big)
    assert 400 * 1024 < len(body) <= 500 * 1024
    response = httpx.post(
        f"{strict.url}/v1/batch",
        content=body,
        headers={"Content-Type": "application/json", "X-Forwarded-For": "192.0.2.61"},
        auth=("wrong", ""),
        timeout=30,
    )
    assert response.status_code == 401


# -- timeouts ------------------------------------------------------------------------------


def test_dribbled_headers_are_cut_off(strict: LocalServer) -> None:
    """One header byte every 0.2 s: activity does not keep the connection; after the
    1 s header timeout the client gets 408 and the connection is closed."""
    started = time.monotonic()
    with connect(strict.url) as sock:
        sock.sendall(b"POST /v1/track HTTP/1.1\r\nHost: test\r\n")
        sock.settimeout(0.2)
        data = b""
        for _ in range(40):  # up to 8 s
            try:
                sock.sendall(b"X")
                chunk = sock.recv(65536)
                data += chunk
                if not chunk:
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
    elapsed = time.monotonic() - started
    assert elapsed < 4, elapsed
    assert data.startswith(b"HTTP/1.1 408"), data
    assert b'"code": "request_timeout"' in data


def test_an_idle_connection_is_closed(strict: LocalServer) -> None:
    with connect(strict.url) as sock:
        data, elapsed = read_until_closed(sock, 5)
    assert data == b""
    assert elapsed < 4


def test_a_slow_body_gets_408_and_the_connection_is_closed(strict: LocalServer) -> None:
    with connect(strict.url) as sock:
        sock.sendall(
            b"POST /v1/track HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: 200\r\nX-Forwarded-For: 192.0.2.70\r\n"
            + f"Authorization: {basic(OTHER_KEY)}\r\n\r\n".encode()
            + b'{"anonymousId": "slow"'
        )
        data, elapsed = read_until_closed(sock, 5)
    assert elapsed < 4
    assert data.startswith(b"HTTP/1.1 408"), data
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert orjson.loads(body)["code"] == "request_timeout"


def test_an_unread_body_after_a_refusal_is_bounded_too(strict: LocalServer) -> None:
    """A 401 went out before the body; the client then dribbles the body: the connection
    is closed after the body timeout."""
    with connect(strict.url) as sock:
        sock.sendall(
            b"POST /v1/track HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n"
            b"X-Forwarded-For: 192.0.2.80\r\n" + f"Authorization: {basic('wrong')}\r\n\r\n".encode()
        )
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 401")
        started = time.monotonic()
        closed = False
        sock.settimeout(0.2)
        for _ in range(40):
            try:
                sock.sendall(b"x" * 10)
                if sock.recv(65536) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
    assert closed
    assert time.monotonic() - started < 4


def test_normal_requests_still_work_with_short_timeouts(strict: LocalServer) -> None:
    with httpx.Client(
        base_url=strict.url,
        auth=(OTHER_KEY, ""),
        timeout=30,
        headers={"X-Forwarded-For": "192.0.2.90"},
    ) as http:
        for n in range(5):
            assert http.post("/v1/track", json=track(500 + n)).status_code == 200
        time.sleep(0.5)  # keep-alive connection reused after a pause shorter than the timeouts
        assert http.post("/v1/batch", json={"batch": [track(600)]}).status_code == 200


def test_a_wildcard_cors_origin_is_refused_at_start(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "mqlengine",
            "--database", f"sqlite:///{tmp_path}/web.db",
            "--definition", str(EXAMPLE),
            "serve", "--write-key", "k", "--cors-origin", "*",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 8, done.stderr
    assert "exact origin" in done.stderr
