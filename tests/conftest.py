from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from mqlengine.definition.compiler import load_definition
from mqlengine.domain.rules import Definition
from mqlengine.store.db import Database
from support import pg  # the throw-away PostgreSQL cluster
from support.clock import NOW
from support.paths import EXAMPLE
from support.secrets import TEST_SECRET_KEY

# Stored secrets are encrypted: every wiring, CLI command and server the tests start has a
# key unless a test takes it away on purpose.
os.environ.setdefault("MQL_SECRET_KEY", TEST_SECRET_KEY)


@pytest.fixture
def example_text() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


@pytest.fixture
def now() -> datetime:
    return NOW


# --- databases: SQLite and a real PostgreSQL ---------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Admin URL of the session's PostgreSQL server (started on first use, stopped at exit).

    Without a server the PostgreSQL tests skip, unless ``CI`` or ``MQL_REQUIRE_POSTGRES=1``
    is set: then they fail, so CI never passes by silently skipping them.
    """
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(pg.postgres_server())
        except pg.PostgresUnavailable as error:
            if pg.postgres_required():
                pytest.fail(f"PostgreSQL is required but unavailable: {error}", pytrace=False)
            pytest.skip(f"PostgreSQL unavailable: {error}")
        yield url


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per session; tests get copies."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    database = Database(f"sqlite:///{path}")
    database.migrate()
    database.dispose()
    return path


@pytest.fixture(scope="session")
def _postgres_template(postgres_url: str) -> Iterator[str]:
    """Name of a database migrated once per session; tests get ``CREATE DATABASE … EXAMPLE``."""
    url = pg.create_database(postgres_url)
    database = Database(url)
    database.migrate()
    database.dispose()  # a template must have no open connections
    try:
        yield url.partition("?")[0].rpartition("/")[2]
    finally:
        pg.drop_database(postgres_url, url)


def _fresh_database(
    request: pytest.FixtureRequest, tmp_path: Path, *, migrated: bool
) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "mql.db"
        if migrated:
            template = request.getfixturevalue("_sqlite_template")
            with (
                contextlib.closing(sqlite3.connect(template)) as source,
                contextlib.closing(sqlite3.connect(path)) as target,
            ):
                source.backup(target)
        yield f"sqlite:///{path}"
        return
    admin_url: str = request.getfixturevalue("postgres_url")
    template = request.getfixturevalue("_postgres_template") if migrated else None
    url = pg.create_database(admin_url, template=template)
    try:
        yield url
    finally:
        pg.drop_database(admin_url, url)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database per test: a SQLite file, or a new database on the cluster."""
    yield from _fresh_database(request, tmp_path, migrated=False)


@pytest.fixture(params=BACKENDS)
def migrated_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database with the schema, copied from one migrated once per session (fast)."""
    yield from _fresh_database(request, tmp_path, migrated=True)


@pytest.fixture(scope="module")
def definition() -> Definition:
    """The example definition (the template `mql init` writes), compiled."""
    return load_definition(EXAMPLE).definition


@pytest.fixture
def db(migrated_database_url: str) -> Iterator[Database]:
    """A migrated database on each backend, disposed of after the test."""
    database = Database(migrated_database_url)
    try:
        yield database
    finally:
        database.dispose()
