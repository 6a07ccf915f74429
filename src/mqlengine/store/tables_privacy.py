"""Tables of privacy requests: the audit of erasures, and the suppression list.

An erasure keeps no personal data: when, by whom, and how many rows each table lost.
When erased identifiers are to be refused later, only keyed hashes of them are kept
(HMAC-SHA256 under the settings' secret key), never the values.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, String, Table, UniqueConstraint

from mqlengine.store.tables import Id, metadata
from mqlengine.store.types import JsonType, UTCDateTime

erasures = Table(
    "erasures",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("erased_at", UTCDateTime(), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("counts", JsonType, nullable=False),  # {table: rows removed}
    Column("after", String(16), nullable=False),  # "fresh" or "suppress"
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("erasure_id", Id, ForeignKey("erasures.id"), nullable=False, index=True),
    Column("digest", String(64), nullable=False),  # HMAC-SHA256(kind ":" value), hex
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("digest"),
)
