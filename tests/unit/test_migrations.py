from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory

from mqlengine.store.db import Database, migration_heads


def test_migrations_have_a_single_head() -> None:
    """One head, so `alembic upgrade head` and new revisions have one place to start."""
    script = ScriptDirectory.from_config(Database("sqlite://").alembic_config())
    assert len(script.get_heads()) == 1


def test_the_heads_read_from_the_files_are_alembics() -> None:
    """A store already at these heads is opened without Alembic: they must be its heads."""
    script = ScriptDirectory.from_config(Database("sqlite://").alembic_config())
    assert migration_heads() == frozenset(script.get_heads())


def test_a_store_at_its_heads_opens_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mql.db'}"
    Database(url).migrate()  # a new file: migrated by Alembic
    code = (
        "import sys; from mqlengine.store.admin import open_store; "
        f"open_store({url!r}, create=False); print('alembic' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_a_store_behind_its_heads_is_still_migrated(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'mql.db'}")
    database.migrate()
    config = database.alembic_config()
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "-1")  # one migration behind
    assert database.pending_migrations()
    database.migrate()
    assert not database.pending_migrations()
