"""A compact funnel summary (stage counts, MQLs by type and channel) for the CLI and demo."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, distinct, func, select

from mqlengine.domain.attribution import channel_label
from mqlengine.store.tables import events, persons, stage_history


@dataclass
class FunnelSummary:
    persons: int
    events: int
    stages: dict[str, int]
    ever_mql: int
    mql_by_type: dict[str, int]
    mql_by_channel: list[dict[str, Any]]
    reached: dict[str, int]


def funnel_summary(connection: Connection) -> FunnelSummary:
    live = persons.c.merged_into.is_(None)
    total = connection.execute(select(func.count()).select_from(persons).where(live)).scalar_one()
    event_count = connection.execute(select(func.count()).select_from(events)).scalar_one()
    stages = {
        row.stage: row.n
        for row in connection.execute(
            select(persons.c.stage, func.count().label("n")).where(live).group_by(persons.c.stage)
        )
    }
    reached = {
        row.to_stage: row.n
        for row in connection.execute(
            select(
                stage_history.c.to_stage, func.count(distinct(stage_history.c.person_id)).label("n")
            )
            .join(persons, persons.c.id == stage_history.c.person_id)
            .where(live)
            .group_by(stage_history.c.to_stage)
        )
    }
    mql_types = {
        (row.mql_type or "unknown"): row.n
        for row in connection.execute(
            select(
                stage_history.c.mql_type, func.count(distinct(stage_history.c.person_id)).label("n")
            )
            .join(persons, persons.c.id == stage_history.c.person_id)
            .where(live, stage_history.c.to_stage == "mql")
            .group_by(stage_history.c.mql_type)
        )
    }
    leads_by_channel = {
        channel_label(row.channel): row.n
        for row in connection.execute(
            select(persons.c.channel, func.count().label("n"))
            .where(live)
            .group_by(persons.c.channel)
        )
    }
    mqls_by_channel = {
        channel_label(row.channel): row.n
        for row in connection.execute(
            select(persons.c.channel, func.count(distinct(persons.c.id)).label("n"))
            .join(stage_history, persons.c.id == stage_history.c.person_id)
            .where(live, stage_history.c.to_stage == "mql")
            .group_by(persons.c.channel)
        )
    }
    by_channel = [
        {
            "channel": channel,
            "leads": leads,
            "mqls": mqls_by_channel.get(channel, 0),
            "mql_rate": (mqls_by_channel.get(channel, 0) / leads) if leads else None,
        }
        for channel, leads in sorted(leads_by_channel.items(), key=lambda kv: -kv[1])
    ]
    return FunnelSummary(
        persons=int(total),
        events=int(event_count),
        stages=stages,
        ever_mql=reached.get("mql", 0),
        mql_by_type=mql_types,
        mql_by_channel=by_channel,
        reached=reached,
    )
