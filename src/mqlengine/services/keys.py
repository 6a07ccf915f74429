"""API keys: scopes, hashed secrets, verification with a short in-memory cache, and the
dashboard's sessions.

A stored key reads ``mql_<key id>_<secret>``: the key id (12 hex characters) is not secret
and finds the row; the secret is 256 random bits, shown once and kept only as
HMAC-SHA256 under a per-key salt and, when ``MQL_SECRET_KEY`` is set, a key derived from it
(a stolen database alone then cannot even test a guess). Keys from ``MQL_WRITE_KEYS``,
``MQL_READ_KEYS`` and ``MQL_ADMIN_KEYS`` are compared as given (constant time).

Scopes: ``write`` sends events and nothing else; ``read`` reads reports, persons and the
dashboard; ``feedback`` records sales actions; ``admin`` manages reps, teams, keys and the
audit log and implies ``read`` and ``feedback`` — but never ``write``: ingest takes a write
key, so an admin key is never embedded in a web page.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, select, update

from mqlengine.errors import NotFoundError, ValidationError
from mqlengine.store.db import Database
from mqlengine.store.tables_access import api_keys, dashboard_sessions

SCOPES = ("write", "read", "feedback", "admin")
IMPLIED: Mapping[str, frozenset[str]] = {"admin": frozenset({"read", "feedback"})}
PREFIX = "mql_"
KEY_ID_LENGTH = 12
CACHE_SECONDS = 5.0  # a revoked key stops working within this many seconds
LAST_USED_EVERY = 60.0  # last_used_at is written at most this often per key
SESSION_HOURS = 8
MAX_CACHED = 10_000


@dataclass(frozen=True)
class Principal:
    """Who is asking: a key's id, name and scopes (``admin`` already expanded)."""

    key_id: str
    name: str
    scopes: frozenset[str]
    server_side: bool = False
    stored: bool = True

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


def effective_scopes(scopes: Iterable[str]) -> frozenset[str]:
    given = frozenset(scopes)
    implied = frozenset().union(*(IMPLIED.get(s, frozenset()) for s in given))
    return given | implied


def check_scopes(scopes: Iterable[str], *, server_side: bool) -> list[str]:
    chosen = list(dict.fromkeys(s.strip().lower() for s in scopes if s.strip()))
    if not chosen:
        raise ValidationError(f"a key needs at least one scope ({', '.join(SCOPES)})")
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown:
        raise ValidationError(
            f"unknown scope {unknown[0]!r} (scopes: {', '.join(SCOPES)})", details=unknown
        )
    if "write" in chosen and len(chosen) > 1 and not server_side:
        raise ValidationError(
            "a write key is embedded in web pages, so it may carry no other scope "
            "(create a separate key, or mark this one --server-side)"
        )
    return chosen


# -- hashing -------------------------------------------------------------------------------


class KeyHasher:
    """HMAC-SHA256 of a key's secret under a per-key salt (and the installation's pepper)."""

    def __init__(self, secret_key: str | None) -> None:
        self._pepper = (
            hmac.new(secret_key.encode(), b"mql api key hashes", hashlib.sha256).digest()
            if secret_key
            else None
        )

    def _mac_key(self, scheme: str, salt: str) -> bytes | None:
        if scheme == "hmac-sha256":
            return bytes.fromhex(salt)
        if scheme == "hmac-sha256+pepper" and self._pepper is not None:
            return hmac.new(self._pepper, bytes.fromhex(salt), hashlib.sha256).digest()
        return None  # a peppered hash without MQL_SECRET_KEY cannot be checked

    def hash(self, secret: str) -> str:
        scheme = "hmac-sha256+pepper" if self._pepper is not None else "hmac-sha256"
        salt = secrets.token_hex(16)
        mac_key = self._mac_key(scheme, salt)
        assert mac_key is not None
        digest = hmac.new(mac_key, secret.encode(), hashlib.sha256).hexdigest()
        return f"{scheme}${salt}${digest}"

    def verify(self, secret: str, stored: str) -> bool:
        scheme, _, rest = stored.partition("$")
        salt, _, digest = rest.partition("$")
        try:
            mac_key = self._mac_key(scheme, salt)
        except ValueError:
            return False
        if mac_key is None:
            return False
        candidate = hmac.new(mac_key, secret.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(candidate, digest)


def parse_key(presented: str) -> tuple[str, str] | None:
    """``(key id, secret)`` of a stored key's text, or None when it is not in that form."""
    end = len(PREFIX) + KEY_ID_LENGTH
    if not presented.startswith(PREFIX) or len(presented) < end + 2 or presented[end] != "_":
        return None
    return presented[len(PREFIX) : end], presented[end + 1 :]


# -- the table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NewKey:
    key_id: str
    name: str
    scopes: list[str]
    server_side: bool
    created_at: datetime
    expires_at: datetime | None
    secret: str  # the whole key text; shown once, never stored


def create_key(
    connection: Connection,
    hasher: KeyHasher,
    *,
    scopes: Iterable[str],
    now: datetime,
    name: str | None = None,
    expires_at: datetime | None = None,
    server_side: bool = False,
) -> NewKey:
    chosen = check_scopes(scopes, server_side=server_side)
    if expires_at is not None and expires_at <= now:
        raise ValidationError(f"expiry {expires_at.isoformat()} is not in the future")
    key_id = secrets.token_hex(KEY_ID_LENGTH // 2)
    secret = secrets.token_urlsafe(32)  # 256 bits
    label = (name or "").strip() or f"key-{key_id}"
    if len(label) > 255:
        raise ValidationError("a key's name has at most 255 characters")
    connection.execute(
        api_keys.insert().values(
            key_id=key_id,
            name=label,
            scopes=chosen,
            secret_hash=hasher.hash(secret),
            server_side=server_side,
            created_at=now,
            expires_at=expires_at,
        )
    )
    return NewKey(key_id, label, chosen, server_side, now, expires_at, f"{PREFIX}{key_id}_{secret}")


def _public(row: Any, now: datetime) -> dict[str, Any]:
    status = "active"
    if row["revoked_at"] is not None:
        status = "revoked"
    elif row["expires_at"] is not None and row["expires_at"] <= now:
        status = "expired"
    return {
        "key_id": row["key_id"],
        "name": row["name"],
        "scopes": list(row["scopes"]),
        "server_side": bool(row["server_side"]),
        "created_at": row["created_at"],
        "expires_at": row["expires_at"],
        "revoked_at": row["revoked_at"],
        "last_used_at": row["last_used_at"],
        "status": status,
    }


def list_keys(connection: Connection, *, now: datetime) -> list[dict[str, Any]]:
    """Every stored key without its secret or hash, oldest first."""
    rows = connection.execute(select(api_keys).order_by(api_keys.c.id)).mappings()
    return [_public(row, now) for row in rows]


def revoke_key(connection: Connection, key_id: str, *, now: datetime) -> dict[str, Any]:
    """Revoke a key (idempotent) and end its dashboard sessions."""
    row = connection.execute(select(api_keys).where(api_keys.c.key_id == key_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"no key {key_id!r} (see `mql keys list`)")
    if row["revoked_at"] is None:
        connection.execute(
            update(api_keys).where(api_keys.c.key_id == key_id).values(revoked_at=now)
        )
    connection.execute(
        update(dashboard_sessions)
        .where(dashboard_sessions.c.key_id == key_id, dashboard_sessions.c.ended_at.is_(None))
        .values(ended_at=now)
    )
    return _public(
        connection.execute(select(api_keys).where(api_keys.c.key_id == key_id)).mappings().one(),
        now,
    )


def has_active_key(connection: Connection, scope: str, *, now: datetime) -> bool:
    rows = connection.execute(
        select(api_keys.c.scopes, api_keys.c.expires_at).where(api_keys.c.revoked_at.is_(None))
    )
    return any(
        scope in effective_scopes(scopes) and (expires is None or expires > now)
        for scopes, expires in rows
    )


# -- sessions ------------------------------------------------------------------------------


def _session_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_session(
    connection: Connection, key_id: str, *, now: datetime, address: str | None
) -> tuple[str, datetime]:
    """A new dashboard session for ``key_id``: its token (kept only as a hash) and expiry."""
    token = secrets.token_urlsafe(32)
    expires = now + timedelta(hours=SESSION_HOURS)
    connection.execute(  # sessions over a day past their end are of no more use
        delete(dashboard_sessions).where(dashboard_sessions.c.expires_at < now - timedelta(days=1))
    )
    connection.execute(
        dashboard_sessions.insert().values(
            id=_session_id(token),
            key_id=key_id,
            created_at=now,
            expires_at=expires,
            address=(address or "")[:64] or None,
        )
    )
    return token, expires


def session_key_id(connection: Connection, token: str, *, now: datetime) -> str | None:
    """The key behind a live session, or None (unknown, ended or expired)."""
    row = connection.execute(
        select(dashboard_sessions.c.key_id).where(
            dashboard_sessions.c.id == _session_id(token),
            dashboard_sessions.c.ended_at.is_(None),
            dashboard_sessions.c.expires_at > now,
        )
    ).first()
    return str(row[0]) if row is not None else None


def end_session(connection: Connection, token: str, *, now: datetime) -> None:
    connection.execute(
        update(dashboard_sessions)
        .where(
            dashboard_sessions.c.id == _session_id(token), dashboard_sessions.c.ended_at.is_(None)
        )
        .values(ended_at=now)
    )


# -- verification with a cache -------------------------------------------------------------


@dataclass
class _Cached:
    principal: Principal | None  # None: no such key (or revoked, expired)
    secret_hash: str
    expires_at: datetime | None
    fetched: float
    verified: str | None = None  # the secret last checked against secret_hash


@dataclass
class _Touches:
    written: dict[str, float] = field(default_factory=dict)
    pending: dict[str, datetime] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    thread: threading.Thread | None = None


class KeyVerifier:
    """Finds the :class:`Principal` of a presented key.

    Stored keys are read from the database at most once per ``ttl`` seconds per key id
    (also for unknown ids), so the ingest hot path pays a dictionary lookup and one HMAC,
    and a revoked or expired key stops working within ``ttl`` seconds. ``last_used_at`` is
    written by a background thread, at most once a minute per key.
    """

    def __init__(
        self,
        db: Database,
        hasher: KeyHasher,
        *,
        env_keys: Mapping[str, Iterable[str]],
        clock: Callable[[], datetime],
        ttl: float = CACHE_SECONDS,
    ) -> None:
        self.db = db
        self.hasher = hasher
        self.clock = clock
        self.ttl = ttl
        self._env: list[tuple[bytes, Principal]] = []
        self._env_ids: dict[str, Principal] = {}
        for scope, keys in env_keys.items():
            var = f"MQL_{scope.upper()}_KEYS"
            for n, key in enumerate(dict.fromkeys(k for k in keys if k), start=1):
                principal = Principal(
                    f"env-{scope}-{n}", f"{var}#{n}", effective_scopes([scope]), stored=False
                )
                self._env.append((key.encode(), principal))
                self._env_ids[principal.key_id] = principal
        self._cache: dict[str, _Cached] = {}
        self._touches = _Touches()

    def env_scopes(self) -> set[str]:
        return {scope for _, p in self._env for scope in p.scopes}

    def has_key_for(self, scope: str) -> bool:
        if scope in self.env_scopes():
            return True
        with self.db.read() as connection:
            return has_active_key(connection, scope, now=self.clock())

    def _from_env(self, presented: str) -> Principal | None:
        candidate = presented.encode()
        found: list[Principal] = []
        for known, principal in self._env:  # no early exit: timing says nothing
            if hmac.compare_digest(candidate, known):
                found.append(principal)
        if len(found) > 1:  # one key listed under several variables has all their scopes
            scopes = frozenset().union(*(p.scopes for p in found))
            return Principal(found[0].key_id, found[0].name, scopes, stored=False)
        return found[0] if found else None

    def _entry(self, key_id: str, *, allow_fetch: bool) -> _Cached | None:
        entry = self._cache.get(key_id)
        if entry is not None and time.monotonic() - entry.fetched < self.ttl:
            return entry
        if not allow_fetch:
            return None
        with self.db.read() as connection:
            row = (
                connection.execute(select(api_keys).where(api_keys.c.key_id == key_id))
                .mappings()
                .first()
            )
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        if row is None or row["revoked_at"] is not None:
            entry = _Cached(None, "", None, time.monotonic())
        else:
            principal = Principal(
                row["key_id"],
                row["name"],
                effective_scopes(row["scopes"]),
                server_side=bool(row["server_side"]),
            )
            entry = _Cached(principal, row["secret_hash"], row["expires_at"], time.monotonic())
        self._cache[key_id] = entry
        return entry

    def _check(self, entry: _Cached, secret: str | None) -> Principal | None:
        if entry.principal is None:
            return None
        if entry.expires_at is not None and entry.expires_at <= self.clock():
            return None
        if secret is not None:
            known = entry.verified
            if known is None or not hmac.compare_digest(secret.encode(), known.encode()):
                if not self.hasher.verify(secret, entry.secret_hash):
                    return None
                entry.verified = secret  # the next request skips the HMAC
        self._touch(entry.principal.key_id)
        return entry.principal

    def cached(self, presented: str) -> tuple[bool, Principal | None]:
        """``(known, principal)`` without touching the database: ``known`` is False when
        the answer needs a database read (call :meth:`resolve`, off the event loop)."""
        env = self._from_env(presented)
        if env is not None:
            return True, env
        parsed = parse_key(presented)
        if parsed is None:
            return True, None
        entry = self._entry(parsed[0], allow_fetch=False)
        if entry is None:
            return False, None
        return True, self._check(entry, parsed[1])

    def resolve(self, presented: str | None) -> Principal | None:
        """The principal of a presented key, or None when it is unknown, revoked or
        expired (or malformed)."""
        if not presented:
            return None
        env = self._from_env(presented)
        if env is not None:
            return env
        parsed = parse_key(presented)
        if parsed is None:
            return None
        entry = self._entry(parsed[0], allow_fetch=True)
        assert entry is not None
        return self._check(entry, parsed[1])

    def by_id(self, key_id: str) -> Principal | None:
        """The principal of a key id that was verified before (a dashboard session)."""
        if key_id in self._env_ids:
            return self._env_ids[key_id]
        entry = self._entry(key_id, allow_fetch=True)
        assert entry is not None
        return self._check(entry, None)

    def forget(self, key_id: str) -> None:
        self._cache.pop(key_id, None)

    # last_used_at, written in the background at most once a minute per key
    def _touch(self, key_id: str) -> None:
        touches = self._touches
        moment = time.monotonic()
        last = touches.written.get(key_id)
        if last is not None and moment - last < LAST_USED_EVERY:
            return
        with touches.lock:
            touches.written[key_id] = moment
            touches.pending[key_id] = self.clock()
            if touches.thread is not None and touches.thread.is_alive():
                return  # the running flush picks it up
            touches.thread = threading.Thread(
                target=self._flush, name="mql-key-last-used", daemon=True
            )
            touches.thread.start()

    def _flush(self) -> None:
        touches = self._touches
        while True:
            with touches.lock:
                batch, touches.pending = touches.pending, {}
            if not batch:
                return
            try:
                with self.db.begin() as connection:
                    for key_id, at in batch.items():
                        connection.execute(
                            update(api_keys)
                            .where(api_keys.c.key_id == key_id)
                            .values(last_used_at=at)
                        )
            except Exception:  # a usage stamp is not worth a failure: try again later
                with touches.lock:
                    for key_id in batch:
                        touches.written.pop(key_id, None)
                return

    def close(self) -> None:
        """Write the pending usage stamps and wait for the background writer (shutdown)."""
        thread = self._touches.thread
        if thread is not None:
            thread.join(timeout=10)
        self._flush()
