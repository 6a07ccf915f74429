"""`mql db upgrade|current|check` on SQLite and PostgreSQL, and how a store is opened:
a read never creates a database, an unreachable server is one clear line."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from mqlengine.cli.app import app
from mqlengine.errors import ConfigError, UnavailableError
from mqlengine.store.admin import open_store, schema_state
from mqlengine.store.db import Database


def mql(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_upgrade_current_and_check(database_url: str) -> None:
    code, out = mql("--database", database_url, "db", "current", "--json")
    if database_url.startswith("sqlite"):
        assert code == 8 and "no database at" in out  # nothing is created by a read
        code, out = mql("--database", database_url, "db", "check")
        assert code == 8
    else:  # the server's database exists but holds no schema yet
        assert code == 0 and orjson.loads(out)["up_to_date"] is False
        code, out = mql("--database", database_url, "db", "check")
        assert code == 1 and "run `mql db upgrade`" in out
    code, out = mql("--database", database_url, "db", "upgrade")
    assert code == 0, out
    code, out = mql("--database", database_url, "db", "current", "--json")
    state = orjson.loads(out)
    assert code == 0 and state["up_to_date"] and state["current"] == state["heads"]
    code, out = mql("--database", database_url, "db", "check")
    assert code == 0 and "ok" in out, out


def test_check_names_what_differs_from_the_code(migrated_database_url: str) -> None:
    database = Database(migrated_database_url)
    try:
        assert schema_state(database).matches_code
        with database.begin() as connection:
            connection.execute(text("CREATE TABLE stray (id INTEGER PRIMARY KEY)"))
            connection.execute(text("DROP INDEX ix_events_person_time"))
        state = schema_state(database)
        assert state.up_to_date and not state.matches_code
        assert any("stray" in d for d in state.differences)
        assert any("ix_events_person_time" in d for d in state.differences)
    finally:
        database.dispose()
    code, out = mql("--database", migrated_database_url, "db", "check")
    assert code == 1 and "stray" in out and "differs from the code" in out


def test_check_counts_log_rows_whose_person_does_not_exist(migrated_database_url: str) -> None:
    """events and score_snapshots name their person without a foreign key (the database
    does not refuse an orphan): `mql db check` finds them."""
    database = Database(migrated_database_url)
    try:
        with database.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO events (message_id, person_id, type, name, properties, "
                    "context, timestamp, received_at) VALUES ('m-orphan', 424242, 'page', "
                    "'Home', '{}', '{}', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                )
            )
        state = schema_state(database)
        assert state.matches_code and not state.sound
        assert state.orphans == ("events: 1 row(s) refer to a person that does not exist",)
    finally:
        database.dispose()
    code, out = mql("--database", migrated_database_url, "db", "check")
    assert code == 1 and "events: 1 row(s)" in out and "do not exist" in out, out


@pytest.mark.parametrize("url", ["garbage", "sqlite:////no/such/dir/x.db"])
def test_a_mistyped_database_is_refused_by_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.chdir(tmp_path)
    for command in (["leads"], ["explain", "1"], ["report", "funnel"], ["reps"], ["reps", "teams"]):
        code, out = mql("--database", url, *command)
        assert code == 8 and "no database at" in out, (command, out)
    assert not (tmp_path / "garbage").exists()
    with pytest.raises(ConfigError):
        open_store(url, create=False)


def test_an_unreachable_server_is_one_clear_line() -> None:
    url = "postgresql://nobody@127.0.0.1:9/none"  # the discard port: nothing listens
    code, out = mql("--database", url, "leads")
    assert code == 9
    assert out.count("\n") == 1 and "cannot use the database" in out and "127.0.0.1" in out
    with pytest.raises(UnavailableError):
        open_store(url)
