"""Keys: who may send events, and who may read reports and the dashboard.

Segment's convention: HTTP Basic auth with the write key as user name and an empty
password, or ``writeKey`` in the JSON body. Keys are compared in constant time.
Read access (reports, dashboard) takes a key from ``MQL_READ_KEYS`` or any write key, given
as ``Authorization: Bearer KEY`` (or Basic), ``X-API-Key``, ``?key=`` or the dashboard's
cookie; with no key configured at all, reads are open. The dashboard asks the app's
:class:`ReadAccess` (``app.state.read_access``) rather than importing this module.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable

from fastapi import Request

from mqlengine.api.limits import ApiError
from mqlengine.errors import AuthError

CHALLENGE = {"WWW-Authenticate": 'Basic realm="mql"'}
COOKIE = "mql_key"


class WriteKeys:
    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = tuple(k.encode() for k in keys if k)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def valid(self, key: str | None) -> bool:
        if not key or not self._keys:
            return False
        candidate = key.encode()
        found = False
        for known in self._keys:  # no early exit: timing says nothing about which key
            found |= hmac.compare_digest(candidate, known)
        return found


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


def require_key(request: Request) -> None:
    """Dependency for read endpoints: a configured key in the Authorization header."""
    keys: WriteKeys = request.app.state.write_keys
    if not keys.valid(key_from_header(request.headers.get("authorization"))):
        raise unauthorized()


def presented_key(request: Request) -> str | None:
    """The key a reader presents: header (Bearer or Basic), ``X-API-Key``, ``?key=``, cookie."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer":
            return value.strip() or None
        if scheme.lower() == "basic":
            try:
                return base64.b64decode(value.strip()).decode().partition(":")[0] or None
            except (binascii.Error, UnicodeDecodeError):
                return None
    return (
        request.headers.get("x-api-key")
        or request.query_params.get("key")
        or request.cookies.get(COOKIE)
    )


class ReadAccess:
    """Who may read: the read keys plus the write keys; open when no key is configured."""

    cookie = COOKIE

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys = WriteKeys(dict.fromkeys(keys))

    def allows(self, request: Request) -> bool:
        return not self.keys or self.keys.valid(presented_key(request))


def require_read_key(request: Request) -> None:
    """Dependency of the report endpoints."""
    access: ReadAccess = request.app.state.read_access
    if not access.allows(request):
        raise AuthError("a read key is required (MQL_READ_KEYS or a write key)")
