from __future__ import annotations

from alembic.script import ScriptDirectory

from mqlengine.store.db import Database


def test_migrations_have_a_single_head() -> None:
    """One head, so `alembic upgrade head` and new revisions have one place to start."""
    script = ScriptDirectory.from_config(Database("sqlite://").alembic_config())
    assert len(script.get_heads()) == 1
