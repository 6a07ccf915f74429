"""Explainable scoring: fit + decayed intent → a score card with every contribution.

Pure: the card depends only on the definition, the person's traits, the events and
``as_of``. Events after ``as_of`` are ignored, so any past moment can be scored, and events
are put in a canonical order first, so the same history in any order scores the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mqlengine.domain.conditions import (
    MISSING,
    AllOf,
    AnyOf,
    Compare,
    Condition,
    EventSeen,
    Not,
    Op,
    ScoreField,
    Subject,
    TraitPredicate,
    compare,
    evaluate,
    lookup_path,
    trait_predicate,
)
from mqlengine.domain.rules import Definition, IntentRule, Repeat

SECONDS_PER_DAY = 86_400.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Event:
    """One behavioural signal as scoring sees it."""

    id: str
    name: str
    timestamp: datetime
    properties: Mapping[str, object]
    epoch: float = field(init=False, compare=False, repr=False)  # timestamp as POSIX seconds

    def __post_init__(self) -> None:
        object.__setattr__(self, "epoch", self.timestamp.timestamp())


@dataclass(frozen=True, slots=True)
class EventHit:
    event_id: str
    timestamp: datetime
    age_days: float
    decay_factor: float
    points: float


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one rule added: raw points, decay, the rule cap, and the evidence."""

    rule_id: str
    kind: str  # "fit" | "intent"
    raw_points: float  # points per occurrence, as written in the definition
    earned: float  # after decay, before the rule's cap
    points: float  # after the rule's cap: what enters the section sum
    hits: tuple[EventHit, ...] = ()

    @property
    def event_ids(self) -> tuple[str, ...]:
        return tuple(hit.event_id for hit in self.hits)

    @property
    def decay_factor(self) -> float:
        """Weighted mean decay over the hits (1.0 for fit rules)."""
        if not self.hits:
            return 1.0
        return sum(hit.decay_factor for hit in self.hits) / len(self.hits)


@dataclass(frozen=True, slots=True)
class ScoreCard:
    definition_version: str
    as_of: datetime
    fit: float
    intent: float
    total: float
    fit_raw: float
    intent_raw: float
    total_raw: float
    contributions: tuple[Contribution, ...]
    excluded_because: tuple[str, ...]
    missing_requirements: tuple[str, ...]
    meets_threshold: bool
    qualifies: bool
    retains: bool
    mql_type: str | None
    matched_path: str | None
    threshold: float
    min_fit: float
    distance_to_threshold: float

    @property
    def fit_cap_adjustment(self) -> float:
        return self.fit - self.fit_raw

    @property
    def intent_cap_adjustment(self) -> float:
        return self.intent - self.intent_raw

    @property
    def total_cap_adjustment(self) -> float:
        return self.total - self.total_raw

    def contribution(self, rule_id: str) -> Contribution | None:
        for item in self.contributions:
            if item.rule_id == rule_id:
                return item
        return None


def decay_factor(age_days: float, half_life_days: float) -> float:
    """``0.5 ** (age / half_life)``; 1.0 when decay is off; never above 1 or below 0."""
    if half_life_days <= 0:
        return 1.0
    return float(0.5 ** (max(age_days, 0.0) / half_life_days))


def _clamp(value: float, cap: float | None) -> float:
    if cap is None:
        return value
    return min(value, cap)


def _rule_cap(earned: float, cap: float | None) -> float:
    """A rule cap bounds the magnitude: +cap for positive rules, -cap for negative ones."""
    if cap is None:
        return earned
    return max(min(earned, cap), -cap)


class _TraitContext:
    __slots__ = ("_as_of", "_traits")

    def __init__(self, traits: Mapping[str, object], as_of: datetime) -> None:
        self._traits = traits
        self._as_of = as_of

    def trait(self, name: str) -> object:
        return lookup_path(self._traits, name)

    def prop(self, name: str) -> object:
        return MISSING

    def rule_earned(self, rule_id: str) -> bool:
        return False

    def event_seen(self, event: str, since: datetime | None) -> bool:
        return False

    def score(self, field: ScoreField) -> float:
        return 0.0

    @property
    def as_of(self) -> datetime:
        return self._as_of


class _EventContext(_TraitContext):
    __slots__ = ("_properties",)

    def __init__(self, properties: Mapping[str, object], as_of: datetime) -> None:
        super().__init__({}, as_of)
        self._properties = properties

    def prop(self, name: str) -> object:
        return lookup_path(self._properties, name)


class _PathContext(_TraitContext):
    __slots__ = ("_contributions", "_events", "_scores")

    def __init__(
        self,
        traits: Mapping[str, object],
        as_of: datetime,
        contributions: Mapping[str, Contribution],
        events: Sequence[Event],
        scores: Mapping[ScoreField, float],
    ) -> None:
        super().__init__(traits, as_of)
        self._contributions = contributions
        self._events = events
        self._scores = scores

    def rule_earned(self, rule_id: str) -> bool:
        item = self._contributions.get(rule_id)
        return item is not None and item.earned > 0

    def event_seen(self, event: str, since: datetime | None) -> bool:
        return any(
            e.name == event and (since is None or e.timestamp >= since) for e in self._events
        )

    def score(self, field: ScoreField) -> float:
        return self._scores[field]


def _matches(rule: IntentRule, event: Event, as_of: datetime) -> bool:
    if event.name != rule.event:
        return False
    where = rule.where
    if where is None:
        return True
    if isinstance(where, Compare) and where.subject is Subject.PROPERTY:
        actual = lookup_path(event.properties, where.name)
        if where.folded is not None and isinstance(actual, str) and actual:
            found = actual.casefold() in where.folded
            return found if where.op in (Op.EQUALS, Op.IN) else not found
        return compare(where.op, actual, where.value, where.pattern)
    return evaluate(where, _EventContext(event.properties, as_of))


def _select(rule: IntentRule, events: Iterable[Event]) -> list[Event]:
    """Apply the repeat policy to matching events (already in canonical order)."""
    if rule.repeat is Repeat.EVERY_TIME:
        return list(events)
    if rule.repeat is Repeat.ONCE:
        chosen = list(events)
        return chosen[-1:]  # the most recent occurrence: the freshest evidence
    per_day: dict[object, Event] = {}
    for event in events:
        per_day[event.timestamp.date()] = event  # later events of the day replace earlier
    return list(per_day.values())


def _intent_contribution(
    definition: Definition, rule: IntentRule, matching: Sequence[Event], as_of: datetime
) -> Contribution | None:
    as_of_ts = as_of.timestamp()
    if rule.within_days is not None:
        window_start = as_of_ts - rule.within_days * SECONDS_PER_DAY
        matching = [e for e in matching if e.epoch >= window_start]
    if not matching:
        return None
    half_life = definition.intent_half_life(rule)
    points = rule.points
    hits: list[EventHit] = []
    earned = 0.0
    for event in _select(rule, matching):
        seconds = as_of_ts - event.epoch
        age = seconds / SECONDS_PER_DAY if seconds > 0.0 else 0.0
        factor = 0.5 ** (age / half_life) if half_life > 0 else 1.0  # = decay_factor()
        hits.append(EventHit(event.id, event.timestamp, age, factor, points * factor))
        earned += points * factor
    return Contribution(
        rule_id=rule.id,
        kind="intent",
        raw_points=rule.points,
        earned=earned,
        points=_rule_cap(earned, rule.cap),
        hits=tuple(hits),
    )


def _canonical_key(event: Event) -> tuple[float, str]:
    return (event.epoch, event.id)


def canonical_order(events: Iterable[Event]) -> list[Event]:
    """Time, then id: the order every computation over events uses."""
    return sorted(events, key=_canonical_key)


class Scorer:
    """Scores persons under one definition, remembering which intent rules each event
    matches: matching depends only on the event, never on the moment, so rescoring the
    same history as time passes costs only the decay arithmetic.

    Event ids must identify event content (message ids are unique in the store).
    """

    def __init__(self, definition: Definition, *, memo_limit: int = 2_000_000) -> None:
        self.definition = definition
        self._rules_by_event: dict[str, list[int]] = {}
        for index, rule in enumerate(definition.intent_rules):
            self._rules_by_event.setdefault(rule.event, []).append(index)
        self._memo: dict[str, tuple[int, ...]] = {}
        self._memo_limit = memo_limit
        self._path_events = frozenset(
            name for path in definition.qualify.paths for name in _events_named(path.when)
        )
        # trait-only conditions compiled to closures (fit rules, exclusions, requirements)
        self._fit = [(rule, _predicate(rule.when)) for rule in definition.fit_rules]
        self._exclusions = [(g.id, _predicate(g.when)) for g in definition.exclusions]
        self._requirements = [(g.id, _predicate(g.when)) for g in definition.requirements]

    def relevant(self, event: Event) -> bool:
        """Whether the event can ever change a score: some intent rule matches it, or a
        qualification path asks about its name. Others need not be kept for scoring."""
        return event.name in self._path_events or bool(self.matching(event, event.timestamp))

    def matching(self, event: Event, as_of: datetime) -> tuple[int, ...]:
        found = self._memo.get(event.id)
        if found is None:
            candidates = self._rules_by_event.get(event.name, ())
            rules = self.definition.intent_rules
            found = tuple(i for i in candidates if _matches(rules[i], event, as_of))
            if len(self._memo) >= self._memo_limit:
                self._memo.clear()
            self._memo[event.id] = found
        return found

    def score(
        self, traits: Mapping[str, object], events: Iterable[Event], as_of: datetime
    ) -> ScoreCard:
        """Score one person as of a moment. See the module docstring for the guarantees."""
        definition = self.definition
        if as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware")
        as_of_ts = as_of.timestamp()
        path_events = self._path_events
        # One pass: each past event goes to the rules it matches (and, when a path asks
        # about its name, to the path evidence); each list is then put in canonical order.
        per_rule: dict[int, list[Event]] = {}
        past: list[Event] = []
        for event in events:
            if event.epoch > as_of_ts:
                continue
            for index in self.matching(event, as_of):
                per_rule.setdefault(index, []).append(event)
            if event.name in path_events:
                past.append(event)
        contributions: list[Contribution] = []
        for fit_rule, test in self._fit:
            if test(traits):
                points = fit_rule.points
                contributions.append(Contribution(fit_rule.id, "fit", points, points, points))
        fit_raw = sum(c.points for c in contributions)

        intent_items: list[Contribution] = []
        for index, intent_rule in enumerate(definition.intent_rules):
            matched = per_rule.get(index)
            if not matched:
                continue
            matched.sort(key=_canonical_key)
            item = _intent_contribution(definition, intent_rule, matched, as_of)
            if item is not None:
                intent_items.append(item)
        contributions.extend(intent_items)
        intent_raw = sum(c.points for c in intent_items)
        excluded = tuple(gate_id for gate_id, test in self._exclusions if test(traits))
        missing = tuple(gate_id for gate_id, test in self._requirements if not test(traits))
        return _decide(
            definition, traits, as_of, past, contributions, fit_raw, intent_raw, excluded, missing
        )


def _predicate(condition: Condition) -> TraitPredicate:
    compiled = trait_predicate(condition)
    if compiled is not None:
        return compiled

    def interpreted(traits: Mapping[str, object]) -> bool:
        # trait conditions never read the moment; any fixed one will do
        return evaluate(condition, _TraitContext(traits, _EPOCH))

    return interpreted


def _events_named(condition: Condition) -> list[str]:
    if isinstance(condition, EventSeen):
        return [condition.event]
    if isinstance(condition, AllOf | AnyOf):
        return [name for item in condition.items for name in _events_named(item)]
    if isinstance(condition, Not):
        return _events_named(condition.item)
    return []


def score(
    definition: Definition,
    traits: Mapping[str, object],
    events: Iterable[Event],
    as_of: datetime,
) -> ScoreCard:
    """Score one person as of a moment (see :class:`Scorer` for repeated scoring)."""
    return Scorer(definition).score(traits, events, as_of)


def _decide(
    definition: Definition,
    traits: Mapping[str, object],
    as_of: datetime,
    past: Sequence[Event],
    contributions: list[Contribution],
    fit_raw: float,
    intent_raw: float,
    excluded: tuple[str, ...],
    missing: tuple[str, ...],
) -> ScoreCard:
    fit = _clamp(fit_raw, definition.fit_cap)
    intent = _clamp(intent_raw, definition.intent_cap)
    total_raw = fit + intent
    total = _clamp(total_raw, definition.qualify.total_cap)

    qualify = definition.qualify
    by_rule = {c.rule_id: c for c in contributions}
    path_context = _PathContext(
        traits,
        as_of,
        by_rule,
        past,
        {ScoreField.FIT: fit, ScoreField.INTENT: intent, ScoreField.TOTAL: total},
    )
    matched = next((p for p in qualify.paths if evaluate(p.when, path_context)), None)
    meets = total >= qualify.threshold and fit >= qualify.min_fit
    gated = not excluded and not missing
    bypass = matched is not None and matched.bypass_threshold and fit >= qualify.min_fit
    qualifies = gated and (meets or bypass)
    retains = gated and (
        (total >= qualify.threshold - qualify.hysteresis and fit >= qualify.min_fit) or bypass
    )
    mql_type = None
    if qualifies:
        mql_type = matched.type if matched is not None else qualify.default_type
    return ScoreCard(
        definition_version=definition.version,
        as_of=as_of,
        fit=fit,
        intent=intent,
        total=total,
        fit_raw=fit_raw,
        intent_raw=intent_raw,
        total_raw=total_raw,
        contributions=tuple(contributions),
        excluded_because=excluded,
        missing_requirements=missing,
        meets_threshold=meets,
        qualifies=qualifies,
        retains=retains,
        mql_type=mql_type,
        matched_path=matched.type if matched is not None else None,
        threshold=qualify.threshold,
        min_fit=qualify.min_fit,
        distance_to_threshold=max(qualify.threshold - total, 0.0),
    )
