"""Keys and scopes: who may send events, read, record sales feedback or administer.

Every route declares the scope it needs with a dependency, ``Depends(require_scope("read"))``
(a test walks ``app.routes`` and fails for a route without one, unless it is on the short
public list). A key is presented as ``Authorization: Bearer KEY``, as the Basic-auth user
name (what Segment's SDKs do) or as ``X-API-Key``; ingest also takes Segment's ``writeKey``
in the body. Never in the URL. No key, an unknown, expired or revoked one answer 401; a
known key without the scope 403 (``{code, message, details}`` like every error).

Scopes and how keys are stored and checked: :mod:`mqlengine.services.keys`. The dashboard
reads the same :class:`~mqlengine.services.keys.KeyVerifier` from ``app.state.keys`` and
signs its session cookies with ``app.state.session_secret`` (both set by :func:`install`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from mqlengine.api.limits import ApiError
from mqlengine.errors import AuthError, ConfigError, ForbiddenError
from mqlengine.services.audit import record_audit
from mqlengine.services.keys import KeyHasher, KeyVerifier, Principal
from mqlengine.wiring import Wiring

CHALLENGE = {"WWW-Authenticate": 'Basic realm="mql"'}
SCOPE_ATTRIBUTE = "mql_scope"  # set on every scope dependency; the route test looks for it


def install(
    app: FastAPI,
    wiring: Wiring,
    *,
    write_keys: Sequence[str],
    require_write_keys: bool,
    server_side_only: bool,
) -> KeyVerifier:
    """Put the key verifier, the session secret and the server-side-only flag on the app."""
    settings = wiring.settings
    verifier = KeyVerifier(
        wiring.db,
        KeyHasher(settings.secret_key),
        env_keys={"write": write_keys, "read": settings.read_keys, "admin": settings.admin_keys},
        clock=wiring.clock,
    )
    if require_write_keys and not verifier.has_key_for("write"):
        raise ConfigError(
            "no write key configured: set MQL_WRITE_KEYS, pass --write-key or create one "
            "with `mql keys create --scope write` (the server does not accept anonymous writes)"
        )
    app.state.keys = verifier
    app.state.server_side_only = server_side_only
    app.state.session_secret = session_secret(settings.secret_key)
    return verifier


def session_secret(secret_key: str | None) -> bytes:
    """The key that signs dashboard session cookies. Without ``MQL_SECRET_KEY`` it is one
    of this process: sessions then end when the server restarts (and several server
    processes behind one address need ``MQL_SECRET_KEY``)."""
    if secret_key:
        return hmac.new(secret_key.encode(), b"mql dashboard sessions", hashlib.sha256).digest()
    return secrets.token_bytes(32)


def key_from_header(authorization: str | None) -> str | None:
    """The key of ``Authorization: Basic base64(key:)`` or ``Bearer key``; None without one."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip() or None
    if scheme != "basic":
        raise ApiError(401, "unauthorized", f"unsupported authorization scheme {scheme!r}")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(
            401, "unauthorized", "malformed Basic credentials", headers=CHALLENGE
        ) from None
    user, _, _password = decoded.partition(":")
    return user or None


def unauthorized(message: str = "missing or unknown write key") -> ApiError:
    return ApiError(401, "unauthorized", message, headers=CHALLENGE)


def presented_key(request: Request) -> str | None:
    """The key in the request's headers: ``Authorization`` (Bearer or Basic), ``X-API-Key``."""
    return key_from_header(request.headers.get("authorization")) or (
        request.headers.get("x-api-key") or None
    )


def address_of(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


def forbidden(principal: Principal, scope: str) -> ForbiddenError:
    return ForbiddenError(
        f"key {principal.name!r} lacks the {scope!r} scope this needs",
        details={"required": scope, "scopes": sorted(principal.scopes)},
    )


def principal_of(request: Request) -> Principal:
    """The verified key of the request, or 401."""
    key = presented_key(request)
    if key is None:
        raise AuthError(
            "an API key is required (Authorization: Bearer KEY, Basic auth or X-API-Key)"
        )
    verifier: KeyVerifier = request.app.state.keys
    principal = verifier.resolve(key)
    if principal is None:
        raise AuthError("unknown, expired or revoked key")
    return principal


@functools.cache
def require_scope(scope: str) -> Callable[[Request], Principal]:
    """The dependency of a route that needs ``scope``: returns the caller's
    :class:`Principal` (also on ``request.state.principal``)."""

    def dependency(request: Request) -> Principal:
        principal = principal_of(request)
        if not principal.allows(scope):
            raise forbidden(principal, scope)
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{scope}_scope"
    setattr(dependency, SCOPE_ATTRIBUTE, scope)
    return dependency


async def ingest_key(request: Request) -> Principal | None:
    """The ingest routes' dependency (scope ``write``): checks a key given in the headers;
    with none there the handler looks for Segment's ``writeKey`` in the body
    (:func:`check_ingest_key`)."""
    key = key_from_header(request.headers.get("authorization"))
    if key is None:
        return None
    return await check_ingest_key(request, key)


setattr(ingest_key, SCOPE_ATTRIBUTE, "write")


async def check_ingest_key(request: Request, key: str) -> Principal:
    """A write key, verified from the cache when it can be (the hot path), otherwise off
    the event loop; server-side-only mode accepts only keys marked server-side."""
    verifier: KeyVerifier = request.app.state.keys
    known, principal = verifier.cached(key)
    if not known:
        principal = await run_in_threadpool(verifier.resolve, key)
    if principal is None:
        raise unauthorized()
    if not principal.allows("write"):
        raise forbidden(principal, "write")
    if request.app.state.server_side_only and request.headers.get("origin"):
        raise ForbiddenError(  # browsers send Origin with every POST; server SDKs do not
            "this server accepts no events from browsers (server-side-only mode)",
            details={"origin": request.headers["origin"][:200]},
        )
    if request.app.state.server_side_only and not principal.server_side:
        raise ForbiddenError(
            "this server accepts events only from server-side keys "
            "(`mql keys create --scope write --server-side`)",
            details={"key": principal.name},
        )
    return principal


def audit(
    request: Request,
    connection: Connection,
    principal: Principal,
    action: str,
    target: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record an admin or feedback action of ``principal`` on the caller's transaction."""
    wiring: Wiring = request.app.state.wiring
    record_audit(
        connection,
        actor=principal.name,
        key_id=principal.key_id,
        action=action,
        target=target,
        details=details,
        address=address_of(request),
        at=wiring.clock(),
    )


# The names the routers used before scopes (kept for code written against them).
require_key = require_scope("admin")
require_read_key = require_scope("read")
