"""The schema (SQLAlchemy Core). Alembic migrations in ``migrations/`` create it.

Events are append-only and unique by message id; stage history and score snapshots are
only ever inserted. Other rooms add their tables to the same ``metadata`` in their own
modules (imported by :mod:`mqlengine.store.schema`).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

from mqlengine.store.types import JsonType, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
Id = BigInteger().with_variant(Integer(), "sqlite")

accounts = Table(
    "accounts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("domain", String(255), nullable=True),
    Column("group_id", String(255), nullable=True),
    Column("name", String(255), nullable=True),
    Column("traits", JsonType, nullable=False, default=dict),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("domain"),
    UniqueConstraint("group_id"),
)

persons = Table(
    "persons",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=True, index=True),
    Column("traits", JsonType, nullable=False, default=dict),
    Column("profile", JsonType, nullable=False, default=dict),  # traits + enriched values
    Column("flags", JsonType, nullable=False, default=list),
    Column("email", String(320), nullable=True, index=True),
    Column("channel", String(64), nullable=True),
    Column("source", String(255), nullable=True),
    Column("campaign", String(255), nullable=True),
    Column("first_seen_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("stage", String(20), nullable=False, default="lead", index=True),
    Column("stage_changed_at", UTCDateTime(), nullable=False),
    Column("mql_type", String(64), nullable=True),
    Column("mql_at", UTCDateTime(), nullable=True, index=True),
    Column("recycled_at", UTCDateTime(), nullable=True),
    Column("fit_score", Float, nullable=False, default=0.0),
    Column("intent_score", Float, nullable=False, default=0.0),
    Column("total_score", Float, nullable=False, default=0.0),
    Column("scored_at", UTCDateTime(), nullable=True),
    Column("definition_version", String(100), nullable=True),
    Column("merged_into", Id, ForeignKey("persons.id"), nullable=True, index=True),
    Column("row_version", Integer, nullable=False, default=1),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # handoff (migration 0003): current owner, first-touch deadline, first touch
    Column("owner_rep_id", Id, nullable=True, index=True),
    Column("owner_team", String(64), nullable=True),
    Column("sla_due_at", UTCDateTime(), nullable=True),
    Column("first_touch_at", UTCDateTime(), nullable=True),
    # migration 0007: the account owner's lookup (routing) reads one entry, not the account
    Index(
        "ix_persons_account_owner",
        "account_id",
        "mql_at",
        "id",
        sqlite_where=text("owner_rep_id IS NOT NULL AND merged_into IS NULL"),
        postgresql_where=text("owner_rep_id IS NOT NULL AND merged_into IS NULL"),
    ),
    # migration 0014: the lead lists' first pages (services/leads.py), live persons only
    *(
        Index(
            name,
            *columns,
            sqlite_where=text("merged_into IS NULL"),
            postgresql_where=text("merged_into IS NULL"),
        )
        for name, columns in (
            ("ix_persons_live_score", ("total_score", "id")),
            ("ix_persons_live_stage_score", ("stage", "total_score", "id")),
            ("ix_persons_live_team_score", ("owner_team", "total_score", "id")),
            ("ix_persons_live_changed", ("stage_changed_at", "id")),
            ("ix_persons_live_sla_due", ("sla_due_at", "first_touch_at")),
        )
    ),
)

identities = Table(
    "identities",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("person_id", Id, ForeignKey("persons.id"), nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("value", String(320), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("kind", "value"),
)

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message_id", String(255), nullable=False),
    # No foreign key (migration 0009), here and on score_snapshots: the two append-only
    # logs take a row per event and per score change, and PostgreSQL checks a foreign key
    # row by row with a lock on the person (a quarter of its ingest time). The writer
    # writes the person in the same transaction; `mql db check` reports orphans.
    Column("person_id", Id, nullable=False),
    Column("type", String(16), nullable=False),
    Column("name", String(255), nullable=False),
    Column("anonymous_id", String(255), nullable=True),
    Column("user_id", String(255), nullable=True),
    Column("properties", JsonType, nullable=False, default=dict),
    Column("context", JsonType, nullable=False, default=dict),
    Column("timestamp", UTCDateTime(), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    # sent without tracking consent (migration 0010): stored stripped, never scored
    Column("consent_withdrawn", Boolean, nullable=False, default=False, server_default=false()),
    UniqueConstraint("message_id"),
    Index("ix_events_person_time", "person_id", "timestamp"),
    Index("ix_events_time", "timestamp"),
)

stage_history = Table(
    "stage_history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("person_id", Id, ForeignKey("persons.id"), nullable=False, index=True),
    Column("from_stage", String(20), nullable=True),
    Column("to_stage", String(20), nullable=False),
    Column("changed_at", UTCDateTime(), nullable=False, index=True),
    Column("reason", String(255), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("action", String(32), nullable=True),
    Column("definition_version", String(100), nullable=True),
    Column("mql_type", String(64), nullable=True),
    Column("reactivated", Boolean, nullable=False, default=False),
    Column("amount", Float, nullable=True),
    Column("score_card", JsonType, nullable=True),
    Column("recorded_at", UTCDateTime(), nullable=False),
)

score_snapshots = Table(
    "score_snapshots",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("person_id", Id, nullable=False),  # no foreign key: see events
    Column("as_of", UTCDateTime(), nullable=False),
    Column("definition_version", String(100), nullable=False),
    Column("fit", Float, nullable=False),
    Column("intent", Float, nullable=False),
    Column("total", Float, nullable=False),
    Column("qualifies", Boolean, nullable=False),
    Column("rule_points", JsonType, nullable=False),  # {rule_id: points}
    Index("ix_score_snapshots_person_as_of", "person_id", "as_of"),
)

definition_versions = Table(
    "definition_versions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("version", String(100), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("content", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("activated_at", UTCDateTime(), nullable=True),
    Column("active", Boolean, nullable=False, default=False),
    # migration 0013: who applied the version, why, and when it was last made live by
    # `mql definition apply|rollback` (once any version has that, the store decides)
    Column("author", String(255), nullable=True),
    Column("message", Text, nullable=True),
    Column("applied_at", UTCDateTime(), nullable=True),
    UniqueConstraint("version"),
)

merges = Table(
    "merges",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("survivor_id", Id, ForeignKey("persons.id"), nullable=False, index=True),
    Column("merged_id", Id, ForeignKey("persons.id"), nullable=False, index=True),
    Column("reason", String(255), nullable=False),
    Column("moved", JsonType, nullable=False),  # {"identities": [...ids], "events": [...ids]}
    Column("merged_at", UTCDateTime(), nullable=False),
    Column("undone_at", UTCDateTime(), nullable=True),
)
