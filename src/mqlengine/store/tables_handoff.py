"""Tables of the handoff: teams and reps, assignments and SLA breaches, touches, the
round-robin cursors, notification destinations and the transactional outbox."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from mqlengine.store.tables import Id, metadata
from mqlengine.store.types import JsonType, UTCDateTime

teams = Table(
    "teams",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("manager_name", String(255), nullable=True),
    Column("manager_email", String(320), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("name"),
)

reps = Table(
    "reps",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False),  # handle used in CLI, API and routing
    Column("name", String(255), nullable=False),
    Column("email", String(320), nullable=True),
    Column("team_id", Id, ForeignKey("teams.id"), nullable=False, index=True),
    Column("timezone", String(64), nullable=False),
    Column("capacity_per_day", Integer, nullable=True),
    Column("working_hours", JsonType, nullable=True),  # {"weekdays": ["09:00-17:00"]}
    Column("territories", JsonType, nullable=False, default=list),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("key"),
)

rep_absences = Table(
    "rep_absences",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("rep_id", Id, ForeignKey("reps.id"), nullable=False, index=True),
    Column("starts_at", UTCDateTime(), nullable=False),
    Column("ends_at", UTCDateTime(), nullable=False),
    Column("note", String(255), nullable=True),
)

assignments = Table(
    "assignments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("person_id", Id, ForeignKey("persons.id"), nullable=False, index=True),
    Column("mql_at", UTCDateTime(), nullable=False),  # the MQL episode
    Column("seq", Integer, nullable=False),  # 0 = first assignment, 1… = reassignments
    Column("rep_id", Id, ForeignKey("reps.id"), nullable=True),
    Column("team", String(64), nullable=False),
    Column("rule_id", String(64), nullable=True),
    Column("strategy", String(32), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("assigned_at", UTCDateTime(), nullable=False),
    Column("sla_policy", String(64), nullable=True),
    Column("sla_due_at", UTCDateTime(), nullable=True),
    Column("first_touch_at", UTCDateTime(), nullable=True),
    Column("status", String(16), nullable=False),  # open, reassigned, closed
    Column("closed_at", UTCDateTime(), nullable=True),
    Column("recorded_at", UTCDateTime(), nullable=False),
    UniqueConstraint("person_id", "mql_at", "seq"),
    Index("ix_assignments_rep_time", "rep_id", "assigned_at"),
    Index("ix_assignments_open_due", "status", "sla_due_at"),
    # routing reads the recent assignments of every rep at once (capacity, fairness)
    Index("ix_assignments_assigned_at", "assigned_at"),
)

route_cursors = Table(
    "route_cursors",
    metadata,
    Column("team", String(64), primary_key=True),
    Column("last_rep_key", String(64), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

touches = Table(
    "touches",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("person_id", Id, ForeignKey("persons.id"), nullable=False, index=True),
    Column("assignment_id", Id, ForeignKey("assignments.id"), nullable=True),
    Column("actor", String(255), nullable=False),
    Column("action", String(32), nullable=False),
    Column("touched_at", UTCDateTime(), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
)

sla_breaches = Table(
    "sla_breaches",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("assignment_id", Id, ForeignKey("assignments.id"), nullable=False),
    Column("person_id", Id, ForeignKey("persons.id"), nullable=False, index=True),
    Column("policy_id", String(64), nullable=False),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("detected_at", UTCDateTime(), nullable=False),
    Column("late_touch", Boolean, nullable=False),
    Column("actions", JsonType, nullable=False),
    Column("reassigned_to", Id, ForeignKey("assignments.id"), nullable=True),
    UniqueConstraint("assignment_id"),
)

destinations = Table(
    "destinations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # webhook, slack, email
    Column("url", Text, nullable=False),  # https://…, or smtp://user:pass@host:port
    Column("secret", Text, nullable=True),  # webhook signing secret (whsec_…)
    Column("topics", JsonType, nullable=False, default=list),  # [] = every topic
    Column("email_to", JsonType, nullable=False, default=list),  # addresses, "owner", "manager"
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("name"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False),  # stable across retries and replays
    Column("topic", String(64), nullable=False),
    Column("person_id", Id, nullable=True, index=True),
    Column("destination_id", Id, ForeignKey("destinations.id"), nullable=False),
    Column("payload", JsonType, nullable=False),
    Column("status", String(16), nullable=False),  # pending, delivered, dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("locked_until", UTCDateTime(), nullable=True),
    Column("locked_by", String(64), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("delivered_at", UTCDateTime(), nullable=True),
    UniqueConstraint("message_id"),
    Index("ix_outbox_due", "status", "next_attempt_at"),
)
