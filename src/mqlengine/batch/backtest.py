"""Backtest a candidate definition against a baseline on the recorded history.

The replay works on a daily grid: at the end of each day every person in a stage the
scoring moves (lead, mql, nurture) is scored with the events up to that moment through a
batch engine (:mod:`mqlengine.batch.engine`), and the lifecycle is replayed per person and
per definition — lead → mql when the card qualifies, mql → lead when it no longer retains
(hysteresis), nurture → mql after the recycle cool-down. What sales did is taken from the
recorded stage history (feedback and ``mql history import``): a person enters sal, sql,
opportunity, customer, nurture or disqualified when the history says so, under both
definitions alike, and the score no longer moves them there.

Outcomes come from the same history: **precision** is the share of persons who became MQL
in the window whose history reached sql (or opportunity, or customer); **recall** the share
of persons won on or after the window's start (and not already with sales then) who were
MQL before their win. Figures the data cannot support are ``None`` with a reason in
``notes``, never 0 or 100 %.

Profiles are today's (traits are not versioned); the state at the window's start is each
definition's verdict on that day (MQL if the card qualifies), not counted as an entry.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, select

from mqlengine.batch.engine import PERSONS_SCHEMA, BatchEngine, BatchInput, PythonEngine
from mqlengine.batch.source import from_store
from mqlengine.domain.rules import Definition
from mqlengine.errors import ConfigError, ValidationError
from mqlengine.store.db import Database
from mqlengine.store.tables import persons, stage_history

SALES_STAGES = frozenset({"sal", "sql", "opportunity", "customer", "nurture", "disqualified"})
SCORED_STAGES = frozenset({"lead", "mql", "nurture"})
CONVERTED = frozenset({"sql", "opportunity", "customer"})
SYSTEM_ACTOR = "system"
EXAMPLES = 20
NO_OUTCOMES = (
    "no sql or won outcome is recorded (record feedback, or import CRM history with "
    "`mql history import`)"
)


def engine_named(name: str) -> BatchEngine:
    """A batch engine by name (``python`` always; others when their engine is installed)."""
    if name == "python":
        return PythonEngine()
    try:
        import importlib

        module = importlib.import_module("mqlengine.batch.engines")
    except ImportError:
        raise ConfigError(
            f"engine '{name}' is not available in this build (use --engine python)"
        ) from None
    engine: BatchEngine = module.engine_by_name(name)
    return engine


# -- the recorded history ------------------------------------------------------------------


@dataclass
class History:
    """What the store recorded about each person, as the replay needs it."""

    first_seen: dict[int, datetime] = field(default_factory=dict)
    profiles: dict[int, dict[str, Any]] = field(default_factory=dict)
    accounts: dict[int, int | None] = field(default_factory=dict)
    steps: dict[int, list[tuple[datetime, str]]] = field(default_factory=dict)  # sales moves
    converted_at: dict[int, datetime] = field(default_factory=dict)  # first sql or beyond
    won_at: dict[int, datetime] = field(default_factory=dict)
    amounts: dict[int, float] = field(default_factory=dict)  # recorded pipeline


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def load_history(connection: Connection) -> History:
    history = History()
    query = select(
        persons.c.id, persons.c.first_seen_at, persons.c.profile, persons.c.account_id
    ).where(persons.c.merged_into.is_(None))
    for row in connection.execute(query):
        history.first_seen[row.id] = _utc(row.first_seen_at)
        history.profiles[row.id] = row.profile or {}
        history.accounts[row.id] = row.account_id
    steps = connection.execute(
        select(
            stage_history.c.person_id,
            stage_history.c.to_stage,
            stage_history.c.changed_at,
            stage_history.c.actor,
            stage_history.c.action,
            stage_history.c.amount,
        ).order_by(stage_history.c.changed_at, stage_history.c.id)
    )
    for step in steps:
        if step.person_id not in history.first_seen:
            continue
        at = _utc(step.changed_at)
        if step.to_stage in CONVERTED:
            history.converted_at.setdefault(step.person_id, at)
        if step.to_stage == "customer":
            history.won_at.setdefault(step.person_id, at)
        if step.amount is not None and step.to_stage in ("opportunity", "customer"):
            history.amounts[step.person_id] = max(
                history.amounts.get(step.person_id, 0.0), float(step.amount)
            )
        if step.actor == SYSTEM_ACTOR:
            continue
        if step.to_stage in SALES_STAGES or step.action == "reopen":
            history.steps.setdefault(step.person_id, []).append((at, step.to_stage))
    return history


# -- the replay ------------------------------------------------------------------------------


def end_of(day: date) -> datetime:
    """The last moment of a UTC day (the grid's scoring time)."""
    return datetime.combine(day + timedelta(days=1), time(), UTC) - timedelta(microseconds=1)


def week_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


@dataclass
class Entry:
    person_id: int
    at: datetime
    card: dict[str, Any]


@dataclass
class Track:
    """One definition's replay."""

    name: str
    definition: Definition
    stage: dict[int, str] = field(default_factory=dict)
    recycled_at: dict[int, datetime | None] = field(default_factory=dict)
    first_mql: dict[int, datetime] = field(default_factory=dict)
    mql_seen: dict[int, datetime] = field(default_factory=dict)  # first MQL day in window
    entries: list[Entry] = field(default_factory=list)
    exits: Counter[date] = field(default_factory=Counter)
    entered_by_week: Counter[date] = field(default_factory=Counter)


@dataclass
class Replay:
    start: date
    end: date
    tracks: dict[str, Track]
    history: History
    # track → person → each track's card on the first day the person was MQL in the window
    cards_when_mql: dict[str, dict[int, dict[str, dict[str, Any]]]]
    days: int


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


def replay(
    database: Database,
    definitions: Mapping[str, Definition],
    *,
    start: date,
    end: date,
    engine: BatchEngine | None = None,
    keep_cards: bool = True,
    data: BatchInput | None = None,
    history: History | None = None,
    progress: Callable[[int], None] | None = None,
) -> Replay:
    """Replay the lifecycle under each definition from ``start`` to ``end`` (UTC days)."""
    if end < start:
        raise ValidationError(f"--from {start} is after --to {end}")
    engine = engine or PythonEngine()
    if history is None:
        with database.read() as connection:
            history = load_history(connection)
    if data is None:
        data = from_store(database, until=end_of(end))
    events = data.events
    stamps = events.column("timestamp")
    tracks = {name: Track(name, d) for name, d in definitions.items()}
    cards_when_mql: dict[str, dict[int, dict[str, dict[str, Any]]]] = {n: {} for n in tracks}
    cursor = {pid: 0 for pid in history.steps}
    profile_json = {
        pid: json.dumps(profile, sort_keys=True) for pid, profile in history.profiles.items()
    }
    day = start - timedelta(days=1)  # the state at the start, not counted
    count = 0
    while day <= end:
        as_of = end_of(day)
        counting = day >= start
        # what sales did up to this moment (the same under every definition)
        moved: dict[int, tuple[str, datetime]] = {}
        for pid, steps in history.steps.items():
            i = cursor[pid]
            while i < len(steps) and steps[i][0] <= as_of:
                moved[pid] = (steps[i][1], steps[i][0])
                i += 1
            cursor[pid] = i
        for track in tracks.values():
            for pid, (stage, at) in moved.items():
                track.stage[pid] = stage
                if stage == "nurture":
                    track.recycled_at[pid] = at
        in_scope = [pid for pid, seen in history.first_seen.items() if seen <= as_of]
        mask = pc.less_equal(stamps, pa.scalar(as_of, type=stamps.type))
        day_events = events.filter(mask)
        tables: dict[str, pa.Table] = {}
        for name, track in tracks.items():
            ids = [pid for pid in in_scope if track.stage.get(pid, "lead") in SCORED_STAGES]
            people = pa.Table.from_pydict(
                {
                    "person_id": ids,
                    "profile": [profile_json[pid] for pid in ids],
                    "stage": [track.stage.get(pid, "lead") for pid in ids],
                    "recycled_at": [track.recycled_at.get(pid) for pid in ids],
                },
                schema=PERSONS_SCHEMA,
            )
            wanted = pc.is_in(day_events.column("person_id"), value_set=pa.array(ids, pa.int64()))
            tables[name] = engine.score(
                track.definition, BatchInput(people, day_events.filter(wanted)), as_of
            )
        by_person: dict[str, dict[int, dict[str, Any]]] = {}
        if keep_cards:
            by_person = {
                name: {row["person_id"]: row for row in _rows(table)}
                for name, table in tables.items()
            }
        for name, track in tracks.items():
            table = tables[name]
            changed = table.filter(pc.is_valid(table.column("next_stage")))
            for row in _rows(changed):
                pid, to_stage = row["person_id"], row["next_stage"]
                from_stage = track.stage.get(pid, "lead")
                if not counting:
                    if from_stage == "lead" and to_stage == "mql":
                        track.stage[pid] = "mql"
                        track.first_mql.setdefault(pid, as_of)
                    continue
                track.stage[pid] = to_stage
                if to_stage == "mql":
                    track.first_mql.setdefault(pid, as_of)
                    track.entries.append(Entry(pid, as_of, row))
                    track.entered_by_week[week_of(day)] += 1
                elif from_stage == "mql":
                    track.exits[week_of(day)] += 1
            if counting:
                for pid, stage in track.stage.items():
                    if stage != "mql" or pid in track.mql_seen:
                        continue
                    track.mql_seen[pid] = as_of
                    if keep_cards:
                        cards_when_mql[name][pid] = {
                            other: by_person[other][pid]
                            for other in tracks
                            if pid in by_person[other]
                        }
        count += 1
        if progress is not None:
            progress(1)
        day += timedelta(days=1)
    return Replay(start, end, tracks, history, cards_when_mql, count - 1)


# -- figures ---------------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def precision_recall(
    history: History,
    mql_persons: Collection[int],
    first_mql: Mapping[int, datetime],
    window_start: datetime,
    *,
    notes: dict[str, str],
) -> tuple[float | None, float | None]:
    """Precision (the share of these MQLs that converted) and recall (the share of the
    leads won from ``window_start`` on, outside sales before it, that were MQL first);
    None with the reason in ``notes`` where the history cannot support the figure."""
    precision: float | None = None
    if not history.converted_at:
        notes["precision"] = NO_OUTCOMES
    elif not mql_persons:
        notes["precision"] = "no lead became MQL in the window"
    else:
        hits = sum(1 for pid in mql_persons if pid in history.converted_at)
        precision = round(hits / len(mql_persons), 4)
    recall: float | None = None
    wins = [
        (pid, at)
        for pid, at in history.won_at.items()
        if at >= window_start and not _with_sales_at(history, pid, window_start)
    ]
    if not history.won_at:
        notes["recall"] = "no won outcome is recorded"
    elif not wins:
        notes["recall"] = (
            f"no lead was won on or after {window_start.date()} (outside sales before)"
        )
    else:
        first = sum(1 for pid, at in wins if pid in first_mql and first_mql[pid] <= at)
        recall = round(first / len(wins), 4)
    return precision, recall


def outcome_figures(replay_: Replay, track: Track) -> dict[str, Any]:
    """MQL volume, precision, recall, days from MQL to outcome, pipeline for one track."""
    history = replay_.history
    window_start = datetime.combine(replay_.start, time(), UTC)
    notes: dict[str, str] = {}
    mql_persons = {e.person_id for e in track.entries}
    precision, recall = precision_recall(
        history, mql_persons, track.first_mql, window_start, notes=notes
    )
    lead_days = [
        (history.converted_at[pid] - track.first_mql[pid]).total_seconds() / 86400
        for pid in mql_persons
        if pid in history.converted_at and track.first_mql[pid] <= history.converted_at[pid]
    ]
    median_days = _median(lead_days)
    if median_days is None:
        notes["median_days_to_outcome"] = (
            NO_OUTCOMES if not history.converted_at else "no MQL of the window reached sql"
        )
    pipeline: float | None = None
    if not history.amounts:
        notes["pipeline"] = "no opportunity amount is recorded"
    else:
        pipeline = round(sum(history.amounts.get(pid, 0.0) for pid in mql_persons), 2)
    return {
        "version": track.definition.version,
        "threshold": track.definition.qualify.threshold,
        "mqls": len(track.entries),
        "persons": len(mql_persons),
        "left_mql": sum(track.exits.values()),
        "per_week": round(len(track.entries) / max(replay_.days / 7, 1e-9), 2),
        "precision": precision,
        "recall": recall,
        "converted": sum(1 for pid in mql_persons if pid in history.converted_at),
        "median_days_to_outcome": median_days,
        "pipeline": pipeline,
        "notes": notes,
    }


def _with_sales_at(history: History, pid: int, moment: datetime) -> bool:
    """Whether the person was already in a sales-owned stage at ``moment``."""
    stage = None
    for at, to_stage in history.steps.get(pid, []):
        if at >= moment:
            break
        stage = to_stage
    return stage is not None and stage not in SCORED_STAGES


def days_gained(replay_: Replay, baseline: Track, candidate: Track) -> dict[str, Any]:
    """Median days the candidate flags a converting lead earlier (+) or later (−)."""
    gains = []
    for pid, outcome in replay_.history.converted_at.items():
        a, b = baseline.first_mql.get(pid), candidate.first_mql.get(pid)
        if a is None or b is None or a > outcome or b > outcome:
            continue
        if a < datetime.combine(replay_.start, time(), UTC) and b < a:
            continue
        gains.append((a - b).total_seconds() / 86400)
    value = _median(gains)
    reason = None
    if value is None:
        reason = (
            NO_OUTCOMES
            if not replay_.history.converted_at
            else "no converting lead was MQL under both definitions before its outcome"
        )
    return {"median_days_gained": value, "compared": len(gains), "reason": reason}


def why(card: Mapping[str, Any], top: int = 3) -> str:
    """Why a card qualifies: its total, type and biggest rules."""
    points = json.loads(card["rule_points"]) if card.get("rule_points") else {}
    best = sorted(points.items(), key=lambda kv: -abs(kv[1]))[:top]
    rules = ", ".join(f"{rule} {value:+.1f}" for rule, value in best if value)
    return f"total {card['total']:.1f} ({card.get('mql_type') or 'score'})" + (
        f"; {rules}" if rules else ""
    )


def why_not(card: Mapping[str, Any] | None, definition: Definition) -> str:
    """Why a card does not qualify: exclusions, missing requirements, or the threshold."""
    if card is None:
        return "not scored (with sales or not yet seen)"
    if card["excluded_because"]:
        return "excluded: " + ", ".join(card["excluded_because"])
    if card["missing_requirements"]:
        return "missing: " + ", ".join(card["missing_requirements"])
    q = definition.qualify
    if not card["meets_threshold"]:
        return f"total {card['total']:.1f} < threshold {q.threshold:g}"
    if card["fit"] < q.min_fit:
        return f"fit {card['fit']:.1f} < min fit {q.min_fit:g}"
    return "did not qualify"


def flips(replay_: Replay, baseline: Track, candidate: Track) -> dict[str, Any]:
    """Leads that were MQL at some point of the window under the candidate only (in) or
    under the baseline only (out), with the cards of the first such day."""
    flips_in = sorted(set(candidate.mql_seen) - set(baseline.mql_seen))
    flips_out = sorted(set(baseline.mql_seen) - set(candidate.mql_seen))

    def example(pid: int, owner: Track, other: Track) -> dict[str, Any]:
        cards = replay_.cards_when_mql.get(owner.name, {}).get(pid, {})
        card = cards.get(owner.name)
        return {
            "person_id": pid,
            "at": owner.mql_seen[pid].date().isoformat(),
            "mql_type": None if card is None else card.get("mql_type"),
            "total": None if card is None else round(card["total"], 2),
            "why": "—" if card is None else why(card),
            "other_total": (round(cards[other.name]["total"], 2) if other.name in cards else None),
            "why_not_other": why_not(cards.get(other.name), other.definition),
        }

    return {
        "in": len(flips_in),
        "out": len(flips_out),
        "examples_in": [example(pid, candidate, baseline) for pid in flips_in[:EXAMPLES]],
        "examples_out": [example(pid, baseline, candidate) for pid in flips_out[:EXAMPLES]],
    }


def weeks(replay_: Replay, baseline: Track, candidate: Track) -> list[dict[str, Any]]:
    """Per week (Monday first): MQL entries and exits under each, and the flips."""
    first_a = {pid: week_of(at.date()) for pid, at in baseline.mql_seen.items()}
    first_b = {pid: week_of(at.date()) for pid, at in candidate.mql_seen.items()}
    flips_in: Counter[date] = Counter(first_b[p] for p in set(first_b) - set(first_a))
    flips_out: Counter[date] = Counter(first_a[p] for p in set(first_a) - set(first_b))
    out = []
    week = week_of(replay_.start)
    while week <= replay_.end:
        first_day = max(week, replay_.start)
        last_day = min(week + timedelta(days=6), replay_.end)
        out.append(
            {
                "week": week.isoformat(),
                "days": (last_day - first_day).days + 1,
                "baseline_mqls": baseline.entered_by_week[week],
                "candidate_mqls": candidate.entered_by_week[week],
                "baseline_left": baseline.exits[week],
                "candidate_left": candidate.exits[week],
                "flips_in": flips_in[week],
                "flips_out": flips_out[week],
            }
        )
        week += timedelta(days=7)
    return out


def routing_load(
    connection: Connection, routing_definition: Definition, track: Track, history: History
) -> dict[str, Any]:
    """The track's MQL entries routed in order through today's routing rules and reps."""
    from mqlengine.domain.routing import Lead, RoutingState, advance, prune, route
    from mqlengine.services.handoff.directory import load_reps

    if routing_definition.routing is None:
        return {"reps": None, "teams": None, "queued": None, "reason": "no routing section"}
    values, _ = load_reps(connection)
    if not values:
        return {"reps": None, "teams": None, "queued": None, "reason": "no reps are stored"}
    state = RoutingState()
    owners: dict[int, str] = {}
    per_rep: Counter[str] = Counter()
    per_team: Counter[str] = Counter()
    queued = 0
    last_prune: datetime | None = None
    for entry in sorted(track.entries, key=lambda e: (e.at, e.person_id)):
        card = entry.card
        points = json.loads(card["rule_points"])
        account = history.accounts.get(entry.person_id)
        lead = Lead(
            entry.person_id,
            card.get("mql_type"),
            history.profiles.get(entry.person_id, {}),
            card["fit"],
            card["intent"],
            card["total"],
            frozenset(rule for rule, value in points.items() if value > 0),
            account,
        )
        if last_prune is None or entry.at - last_prune > timedelta(days=1):
            state, last_prune = prune(state, entry.at), entry.at
        state = RoutingState(
            state.recent_assignments,
            state.open_load,
            state.last_assigned,
            owners.get(account) if account is not None else None,
        )
        decision = route(routing_definition.routing, values, lead, state, entry.at)
        state = advance(state, decision, entry.at)
        per_team[decision.team] += 1
        if decision.rep is None:
            queued += 1
        else:
            per_rep[decision.rep] += 1
            if account is not None:
                owners.setdefault(account, decision.rep)
    return {
        "reps": dict(sorted(per_rep.items())),
        "teams": dict(sorted(per_team.items())),
        "queued": queued,
        "reason": None,
    }


# -- the backtest ------------------------------------------------------------------------------


def backtest(
    database: Database,
    baseline: Definition,
    candidate: Definition,
    *,
    start: date,
    end: date,
    engine: BatchEngine | None = None,
    routing: Definition | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Replay both definitions and compare them: one JSON-ready object."""
    engine = engine or PythonEngine()
    result = replay(
        database,
        {"baseline": baseline, "candidate": candidate},
        start=start,
        end=end,
        engine=engine,
        progress=progress,
    )
    a, b = result.tracks["baseline"], result.tracks["candidate"]
    report: dict[str, Any] = {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "days": result.days,
        "engine": engine.name,
        "baseline": outcome_figures(result, a),
        "candidate": outcome_figures(result, b),
        "weeks": weeks(result, a, b),
        "flips": flips(result, a, b),
    }
    gained = days_gained(result, a, b)
    report["median_days_gained"] = gained["median_days_gained"]
    report["days_gained_compared"] = gained["compared"]
    report["notes"] = {} if gained["reason"] is None else {"median_days_gained": gained["reason"]}
    with database.read() as connection:
        for name, track in (("baseline", a), ("candidate", b)):
            load = routing_load(connection, routing or baseline, track, result.history)
            report[name]["load"] = load
            if load["reason"] is not None:
                report[name]["notes"]["load"] = load["reason"]
    return report


def stage_flips_now(
    database: Database,
    live: Definition,
    candidate: Definition,
    *,
    now: datetime,
    engine: BatchEngine | None = None,
) -> dict[str, Any]:
    """Every live person scored as of ``now`` under both: those whose next stage differs."""
    engine = engine or PythonEngine()
    data = from_store(database, until=now)
    before = engine.score(live, data, now).to_pylist()
    after = {row["person_id"]: row for row in engine.score(candidate, data, now).to_pylist()}
    stages = dict(
        zip(
            data.persons.column("person_id").to_pylist(),
            data.persons.column("stage").to_pylist(),
            strict=True,
        )
    )
    changed = []
    for row in before:
        pid = row["person_id"]
        other = after[pid]
        if row["next_stage"] == other["next_stage"]:
            continue
        stage = stages[pid]
        live_to = row["next_stage"] or stage
        cand_to = other["next_stage"] or stage
        if live_to == cand_to:
            continue
        reason = (
            why(other) if other["qualifies"] and cand_to == "mql" else why_not(other, candidate)
        )
        changed.append(
            {
                "person_id": pid,
                "stage": stage,
                "live": live_to,
                "candidate": cand_to,
                "total": round(other["total"], 2),
                "live_total": round(row["total"], 2),
                "why": reason,
            }
        )
    moves: Counter[str] = Counter(f"{c['live']} → {c['candidate']}" for c in changed)
    return {
        "as_of": now.isoformat(),
        "persons": len(before),
        "count": len(changed),
        "moves": dict(moves),
        "examples": changed[:EXAMPLES],
    }


def default_window(now: datetime, days: int = 90) -> tuple[date, date]:
    """The last ``days`` complete days before ``now``."""
    end = now.astimezone(UTC).date() - timedelta(days=1)
    return end - timedelta(days=days - 1), end
