"""The ingest pipeline: one transaction per batch, from raw messages to stage changes.

The write path runs as named stages (:mod:`mqlengine.ingest.stages`) over one
:class:`~mqlengine.ingest.batch.Batch`: parse → dedupe → resolve identities → store events
→ update people and accounts → qualify (score, lifecycle, handoff, outbox), all inside one
commit, so a batch that is acknowledged is durable and a batch that fails leaves nothing
half-done. Bad messages are reported per index and never stop the good ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from mqlengine.domain.person import Account
from mqlengine.domain.rules import Definition
from mqlengine.ingest import stages
from mqlengine.ingest.batch import Batch, BatchResult, Parsed, Rejection
from mqlengine.ingest.firmographics import Enricher
from mqlengine.ingest.qualify import Handoff, scorer_for
from mqlengine.ingest.quarantine import quarantine_rejections
from mqlengine.ingest.validation import ignored_flags
from mqlengine.ingest.writerstate import WriterState
from mqlengine.store.secretbox import SecretBox

__all__ = ["BatchResult", "Parsed", "Pipeline", "Rejection"]


class Pipeline:
    """Ingests batches of Segment messages against one definition."""

    def __init__(
        self,
        definition: Definition,
        *,
        handoff: Handoff | None,
        enricher: Enricher | Sequence[Enricher] | None = None,
        gmail_normalize: bool | None = None,
        memory: WriterState | None = None,
        suppression: SecretBox | None = None,
    ) -> None:
        """``handoff``: what a stage change sets off (routing, SLA, outbox rows); it is
        named by whoever assembles the pipeline (None: nothing). ``enricher``: one or
        several providers, asked in order (the first that knows a domain wins).
        ``gmail_normalize`` defaults to the definition's ``identity:``. ``memory``: what
        the writer remembers between its transactions (:mod:`mqlengine.ingest.writerstate`),
        for a process whose pipeline is the only writer of what it holds; without one,
        each batch reads what it needs. ``suppression``: the key of the hashes of erased
        identifiers whose messages are dropped (None: none are)."""
        if enricher is None:
            enrichers: tuple[Enricher, ...] = ()
        elif isinstance(enricher, Sequence):
            enrichers = tuple(enricher)
        else:
            enrichers = (enricher,)
        self.context = stages.Context(
            definition=definition,
            scorer=scorer_for(definition),
            enrichers=enrichers,
            gmail_normalize=(
                definition.identity.gmail_normalize if gmail_normalize is None else gmail_normalize
            ),
            ignore_flags=frozenset(ignored_flags(definition.validation)),
            handoff=handoff,
            suppression=suppression,
        )
        self.memory = memory

    @property
    def definition(self) -> Definition:
        return self.context.definition

    @property
    def gmail_normalize(self) -> bool:
        return self.context.gmail_normalize

    @property
    def enrichers(self) -> tuple[Enricher, ...]:
        return self.context.enrichers

    @property
    def enricher(self) -> Enricher | None:
        return self.enrichers[0] if self.enrichers else None

    @contextmanager
    def transaction(self, connection: Connection) -> Iterator[None]:
        """A write transaction for :meth:`ingest`: if it fails, the writer's memory
        forgets what it learnt during it (none of that was committed)."""
        try:
            with connection.begin():
                yield
        except BaseException:
            if self.memory is not None:
                self.memory.rollback()
            raise

    def parse(
        self, raw_messages: Sequence[Any], received_at: datetime, default_type: str | None = None
    ) -> Parsed:
        """Parse and validate: (index, message, signal flags) for good ones, rejections."""
        return stages.parse(self.context, raw_messages, received_at, default_type)

    def enrich(self, domain: str) -> Mapping[str, Any] | None:
        return self.context.enrich(domain)

    def profile_for(
        self, traits: Mapping[str, Any], flags: Sequence[str], account: Account | None
    ) -> dict[str, Any]:
        """The scoring profile of a person: traits + title parsing + account + firmographics."""
        return self.context.profile_for(traits, flags, account)

    def forget(self, person_ids: Sequence[int]) -> None:
        """These persons were changed outside the pipeline (e.g. a merge undone)."""
        if self.memory is not None:
            for person_id in person_ids:
                self.memory.forget_person(person_id)

    def ingest(
        self,
        connection: Connection,
        raw_messages: Sequence[Any],
        *,
        now: datetime,
        score_as_of: str = "arrival",
        default_type: str | None = None,
        quarantine_endpoint: str | None = None,
        parsed: Parsed | None = None,
    ) -> BatchResult:
        """Ingest on the caller's transaction. ``score_as_of``: ``arrival`` scores every
        touched person at ``now`` (real time); ``event`` replays history: each person is
        scored as of its newest event, and only when the batch can change its score (a
        relevant event, new traits or flags, a merge, a new person).
        With ``quarantine_endpoint``, rejected messages are kept in the quarantine table
        (same transaction) under that endpoint name. ``parsed``: what :meth:`parse` made of
        ``raw_messages`` already (the HTTP API parses before the writer takes the batch)."""
        good, rejected = (
            parsed if parsed is not None else self.parse(raw_messages, now, default_type)
        )
        if rejected and quarantine_endpoint is not None:
            quarantine_rejections(connection, raw_messages, rejected, quarantine_endpoint, now)
        if not good:
            return BatchResult(rejected=rejected)
        memory = self.memory if self.memory is not None else self._scratch()
        memory.begin(connection)  # forgets what others changed; locks nothing yet
        batch = Batch(
            connection,
            raw_messages,
            now,
            replay=score_as_of == "event",
            memory=memory,
            result=BatchResult(rejected=rejected),
            good=good,
        )
        stages.dedupe(batch)
        stages.suppress(self.context, batch)
        if not batch.fresh and batch.result.suppressed:
            memory.end(connection)
            return batch.result
        stages.resolve(self.context, batch)
        stages.store_events(batch)
        stages.claim(batch)
        if batch.replay:
            stages.backdate(batch)
        stages.update_people(self.context, batch)
        stages.qualify(self.context, batch)
        memory.end(connection)
        return batch.result

    def _scratch(self) -> WriterState:
        """A memory for one batch (the pipeline keeps none between transactions)."""
        return WriterState(self.context.scorer.relevant)
