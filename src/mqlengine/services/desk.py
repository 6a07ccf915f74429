"""The sales desk's read models beside the lead list (which is
:mod:`mqlengine.services.leads`): the Leads page's drop-down choices, a person's owner and
SLA standing, and the score timeline the person page shows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from mqlengine.domain.sla import sla_state
from mqlengine.services.leads import STAGES
from mqlengine.store.tables import events, persons, score_snapshots, stage_history
from mqlengine.store.tables_handoff import reps


def lead_choices(connection: Connection) -> dict[str, list[str]]:
    """The values the Leads page offers in its drop-downs."""

    def distinct(column: Any) -> list[str]:
        rows = connection.execute(select(column).where(column.is_not(None)).distinct())
        return sorted(str(v) for (v,) in rows)

    return {
        "stages": list(STAGES),
        "owners": sorted(k for (k,) in connection.execute(select(reps.c.key))),
        "teams": distinct(persons.c.owner_team),
        "mql_types": distinct(persons.c.mql_type),
    }


def person_handoff(connection: Connection, person_id: int, *, now: datetime) -> dict[str, Any]:
    """Owner, team, SLA deadline, first touch and SLA state of one person."""
    row = connection.execute(
        select(
            persons.c.owner_team,
            persons.c.sla_due_at,
            persons.c.first_touch_at,
            reps.c.key,
            reps.c.name,
        )
        .select_from(persons.outerjoin(reps, reps.c.id == persons.c.owner_rep_id))
        .where(persons.c.id == person_id)
    ).first()
    if row is None:
        return {}
    return {
        "owner": row.key,
        "owner_name": row.name,
        "team": row.owner_team,
        "sla_due_at": row.sla_due_at.isoformat() if row.sla_due_at else None,
        "first_touch_at": row.first_touch_at.isoformat() if row.first_touch_at else None,
        "sla_state": _state_word(row.sla_due_at, row.first_touch_at, now),
    }


def _state_word(due: datetime | None, first_touch: datetime | None, now: datetime) -> str:
    """The SLA state's value, ``none`` without a deadline."""
    state = sla_state(due, first_touch, now)
    return "none" if state is None else state.value


def score_timeline(connection: Connection, person_id: int, *, limit: int = 200) -> dict[str, Any]:
    """The person's stored scores over time (``score_snapshots``, the newest ``limit``),
    each with what moved it: the rules whose points changed and the events received since
    the snapshot before; and the stage changes over the same span."""
    snaps = list(
        connection.execute(
            select(score_snapshots)
            .where(score_snapshots.c.person_id == person_id)
            .order_by(score_snapshots.c.as_of.desc(), score_snapshots.c.id.desc())
            .limit(limit)
        ).mappings()
    )
    snaps.reverse()
    points: list[dict[str, Any]] = []
    previous: dict[str, float] = {}
    previous_at: datetime | None = None
    for snap in snaps:
        rules = {str(k): float(v) for k, v in (snap["rule_points"] or {}).items()}
        moved = [
            {"rule": rule, "delta": round(rules.get(rule, 0.0) - previous.get(rule, 0.0), 2)}
            for rule in sorted(set(rules) | set(previous))
            if abs(rules.get(rule, 0.0) - previous.get(rule, 0.0)) >= 0.005
        ]
        window = select(events.c.name, events.c.timestamp).where(
            events.c.person_id == person_id, events.c.timestamp <= snap["as_of"]
        )
        if previous_at is not None:
            window = window.where(events.c.timestamp > previous_at)
        names = [
            f"{r.name} ({r.timestamp.isoformat()[:16]})"
            for r in connection.execute(window.order_by(events.c.timestamp.desc()).limit(5))
        ]
        points.append(
            {
                "as_of": snap["as_of"].isoformat(),
                "total": round(snap["total"], 2),
                "fit": round(snap["fit"], 2),
                "intent": round(snap["intent"], 2),
                "qualifies": bool(snap["qualifies"]),
                "definition_version": snap["definition_version"],
                "moved_by": moved,
                "events": names,
            }
        )
        previous, previous_at = rules, snap["as_of"]
    since = snaps[0]["as_of"] if snaps else None
    changes = select(stage_history).where(stage_history.c.person_id == person_id)
    if since is not None:
        changes = changes.where(stage_history.c.changed_at >= since)
    stages = [
        {
            "at": h["changed_at"].isoformat(),
            "from_stage": h["from_stage"],
            "to_stage": h["to_stage"],
            "actor": h["actor"],
            "action": h["action"],
            "reason": h["reason"],
        }
        for h in connection.execute(
            changes.order_by(stage_history.c.changed_at, stage_history.c.id)
        ).mappings()
    ]
    return {"points": points, "stages": stages}
