"""Qualification with the handoff wired in: what every shell uses to score and move leads.

The write path (:mod:`mqlengine.ingest.qualify`) scores and applies stage changes; what a
stage change sets off — routing and an SLA deadline for a new MQL, outbox rows — lives in
:mod:`mqlengine.services.handoff`. :data:`HANDOFF` joins the two, and the functions here
are the write path's with it bound, for the services, batch jobs and shells.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from mqlengine.domain.lifecycle import StageChange
from mqlengine.domain.person import Person
from mqlengine.domain.rules import Definition
from mqlengine.domain.scoring import ScoreCard, TraitVerdict
from mqlengine.ingest import qualify as write_path
from mqlengine.ingest.qualify import EventCache, Handoff, Outcome
from mqlengine.predict.serving import STORE_LIKELIHOODS
from mqlengine.services.handoff.hook import PERSON_COLUMNS, on_stage_change

HANDOFF = Handoff(
    person_columns=PERSON_COLUMNS,
    on_stage_change=on_stage_change,
    likelihoods=STORE_LIKELIHOODS,
)


def apply_stage_change(
    connection: Connection,
    person_id: int,
    change: StageChange,
    *,
    recorded_at: datetime,
    card: ScoreCard | None = None,
    amount: float | None = None,
    extra: Mapping[str, Any] | None = None,
    definition: Definition | None = None,
) -> bool:
    """:func:`mqlengine.ingest.qualify.apply_stage_change`; with ``definition`` the
    handoff runs on the same transaction."""
    return write_path.apply_stage_change(
        connection,
        person_id,
        change,
        recorded_at=recorded_at,
        card=card,
        amount=amount,
        extra=extra,
        definition=definition,
        handoff=HANDOFF,
    )


def rescore(
    connection: Connection,
    definition: Definition,
    person_ids: Iterable[int],
    *,
    now: datetime,
    as_of: Mapping[int, datetime] | None = None,
    cache: EventCache | None = None,
    lifecycle: bool = True,
    rows: Mapping[int, Person] | None = None,
    last_seen: Mapping[int, datetime] | None = None,
    verdicts: MutableMapping[int, tuple[object, TraitVerdict]] | None = None,
) -> list[Outcome]:
    """:func:`mqlengine.ingest.qualify.rescore` with the handoff for stage changes."""
    return write_path.rescore(
        connection,
        definition,
        person_ids,
        now=now,
        as_of=as_of,
        cache=cache,
        lifecycle=lifecycle,
        rows=rows,
        last_seen=last_seen,
        verdicts=verdicts,
        handoff=HANDOFF,
    )
