"""Engine creation and migrations: the only place that knows which database is behind.

SQLite (the embedded default) runs in WAL mode with foreign keys on; PostgreSQL is the
production store. Both get the same schema through the same Alembic migrations.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from mqlengine.errors import ConfigError
from mqlengine.store.sqlitefile import WriterTurns, create_private, read_rows

if TYPE_CHECKING:  # Alembic is imported when a migration runs, not by every command; the
    # engine (SQLAlchemy) when a statement first runs through it
    from alembic.config import Config
    from sqlalchemy import Connection, Engine

    from mqlengine.store.dialect import WriterSupport

MIGRATIONS = Path(__file__).with_name("migrations")
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _json_dumps(value: Any) -> str:
    """JSON columns are written with orjson: several times faster than the stdlib."""
    return orjson.dumps(value, option=_JSON_OPTIONS, default=str).decode()


DEFAULT_URL = "sqlite:///mql.db"


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` (psycopg 3 is the driver) and plain SQLite paths."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if "://" not in url:
        url = f"sqlite:///{url}"
    return url


_REVISION = re.compile(r"^revision(?:\s*:[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.M)
_DOWN = re.compile(r"^down_revision(?:\s*:[^=]*)?=(.*)$", re.M)


@cache
def migration_heads() -> frozenset[str]:
    """The revisions no migration builds on, read from the files' ``revision`` and
    ``down_revision`` lines; empty when a file does not have them as expected."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        revision, down = _REVISION.findall(text), _DOWN.findall(text)
        if len(revision) != 1 or len(down) != 1:
            return frozenset()
        revisions.add(revision[0])
        parents.update(re.findall(r"['\"]([^'\"]+)['\"]", down[0]))
    if not parents <= revisions:
        return frozenset()
    return frozenset(revisions - parents)


_PLAIN_SQLITE = re.compile(r"^sqlite:///([^?#%]*)$")  # no query, no escapes


def sqlite_file(url: str) -> str | None:
    """The file of a plain ``sqlite:///PATH`` URL (no query, not in memory), read without
    SQLAlchemy; None for any other URL."""
    found = _PLAIN_SQLITE.match(normalize_url(url))
    if found is None or found.group(1) in ("", ":memory:") or found.group(1).startswith("file:"):
        return None
    return found.group(1)


class Database:
    """An engine plus the operations every command needs: migrate and transact.

    The engine (and with it SQLAlchemy) is made when a statement first needs it: a short
    command on a SQLite file asks its questions of an empty store with the standard
    library's driver (whether the schema is at the newest revision, :meth:`tables_empty`) and
    may never need it."""

    def __init__(
        self, url: str = DEFAULT_URL, *, echo: bool = False, secret_key: str | None = None
    ) -> None:
        """``secret_key``: what migrations that encrypt stored secrets use (0010)."""
        self.url = normalize_url(url)
        self.secret_key = secret_key
        self._echo = echo
        self.turns: WriterTurns | None = None
        self.file = sqlite_file(self.url)
        if self.file is not None:
            self.dialect = "sqlite"
            database = self.file
        else:
            from sqlalchemy.engine import make_url

            try:
                parsed = make_url(self.url)
            except Exception as error:
                raise ConfigError(f"invalid database URL {url!r}: {error}") from None
            self.dialect = parsed.get_backend_name()
            database = parsed.database or ""
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")
        if self.dialect == "sqlite" and database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            create_private(database)
            self.turns = WriterTurns(database)
        self._memory = self.dialect == "sqlite" and database in ("", ":memory:")
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, made on first use."""
        if self._engine is None:
            with self._engine_lock:
                if self._engine is None:
                    self._engine = self._make_engine()
        return self._engine

    def _make_engine(self) -> Engine:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        # Parameters stay out of error messages: they hold e-mail addresses and names,
        # which would otherwise reach logs with every failed statement.
        kwargs: dict[str, Any] = {"echo": self._echo, "hide_parameters": True}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if self._memory:
                kwargs["poolclass"] = NullPool
        else:
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 20
            kwargs["pool_pre_ping"] = True
            # Statements the driver has prepared are still planned for their parameters
            # and the table as it is now. A generic plan made while a table was small (a
            # new database) kept scanning it whole as it grew: the ingest's duplicate
            # check by message id took ~170 ms a batch after 30,000 events instead of ~1.
            kwargs["connect_args"] = {"options": "-c plan_cache_mode=force_custom_plan"}
        kwargs["json_serializer"] = _json_dumps
        kwargs["json_deserializer"] = orjson.loads
        engine = create_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            from mqlengine.store import sqlite

            sqlite.install(engine)
        return engine

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def writer_support(self, *, durable: bool = True) -> WriterSupport:
        """What a long-running writer (the ingest writer) needs from this database."""
        from mqlengine.store import sqlite
        from mqlengine.store.dialect import WriterSupport

        if self.is_sqlite:
            return sqlite.SqliteWriterSupport(self.engine, self.turns, durable=durable)
        return WriterSupport()

    def alembic_config(self) -> Config:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return config

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent). A schema already there is
        recognised without Alembic (its import and the reading of every migration cost a
        cold command a third of a second)."""
        if self._at_heads():
            return
        from alembic import command

        config = self.alembic_config()
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            config.attributes["secret_key"] = self.secret_key
            command.upgrade(config, "heads")

    def _at_heads(self) -> bool:
        """Whether ``alembic_version`` names exactly the migrations' heads (False when in
        doubt: no table, another set, heads that cannot be read from the files)."""
        heads = migration_heads()
        if not heads:
            return False
        query = "SELECT version_num FROM alembic_version"
        try:
            if self.file is not None:  # without SQLAlchemy
                rows = read_rows(self.file, query)
            else:
                with self.engine.connect() as connection:
                    rows = list(connection.exec_driver_sql(query))
            current = {str(row[0]) for row in rows}
        except Exception:  # no table yet (a new database), or not reachable: migrate
            return False
        return current == heads

    def tables_empty(self, names: tuple[str, ...]) -> bool:
        """Whether none of the tables ``names`` (constants, never user input) holds a row;
        False when in doubt (a table missing, an error)."""
        try:
            for table in names:
                query = f"SELECT 1 FROM {table} LIMIT 1"
                if self.file is not None:  # without SQLAlchemy
                    if read_rows(self.file, query):
                        return False
                    continue
                with self.read() as connection:
                    if connection.exec_driver_sql(query).first() is not None:
                        return False
        except Exception:
            return False
        return True

    def pending_migrations(self) -> bool:
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(self.alembic_config())
        with self.engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
        return current != set(script.get_heads())

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: commits on success, rolls back on any error. On a SQLite file
        the transaction asks for its turn first (:class:`WriterTurns`)."""
        if self.turns is None:
            with self.engine.begin() as connection:
                yield connection
            return
        with self.turns.want(), self.engine.begin() as connection:
            yield connection

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect().execution_options(mql_read_only=True) as connection:
            yield connection

    def scrub(self) -> bool:
        """After deleting personal data: on SQLite, truncate the write-ahead log so no
        copy of the deleted rows' pages remains in it (the database itself runs with
        ``secure_delete``). PostgreSQL reuses the space at its next vacuum. False when the
        log could not be truncated now (a long reader); it is at the next checkpoint."""
        if self.is_sqlite:
            from mqlengine.store import sqlite

            return sqlite.truncate_wal(self.engine)
        return True

    def dispose(self) -> None:
        if self._engine is not None:  # made only when a statement needed it
            self._engine.dispose()
        if self.turns is not None:
            self.turns.close()
