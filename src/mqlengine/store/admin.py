"""Opening a store safely, and the schema's state: what ``mql db upgrade|current|check`` use.

A read command pointed at a mistyped SQLite path used to create an empty database and
answer from it; a PostgreSQL server that cannot be reached surfaced as a driver traceback.
Both are now one clear error naming the URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mqlengine.errors import ConfigError, UnavailableError
from mqlengine.store.db import Database, normalize_url, sqlite_file

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.exc import DBAPIError


def _driver_errors() -> type[DBAPIError]:
    """SQLAlchemy's wrapper of driver errors, imported only when an error is matched."""
    from sqlalchemy.exc import DBAPIError

    return DBAPIError


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL (None for other databases and in-memory ones)."""
    plain = sqlite_file(url)
    if plain is not None:
        return Path(plain)
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(normalize_url(url))
    except Exception:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def safe_url(url: str) -> str:
    """The URL with its password hidden, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(normalize_url(url)).render_as_string(hide_password=True)
    except Exception:
        return url


def open_store(
    url: str, *, create: bool = True, migrate: bool = True, secret_key: str | None = None
) -> Database:
    """A :class:`Database` that answers: refuses a missing SQLite file unless ``create``,
    reaches the server now (a clear :class:`UnavailableError` when it cannot) and brings
    the schema to the newest revision when ``migrate``."""
    path = sqlite_path(url)
    if path is not None and not create and not path.exists():
        raise ConfigError(
            f"no database at {path}: check --database / MQL_DATABASE_URL "
            "(`mql db upgrade` creates an empty one; `mql demo` or `mql import` fill one)"
        )
    database = Database(url, secret_key=secret_key)
    try:
        if migrate:
            database.migrate()
        else:
            with database.read() as connection:
                connection.exec_driver_sql("SELECT 1")
    except _driver_errors() as error:  # (the expression is evaluated only on an error)
        database.dispose()
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise UnavailableError(
            f"cannot use the database {safe_url(url)}: {reason}",
            details={"database": safe_url(url)},
        ) from None
    return database


@dataclass(frozen=True)
class SchemaState:
    current: tuple[str, ...]
    heads: tuple[str, ...]
    differences: tuple[str, ...]
    orphans: tuple[str, ...] = ()

    @property
    def up_to_date(self) -> bool:
        return set(self.current) == set(self.heads)

    @property
    def matches_code(self) -> bool:
        return self.up_to_date and not self.differences

    @property
    def sound(self) -> bool:
        """The schema matches the code and no row refers to a person that does not exist."""
        return self.matches_code and not self.orphans


def _describe(diff: Any) -> str:
    if isinstance(diff, list):  # column modifications come grouped
        return "; ".join(_describe(d) for d in diff)
    kind, *rest = diff
    names = []
    for item in rest:
        name = getattr(item, "name", None)
        table = getattr(getattr(item, "table", None), "name", None)
        if name is not None:
            names.append(f"{table}.{name}" if table and table != name else str(name))
        elif isinstance(item, str):
            names.append(item)
    return f"{kind} {' '.join(names)}".strip()


# What autogenerate reports but the schema expresses on purpose outside the table
# definitions (SQLite triggers and partial indexes written by migrations in raw SQL).
_IGNORED_KINDS = frozenset({"remove_trigger"})


def schema_state(database: Database) -> SchemaState:
    """The revision the database is at, the code's newest, and how the tables differ."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from mqlengine.store.schema import metadata

    script = ScriptDirectory.from_config(database.alembic_config())
    with database.read() as connection:
        context = MigrationContext.configure(connection)
        current = tuple(sorted(context.get_current_heads()))
        differences = tuple(
            _describe(d)
            for d in compare_metadata(context, metadata)
            if not (isinstance(d, tuple) and d[0] in _IGNORED_KINDS)
        )
        heads = tuple(sorted(script.get_heads()))
        orphans = _orphans(connection) if set(current) == set(heads) else ()
    return SchemaState(current, heads, differences, orphans)


# Tables that name a person without a foreign key (migration 0009: append-only logs).
_PERSON_LOGS = ("events", "score_snapshots")


def _orphans(connection: Connection) -> tuple[str, ...]:
    """A line per log table holding rows whose person does not exist."""
    found = []
    for table in _PERSON_LOGS:
        count = connection.exec_driver_sql(
            f"SELECT count(*) FROM {table} t "  # table names are constants
            "WHERE NOT EXISTS (SELECT 1 FROM persons p WHERE p.id = t.person_id)"
        ).scalar_one()
        if count:
            found.append(f"{table}: {count} row(s) refer to a person that does not exist")
    return tuple(found)
