"""what ingest costs the database: log tables without foreign keys, room for HOT updates

events and score_snapshots refer to their person without a foreign key.

PostgreSQL checks a foreign key row by row: a lookup of the person and a lock on its row
for every event and every score change stored: a quarter of the database's time in the
ingest benchmark. Both tables are append-only logs that only the ingest writer (and
erasure, which deletes them before the person) write, in the same transaction as the
person they refer to; ``mql db check`` counts rows whose person does not exist.

On PostgreSQL, persons pages are filled to 70 %: a person's row is updated by nearly every
batch that touches it (score, last seen), and with room left on its page the new version
stays there without new entries in the table's eight indexes (a "HOT" update).

On SQLite the tables are rebuilt (that is how SQLite drops a constraint), which drops the
change-counter triggers on events: they are created again.

Revision ID: 0009_ingest_write_costs
Revises: 0008_ingest_epoch
Create Date: 2026-12-03 13:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_ingest_write_costs"
down_revision: str | Sequence[str] | None = "0008_ingest_epoch"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("events", "score_snapshots")
PERSONS_FILLFACTOR = 70
BUMP = "UPDATE ingest_epoch SET value = value + 1 WHERE id = 1"
EVENT_TRIGGERS = {
    "trg_epoch_events_insert": "AFTER INSERT ON events",
    "trg_epoch_events_update": "AFTER UPDATE ON events",
    "trg_epoch_events_delete": "AFTER DELETE ON events",
}


def _event_triggers() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name, when in EVENT_TRIGGERS.items():
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN {BUMP}; END")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(f"fk_{table}_person_id_persons", type_="foreignkey")
    _event_triggers()
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE persons SET (fillfactor = {PERSONS_FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE persons RESET (fillfactor)")
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_foreign_key(
                f"fk_{table}_person_id_persons", "persons", ["person_id"], ["id"]
            )
    _event_triggers()
