"""The app's web protections, as ASGI middleware (outermost first):

* :class:`SecurityHeaders` — every response says ``Referrer-Policy: no-referrer``,
  ``X-Frame-Options: DENY`` with CSP ``frame-ancestors 'none'``, ``nosniff``, and
  ``Cache-Control: no-store`` unless it set its own (the dashboard's static assets do):
  persons, reports and pages carry personal data.
* :class:`IngestCors` — CORS for the ingest endpoints only, for the configured origins only
  (Starlette's ``CORSMiddleware``); off without origins.
* :class:`BodyTimeout` — the request body must arrive within a bounded time, else ``408``
  and the connection is closed (the header phase is bounded by the server,
  :mod:`mqlengine.api.server`).
* :class:`Guard` — rate limits per key and per client address (:mod:`mqlengine.api.ratelimit`)
  and, on the ingest endpoints, the write key of an ``Authorization`` header is checked
  before a byte of the body is read. Every ``401`` costs the client address one of its
  failed authentications; an address out of them gets ``429`` until it has waited.

Errors are the API's JSON ``{code, message, details}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mqlengine.api.auth import key_from_header, presented_key, unauthorized
from mqlengine.api.limits import ApiError
from mqlengine.api.ratelimit import RateLimits
from mqlengine.errors import ConfigError
from mqlengine.ingest.messages import TYPES
from mqlengine.services.keys import KeyVerifier

INGEST_PATHS = frozenset(f"/v1/{name}" for name in ("batch", *TYPES))
UNLIMITED_PREFIXES = ("/static/",)
UNLIMITED_PATHS = frozenset({"/healthz"})
SECURITY_HEADERS = (
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
)
# What the browser SDKs send: RudderStack's JavaScript SDK uses Basic auth, a JSON
# content type and an AnonymousId header; Segment's analytics.js sends text/plain with
# the write key in the body (no preflight at all).
CORS_HEADERS = ("authorization", "content-type", "anonymousid", "content-encoding")


def error_json(error: ApiError) -> JSONResponse:
    return JSONResponse(
        {"code": error.code, "message": error.message, "details": error.details},
        status_code=error.status,
        headers=error.headers,
    )


def client_address(scope: Scope) -> str:
    """The client's address as the server saw it (a trusted proxy's ``X-Forwarded-For``
    already applied by the server)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def is_ingest(scope: Scope) -> bool:
    return scope.get("method") == "POST" and scope.get("path") in INGEST_PATHS


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = str(scope.get("path", "")).startswith(UNLIMITED_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
                if b"cache-control" not in present and not cacheable:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def exact_origin(origin: str) -> str:
    """``scheme://host[:port]`` as browsers send it in ``Origin``; no wildcard, no path."""
    text = origin.strip().rstrip("/")
    parts = urlsplit(text)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or "*" in text
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username
    ):
        raise ConfigError(
            f"CORS origin {origin!r} is not an exact origin such as https://www.example.com "
            "(scheme and host, no path, no wildcard)"
        )
    return text.lower()


class IngestCors:
    """Starlette's CORS handling, for the ingest endpoints and the given exact origins."""

    def __init__(self, app: ASGIApp, origins: Iterable[str] = ()) -> None:
        self.app = app
        allowed = [exact_origin(o) for o in origins if o.strip()]
        self.origins = tuple(allowed)
        self.cors: CORSMiddleware | None = (
            CORSMiddleware(
                app,
                allow_origins=allowed,
                allow_methods=["POST"],
                allow_headers=list(CORS_HEADERS),
                expose_headers=["Retry-After"],
                max_age=600,
            )
            if allowed
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.cors is not None and scope["type"] == "http" and scope["path"] in INGEST_PATHS:
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class BodyTimeout:
    """``408`` and ``Connection: close`` when the body is not complete within ``seconds``
    of the request's headers (whatever the endpoint does with the error)."""

    def __init__(self, app: ASGIApp, seconds: float = 10.0) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.seconds
        complete = False
        timed_out = False
        started = False

        async def timed_receive() -> Message:
            nonlocal complete, timed_out
            if complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                raise ApiError(408, "request_timeout", "request body timed out") from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                return  # the 408 below answers instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except Exception:
            if not timed_out:
                raise
        if timed_out and not started:
            refusal = ApiError(
                408,
                "request_timeout",
                f"the request body did not arrive within {self.seconds:g} s",
                {"timeout_seconds": self.seconds},
                headers={"Connection": "close"},
            )
            await error_json(refusal)(scope, receive, send)


async def _key_id(request: Request, key: str) -> str | None:
    """The id of a presented key, None when no such key is valid."""
    verifier: KeyVerifier = request.app.state.keys
    known, principal = verifier.cached(key)
    if not known:
        principal = await run_in_threadpool(verifier.resolve, key)
    return None if principal is None else principal.key_id


class Guard:
    """Rate limits and the write key before the body (see the module's docstring).

    A key in the headers is verified with the app's :class:`KeyVerifier`
    (``app.state.keys``: from its cache on the hot path) and its id names the key's bucket;
    what the key may do is the routes' own check (their scope dependencies)."""

    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if (
            scope["type"] != "http"
            or path in UNLIMITED_PATHS
            or path.startswith(UNLIMITED_PREFIXES)
            or scope.get("method") == "OPTIONS"
        ):
            await self.app(scope, receive, send)
            return
        limits = self.limits
        address = client_address(scope)
        request = Request(scope)
        try:
            limits.check_auth_failures(address)
            if is_ingest(scope):
                key = key_from_header(request.headers.get("authorization"))
                key_id = None if key is None else await _key_id(request, key)
                if key is not None and key_id is None:
                    raise unauthorized()
                limits.check_ingest(key_id, address)
            else:
                key = presented_key(request)
                key_id = None if key is None else await _key_id(request, key)
                limits.read(key_id, address)  # an unknown key: the route answers 401
        except ApiError as refusal:
            if refusal.status == 401:
                limits.auth_failed(address)
            await error_json(refusal)(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                limits.auth_failed(address)
            await send(message)

        await self.app(scope, receive, counting_send)
