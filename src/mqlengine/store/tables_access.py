"""Tables of access control: API keys (hashed secrets, scopes), dashboard sessions and the
audit log of admin and feedback actions."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, String, Table

from mqlengine.store.tables import Id, metadata
from mqlengine.store.types import JsonType, UTCDateTime

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key_id", String(32), nullable=False, unique=True),  # public, part of the key
    Column("name", String(255), nullable=False),
    Column("scopes", JsonType, nullable=False),  # ["read", "feedback"]
    Column("secret_hash", String(255), nullable=False),  # "scheme$salt$digest"
    Column("server_side", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Column("last_used_at", UTCDateTime(), nullable=True),
)

dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # SHA-256 of the session token
    Column("key_id", String(64), nullable=False, index=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime(), nullable=True),
    Column("address", String(64), nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("key_id", String(64), nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", String(255), nullable=True),
    Column("details", JsonType, nullable=True),
    Column("address", String(64), nullable=True),
    Index("ix_audit_log_at", "at"),
)
