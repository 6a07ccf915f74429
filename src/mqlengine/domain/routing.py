"""Routing: which rep (or queue) owns a new MQL. Pure decisions over values.

The shell hands in the reps, their recent assignments, open loads, the round-robin cursor
of each team and the account's owner; :func:`route` returns a :class:`RouteDecision` that
says who, by which rule and strategy, and why every other rep was passed over. Nothing
here reads a clock or a database, so the same decision can be replayed (``mql route
simulate``) and property-tested.

Order of precedence for one MQL:
1. the first routing rule whose ``mql_types``/``when`` match picks a team;
2. account-owner stickiness (if the rule allows it): the account's owner, if available;
3. the rule's strategy among the team's available reps (territory-filtered if asked);
4. nobody available → the definition's fallback queue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from mqlengine.domain.calendar import BusinessCalendar, is_open
from mqlengine.domain.conditions import MISSING, Condition, ScoreField, evaluate, lookup_path

DEFAULT_WEIGHT = 10


class Strategy(StrEnum):
    ROUND_ROBIN = "round_robin"
    WEIGHTED_BY_CAPACITY = "weighted_by_capacity"
    LEAST_LOADED = "least_loaded"


@dataclass(frozen=True, slots=True)
class Rep:
    """A sales rep. ``working_hours`` None = always on shift; ``capacity_per_day`` None =
    unlimited. ``out_of_office`` holds UTC [start, end) ranges."""

    key: str
    team: str
    timezone: str = "UTC"
    capacity_per_day: int | None = None
    working_hours: BusinessCalendar | None = None
    out_of_office: tuple[tuple[datetime, datetime], ...] = ()
    territories: tuple[str, ...] = ()
    active: bool = True

    @property
    def weight(self) -> int:
        return self.capacity_per_day if self.capacity_per_day else DEFAULT_WEIGHT


@dataclass(frozen=True, slots=True)
class RoutingRule:
    id: str
    team: str
    strategy: Strategy = Strategy.ROUND_ROBIN
    mql_types: tuple[str, ...] = ()
    when: Condition | None = None
    account_owner: bool = True
    territory: bool = False
    require_on_shift: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    rules: tuple[RoutingRule, ...]
    fallback: str
    regions: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def rule(self, rule_id: str | None) -> RoutingRule | None:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        return None


@dataclass(frozen=True, slots=True)
class Lead:
    """What routing and SLA conditions may look at: the profile and the score card."""

    person_id: int
    mql_type: str | None
    traits: Mapping[str, object]
    fit: float = 0.0
    intent: float = 0.0
    total: float = 0.0
    earned_rules: frozenset[str] = frozenset()
    account_id: int | None = None

    @property
    def country(self) -> str | None:
        value = lookup_path(self.traits, "country")
        return value.strip().upper() if isinstance(value, str) and value.strip() else None


class LeadContext:
    """A :class:`~mqlengine.domain.conditions.Context` over a :class:`Lead`."""

    __slots__ = ("_as_of", "_lead")

    def __init__(self, lead: Lead, as_of: datetime) -> None:
        self._lead = lead
        self._as_of = as_of

    def trait(self, name: str) -> object:
        if name == "mql_type":
            return self._lead.mql_type if self._lead.mql_type is not None else MISSING
        return lookup_path(self._lead.traits, name)

    def prop(self, name: str) -> object:
        return MISSING

    def rule_earned(self, rule_id: str) -> bool:
        return rule_id in self._lead.earned_rules

    def event_seen(self, event: str, since: datetime | None) -> bool:
        return False

    def score(self, field: ScoreField) -> float:
        lead = self._lead
        return {ScoreField.FIT: lead.fit, ScoreField.INTENT: lead.intent}.get(field, lead.total)

    @property
    def as_of(self) -> datetime:
        return self._as_of


def lead_matches(
    mql_types: Sequence[str], when: Condition | None, lead: Lead, now: datetime
) -> bool:
    if mql_types and lead.mql_type not in mql_types:
        return False
    return when is None or evaluate(when, LeadContext(lead, now))


@dataclass(frozen=True, slots=True)
class RoutingState:
    """What the store knows that routing needs (per rep key / team name)."""

    recent_assignments: Mapping[str, Sequence[datetime]] = field(default_factory=dict)
    open_load: Mapping[str, int] = field(default_factory=dict)
    last_assigned: Mapping[str, str] = field(default_factory=dict)  # team → rep key
    account_owner: str | None = None


@dataclass(frozen=True, slots=True)
class RouteDecision:
    team: str
    rep: str | None  # None: the lead waits in the ``team`` queue
    rule_id: str | None
    strategy: str  # account_owner, round_robin, …, fallback
    reason: str
    skipped: tuple[tuple[str, str], ...] = ()  # (rep key, why not)

    @property
    def is_queue(self) -> bool:
        return self.rep is None


def day_start(timezone: str, now: datetime) -> datetime:
    """The start (UTC) of the local day at ``now`` in ``timezone``."""
    local = now.astimezone(ZoneInfo(timezone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def local_midnight(rep: Rep, now: datetime) -> datetime:
    """The start (UTC) of the rep's local day at ``now``: where "today" begins."""
    return day_start(rep.timezone, now)


def assigned_today(rep: Rep, state: RoutingState, now: datetime) -> int:
    """Assignments since the start of the rep's local day."""
    midnight = local_midnight(rep, now)
    return sum(1 for at in state.recent_assignments.get(rep.key, ()) if midnight <= at <= now)


def out_of_office(rep: Rep, now: datetime) -> bool:
    return any(start <= now < end for start, end in rep.out_of_office)


def on_shift(rep: Rep, now: datetime) -> bool:
    return rep.working_hours is None or is_open(rep.working_hours, now)


def unavailable_because(rep: Rep, state: RoutingState, now: datetime) -> str | None:
    """Why this rep cannot take an MQL now (None: available). Shift is judged separately."""
    if not rep.active:
        return "inactive"
    if out_of_office(rep, now):
        return "out_of_office"
    if rep.capacity_per_day is not None and assigned_today(rep, state, now) >= rep.capacity_per_day:
        return "at_daily_capacity"
    return None


def covers(rep: Rep, country: str | None, regions: Mapping[str, frozenset[str]]) -> bool:
    """Whether a rep's territory includes ``country`` (no territory: covers everything)."""
    if not rep.territories:
        return True
    if country is None:
        return False
    for territory in rep.territories:
        if territory.upper() == country or country in regions.get(territory.lower(), frozenset()):
            return True
    return False


def match_rule(
    config: RoutingConfig, lead: Lead, now: datetime, *, only_rule: str | None = None
) -> RoutingRule | None:
    """The first rule (or the rule ``only_rule``) that matches the lead; None: fallback."""
    for candidate in config.rules:
        if only_rule is not None and candidate.id != only_rule:
            continue
        if lead_matches(candidate.mql_types, candidate.when, lead, now):
            return candidate
    return None


@dataclass(frozen=True, slots=True)
class StateNeeds:
    """The part of a :class:`RoutingState` that :func:`route` reads for one rule."""

    team: str  # only this team's round-robin cursor
    recent_for: frozenset[str]  # team reps whose assignments today matter
    open_load_for: frozenset[str]  # reps whose open load matters (least loaded)
    account_owner: bool  # the account's owner, and its assignments today


def state_needs(rule: RoutingRule, reps: Sequence[Rep]) -> StateNeeds:
    """What :func:`route` reads of the state when ``rule`` matched: the round-robin cursor
    of the rule's team; today's assignments of the team's reps with a daily capacity (of
    all of them when weighting by capacity); open loads only when the least loaded rep is
    wanted; and, if the rule lets owners keep their accounts, the account's owner and (if
    it has a daily capacity) its assignments today."""
    members = [r for r in reps if r.team == rule.team]
    weighted = rule.strategy is Strategy.WEIGHTED_BY_CAPACITY
    recent = frozenset(r.key for r in members if weighted or r.capacity_per_day is not None)
    least_loaded = rule.strategy is Strategy.LEAST_LOADED
    loads = frozenset(r.key for r in members) if least_loaded else frozenset()
    return StateNeeds(rule.team, recent, loads, rule.account_owner)


def _rotation(keys: Sequence[str], last: str | None) -> list[str]:
    """Keys in round-robin order, starting after ``last``."""
    ordered = sorted(keys)
    if last is None:
        return ordered
    after = [k for k in ordered if k > last]
    return after + [k for k in ordered if k <= last]


def _pick(
    strategy: Strategy, candidates: list[Rep], state: RoutingState, team: str, now: datetime
) -> Rep:
    order = _rotation([r.key for r in candidates], state.last_assigned.get(team))
    position = {key: i for i, key in enumerate(order)}
    by_key = {r.key: r for r in candidates}
    if strategy is Strategy.ROUND_ROBIN:
        return by_key[order[0]]
    if strategy is Strategy.LEAST_LOADED:
        return min(candidates, key=lambda r: (state.open_load.get(r.key, 0), position[r.key]))
    return min(
        candidates,
        key=lambda r: ((assigned_today(r, state, now) + 1) / r.weight, position[r.key]),
    )


def route(
    config: RoutingConfig,
    reps: Sequence[Rep],
    lead: Lead,
    state: RoutingState,
    now: datetime,
    *,
    exclude: frozenset[str] = frozenset(),
    only_rule: str | None = None,
) -> RouteDecision:
    """Decide the owner of a new MQL (or of one being reassigned, with ``exclude``).

    Of ``state`` it reads only what :func:`state_needs` names for the matching rule, so a
    shell may load just that."""
    rule = match_rule(config, lead, now, only_rule=only_rule)
    if rule is None:
        return RouteDecision(config.fallback, None, None, "fallback", "no routing rule matched")

    skipped: list[tuple[str, str]] = []
    by_key = {r.key: r for r in reps}
    owner_key = state.account_owner
    if rule.account_owner and owner_key is not None and owner_key not in exclude:
        owner = by_key.get(owner_key)
        if owner is not None:
            why = unavailable_because(owner, state, now)
            if why is None:
                return RouteDecision(
                    owner.team, owner.key, rule.id, "account_owner", "owner of the lead's account"
                )
            skipped.append((owner.key, f"account owner {why}"))

    country = lead.country
    available: list[Rep] = []
    for rep in sorted((r for r in reps if r.team == rule.team), key=lambda r: r.key):
        why = "excluded" if rep.key in exclude else unavailable_because(rep, state, now)
        if why is None and rule.territory and not covers(rep, country, config.regions):
            why = "outside_territory"
        if why is None:
            available.append(rep)
        else:
            skipped.append((rep.key, why))
    on = [r for r in available if on_shift(r, now)]
    for rep in available:
        if rep not in on:
            skipped.append((rep.key, "off_shift"))
    candidates = on or ([] if rule.require_on_shift else available)
    if not candidates:
        why = "no rep of team " + rule.team + " is available"
        return RouteDecision(
            config.fallback, None, rule.id, "fallback", why, tuple(sorted(set(skipped)))
        )
    chosen = _pick(rule.strategy, candidates, state, rule.team, now)
    reason = f"rule {rule.id}: {rule.strategy.value} in team {rule.team}"
    if not on:
        reason += " (nobody on shift)"
    kept = tuple(sorted({s for s in skipped if s[0] != chosen.key}))
    return RouteDecision(rule.team, chosen.key, rule.id, rule.strategy.value, reason, kept)


def advance(state: RoutingState, decision: RouteDecision, now: datetime) -> RoutingState:
    """The state after ``decision`` (used by the simulator and by property tests)."""
    if decision.rep is None:
        return state
    recent = dict(state.recent_assignments)
    recent[decision.rep] = (*recent.get(decision.rep, ()), now)
    load = dict(state.open_load)
    load[decision.rep] = load.get(decision.rep, 0) + 1
    last = dict(state.last_assigned)
    if decision.strategy != "account_owner":
        last[decision.team] = decision.rep
    return RoutingState(recent, load, last, state.account_owner)


def prune(state: RoutingState, now: datetime, keep: timedelta = timedelta(days=2)) -> RoutingState:
    recent = {
        k: tuple(t for t in v if t >= now - keep) for k, v in state.recent_assignments.items()
    }
    return RoutingState(recent, state.open_load, state.last_assigned, state.account_owner)


def fairness(counts: Mapping[str, int], weights: Mapping[str, float] | None = None) -> float:
    """Jain's fairness index of per-rep load (weight-normalised): 1.0 = perfectly even."""
    values = [
        counts.get(key, 0) / ((weights or {}).get(key, 1.0) or 1.0) for key in (weights or counts)
    ]
    if not values or not any(values):
        return 1.0
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))
