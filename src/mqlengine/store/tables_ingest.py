"""Tables of the real-time ingest: the quarantine of rejected payloads.

A rejected message is never silently dropped: its raw JSON, the reason and where it came
from are kept here (in the same commit as the good messages of its request) until someone
looks at it with ``mql quarantine``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from mqlengine.store.tables import Id, metadata
from mqlengine.store.types import UTCDateTime

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("endpoint", String(32), nullable=False),  # batch, track, … or "body"
    Column("code", String(32), nullable=False),  # invalid_message, invalid_json, too_large, …
    Column("field", String(255), nullable=True),
    Column("reason", Text, nullable=False),
    Column("message_index", Integer, nullable=True),  # position in the batch
    Column("message_id", String(255), nullable=True),
    Column("payload", Text, nullable=False),  # the raw JSON (truncated if over the limit)
    Column("truncated", Integer, nullable=False, default=0),
    Index("ix_quarantine_received_at", "received_at"),
)

# One row (id 1): how many times the rows the ingest writer remembers between transactions
# (persons' pipeline columns, identities, events, accounts) have changed. SQLite triggers
# bump it (migration 0008); see mqlengine.ingest.writerstate.
ingest_epoch = Table(
    "ingest_epoch",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("value", BigInteger, nullable=False),
)
