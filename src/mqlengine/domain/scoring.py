"""Explainable scoring: fit + decayed intent → a score card with every contribution.

Pure: the card depends only on the definition, the person's traits, the events and
``as_of``. Events after ``as_of`` are ignored, so any past moment can be scored, and events
are put in a canonical order first, so the same history in any order scores the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from mqlengine.domain.conditions import (
    MISSING,
    AllOf,
    AnyOf,
    Compare,
    Condition,
    EventSeen,
    Not,
    Op,
    RuleEarned,
    ScoreAtLeast,
    ScoreField,
    Subject,
    TraitPredicate,
    compare,
    evaluate,
    events_named,
    lookup_path,
    trait_predicate,
)
from mqlengine.domain.consent import person_consent
from mqlengine.domain.rules import Definition, IntentRule, QualifyPath, Repeat

SECONDS_PER_DAY = 86_400.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_T = TypeVar("_T")


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
class Likelihood:
    """The live model's calibrated P(outcome) for a person as of a moment, with the
    features that moved it most (signed log-odds contributions, largest first)."""

    value: float
    model_version: int
    top: tuple[tuple[str, float], ...] = ()


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
    # the live model's view (None without a live model): never part of the total
    likelihood: float | None = None
    model_version: int | None = None
    likelihood_top: tuple[tuple[str, float], ...] = ()

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


@dataclass(frozen=True, slots=True)
class TraitVerdict:
    """What a person's traits alone decide under one definition (see
    :meth:`Scorer.judge_traits`): valid for any history and any moment, until the traits
    or the definition change."""

    definition_hash: str  # content hash of the definition it was judged under
    fit_contributions: tuple[Contribution, ...]
    fit_raw: float
    fit: float  # after the fit cap
    excluded_because: tuple[str, ...]
    missing_requirements: tuple[str, ...]
    path_facts: tuple[bool, ...]  # answers of the trait-only parts of the qualify paths
    # indices of the paths the traits leave open, in order; it ends at a path the traits
    # alone satisfy, if any (no later path can be the first match)
    candidate_paths: tuple[int, ...]
    # the person's tracking consent is withdrawn: no event earns intent points
    untracked: bool


class _StaticContext(_TraitContext):
    """Answers the trait-only parts of a path: traits, fit, and the fit rules."""

    __slots__ = ("_fit", "_fit_rules")

    def __init__(
        self, traits: Mapping[str, object], fit: float, fit_rules: Mapping[str, Contribution]
    ) -> None:
        super().__init__(traits, _EPOCH)
        self._fit = fit
        self._fit_rules = fit_rules

    def rule_earned(self, rule_id: str) -> bool:
        item = self._fit_rules.get(rule_id)
        return item is not None and item.earned > 0

    def score(self, field: ScoreField) -> float:
        return self._fit  # only fit_at_least is trait-only


class _Facts:
    """What the history decided, as the non-trait parts of a path ask it."""

    __slots__ = ("as_of", "by_rule", "intent", "latest", "likelihood", "total")

    def __init__(
        self,
        as_of: datetime,
        latest: Mapping[str, datetime],
        intent: float,
        total: float,
        by_rule: Mapping[str, Contribution],
        likelihood: float | None = None,
    ) -> None:
        self.likelihood = likelihood  # None: no live model
        self.as_of = as_of
        self.latest = latest  # per event name a path asks about: the latest past timestamp
        self.intent = intent
        self.total = total
        self.by_rule = by_rule


# (traits, fit, fit contributions by rule id) -> bool
_StaticTest = Callable[[Mapping[str, object], float, Mapping[str, Contribution]], bool]
# (facts, the verdict's path_facts) -> bool
_PathTest = Callable[[_Facts, tuple[bool, ...]], bool]


class _PathCompiler:
    """Splits qualification paths into trait-only parts, answered once per profile (in a
    :class:`TraitVerdict`), and closures for the rest, answered per score."""

    def __init__(self, intent_rule_ids: frozenset[str]) -> None:
        self.intent_rule_ids = intent_rule_ids
        self.statics: list[_StaticTest] = []
        self.statics_read_fit_rules = False
        self.reads_rules = False  # some path asks whether an intent rule earned points

    def trait_only(self, condition: Condition) -> bool:
        if isinstance(condition, Compare):
            return True
        if isinstance(condition, ScoreAtLeast):
            return condition.field is ScoreField.FIT
        if isinstance(condition, RuleEarned):
            return condition.rule_id not in self.intent_rule_ids
        if isinstance(condition, AllOf | AnyOf):
            return all(self.trait_only(item) for item in condition.items)
        if isinstance(condition, Not):
            return self.trait_only(condition.item)
        return False

    def static(self, condition: Condition) -> int:
        """Register a trait-only condition; its answer is ``path_facts[index]``."""
        test: _StaticTest
        compiled = trait_predicate(condition)
        if compiled is not None:
            test = _ignore_fit(compiled)
        elif isinstance(condition, ScoreAtLeast):
            test = _fit_at_least(condition.minimum)
        else:
            self.statics_read_fit_rules = True
            test = _interpret_static(condition)
        self.statics.append(test)
        return len(self.statics) - 1

    def part(self, condition: Condition) -> _PathTest:
        if self.trait_only(condition):
            index = self.static(condition)
            return lambda facts, known: known[index]
        if isinstance(condition, EventSeen):
            return _event_seen(condition)
        if isinstance(condition, ScoreAtLeast):
            minimum = condition.minimum
            if condition.field is ScoreField.INTENT:
                return lambda facts, known: facts.intent >= minimum
            if condition.field is ScoreField.LIKELIHOOD:
                return lambda facts, known: (
                    facts.likelihood is not None and facts.likelihood >= minimum
                )
            return lambda facts, known: facts.total >= minimum
        if isinstance(condition, RuleEarned):
            self.reads_rules = True
            rule_id = condition.rule_id

            def earned(facts: _Facts, known: tuple[bool, ...]) -> bool:
                item = facts.by_rule.get(rule_id)
                return item is not None and item.earned > 0

            return earned
        if isinstance(condition, Not):
            inner = self.part(condition.item)
            return lambda facts, known: not inner(facts, known)
        assert isinstance(condition, AllOf | AnyOf)
        parts = tuple(self.part(item) for item in condition.items)
        if isinstance(condition, AllOf):

            def all_of(facts: _Facts, known: tuple[bool, ...]) -> bool:
                return all(test(facts, known) for test in parts)

            return all_of

        def any_of(facts: _Facts, known: tuple[bool, ...]) -> bool:
            return any(test(facts, known) for test in parts)

        return any_of


def _ignore_fit(test: TraitPredicate) -> _StaticTest:
    return lambda traits, fit, fit_rules: test(traits)


def _fit_at_least(minimum: float) -> _StaticTest:
    return lambda traits, fit, fit_rules: fit >= minimum


def _interpret_static(condition: Condition) -> _StaticTest:
    return lambda traits, fit, fit_rules: evaluate(
        condition, _StaticContext(traits, fit, fit_rules)
    )


def _event_seen(condition: EventSeen) -> _PathTest:
    name, within_days = condition.event, condition.within_days
    if within_days is None:
        return lambda facts, known: name in facts.latest
    try:
        window: timedelta | None = timedelta(days=within_days)
    except (OverflowError, ValueError):
        window = None  # out of range: fails (as evaluate does) when asked

    def seen(facts: _Facts, known: tuple[bool, ...]) -> bool:
        since = facts.as_of - (window if window is not None else timedelta(days=within_days))
        latest = facts.latest.get(name)
        return latest is not None and latest >= since

    return seen


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


class _IntentPlan:
    """An intent rule's constants, looked up once."""

    __slots__ = ("cap", "half_life", "id", "points", "repeat", "window")

    def __init__(self, definition: Definition, rule: IntentRule) -> None:
        self.id = rule.id
        self.points = rule.points
        self.cap = rule.cap
        self.half_life = definition.intent_half_life(rule)
        self.repeat = rule.repeat
        # seconds before as_of where the rule's window starts (None: no window)
        self.window = None if rule.within_days is None else rule.within_days * SECONDS_PER_DAY


def _direct_constructor(cls: type[_T]) -> Callable[..., _T]:
    """A positional constructor for a frozen, slotted dataclass that stores each field
    straight into its slot. The generated ``__init__`` does the same through
    ``object.__setattr__`` at about twice the cost; the instances are the same. Only for
    classes without defaults in use, ``__post_init__`` or ``init=False`` fields."""
    names = [item.name for item in fields(cls)]  # type: ignore[arg-type]
    assert all(item.init for item in fields(cls)) and not hasattr(cls, "__post_init__")  # type: ignore[arg-type]
    scope: dict[str, object] = {"_new": object.__new__, "_cls": cls}
    scope.update({f"_set_{name}": getattr(cls, name).__set__ for name in names})
    body = "".join(f"    _set_{name}(self, {name})\n" for name in names)
    source = f"def construct({', '.join(names)}):\n    self = _new(_cls)\n{body}    return self\n"
    exec(source, scope)
    return scope["construct"]  # type: ignore[return-value]


_new_hit = _direct_constructor(EventHit)
_new_contribution = _direct_constructor(Contribution)
_new_card = _direct_constructor(ScoreCard)
_new_verdict = _direct_constructor(TraitVerdict)


def _intent_contribution(
    plan: _IntentPlan, matching: list[Event], as_of_ts: float
) -> Contribution | None:
    """``matching``: the rule's past events (sorted here into canonical order)."""
    if len(matching) > 1:
        matching.sort(key=_canonical_key)
        if plan.window is not None:
            window_start = as_of_ts - plan.window
            matching = [e for e in matching if e.epoch >= window_start]
            if not matching:
                return None
        # the repeat policy
        if plan.repeat is Repeat.ONCE:
            matching = matching[-1:]  # the most recent occurrence: the freshest evidence
        elif plan.repeat is Repeat.ONCE_PER_DAY:
            per_day: dict[object, Event] = {}
            for event in matching:
                per_day[event.timestamp.date()] = event  # later ones of the day replace
            matching = list(per_day.values())
    elif plan.window is not None and matching[0].epoch < as_of_ts - plan.window:
        return None
    half_life = plan.half_life
    points = plan.points
    hits: list[EventHit] = []
    earned = 0.0
    for event in matching:
        seconds = as_of_ts - event.epoch
        age = seconds / SECONDS_PER_DAY if seconds > 0.0 else 0.0
        factor = 0.5 ** (age / half_life) if half_life > 0 else 1.0  # = decay_factor()
        hit_points = points * factor
        hits.append(_new_hit(event.id, event.timestamp, age, factor, hit_points))
        earned += hit_points
    cap = plan.cap
    if cap is None:
        capped = earned
    else:  # the cap bounds the magnitude: max(min(earned, cap), -cap), spelled out
        capped = cap if cap < earned else earned
        if -cap > capped:
            capped = -cap
    return _new_contribution(plan.id, "intent", points, earned, capped, tuple(hits))


def _canonical_key(event: Event) -> tuple[float, str]:
    return (event.epoch, event.id)


class Scorer:
    """Scores persons under one definition, remembering which intent rules each event
    matches: matching depends only on the event, never on the moment, so rescoring the
    same history as time passes costs only the decay arithmetic.

    What the traits alone decide (fit, exclusions, requirements, the trait parts of the
    qualification paths) can be judged once per profile with :meth:`judge_traits` and
    passed to :meth:`score` as ``verdict``.

    Event ids must identify event content (message ids are unique in the store).
    """

    def __init__(self, definition: Definition, *, memo_limit: int = 2_000_000) -> None:
        self.definition = definition
        self._rules_by_event: dict[str, list[int]] = {}
        for index, rule in enumerate(definition.intent_rules):
            self._rules_by_event.setdefault(rule.event, []).append(index)
        self._memo: dict[str, tuple[int, ...]] = {}
        self._older: dict[str, tuple[int, ...]] = {}  # see trim_matches
        self._memo_limit = memo_limit
        self._path_events = frozenset(
            name for path in definition.qualify.paths for name in events_named(path.when)
        )
        self._intent = [_IntentPlan(definition, rule) for rule in definition.intent_rules]
        self._event_names = self._path_events | frozenset(self._rules_by_event)
        # trait-only conditions compiled to closures (fit rules, exclusions, requirements);
        # a matching fit rule always contributes the same (immutable) value
        self._fit = [
            (
                Contribution(rule.id, "fit", rule.points, rule.points, rule.points),
                _predicate(rule.when),
            )
            for rule in definition.fit_rules
        ]
        self._exclusions = [(g.id, _predicate(g.when)) for g in definition.exclusions]
        self._requirements = [(g.id, _predicate(g.when)) for g in definition.requirements]
        # qualification paths: a wholly trait-only path is answered by the verdict
        # (path_facts[index]), any other by a closure that may read path_facts too
        compiler = _PathCompiler(frozenset(rule.id for rule in definition.intent_rules))
        self._path_tests: list[_PathTest | None] = []
        self._path_fact: list[int] = []
        for path in definition.qualify.paths:
            if compiler.trait_only(path.when):
                self._path_tests.append(None)
                self._path_fact.append(compiler.static(path.when))
            else:
                self._path_tests.append(compiler.part(path.when))
                self._path_fact.append(-1)
        self._statics = compiler.statics
        qualify = definition.qualify
        self._paths = qualify.paths
        self._version = definition.version
        self._intent_cap = definition.intent_cap
        self._total_cap = qualify.total_cap
        self._threshold = qualify.threshold
        self._retain_from = qualify.threshold - qualify.hysteresis
        self._min_fit = qualify.min_fit
        self._default_type = qualify.default_type
        self._statics_read_fit_rules = compiler.statics_read_fit_rules
        self._paths_read_rules = compiler.reads_rules
        self._min_likelihood = qualify.min_likelihood
        self.reads_likelihood = qualify.min_likelihood is not None or any(
            _reads_likelihood(path.when) for path in qualify.paths
        )

    def memo_size(self) -> int:
        """Events whose matching rules are memoised (the memo grows with every event
        scored, up to ``memo_limit``; both generations of :meth:`trim_matches`)."""
        return len(self._memo) + len(self._older)

    def forget_matches(self) -> None:
        """Clear the memo of matched rules (it is recomputed as events are scored again)."""
        self._memo.clear()
        self._older = {}

    def trim_matches(self, limit: int) -> bool:
        """Keep the memo near ``limit`` entries, forgetting first the matches not asked
        for longest: once the newer generation holds half of it, the older generation is
        dropped and the newer one takes its place (a match asked for in the older one
        moves back to the newer). Clearing it all instead would make every event scored
        after it be matched again, those of persons read back from the store too. True
        when a generation was dropped."""
        if 2 * len(self._memo) < limit:
            return False
        self._older = self._memo
        self._memo = {}
        return True

    @property
    def event_names(self) -> frozenset[str]:
        """The event names scoring can use (an intent rule's event, or one a
        qualification path asks about): events of other names never change a score."""
        return self._event_names

    def relevant(self, event: Event) -> bool:
        """Whether the event can ever change a score: some intent rule matches it, or a
        qualification path asks about its name. Others need not be kept for scoring."""
        return event.name in self._path_events or bool(self.matching(event, event.timestamp))

    def matching(self, event: Event, as_of: datetime) -> tuple[int, ...]:
        found = self._memo.get(event.id)
        if found is None:
            found = self._older.get(event.id)
            if found is None:
                candidates = self._rules_by_event.get(event.name, ())
                rules = self.definition.intent_rules
                found = tuple(i for i in candidates if _matches(rules[i], event, as_of))
            if len(self._memo) >= self._memo_limit:
                self._memo.clear()
            self._memo[event.id] = found
        return found

    def judge_traits(self, traits: Mapping[str, object]) -> TraitVerdict:
        """Everything :meth:`score` needs from the traits, for reuse while they stay the
        same (under this definition)."""
        definition = self.definition
        fit_items = tuple([item for item, test in self._fit if test(traits)])
        fit_raw = sum([item.points for item in fit_items])
        fit = _clamp(fit_raw, definition.fit_cap)
        excluded = tuple([gate_id for gate_id, test in self._exclusions if test(traits)])
        missing = tuple([gate_id for gate_id, test in self._requirements if not test(traits)])
        fit_rules: Mapping[str, Contribution] = (
            {item.rule_id: item for item in fit_items} if self._statics_read_fit_rules else {}
        )
        facts = tuple([test(traits, fit, fit_rules) for test in self._statics])
        # Paths are tried in order and the first match wins: a trait-only path that fails
        # can be skipped, and one that holds ends the list (it matches if reached).
        candidates: list[int] = []
        for index, test in enumerate(self._path_tests):
            if test is not None:
                candidates.append(index)
            elif facts[self._path_fact[index]]:
                candidates.append(index)
                break
        return _new_verdict(
            definition.content_hash,
            fit_items,
            fit_raw,
            fit,
            excluded,
            missing,
            facts,
            tuple(candidates),
            person_consent(traits, definition.consent).tracking is False,
        )

    def score(
        self,
        traits: Mapping[str, object],
        events: Iterable[Event],
        as_of: datetime,
        *,
        verdict: TraitVerdict | None = None,
        likelihood: Likelihood | None = None,
    ) -> ScoreCard:
        """Score one person as of a moment. See the module docstring for the guarantees.

        ``verdict``: :meth:`judge_traits` of these same traits, by a scorer of the same
        definition; the traits are then not read again. ``likelihood``: the live model's
        (None: no model; ``min_likelihood`` then gates nothing and paths asking for it do
        not match).
        """
        if as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware")
        if verdict is None:
            verdict = self.judge_traits(traits)
        elif verdict.definition_hash != self.definition.content_hash:
            raise ValueError("the trait verdict was judged under another definition")
        if verdict.untracked:
            events = ()  # tracking consent withdrawn: behaviour is not used
        as_of_ts = as_of.timestamp()
        path_events = self._path_events
        memo = self._memo
        # One pass: each past event goes to the rules it matches and, when a path asks
        # about its name, to the latest timestamp seen for that name. Each rule's list is
        # put in canonical order afterwards.
        per_rule: list[list[Event] | None] = [None] * len(self._intent)
        latest: dict[str, datetime] = {}
        for event in events:
            if event.epoch > as_of_ts:
                continue
            found = memo.get(event.id)
            if found is None:
                found = self.matching(event, as_of)
            for index in found:
                matched = per_rule[index]
                if matched is None:
                    per_rule[index] = [event]
                else:
                    matched.append(event)
            if event.name in path_events:
                seen = latest.get(event.name)
                if seen is None or event.timestamp > seen:
                    latest[event.name] = event.timestamp

        intent_items: list[Contribution] = []
        for plan, matched in zip(self._intent, per_rule, strict=True):
            if matched is not None:
                item = _intent_contribution(plan, matched, as_of_ts)
                if item is not None:
                    intent_items.append(item)
        return self._decide(verdict, as_of, intent_items, latest, likelihood)

    def _decide(
        self,
        verdict: TraitVerdict,
        as_of: datetime,
        intent_items: list[Contribution],
        latest: Mapping[str, datetime],
        likelihood: Likelihood | None = None,
    ) -> ScoreCard:
        # min()/max() spelled out as comparisons: the same values, without the calls
        if intent_items:
            contributions = verdict.fit_contributions + tuple(intent_items)
            intent_raw = sum([item.points for item in intent_items])
        else:
            contributions = verdict.fit_contributions
            intent_raw = 0
        fit = verdict.fit
        cap = self._intent_cap
        intent = intent_raw if cap is None or not cap < intent_raw else cap  # = _clamp()
        total_raw = fit + intent
        cap = self._total_cap
        total = total_raw if cap is None or not cap < total_raw else cap  # = _clamp()

        matched: QualifyPath | None = None
        facts: _Facts | None = None
        for index in verdict.candidate_paths:
            test = self._path_tests[index]
            if test is not None:
                if facts is None:
                    by_rule: Mapping[str, Contribution] = (
                        {c.rule_id: c for c in contributions} if self._paths_read_rules else {}
                    )
                    facts = _Facts(
                        as_of,
                        latest,
                        intent,
                        total,
                        by_rule,
                        likelihood.value if likelihood is not None else None,
                    )
                if not test(facts, verdict.path_facts):
                    continue
            matched = self._paths[index]
            break

        threshold = self._threshold
        excluded = verdict.excluded_because
        missing = verdict.missing_requirements
        fit_enough = fit >= self._min_fit
        if (
            likelihood is not None
            and self._min_likelihood is not None
            and likelihood.value < self._min_likelihood
        ):
            fit_enough = False  # gates like min_fit: neither qualifies nor retains
        meets = total >= threshold and fit_enough
        gated = not excluded and not missing
        bypass = matched is not None and matched.bypass_threshold and fit_enough
        qualifies = gated and (meets or bypass)
        retains = gated and ((total >= self._retain_from and fit_enough) or bypass)
        mql_type = None
        if qualifies:
            mql_type = matched.type if matched is not None else self._default_type
        distance = threshold - total
        return _new_card(
            self._version,
            as_of,
            fit,
            intent,
            total,
            verdict.fit_raw,
            intent_raw,
            total_raw,
            contributions,
            excluded,
            missing,
            meets,
            qualifies,
            retains,
            mql_type,
            matched.type if matched is not None else None,
            threshold,
            self._min_fit,
            0.0 if distance < 0.0 else distance,  # = max(distance, 0.0)
            likelihood.value if likelihood is not None else None,
            likelihood.model_version if likelihood is not None else None,
            likelihood.top if likelihood is not None else (),
        )


def _predicate(condition: Condition) -> TraitPredicate:
    compiled = trait_predicate(condition)
    if compiled is not None:
        return compiled

    def interpreted(traits: Mapping[str, object]) -> bool:
        # trait conditions never read the moment; any fixed one will do
        return evaluate(condition, _TraitContext(traits, _EPOCH))

    return interpreted


def _reads_likelihood(condition: Condition) -> bool:
    if isinstance(condition, ScoreAtLeast):
        return condition.field is ScoreField.LIKELIHOOD
    if isinstance(condition, AllOf | AnyOf):
        return any(_reads_likelihood(item) for item in condition.items)
    if isinstance(condition, Not):
        return _reads_likelihood(condition.item)
    return False


def with_likelihood(card: ScoreCard, likelihood: Likelihood) -> ScoreCard:
    """The card with the model's view attached, its decision unchanged (for definitions
    that do not ask for the likelihood)."""
    values = [getattr(card, item.name) for item in fields(ScoreCard)]
    values[-3:] = [likelihood.value, likelihood.model_version, likelihood.top]
    return _new_card(*values)


def score(
    definition: Definition,
    traits: Mapping[str, object],
    events: Iterable[Event],
    as_of: datetime,
) -> ScoreCard:
    """Score one person as of a moment (see :class:`Scorer` for repeated scoring)."""
    return Scorer(definition).score(traits, events, as_of)
