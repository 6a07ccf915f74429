"""desk: manual corrections, weekly review samples, and the Leads page's indexes

* ``manual_corrections``: an admin's override of a score or a stage, with its reason
  (also in the stage history and the audit log).
* ``review_samples`` / ``review_items``: a stratified sample of one week's MQLs, the score
  card each was judged on, and the team's "right call / wrong call" with a note.
* Indexes on ``persons`` for the dashboard's lead list: score order, and stage, team and
  channel each with score order; first seen and SLA due.

Revision ID: 0015_desk
Revises: 0014_desk_cli
Create Date: 2026-12-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from mqlengine.store.types import JsonType, UTCDateTime

revision: str = "0015_desk"
down_revision: str | Sequence[str] | None = "0014_desk_cli"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

LIVE = "merged_into IS NULL"
# the Leads page's filters that 0014's live-person indexes do not cover, in score order
INDEXES = (
    ("ix_persons_live_channel_score", ["channel", "total_score", "id"]),
    ("ix_persons_live_first_seen", ["first_seen_at"]),
)


def upgrade() -> None:
    op.create_table(
        "manual_corrections",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("person_id", Id, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("from_value", sa.String(32), nullable=False),
        sa.Column("to_value", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("corrected_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_manual_corrections_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manual_corrections")),
    )
    op.create_index(op.f("ix_manual_corrections_person_id"), "manual_corrections", ["person_id"])
    op.create_index(
        op.f("ix_manual_corrections_corrected_at"), "manual_corrections", ["corrected_at"]
    )
    op.create_table(
        "review_samples",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("week_start", UTCDateTime(), nullable=False),
        sa.Column("team", sa.String(64), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_samples")),
    )
    op.create_index(op.f("ix_review_samples_week_start"), "review_samples", ["week_start"])
    op.create_table(
        "review_items",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("sample_id", Id, nullable=False),
        sa.Column("person_id", Id, nullable=False),
        sa.Column("stratum", sa.String(16), nullable=False),
        sa.Column("mql_at", UTCDateTime(), nullable=False),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("score_card", JsonType, nullable=False),
        sa.Column("verdict", sa.String(8), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("marked_by", sa.String(255), nullable=True),
        sa.Column("marked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["sample_id"],
            ["review_samples.id"],
            name=op.f("fk_review_items_sample_id_review_samples"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_review_items_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_items")),
        sa.UniqueConstraint(
            "sample_id", "person_id", name=op.f("uq_review_items_sample_id_person_id")
        ),
    )
    op.create_index(op.f("ix_review_items_sample_id"), "review_items", ["sample_id"])
    op.create_index(op.f("ix_review_items_person_id"), "review_items", ["person_id"])
    for name, columns in INDEXES:
        op.create_index(
            name, "persons", columns, sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE)
        )


def downgrade() -> None:
    for name, _columns in INDEXES:
        op.drop_index(name, table_name="persons")
    op.drop_index(op.f("ix_review_items_person_id"), table_name="review_items")
    op.drop_index(op.f("ix_review_items_sample_id"), table_name="review_items")
    op.drop_table("review_items")
    op.drop_index(op.f("ix_review_samples_week_start"), table_name="review_samples")
    op.drop_table("review_samples")
    op.drop_index(op.f("ix_manual_corrections_corrected_at"), table_name="manual_corrections")
    op.drop_index(op.f("ix_manual_corrections_person_id"), table_name="manual_corrections")
    op.drop_table("manual_corrections")
