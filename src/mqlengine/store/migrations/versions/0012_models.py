"""models: the registry of likelihood models and their shadow scores

Revision ID: 0012_models
Revises: 0011_privacy
Create Date: 2026-12-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import mqlengine.store.types

revision: str = "0012_models"
down_revision: str | Sequence[str] | None = "0011_privacy"
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
        "models",
        _id(),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("artifact", sa.LargeBinary(), nullable=False),
        _json("features", nullable=False),
        _json("metrics", nullable=False),
        _json("label", nullable=False),
        sa.Column("definition_version", sa.String(length=100), nullable=False),
        _time("window_start", nullable=True),
        _time("window_end", nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("positives", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        _json("reference", nullable=False),
        _time("created_at", nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        _time("promoted_at", nullable=True),
        _time("retired_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
    )
    op.create_index(op.f("ix_models_status"), "models", ["status"])
    op.create_table(
        "model_shadow_scores",
        _id(),
        sa.Column(
            "person_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        _time("as_of", nullable=False),
        sa.Column("live_version", sa.Integer(), nullable=True),
        sa.Column("live_likelihood", sa.Float(), nullable=True),
        sa.Column("live_qualifies", sa.Boolean(), nullable=False),
        sa.Column("shadow_version", sa.Integer(), nullable=False),
        sa.Column("shadow_likelihood", sa.Float(), nullable=False),
        sa.Column("shadow_qualifies", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_shadow_scores")),
    )
    op.create_index(op.f("ix_model_shadow_scores_person_id"), "model_shadow_scores", ["person_id"])
    op.create_index(
        "ix_model_shadow_scores_shadow_version_as_of",
        "model_shadow_scores",
        ["shadow_version", "as_of"],
    )


def downgrade() -> None:
    op.drop_table("model_shadow_scores")
    op.drop_table("models")
