"""The batch engines' contract: score many persons at once, the very way the online path does.

A batch engine takes a *batch input* — persons (id, profile, stage, recycle time) and their
scored events as Arrow tables, read from the store or from Parquet/CSV exports — and returns
one row of *card columns* per person as of a moment. Every engine (the reference below, which
runs the online :class:`~mqlengine.domain.scoring.Scorer` person by person; DuckDB; Spark)
returns the same columns with the same meaning, so full rescores, backtests and training
sets give the same answers on every engine; the parity tests compare them to this reference.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import pyarrow as pa

from mqlengine.domain.explain import rule_points
from mqlengine.domain.lifecycle import Stage, decide_on_score
from mqlengine.domain.rules import Definition
from mqlengine.domain.scoring import Event, ScoreCard, Scorer

TS = pa.timestamp("us", tz="UTC")

PERSONS_SCHEMA = pa.schema(
    [
        pa.field("person_id", pa.int64(), nullable=False),
        pa.field("profile", pa.string(), nullable=False),  # JSON object: traits + enriched values
        pa.field("stage", pa.string(), nullable=False),
        pa.field("recycled_at", TS),
    ]
)
"""Persons as the batch engines read them (live persons only: merged ones are left out)."""

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("person_id", pa.int64(), nullable=False),
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("timestamp", TS, nullable=False),
        pa.field("properties", pa.string(), nullable=False),  # JSON object
    ]
)
"""Scored events (track/page/screen, sent with consent) as the batch engines read them."""

CARDS_SCHEMA = pa.schema(
    [
        pa.field("person_id", pa.int64(), nullable=False),
        pa.field("fit", pa.float64(), nullable=False),
        pa.field("intent", pa.float64(), nullable=False),
        pa.field("total", pa.float64(), nullable=False),
        pa.field("meets_threshold", pa.bool_(), nullable=False),
        pa.field("qualifies", pa.bool_(), nullable=False),
        pa.field("retains", pa.bool_(), nullable=False),
        pa.field("mql_type", pa.string()),
        pa.field("excluded_because", pa.list_(pa.string()), nullable=False),
        pa.field("missing_requirements", pa.list_(pa.string()), nullable=False),
        pa.field("rule_points", pa.string(), nullable=False),  # JSON: rule id -> points
        pa.field("next_stage", pa.string()),  # where the lifecycle moves it now, if anywhere
    ]
)
"""One row per person: the score card's figures and verdicts, and the stage decision."""


@dataclass(frozen=True)
class BatchInput:
    """Persons and their scored events (Arrow tables in the schemas above)."""

    persons: pa.Table
    events: pa.Table

    def __post_init__(self) -> None:
        for name, table, schema in (
            ("persons", self.persons, PERSONS_SCHEMA),
            ("events", self.events, EVENTS_SCHEMA),
        ):
            missing = [f.name for f in schema if f.name not in table.column_names]
            if missing:
                raise ValueError(f"{name}: missing column(s) {', '.join(missing)}")


class BatchEngine(Protocol):
    """Scores a batch input as of one moment; returns a table in :data:`CARDS_SCHEMA`,
    ordered by ``person_id``."""

    name: str

    def score(self, definition: Definition, data: BatchInput, as_of: datetime) -> pa.Table: ...


def card_row(person_id: int, card: ScoreCard, next_stage: str | None) -> dict[str, Any]:
    """A score card as one row of :data:`CARDS_SCHEMA`."""
    return {
        "person_id": person_id,
        "fit": card.fit,
        "intent": card.intent,
        "total": card.total,
        "meets_threshold": card.meets_threshold,
        "qualifies": card.qualifies,
        "retains": card.retains,
        "mql_type": card.mql_type,
        "excluded_because": list(card.excluded_because),
        "missing_requirements": list(card.missing_requirements),
        "rule_points": json.dumps(rule_points(card), sort_keys=True),
        "next_stage": next_stage,
    }


def next_stage(
    definition: Definition,
    stage: str,
    card: ScoreCard,
    as_of: datetime,
    recycled_at: datetime | None,
) -> str | None:
    """The stage the lifecycle moves a person to on this card, or None (the online rule)."""
    change = decide_on_score(
        Stage(stage),
        card,
        as_of,
        recycled_at=recycled_at,
        cooldown_days=definition.qualify.recycle_cooldown_days,
    )
    return None if change is None else change.to_stage.value


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def events_by_person(events: pa.Table) -> dict[int, list[Event]]:
    """Events grouped per person as scoring values."""
    grouped: dict[int, list[Event]] = defaultdict(list)
    columns = events.select(["person_id", "event_id", "name", "timestamp", "properties"])
    for batch in columns.to_batches():
        rows = zip(*(column.to_pylist() for column in batch.columns), strict=True)
        for person_id, event_id, name, timestamp, properties in rows:
            moment = _utc(timestamp)
            assert moment is not None
            grouped[person_id].append(Event(event_id, name, moment, json.loads(properties)))
    return grouped


def iter_persons(
    persons: pa.Table,
) -> Iterator[tuple[int, Mapping[str, Any], str, datetime | None]]:
    columns = persons.select(["person_id", "profile", "stage", "recycled_at"])
    for batch in columns.to_batches():
        rows = zip(*(column.to_pylist() for column in batch.columns), strict=True)
        for person_id, profile, stage, recycled_at in rows:
            yield person_id, json.loads(profile), stage, _utc(recycled_at)


class PythonEngine:
    """The reference: the online scorer, person by person. Slow, and right by definition —
    the other engines are tested against it."""

    name = "python"

    def score(self, definition: Definition, data: BatchInput, as_of: datetime) -> pa.Table:
        scorer = Scorer(definition)
        moment = _utc(as_of)
        assert moment is not None
        grouped = events_by_person(data.events)
        rows = []
        for person_id, profile, stage, recycled_at in sorted(
            iter_persons(data.persons), key=lambda p: p[0]
        ):
            card = scorer.score(profile, grouped.get(person_id, []), moment)
            rows.append(
                card_row(person_id, card, next_stage(definition, stage, card, moment, recycled_at))
            )
        return pa.Table.from_pylist(rows, schema=CARDS_SCHEMA)
