"""Secrets at rest and files on disk: destination URLs and signing secrets are stored
encrypted (on SQLite and PostgreSQL), migration 0010 encrypts the plaintext ones and
refuses to go on without a key, the CLI masks them, new SQLite files are 0600, and logs
name no e-mail address even when a statement fails."""

from __future__ import annotations

import io
import logging
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from mqlengine.cli.app import app
from mqlengine.errors import ConfigError
from mqlengine.logmask import MaskFilter, mask
from mqlengine.services import outbox
from mqlengine.settings import Settings
from mqlengine.store.db import Database
from mqlengine.store.secretbox import SecretBox
from mqlengine.store.tables import persons
from mqlengine.store.tables_handoff import destinations
from support.rows import person_row
from support.secrets import TEST_BOX, TEST_SECRET_KEY

NOW = datetime(2026, 11, 16, 15, 0, tzinfo=UTC)
SLACK = "https://hooks.slack.com/services/T000/B000/XyZsecretToken123"
SMTP = "smtp://mailer:hunter2-password@smtp.example.com:587?from=mql@example.com"


def test_destinations_are_stored_encrypted(db: Database) -> None:
    with db.begin() as c:
        outbox.add_destination(c, box=TEST_BOX, name="slack", kind="slack", url=SLACK, now=NOW)
        outbox.add_destination(
            c,
            box=TEST_BOX,
            name="hook",
            kind="webhook",
            url="https://crm.example/in",
            secret="whsec_c2VjcmV0LXNpZ25pbmcta2V5",
            now=NOW,
        )
        outbox.add_destination(
            c, box=TEST_BOX, name="mail", kind="email", url=SMTP, email_to=["owner"], now=NOW
        )
    with db.read() as c:
        stored = {r.name: r for r in c.execute(select(destinations))}
        raw = " ".join(
            str(v) for row in c.execute(text("SELECT url, secret FROM destinations")) for v in row
        )
    assert "XyZsecretToken123" not in raw and "hunter2" not in raw and "c2VjcmV0" not in raw
    assert all(SecretBox.is_sealed(r.url) for r in stored.values())
    assert TEST_BOX.reveal(stored["slack"].url) == SLACK
    assert TEST_BOX.reveal(stored["mail"].url) == SMTP
    assert TEST_BOX.reveal(stored["hook"].secret) == "whsec_c2VjcmV0LXNpZ25pbmcta2V5"
    with pytest.raises(ConfigError, match="was the key changed"):
        SecretBox("a different key").reveal(stored["slack"].url)


def test_without_a_key_no_secret_is_stored(db: Database) -> None:
    with db.begin() as c, pytest.raises(ConfigError, match="MQL_SECRET_KEY is not set"):
        outbox.add_destination(
            c, box=SecretBox(None), name="slack", kind="slack", url=SLACK, now=NOW
        )
    with db.read() as c:
        assert c.execute(select(destinations)).first() is None


def _at_0008_with_a_plaintext_destination(url: str) -> None:
    database = Database(url)
    try:
        config = database.alembic_config()
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0008_ingest_epoch")
            connection.execute(
                text(
                    "INSERT INTO destinations (name, kind, url, secret, topics, email_to, "
                    "active, created_at) VALUES ('slack', 'slack', :url, 'whsec_abc', '[]', "
                    "'[]', true, :now)"
                ),
                {"url": SLACK, "now": NOW},
            )
    finally:
        database.dispose()


def test_migration_encrypts_plaintext_secrets(database_url: str) -> None:
    _at_0008_with_a_plaintext_destination(database_url)
    refused = Database(database_url)  # no key: the upgrade stops and says why
    try:
        with pytest.raises(ConfigError, match="plaintext credentials"):
            refused.migrate()
    finally:
        refused.dispose()
    database = Database(database_url, secret_key=TEST_SECRET_KEY)
    try:
        database.migrate()
        with database.read() as c:
            row = c.execute(select(destinations.c.url, destinations.c.secret)).one()
    finally:
        database.dispose()
    assert SecretBox.is_sealed(row.url) and SecretBox.is_sealed(row.secret)
    assert TEST_BOX.reveal(row.url) == SLACK and TEST_BOX.reveal(row.secret) == "whsec_abc"


def test_cli_refuses_without_key_and_masks_destinations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MQL_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    assert runner.invoke(app, ["init"]).exit_code == 0
    monkeypatch.delenv("MQL_SECRET_KEY")
    refused = runner.invoke(
        app, ["outbox", "add-destination", "s", "--kind", "slack", "--url", SLACK]
    )
    assert refused.exit_code == 8 and "MQL_SECRET_KEY is not set" in refused.output
    monkeypatch.setenv("MQL_SECRET_KEY", TEST_SECRET_KEY)
    added = runner.invoke(
        app, ["outbox", "add-destination", "s", "--kind", "slack", "--url", SLACK]
    )
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["outbox", "destinations"])
    assert listed.exit_code == 0 and "hooks.slack.com" in listed.output
    assert "XyZsecretToken123" not in listed.output
    assert TEST_SECRET_KEY not in repr(Settings.from_env())


def test_new_sqlite_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    database = Database(f"sqlite:///{path}")
    try:
        database.migrate()
        with database.begin() as c:
            c.execute(persons.insert().values(**person_row(email="x@y.io")))
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir() if p.is_file()}
    finally:
        database.dispose()
    assert modes["new.db"] == 0o600
    assert all(mode == 0o600 for mode in modes.values()), modes  # -wal, -shm, -writers too


def test_a_failed_statement_logs_no_personal_data(db: Database) -> None:
    """A real failed INSERT (a duplicate identity) logged with its traceback, as an
    unexpected error would be: neither the statement's parameters nor the filter let the
    e-mail address through."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskFilter(secrets=["wk-secret-1"]))
    logger = logging.getLogger("test.privacy.mask")
    logger.addHandler(handler)
    try:
        with db.begin() as c:
            person_id = c.execute(
                persons.insert().values(**person_row(email="ada@clinic.example"))
            ).inserted_primary_key[0]
            c.execute(
                text(
                    "INSERT INTO identities (person_id, kind, value, created_at) "
                    "VALUES (:p, 'email', 'ada@clinic.example', :now)"
                ),
                {"p": person_id, "now": NOW},
            )
        with pytest.raises(IntegrityError) as caught, db.begin() as c:
            c.execute(
                text(
                    "INSERT INTO identities (person_id, kind, value, created_at) "
                    "VALUES (:p, 'email', :v, :now)"
                ),
                {"p": person_id, "v": "ada@clinic.example", "now": NOW},
            )
        # the parameters are hidden (PostgreSQL's own DETAIL still names the value: the
        # log filter below catches that)
        assert "parameters hidden" in str(caught.value)
        try:
            raise caught.value
        except IntegrityError:
            logger.exception("insert failed")
        try:
            raise RuntimeError("lookup of ada@clinic.example +44 20 7946 0321 with wk-secret-1")
        except RuntimeError:
            logger.exception("failed for %s", "ada@clinic.example")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert "RuntimeError" in output and "failed for" in output and "IntegrityError" in output
    assert "ada@clinic.example" not in output
    assert "7946 0321" not in output and "wk-secret-1" not in output


def test_mask_covers_keys_urls_and_identifiers() -> None:
    line = (
        '127.0.0.1:5 - "GET /?key=k-123&email=a%40b.io&userId=u-9 HTTP/1.1" 200 '
        "Authorization: Basic d2stMTIzOg== postgresql://mql:pw@db/mql whsec_abc= "
        '{"email": "x@y.io", "ip": "10.0.0.1"}'
    )
    masked = mask(line)
    for leaked in ("k-123", "a%40b.io", "u-9", "d2stMTIzOg==", ":pw@", "whsec_abc", "x@y.io"):
        assert leaked not in masked, leaked
    assert "10.0.0.1" not in masked and 'HTTP/1.1" 200' in masked
