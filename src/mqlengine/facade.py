"""The Python façade: what the CLI can do, a Python user can do, through the same path.

    import mqlengine

    with mqlengine.open("sqlite:///mql.db", definition="mql.yaml") as eng:
        result = eng.ingest([{"type": "identify", "userId": "u1", "traits": {...}}])
        report = eng.import_file("history.jsonl")
        detail = eng.explain("ada@example.com")
        funnel = eng.report("funnel", since="2026-01-01")

Each method is the library call its CLI command makes; the parts (database, definition,
enrichers, clock, pipeline) come from one :class:`~mqlengine.wiring.Wiring`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from mqlengine.wiring import Wiring

if TYPE_CHECKING:
    from mqlengine.batch.rescore import RescoreReport
    from mqlengine.ingest.csvread import CsvOptions
    from mqlengine.ingest.importer import ImportReport
    from mqlengine.ingest.pipeline import BatchResult, Pipeline
    from mqlengine.ingest.unmerge import UnmergeResult
    from mqlengine.services.leads import PersonDetail

FileKind = Literal["auto", "jsonl", "persons", "events"]


class MqlEngine:
    """One store and the definition in force, with the operations every shell offers."""

    def __init__(self, wiring: Wiring) -> None:
        self.wiring = wiring
        self._pipeline: Pipeline | None = None

    # -- context management --------------------------------------------------------------
    def __enter__(self) -> MqlEngine:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.wiring.close()

    # -- the write path --------------------------------------------------------------------
    def pipeline(self) -> Pipeline:
        """The pipeline of the definition in force (rebuilt when another one is active)."""
        definition = self.wiring.definition().definition
        if self._pipeline is None or self._pipeline.definition is not definition:
            self._pipeline = self.wiring.pipeline(definition)
        return self._pipeline

    def ingest(self, messages: Iterable[Mapping[str, Any]], *, replay: bool = False) -> BatchResult:
        """Ingest Segment messages in one transaction, as ``POST /v1/batch`` does.
        ``replay``: score each person as of its newest event (history), not now."""
        batch = [dict(m) for m in messages]
        pipeline = self.pipeline()
        with self.wiring.db.begin() as connection:
            return pipeline.ingest(
                connection,
                batch,
                now=self.wiring.clock(),
                score_as_of="event" if replay else "arrival",
            )

    def import_file(
        self,
        path: str | Path,
        *,
        kind: FileKind = "auto",
        mapping: Mapping[str, str] | None = None,
        progress: Callable[[int], None] | None = None,
        options: CsvOptions | None = None,
    ) -> ImportReport:
        """Load a JSONL file of Segment messages or a CSV of persons or events (``kind``),
        as ``mql import`` does: bad rows are reported by line, good rows load. ``options``:
        how the CSV is read (delimiter, encoding, decimal mark, zone of its times)."""
        from mqlengine.ingest.importer import file_rows, run_import

        now = self.wiring.clock()
        rows = file_rows(Path(path), kind, dict(mapping or {}), options, now)
        return run_import(self.wiring.db, self.pipeline(), rows, now=now, progress=progress)

    def unmerge(self, merge_id: int) -> UnmergeResult:
        """Undo an identity merge; both persons are rebuilt and rescored."""
        from mqlengine.ingest.unmerge import unmerge

        pipeline = self.pipeline()
        with self.wiring.db.begin() as connection:
            return unmerge(connection, pipeline, merge_id, now=self.wiring.clock())

    def rescore(self, *, as_of: datetime | None = None) -> RescoreReport:
        """Rescore every person with the definition in force (applies stage changes)."""
        from mqlengine.batch.rescore import rescore_all

        return rescore_all(
            self.wiring.db,
            self.wiring.definition().definition,
            now=self.wiring.clock(),
            as_of=as_of,
        )

    # -- privacy requests --------------------------------------------------------------------
    def erase(self, person: int | str, *, actor: str) -> dict[str, Any]:
        """Erase a person and all that is held on them (see :mod:`mqlengine.services.privacy`);
        returns the audit record (no personal data in it)."""
        from mqlengine.services.privacy import erase

        person_id = self._person_id(person)
        settings = self.wiring.settings
        return erase(
            self.wiring.db,
            person_id,
            now=self.wiring.clock(),
            actor=actor,
            after=settings.after_erasure,
            box=self.wiring.secret_box(),
        )

    def export(self, person: int | str) -> dict[str, Any]:
        """Everything held on a person, JSON-ready (an access request)."""
        from mqlengine.services.privacy import export_person

        definition = self.wiring.definition().definition
        person_id = self._person_id(person)
        with self.wiring.db.read() as connection:
            return export_person(connection, definition, person_id)

    def _person_id(self, person: int | str) -> int:
        from mqlengine.services.leads import resolve_person_ref

        definition = self.wiring.definition().definition
        with self.wiring.db.read() as connection:
            return resolve_person_ref(
                connection, str(person), gmail_normalize=definition.identity.gmail_normalize
            )

    # -- reads -----------------------------------------------------------------------------
    def explain(self, person: int | str, *, as_of: datetime | None = None) -> PersonDetail:
        """A person's profile, score card (every rule, event and cap) and stage history.
        ``person``: an id, an e-mail address or ``kind:value`` (``user_id:u-1`` …)."""
        from mqlengine.services.leads import person_detail, resolve_person_ref

        definition = self.wiring.definition().definition
        with self.wiring.db.read() as connection:
            person_id = resolve_person_ref(
                connection, str(person), gmail_normalize=definition.identity.gmail_normalize
            )
            now = self.wiring.clock()
            return person_detail(connection, definition, person_id, as_of=as_of or now, now=now)

    def report(
        self,
        name: str,
        *,
        since: str | None = None,
        until: str | None = None,
        channel: str | None = None,
        campaign: str | None = None,
        tz: str = "UTC",
        by: str | None = None,
    ) -> dict[str, Any]:
        """One report (funnel, cohorts, channels, sla, velocity, reasons, health,
        overview) as JSON-ready data: the numbers the CLI, API and dashboard show."""
        from mqlengine.reports.filters import filters_from
        from mqlengine.reports.service import health_rules, run_report

        filters = filters_from(since=since, until=until, channel=channel, campaign=campaign, tz=tz)
        rules = health_rules(self.wiring.definition_or_none())
        return run_report(
            self.wiring.db, name, filters, now=self.wiring.clock(), rules=rules, by=by
        )


def open(
    database: str | None = None,
    *,
    definition: str | Path | None = None,
    firmographics: str | Path | None = None,
    clock: Callable[[], datetime] | None = None,
) -> MqlEngine:
    """An engine over ``database`` (default ``$MQL_DATABASE_URL`` or ``sqlite:///mql.db``)
    with the definition file ``definition`` (default ``$MQL_DEFINITION`` or ``mql.yaml``;
    else the version last stored) and optional firmographics CSV. Other settings come
    from the environment, as for the CLI."""
    from dataclasses import replace

    from mqlengine.settings import Settings

    settings = Settings.from_env()
    if database is not None:
        settings = replace(settings, database_url=database)
    if definition is not None:
        settings = replace(settings, definition_path=Path(definition))
    if firmographics is not None:
        settings = replace(settings, firmographics_csv=Path(firmographics))
    return MqlEngine(Wiring(settings, clock=clock))
