"""Tables of the sales desk: manual corrections and the weekly review samples, plus the
indexes the dashboard's Leads page reads persons by (migration 0015).

A manual correction (an admin overriding a score or a stage, with a mandatory reason) is
also written to the stage history and the audit log; this table is what the corrections
report counts. A review sample is a stratified random pick of one week's MQLs; each item
keeps the score card it was judged on and the team's verdict.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from mqlengine.store.tables import Id, metadata, persons
from mqlengine.store.types import JsonType, UTCDateTime

manual_corrections = Table(
    "manual_corrections",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("person_id", Id, ForeignKey("persons.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # "score" or "stage"
    Column("from_value", String(32), nullable=False),
    Column("to_value", String(32), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("key_id", String(64), nullable=True),
    Column("corrected_at", UTCDateTime(), nullable=False, index=True),
)

review_samples = Table(
    "review_samples",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("week_start", UTCDateTime(), nullable=False, index=True),  # a Monday, 00:00 UTC
    Column("team", String(64), nullable=True),
    Column("size", Integer, nullable=False),
    Column("seed", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("actor", String(255), nullable=False),
)

review_items = Table(
    "review_items",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("sample_id", Id, ForeignKey("review_samples.id"), nullable=False, index=True),
    Column("person_id", Id, ForeignKey("persons.id"), nullable=False, index=True),
    Column("stratum", String(16), nullable=False),  # accepted, rejected, recycled, untouched
    Column("mql_at", UTCDateTime(), nullable=False),
    Column("stage", String(20), nullable=False),  # at sampling
    Column("score_card", JsonType, nullable=False),  # the card the call was made on
    Column("verdict", String(8), nullable=True),  # "right" or "wrong"
    Column("note", Text, nullable=True),
    Column("marked_by", String(255), nullable=True),
    Column("marked_at", UTCDateTime(), nullable=True),
    UniqueConstraint("sample_id", "person_id"),
)

# The Leads page: the filters that 0014's live-person indexes (store/tables.py) do not
# cover, in score order. Live persons only, like every lead list's query.
LEAD_INDEXES = (
    Index(
        "ix_persons_live_channel_score",
        persons.c.channel,
        persons.c.total_score,
        persons.c.id,
        sqlite_where=text("merged_into IS NULL"),
        postgresql_where=text("merged_into IS NULL"),
    ),
    Index(
        "ix_persons_live_first_seen",
        persons.c.first_seen_at,
        sqlite_where=text("merged_into IS NULL"),
        postgresql_where=text("merged_into IS NULL"),
    ),
)
