"""The outcome the likelihood learns, read from the stage history (imported history too).

A lead is labelled from the moment it entered the definition's ``predict.label.from``
stage (``lead``: first seen; ``mql``: its first MQL entry): positive when it reached
``predict.label.reached`` or a later stage within ``within_days``, negative when the
window closed without that. A lead whose window is still open is not labelled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, select

from mqlengine.domain.rules import PredictConfig
from mqlengine.store.tables import persons, stage_history


@dataclass(frozen=True, slots=True)
class Label:
    person_id: int
    start: datetime  # the prediction moment: entering the label's ``from`` stage
    positive: bool
    reached_at: datetime | None  # when the label stage (or a later one) was first reached


def label_leads(
    entries: Iterable[tuple[int, str, datetime]],
    first_seen: Mapping[int, datetime],
    config: PredictConfig,
    *,
    now: datetime,
) -> list[Label]:
    """Labels from stage entries ``(person_id, to_stage, changed_at)``. Pure."""
    reached = set(config.reached_stages())
    starts: dict[int, datetime] = {}
    hits: dict[int, datetime] = {}
    if config.label_from == "lead":
        starts.update(first_seen)
    for person_id, to_stage, at in entries:
        if (
            config.label_from == "mql"
            and to_stage == "mql"
            and person_id in first_seen
            and (person_id not in starts or at < starts[person_id])
        ):
            starts[person_id] = at
        if to_stage in reached and (person_id not in hits or at < hits[person_id]):
            hits[person_id] = at
    window = timedelta(days=config.within_days)
    labels: list[Label] = []
    for person_id in sorted(starts):
        start = starts[person_id]
        if start + window > now:
            continue  # the window has not closed: unknown yet
        hit = hits.get(person_id)
        positive = hit is not None and hit <= start + window
        labels.append(Label(person_id, start, positive, hit))
    return labels


def load_labels(connection: Connection, config: PredictConfig, *, now: datetime) -> list[Label]:
    """Labels of every live (unmerged) person, from ``stage_history``."""
    first_seen = {
        row.id: row.first_seen_at
        for row in connection.execute(
            select(persons.c.id, persons.c.first_seen_at).where(persons.c.merged_into.is_(None))
        )
    }
    wanted = {"mql", *config.reached_stages()}
    entries = (
        (row.person_id, row.to_stage, row.changed_at)
        for row in connection.execute(
            select(
                stage_history.c.person_id, stage_history.c.to_stage, stage_history.c.changed_at
            ).where(stage_history.c.to_stage.in_(sorted(wanted)))
        )
    )
    return label_leads(entries, first_seen, config, now=now)
