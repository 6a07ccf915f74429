"""a counter of changes to what the ingest writer remembers (SQLite triggers bump it)

The HTTP API's writer keeps identities, person rows, accounts and events between its own
transactions. SQLite's ``PRAGMA data_version`` says that *some* other connection wrote,
which includes writes that do not matter (the worker marking notifications delivered);
these triggers count only changes to the remembered columns, so the writer forgets only
when one of those changed.

Revision ID: 0008_ingest_epoch
Revises: 0007_account_owner_index
Create Date: 2026-11-25 12:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_ingest_epoch"
down_revision: str | Sequence[str] | None = "0007_account_owner_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the person columns the writer keeps (mqlengine.domain.person.PERSON_COLUMNS; a test checks
# that these triggers cover every one)
PERSON_COLUMNS = (
    "traits, profile, flags, email, account_id, channel, last_seen_at, stage, recycled_at, "
    "scored_at, total_score, definition_version, merged_into"
)
BUMP = "UPDATE ingest_epoch SET value = value + 1 WHERE id = 1"
TRIGGERS = {
    "trg_epoch_persons_insert": "AFTER INSERT ON persons",
    "trg_epoch_persons_update": f"AFTER UPDATE OF {PERSON_COLUMNS} ON persons",
    "trg_epoch_persons_delete": "AFTER DELETE ON persons",
    "trg_epoch_identities_insert": "AFTER INSERT ON identities",
    "trg_epoch_identities_update": "AFTER UPDATE ON identities",
    "trg_epoch_identities_delete": "AFTER DELETE ON identities",
    "trg_epoch_events_insert": "AFTER INSERT ON events",
    "trg_epoch_events_update": "AFTER UPDATE ON events",
    "trg_epoch_events_delete": "AFTER DELETE ON events",
    "trg_epoch_accounts_insert": "AFTER INSERT ON accounts",
    "trg_epoch_accounts_update": "AFTER UPDATE ON accounts",
    "trg_epoch_accounts_delete": "AFTER DELETE ON accounts",
}


def upgrade() -> None:
    op.create_table(
        "ingest_epoch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_epoch")),
    )
    op.execute("INSERT INTO ingest_epoch (id, value) VALUES (1, 0)")
    if op.get_bind().dialect.name == "sqlite":
        for name, when in TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN {BUMP}; END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("ingest_epoch")
