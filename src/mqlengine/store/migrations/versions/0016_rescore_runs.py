"""rescore runs: full rescores with a cursor, so a killed one resumes where it stopped

Revision ID: 0016_rescore_runs
Revises: 0015_desk
Create Date: 2026-12-03 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from mqlengine.store.types import UTCDateTime

revision: str = "0016_rescore_runs"
down_revision: str | Sequence[str] | None = "0015_desk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "rescore_runs",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("engine", sa.String(16), nullable=False),
        sa.Column("definition_version", sa.String(100), nullable=False),
        sa.Column("definition_hash", sa.String(64), nullable=False),
        sa.Column("as_of", UTCDateTime(), nullable=False),
        sa.Column("notify", sa.Boolean(), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("persons_total", sa.Integer(), nullable=False),
        sa.Column("persons_done", sa.Integer(), nullable=False),
        sa.Column("stage_changes", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rescore_runs")),
    )
    op.create_index("ix_rescore_runs_status", "rescore_runs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_rescore_runs_status", table_name="rescore_runs")
    op.drop_table("rescore_runs")
