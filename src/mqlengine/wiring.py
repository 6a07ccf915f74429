"""The composition root: the one place that turns :class:`Settings` into working parts.

Every shell — the HTTP API, each CLI command, the worker, the demo, import and unmerge —
asks a :class:`Wiring` for the database, the definition in force, the clock, the enrichers
and the ingest pipeline; none assembles its own. Before this existed the pipeline was built
in four places with different parts, and the same ``identify`` message scored fit 55
through the API but 30 through ``mql import`` (the import had no enrichers). Library code
below this module takes what it uses (a database, a definition, ``now``), never the root.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mqlengine.errors import ConfigError, DefinitionError, MqlError
from mqlengine.settings import Settings
from mqlengine.store import columnar_config
from mqlengine.store.admin import open_store

if TYPE_CHECKING:  # the rest is imported where used: a command starts in a tenth of a second
    from mqlengine.definition.compiler import LoadedDefinition
    from mqlengine.domain.rules import Definition
    from mqlengine.ingest.firmographics import Enricher
    from mqlengine.ingest.pipeline import Pipeline
    from mqlengine.ingest.writerstate import WriterState
    from mqlengine.store.db import Database
    from mqlengine.store.secretbox import SecretBox

TEMPLATE = Path(__file__).parent / "definition" / "templates" / "mql.yaml"

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def frozen_clock(moment: datetime) -> Clock:
    """A clock that always says ``moment`` (``MQL_CLOCK``: reproducible runs and tests)."""

    def clock() -> datetime:
        return moment

    return clock


def build_enrichers(settings: Settings) -> tuple[Enricher, ...]:
    """The firmographic providers the settings name, asked in order by the pipeline."""
    if settings.firmographics_csv is None:
        return ()
    from mqlengine.ingest.firmographics import CsvFirmographics

    return (CsvFirmographics(settings.firmographics_csv),)


class Wiring:
    """Database, definition source, clock, enrichers and pipelines, built once from settings.

    ``create``: whether a missing SQLite file may be created (commands that only read pass
    False, so a mistyped ``--database`` is refused instead of answering from an empty
    database). ``migrate``: bring the schema to the newest revision on open.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        database: Database | None = None,
        clock: Clock | None = None,
        enrichers: Sequence[Enricher] | None = None,
        create: bool = True,
        migrate: bool = True,
    ) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        if clock is None:
            frozen = self.settings.frozen_now
            clock = frozen_clock(frozen) if frozen is not None else system_clock
        self.clock: Clock = clock
        self.db = (
            database
            if database is not None
            else open_store(
                self.settings.database_url,
                create=create,
                migrate=migrate,
                secret_key=self.settings.secret_key,
            )
        )
        columnar_config.configure(self.db.url, self.settings.columnar_path)
        self.enrichers: tuple[Enricher, ...] = (
            tuple(enrichers) if enrichers is not None else build_enrichers(self.settings)
        )
        self._definition: LoadedDefinition | None = None
        self.warnings: list[str] = []
        self.on_warning: Callable[[str], None] | None = None

    # -- the definition in force ---------------------------------------------------------
    def definition(self, path: Path | None = None) -> LoadedDefinition:
        """The definition in force. Before any ``mql definition apply``: the file
        (registered as a version when new), else the version last activated in the store.
        Once a version has been applied, the store's live version, whatever the file says
        (a file that differs from it is reported through :meth:`warn`)."""
        if self._definition is not None and path is None:
            return self._definition
        # imported here: a command that reads no definition (most reports) does not pay
        # for the definition's schema
        from mqlengine.definition.compiler import load_definition, parse_definition
        from mqlengine.store import repo

        file = path or self.settings.definition_path
        with self.db.read() as connection:
            applied = repo.definitions_applied(connection)
            row = repo.active_definition(connection) if applied or not file.exists() else None
        if row is not None:
            loaded = parse_definition(row["content"], f"<stored {row['version']}>")
            if applied and file.exists():
                self._check_drift(file, row["version"], row["content_hash"])
        elif file.exists():
            loaded = load_definition(file)
            self.register(loaded)
        else:
            raise ConfigError(
                f"no definition: {file} does not exist and none is stored "
                "(create one with `mql init`, or run `mql demo`)"
            )
        self._definition = loaded
        return loaded

    def _check_drift(self, file: Path, live_version: str, live_hash: str) -> None:
        from mqlengine.definition.compiler import load_definition

        try:
            on_disk = load_definition(file)
        except MqlError as error:
            self.warn(
                f"{file} is not a valid definition ({error.message}); "
                f"the live version {live_version} is in force"
            )
            return
        if on_disk.definition.content_hash != live_hash:
            self.warn(
                f"{file} differs from live version {live_version}: "
                f"preview and apply it with `mql definition apply {file}`"
            )

    def warn(self, message: str) -> None:
        """A warning for whoever runs this wiring (the CLI prints it; others collect it)."""
        self.warnings.append(message)
        if self.on_warning is not None:
            self.on_warning(message)

    def definition_or_none(self) -> LoadedDefinition | None:
        """The definition in force, or None when there is none yet (reports still run)."""
        try:
            return self.definition()
        except MqlError:
            return None

    def register(self, loaded: LoadedDefinition) -> None:
        """Store ``loaded`` as a version (once per content) and make it the one in force."""
        from mqlengine.store import repo

        with self.db.begin() as connection:
            _, conflict = repo.save_definition(
                connection,
                version=loaded.definition.version,
                content_hash=loaded.definition.content_hash,
                content=loaded.text,
                description=loaded.definition.description,
                now=self.clock(),
            )
        if conflict:
            raise DefinitionError(conflict, diagnostics=[f"{loaded.filename}:1:1: {conflict}"])
        self._definition = loaded

    def use_template(self) -> LoadedDefinition:
        from mqlengine.definition.compiler import parse_definition

        loaded = parse_definition(TEMPLATE.read_text(encoding="utf-8"), "mql.yaml")
        self.register(loaded)
        return loaded

    # -- secrets at rest -------------------------------------------------------------------
    def secret_box(self) -> SecretBox:
        """Seals and opens stored secrets with the settings' ``secret_key``."""
        from mqlengine.store.secretbox import SecretBox

        return SecretBox(self.settings.secret_key)

    # -- the write path ------------------------------------------------------------------
    def pipeline(
        self, definition: Definition | None = None, *, memory: WriterState | bool = False
    ) -> Pipeline:
        """The ingest pipeline for ``definition`` (default: the one in force) with this
        wiring's enrichers and the handoff (routing, SLA, outbox). ``memory``: what its
        writer remembers between transactions — True for a fresh one, only for a writer
        that keeps one connection of its own (the API's writer thread: its change watch
        compares that connection's ``data_version``); a given one to share it (the demo,
        which tells it what it wrote itself); False (default) for none: each batch reads
        what it needs (imports, the facade, unmerge, on pooled connections)."""
        from mqlengine.ingest.pipeline import Pipeline
        from mqlengine.ingest.qualify import scorer_for
        from mqlengine.ingest.writerstate import WriterState
        from mqlengine.services.qualify import HANDOFF

        chosen = definition if definition is not None else self.definition().definition
        if memory is True:
            scorer = scorer_for(chosen)
            memory = WriterState(
                scorer.relevant,
                max_bytes=self.settings.writer_memory_mb * 2**20,
                matches=scorer,
                late_claim=True,  # the API's writer runs a transaction again on LostRace
            )
        return Pipeline(
            chosen,
            handoff=HANDOFF,
            enricher=self.enrichers,
            memory=memory or None,
            suppression=self.suppression(),
        )

    def suppression(self) -> SecretBox | None:
        """The key of the erased identifiers' hashes when their messages are dropped
        (``MQL_AFTER_ERASURE=suppress``, which needs ``MQL_SECRET_KEY``)."""
        if self.settings.after_erasure != "suppress":
            return None
        box = self.secret_box()
        if not box.configured:
            raise ConfigError(
                "MQL_AFTER_ERASURE=suppress keeps keyed hashes of erased identifiers: "
                "set MQL_SECRET_KEY too"
            )
        return box

    def pipeline_source(self) -> Callable[[], Pipeline]:
        """For a long-lived writer: the pipeline of the definition in force, with its
        memory, rebuilt when another definition is activated (the memory keeps only the
        events its definition's rules can score, so it starts afresh with a new one)."""
        current: list[Pipeline] = []

        def source() -> Pipeline:
            definition = self.definition().definition
            if not current or current[0].definition is not definition:
                current[:] = [self.pipeline(definition, memory=True)]
            return current[0]

        return source

    def close(self) -> None:
        self.db.dispose()
