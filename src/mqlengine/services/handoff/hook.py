"""What a committed stage change sets off: the notification, the routing of a new MQL, and
the end of the first-touch clock when a lead leaves MQL.

:func:`on_stage_change` is called by :func:`mqlengine.services.qualify.apply_stage_change`
for every stage change it makes, so scoring and feedback share one path.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from mqlengine.domain.consent import marketing_withdrawn
from mqlengine.domain.lifecycle import Stage, StageChange
from mqlengine.domain.rules import Definition
from mqlengine.domain.scoring import ScoreCard
from mqlengine.services import outbox
from mqlengine.services.handoff.assign import assign
from mqlengine.services.handoff.payloads import person_summary, top_contributions
from mqlengine.store.tables import persons
from mqlengine.store.tables_handoff import assignments

# What the handoff reads of a person (a caller that holds the row after the stage change
# may hand it in: see ``on_stage_change``).
PERSON_COLUMNS = (
    persons.c.id,
    persons.c.email,
    persons.c.profile,
    persons.c.fit_score,
    persons.c.intent_score,
    persons.c.total_score,
    persons.c.mql_at,
    persons.c.mql_type,
    persons.c.account_id,
    persons.c.first_touch_at,
)

# Statements of the per-MQL path, built once so SQLAlchemy's compiled cache always hits.
_PERSON = select(*PERSON_COLUMNS).where(persons.c.id == bindparam("person_id"))
_CLOSE_WAITING = (
    update(assignments)
    .where(assignments.c.person_id == bindparam("b_person_id"), assignments.c.status == "waiting")
    .values(status="closed", closed_at=bindparam("b_closed_at"))
)


def on_stage_change(
    connection: Connection,
    definition: Definition,
    person_id: int,
    change: StageChange,
    *,
    recorded_at: datetime,
    card: ScoreCard | None = None,
    person: Mapping[Any, Any] | None = None,
) -> None:
    """Everything a committed stage change sets off, on the same transaction.

    ``person``: the person's row as it stands after the change (at least
    :data:`PERSON_COLUMNS`), when the caller holds it; read otherwise."""
    if person is None:
        person = connection.execute(_PERSON, {"person_id": person_id}).mappings().one()
    if marketing_withdrawn(person["profile"], definition.consent):
        # No marketing consent: the stage is recorded, but nobody is assigned or told
        # (`mql explain` says why).
        if change.to_stage is not Stage.MQL and change.from_stage is Stage.MQL:
            connection.execute(_CLOSE_WAITING, {"b_person_id": person_id, "b_closed_at": change.at})
        return
    data: dict[str, Any] = {
        "person": person_summary(person),
        "from_stage": change.from_stage.value,
        "to_stage": change.to_stage.value,
        "reason": change.reason,
        "actor": change.actor,
        "action": change.action,
        "changed_at": change.at.isoformat(),
        "definition_version": change.definition_version,
    }
    if change.to_stage is Stage.MQL:
        data["mql_type"] = change.mql_type
        data["score"] = {
            "fit": round(person["fit_score"] if card is None else card.fit, 2),
            "intent": round(person["intent_score"] if card is None else card.intent, 2),
            "total": round(person["total_score"] if card is None else card.total, 2),
        }
        data["top_contributions"] = top_contributions(card)
    rows = outbox.prepare(
        connection, "person.stage_changed", data, now=recorded_at, person_id=person_id
    )
    if change.to_stage is Stage.MQL and definition.routing is not None:
        # the notification is written with the assignment's (one INSERT, same order)
        assign(
            connection,
            definition,
            person,
            change,
            card=card,
            recorded_at=recorded_at,
            outbox_rows=rows,
        )
        return
    outbox.write(connection, rows)
    if change.to_stage is not Stage.MQL and change.from_stage is Stage.MQL:
        # left MQL (sales acted, or the score dropped): the first-touch clock stops
        connection.execute(_CLOSE_WAITING, {"b_person_id": person_id, "b_closed_at": change.at})
