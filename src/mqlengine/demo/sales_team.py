"""The demo's sales side: a team of reps (from ``team.yaml``) and the SLA clock per day.

Kept apart from :mod:`mqlengine.demo.run` so the handoff can evolve without touching the
ingest simulation; ``run_demo`` calls :func:`setup_sales_team` once and :func:`check_sla`
after each simulated day.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from mqlengine.domain.rules import Definition
from mqlengine.services.handoff.sla import check_breaches
from mqlengine.services.reps import add_absence, upsert_rep, upsert_team

TEAM_FILE = Path(__file__).with_name("team.yaml")


def setup_sales_team(engine: Any, *, now: datetime, start: datetime) -> int:
    """Create the demo teams and reps; ``away_days: [a, b]`` = out of office from day a to b
    of the simulation. Returns the number of reps."""
    config = yaml.safe_load(TEAM_FILE.read_text(encoding="utf-8"))
    hours = config.get("working_hours")
    with engine.db.begin() as connection:
        for team in config["teams"]:
            upsert_team(
                connection,
                team["name"],
                now=now,
                manager_name=team.get("manager"),
                manager_email=team.get("manager_email"),
            )
        for rep in config["reps"]:
            upsert_rep(
                connection,
                rep["key"],
                now=now,
                team=rep["team"],
                name=rep["name"],
                email=f"{rep['key']}@example.com",
                timezone=rep["timezone"],
                capacity_per_day=rep.get("capacity"),
                working_hours=hours,
                territories=rep.get("territories", []),
            )
            if rep.get("away_days"):
                first, last = rep["away_days"]
                add_absence(
                    connection,
                    rep["key"],
                    starts_at=start + timedelta(days=first),
                    ends_at=start + timedelta(days=last),
                    note="vacation",
                )
    return len(config["reps"])


def check_sla(engine: Any, definition: Definition, *, until: datetime) -> int:
    """Detect breaches as the worker would at ``until``; returns how many were recorded."""
    with engine.db.begin() as connection:
        return len(check_breaches(connection, definition, now=until, limit=10_000))
