"""access: API keys with scopes and hashed secrets, dashboard sessions, the audit log

Revision ID: 0010_keys_audit
Revises: 0009_ingest_write_costs
Create Date: 2026-12-03 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import mqlengine.store.types

revision: str = "0010_keys_audit"
down_revision: str | Sequence[str] | None = "0009_ingest_write_costs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column[int]:
    return sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        autoincrement=True,
        nullable=False,
    )


def _json(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(
        name,
        sa.JSON(none_as_null=True).with_variant(
            postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
        ),
        nullable=nullable,
    )


def _time(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, mqlengine.store.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        _id(),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        _json("scopes", nullable=False),
        sa.Column("secret_hash", sa.String(length=255), nullable=False),
        sa.Column("server_side", sa.Boolean(), nullable=False),
        _time("created_at", nullable=False),
        _time("expires_at", nullable=True),
        _time("revoked_at", nullable=True),
        _time("last_used_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_id", name=op.f("uq_api_keys_key_id")),
    )
    op.create_table(
        "dashboard_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        _time("created_at", nullable=False),
        _time("expires_at", nullable=False),
        _time("ended_at", nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_sessions")),
    )
    with op.batch_alter_table("dashboard_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dashboard_sessions_key_id"), ["key_id"], unique=False)
    op.create_table(
        "audit_log",
        _id(),
        _time("at", nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=True),
        _json("details", nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_at", ["at"], unique=False)


def downgrade() -> None:
    op.drop_table("audit_log")
    with op.batch_alter_table("dashboard_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dashboard_sessions_key_id"))
    op.drop_table("dashboard_sessions")
    op.drop_table("api_keys")
