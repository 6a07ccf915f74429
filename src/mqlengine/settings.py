"""Settings from the environment, read when asked (never at import time).

This is the only module that reads ``MQL_*`` variables; everything else receives a
:class:`Settings` (or what it needs of one) from the composition root, :mod:`mqlengine.wiring`.

| variable | meaning |
|---|---|
| ``MQL_DATABASE_URL`` | the store (default ``sqlite:///mql.db``; PostgreSQL in production) |
| ``MQL_DEFINITION`` | the definition file (default ``./mql.yaml``) |
| ``MQL_WRITE_KEYS`` | comma-separated keys accepted by the ingest endpoints |
| ``MQL_READ_KEYS`` | comma-separated keys accepted by reports and the dashboard |
| ``MQL_ADMIN_KEYS`` | comma-separated keys with the admin scope (reps, teams, audit …) |
| ``MQL_SECRET_KEY`` | the installation's secret (key hashes, signed session cookies) |
| ``MQL_SERVER_SIDE_ONLY`` | ingest only from keys marked server-side; no browser endpoints |
| ``MQL_FIRMOGRAPHICS_CSV`` | a CSV of company facts by domain, used to enrich profiles |
| ``MQL_PUBLIC_URL`` | the dashboard's public address, for links in notifications |
| ``MQL_CLOCK`` | an ISO time that freezes the engine's clock (reproducible runs) |
| ``MQL_DEBUG`` | set to show tracebacks of unexpected CLI errors |
| ``MQL_SECRET_KEY`` | encrypts stored secrets (webhook secrets, Slack URLs, SMTP passwords) |
| ``MQL_AFTER_ERASURE`` | ``fresh`` (default) or ``suppress``: events of erased identifiers |
| ``MQL_COLUMNAR_PATH`` | the store's columnar copy (default: beside a SQLite file; ``off``) |
| ``MQL_WRITER_MEMORY_MB`` | bound of what the API's writer remembers between batches (default 96) |
| ``MQL_CORS_ORIGINS`` | comma-separated origins whose pages may send events (CORS; off) |
| ``MQL_TRUSTED_PROXIES`` | proxy addresses whose ``X-Forwarded-For`` is believed (none) |
| ``MQL_RATE_*`` | rate limits of the API (see :class:`WebSettings`; ``0`` switches one off) |
| ``MQL_HEADER_TIMEOUT``, ``MQL_BODY_TIMEOUT`` | seconds a client has to send headers, body |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mqlengine.errors import ConfigError
from mqlengine.store.db import DEFAULT_URL

DEFAULT_PUBLIC_URL = "http://localhost:8000"
# what later events of erased identifiers do: start a fresh person, or are dropped
AFTER_ERASURE = ("fresh", "suppress")
DEFAULT_WRITER_MEMORY_MB = 96


def _keys(value: str | None) -> tuple[str, ...]:
    return tuple(k.strip() for k in (value or "").split(",") if k.strip())


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


def _megabytes(value: str) -> int:
    """``MQL_WRITER_MEMORY_MB``: a whole number of megabytes, at least 1."""
    text = value.strip()
    if not text:
        return DEFAULT_WRITER_MEMORY_MB
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigError(f"MQL_WRITER_MEMORY_MB: {value!r} is not a whole number of MB (≥ 1)")
    return number


def parse_clock(value: str) -> datetime:
    """``MQL_CLOCK``: an ISO time; a time without zone is UTC."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"MQL_CLOCK: {value!r} is not an ISO time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}: {value!r} is not a number") from None
    if number < 0 or number != number or number == float("inf"):
        raise ConfigError(f"{name}: {value!r} must be a finite number >= 0")
    return number


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    seconds = _number(env, name, default)
    if seconds <= 0:
        raise ConfigError(f"{name}: a timeout must be more than 0 seconds")
    return seconds


@dataclass(frozen=True)
class WebSettings:
    """The HTTP server's protections. Rates are per second; ``0`` switches a limit off."""

    cors_origins: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    rate_ingest_per_key: float = 5000.0  # events
    rate_ingest_per_address: float = 2000.0  # events
    rate_read_per_key: float = 50.0  # requests
    rate_read_per_address: float = 20.0  # requests
    rate_auth_failures: float = 1.0  # failed authentications per address
    header_timeout: float = 10.0
    body_timeout: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebSettings:
        d = cls()
        return cls(
            cors_origins=_keys(env.get("MQL_CORS_ORIGINS")),
            trusted_proxies=_keys(env.get("MQL_TRUSTED_PROXIES")),
            rate_ingest_per_key=_number(env, "MQL_RATE_INGEST_PER_KEY", d.rate_ingest_per_key),
            rate_ingest_per_address=_number(
                env, "MQL_RATE_INGEST_PER_ADDRESS", d.rate_ingest_per_address
            ),
            rate_read_per_key=_number(env, "MQL_RATE_READ_PER_KEY", d.rate_read_per_key),
            rate_read_per_address=_number(
                env, "MQL_RATE_READ_PER_ADDRESS", d.rate_read_per_address
            ),
            rate_auth_failures=_number(env, "MQL_RATE_AUTH_FAILURES", d.rate_auth_failures),
            header_timeout=_seconds(env, "MQL_HEADER_TIMEOUT", d.header_timeout),
            body_timeout=_seconds(env, "MQL_BODY_TIMEOUT", d.body_timeout),
        )


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_URL
    definition_path: Path = Path("mql.yaml")
    write_keys: tuple[str, ...] = ()
    read_keys: tuple[str, ...] = ()
    admin_keys: tuple[str, ...] = ()
    server_side_only: bool = False
    firmographics_csv: Path | None = None
    public_url: str = DEFAULT_PUBLIC_URL
    frozen_now: datetime | None = None
    debug: bool = False
    secret_key: str | None = field(default=None, repr=False)
    after_erasure: str = "fresh"
    writer_memory_mb: int = DEFAULT_WRITER_MEMORY_MB
    columnar_path: str | None = None  # None: beside a SQLite file; "off": no copy
    web: WebSettings = WebSettings()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        csv = env.get("MQL_FIRMOGRAPHICS_CSV", "").strip()
        clock = env.get("MQL_CLOCK", "").strip()
        after_erasure = env.get("MQL_AFTER_ERASURE", "").strip().lower() or "fresh"
        if after_erasure not in AFTER_ERASURE:
            raise ConfigError(
                f"MQL_AFTER_ERASURE: {after_erasure!r} is not one of {', '.join(AFTER_ERASURE)}"
            )
        return cls(
            database_url=env.get("MQL_DATABASE_URL", "").strip() or DEFAULT_URL,
            definition_path=Path(env.get("MQL_DEFINITION", "").strip() or "mql.yaml"),
            write_keys=_keys(env.get("MQL_WRITE_KEYS")),
            read_keys=_keys(env.get("MQL_READ_KEYS")),
            admin_keys=_keys(env.get("MQL_ADMIN_KEYS")),
            server_side_only=_truthy(env.get("MQL_SERVER_SIDE_ONLY")),
            firmographics_csv=Path(csv) if csv else None,
            public_url=env.get("MQL_PUBLIC_URL", "").strip() or DEFAULT_PUBLIC_URL,
            frozen_now=parse_clock(clock) if clock else None,
            debug=_truthy(env.get("MQL_DEBUG")),
            secret_key=env.get("MQL_SECRET_KEY", "").strip() or None,
            after_erasure=after_erasure,
            writer_memory_mb=_megabytes(env.get("MQL_WRITER_MEMORY_MB", "")),
            columnar_path=env.get("MQL_COLUMNAR_PATH", "").strip() or None,
            web=WebSettings.from_env(env),
        )
