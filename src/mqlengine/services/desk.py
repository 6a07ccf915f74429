"""The sales desk's read models: the filtered, sorted, paginated lead list (and its CSV
export), a person's owner and SLA standing, and the score timeline.

The lead list reads ``persons`` only (plus the rep's key by id), through the indexes of
migration 0015: the default order is score, and stage, team and channel filters each have
an index in score order, so the first page is a short index walk even over a million
persons. Counting is bounded (:data:`COUNT_CAP`): a page says "10,000+" rather than count
every row of a broad filter. The export walks every matching row (no cap).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticError
from sqlalchemy import Connection, and_, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from mqlengine.domain.sla import DUE_SOON
from mqlengine.domain.sla import sla_state as domain_sla_state
from mqlengine.errors import ValidationError
from mqlengine.services.leads import STAGES
from mqlengine.store.tables import events, persons, score_snapshots, stage_history
from mqlengine.store.tables_handoff import reps

SLA_STATES = ("on_time", "due_soon", "breached", "none")
COUNT_CAP = 10_000
PAGE_SIZES = (25, 50, 100, 200)
SORTS = {
    "total": persons.c.total_score,
    "fit": persons.c.fit_score,
    "intent": persons.c.intent_score,
    "mql_at": persons.c.mql_at,
    "created": persons.c.first_seen_at,
    "stage_changed": persons.c.stage_changed_at,
    "sla_due": persons.c.sla_due_at,
    "id": persons.c.id,
}
CSV_COLUMNS = (
    "id",
    "email",
    "stage",
    "mql_type",
    "total",
    "fit",
    "intent",
    "channel",
    "owner",
    "team",
    "sla_due_at",
    "first_touch_at",
    "sla_state",
    "created_at",
    "mql_at",
)


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


class LeadFilters(BaseModel):
    """What the Leads page filters and sorts by (query parameters; blanks mean "any")."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    stage: str | None = Field(default=None, max_length=20)
    owner: str | None = Field(default=None, max_length=64)  # a rep's key; "-" unassigned
    team: str | None = Field(default=None, max_length=64)
    channel: str | None = Field(default=None, max_length=64)
    mql_type: str | None = Field(default=None, max_length=64)
    score_min: float | None = Field(default=None, ge=-1e9, le=1e9)
    score_max: float | None = Field(default=None, ge=-1e9, le=1e9)
    sla: Literal["on_time", "due_soon", "breached", "none"] | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    mql_from: datetime | None = None
    mql_to: datetime | None = None
    sort: Literal[
        "total", "fit", "intent", "mql_at", "created", "stage_changed", "sla_due", "id"
    ] = "total"
    order: Literal["asc", "desc"] = "desc"
    page: int = Field(default=1, ge=1, le=1_000_000)
    size: int = 50

    _blanks = field_validator("*", mode="before")(_blank_to_none)

    @field_validator("stage")
    @classmethod
    def _known_stage(cls, value: str | None) -> str | None:
        if value is not None and value not in STAGES:
            raise ValueError(f"unknown stage '{value}' (use one of: {', '.join(STAGES)})")
        return value

    @field_validator("size")
    @classmethod
    def _page_size(cls, value: int) -> int:
        if value not in PAGE_SIZES:
            raise ValueError(f"page size must be one of {', '.join(map(str, PAGE_SIZES))}")
        return value

    @field_validator("created_from", "created_to", "mql_from", "mql_to")
    @classmethod
    def _zoned(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        from datetime import UTC

        if not 1900 <= value.year < 9000:
            raise ValueError("must lie between 1900 and 9000")
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    @model_validator(mode="after")
    def _ranges(self) -> LeadFilters:
        for low, high in (
            ("score_min", "score_max"),
            ("created_from", "created_to"),
            ("mql_from", "mql_to"),
        ):
            a, b = getattr(self, low), getattr(self, high)
            if a is not None and b is not None and a > b:
                raise ValueError(f"{low} must not be after {high}")
        return self

    @classmethod
    def parse(cls, params: dict[str, str]) -> LeadFilters:
        """From query parameters; a bad one is a :class:`ValidationError` naming it."""
        try:
            return cls.model_validate(params)
        except PydanticError as error:
            problems = [
                f"{'.'.join(str(p) for p in e['loc']) or 'filters'}: "
                f"{e['msg'].removeprefix('Value error, ')}"
                for e in error.errors()
            ]
            raise ValidationError(
                "bad lead filter: " + "; ".join(problems), details={"problems": problems}
            ) from None

    def query(self) -> dict[str, str]:
        """The non-default parameters, for links (pages, sorting, export)."""
        out: dict[str, str] = {}
        for name, value in self.model_dump().items():
            default = type(self).model_fields[name].default
            if value is None or value == default:
                continue
            out[name] = value.isoformat() if isinstance(value, datetime) else str(value)
        return out


def sla_state_sql(now: datetime) -> ColumnElement[Any]:
    """The SLA state of a person as of ``now`` (see :func:`sla_state`), in SQL."""
    from sqlalchemy import case, literal

    due, touched = persons.c.sla_due_at, persons.c.first_touch_at
    return case(
        (due.is_(None), literal("none")),
        (touched.is_not(None) & (touched > due), literal("breached")),
        (touched.is_not(None), literal("on_time")),
        (due < now, literal("breached")),
        (due <= now + DUE_SOON, literal("due_soon")),
        else_=literal("on_time"),
    )


def sla_state(due: datetime | None, first_touch: datetime | None, now: datetime) -> str:
    """``none`` (no deadline), ``breached`` (touched late, or untouched past the deadline),
    ``due_soon`` (untouched, the deadline within :data:`DUE_SOON`), else ``on_time``."""
    state = domain_sla_state(due, first_touch, now)
    return "none" if state is None else state.value


def _conditions(connection: Connection, f: LeadFilters, now: datetime) -> list[Any]:
    p = persons.c
    where: list[Any] = [p.merged_into.is_(None)]
    if f.stage is not None:
        where.append(p.stage == f.stage)
    if f.owner == "-":
        where.append(p.owner_rep_id.is_(None))
    elif f.owner is not None:
        rep_id = connection.execute(select(reps.c.id).where(reps.c.key == f.owner)).scalar()
        where.append(p.owner_rep_id == (rep_id if rep_id is not None else -1))
    if f.team is not None:
        where.append(p.owner_team == f.team)
    if f.channel is not None:
        where.append(p.channel.is_(None) if f.channel == "(none)" else p.channel == f.channel)
    if f.mql_type is not None:
        where.append(p.mql_type == f.mql_type)
    if f.score_min is not None:
        where.append(p.total_score >= f.score_min)
    if f.score_max is not None:
        where.append(p.total_score <= f.score_max)
    if f.created_from is not None:
        where.append(p.first_seen_at >= f.created_from)
    if f.created_to is not None:
        where.append(p.first_seen_at < f.created_to)
    if f.mql_from is not None:
        where.append(p.mql_at >= f.mql_from)
    if f.mql_to is not None:
        where.append(p.mql_at < f.mql_to)
    if f.sla is not None:
        due, touched = p.sla_due_at, p.first_touch_at
        where.append(
            {
                "none": due.is_(None),
                # a late touch lies in the past, so every breach has its deadline before
                # now: that range is what the sla_due_at index reads
                "breached": and_(
                    due < now,
                    or_(and_(touched.is_not(None), touched > due), touched.is_(None)),
                ),
                "due_soon": and_(due >= now, due <= now + DUE_SOON, touched.is_(None)),
                "on_time": or_(
                    and_(touched.is_not(None), touched <= due),
                    and_(touched.is_(None), due > now + DUE_SOON),
                ),
            }[f.sla]
        )
    return where


def _select(connection: Connection, f: LeadFilters, now: datetime) -> Any:
    p = persons.c
    key: Any = SORTS[f.sort]
    if f.sla not in (None, "none") and f.sort in ("total", "fit", "intent", "id"):
        # the deadline range is the selective part: `+ 0` (numbers only) keeps SQLite
        # from walking the whole score index instead (PostgreSQL plans by cost anyway)
        key = key + 0
    direction = key.desc() if f.order == "desc" else key.asc()
    tie = p.id.desc() if f.order == "desc" else p.id.asc()
    # NULLs (no MQL date, no deadline) last in either direction
    order = [key.is_(None), direction, tie] if f.sort in ("mql_at", "sla_due") else [direction, tie]
    return (
        select(
            p.id,
            p.email,
            p.stage,
            p.mql_type,
            p.total_score,
            p.fit_score,
            p.intent_score,
            p.channel,
            reps.c.key.label("owner"),
            p.owner_team,
            p.sla_due_at,
            p.first_touch_at,
            p.first_seen_at,
            p.mql_at,
        )
        .select_from(persons.outerjoin(reps, reps.c.id == p.owner_rep_id))
        .where(*_conditions(connection, f, now))
        .order_by(*order)
    )


def _row(r: Any, now: datetime) -> dict[str, Any]:
    return {
        "id": r.id,
        "email": r.email,
        "stage": r.stage,
        "mql_type": r.mql_type,
        "total": round(r.total_score, 2),
        "fit": round(r.fit_score, 2),
        "intent": round(r.intent_score, 2),
        "channel": r.channel,
        "owner": r.owner,
        "team": r.owner_team,
        "sla_due_at": r.sla_due_at.isoformat() if r.sla_due_at else None,
        "first_touch_at": r.first_touch_at.isoformat() if r.first_touch_at else None,
        "sla_state": sla_state(r.sla_due_at, r.first_touch_at, now),
        "created_at": r.first_seen_at.isoformat(),
        "mql_at": r.mql_at.isoformat() if r.mql_at else None,
    }


@dataclass
class LeadPage:
    rows: list[dict[str, Any]]
    page: int
    size: int
    has_next: bool
    matching: int  # up to COUNT_CAP
    capped: bool  # more than COUNT_CAP match

    @property
    def pages(self) -> int | None:
        return None if self.capped else max(1, -(-self.matching // self.size))


def lead_page(connection: Connection, f: LeadFilters, *, now: datetime) -> LeadPage:
    """One page of the filtered, sorted lead list, and how many match (bounded count)."""
    query = _select(connection, f, now).limit(f.size + 1).offset((f.page - 1) * f.size)
    found = [_row(r, now) for r in connection.execute(query)]
    counted = select(persons.c.id).where(*_conditions(connection, f, now)).limit(COUNT_CAP + 1)
    matching = connection.execute(select(func.count()).select_from(counted.subquery())).scalar_one()
    return LeadPage(
        rows=found[: f.size],
        page=f.page,
        size=f.size,
        has_next=len(found) > f.size,
        matching=min(matching, COUNT_CAP),
        capped=matching > COUNT_CAP,
    )


def iter_leads(
    connection: Connection, f: LeadFilters, *, now: datetime, chunk: int = 2000
) -> Iterator[dict[str, Any]]:
    """Every lead the filters match, in the list's order (the export: no page, no cap)."""
    result = connection.execution_options(stream_results=True, yield_per=chunk).execute(
        _select(connection, f, now)
    )
    for r in result:
        yield _row(r, now)


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
        "sla_state": sla_state(row.sla_due_at, row.first_touch_at, now),
    }


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
