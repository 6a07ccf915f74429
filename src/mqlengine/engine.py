"""Wiring in one place: settings → database, definition and pipeline.

Entry points (CLI, API, worker, demo) build an :class:`Engine` and call library functions
through it; nothing else decides which store or which definition is in force.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mqlengine.definition.compiler import LoadedDefinition, load_definition, parse_definition
from mqlengine.errors import ConfigError, DefinitionError
from mqlengine.settings import Settings
from mqlengine.store import repo
from mqlengine.store.db import Database

TEMPLATE = Path(__file__).parent / "definition" / "templates" / "mql.yaml"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Engine:
    def __init__(self, settings: Settings | None = None, database: Database | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.db = database or Database(self.settings.database_url)
        self.db.migrate()
        self._definition: LoadedDefinition | None = None

    def definition(self, path: Path | None = None) -> LoadedDefinition:
        """The definition in force: the file (registered as a version when new), else the
        version last activated in the store."""
        if self._definition is not None and path is None:
            return self._definition
        file = path or self.settings.definition_path
        if file.exists():
            loaded = load_definition(file)
            self.register(loaded)
        else:
            with self.db.read() as connection:
                row = repo.active_definition(connection)
            if row is None:
                raise ConfigError(
                    f"no definition: {file} does not exist and none is stored "
                    "(create one with `mql init`, or run `mql demo`)"
                )
            loaded = parse_definition(row["content"], f"<stored {row['version']}>")
        self._definition = loaded
        return loaded

    def register(self, loaded: LoadedDefinition) -> None:
        with self.db.begin() as connection:
            _, conflict = repo.save_definition(
                connection,
                version=loaded.definition.version,
                content_hash=loaded.definition.content_hash,
                content=loaded.text,
                description=loaded.definition.description,
                now=utcnow(),
            )
        if conflict:
            raise DefinitionError(conflict, diagnostics=[f"{loaded.filename}:1:1: {conflict}"])
        self._definition = loaded

    def use_template(self) -> LoadedDefinition:
        loaded = parse_definition(TEMPLATE.read_text(encoding="utf-8"), "mql.yaml")
        self.register(loaded)
        return loaded
