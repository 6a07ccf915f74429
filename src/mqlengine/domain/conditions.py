"""Condition trees: the one small language used by fit rules, exclusions, requirements,
intent `where` clauses and qualification paths.

A condition is a frozen value; evaluation needs a :class:`Context` that answers what a
subject (a trait, an event property, a rule's contribution…) is. Missing values make every
operator false except ``exists: false`` — an unknown country is not "outside the served
countries", it is unknown.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol


class Missing:
    """Sentinel for a value that is not there (distinct from an explicit None)."""

    _instance: Missing | None = None

    def __new__(cls) -> Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING = Missing()


class Op(StrEnum):
    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    IN = "in"
    NOT_IN = "not_in"
    CONTAINS = "contains"
    NOT_CONTAINS = "not_contains"
    REGEX = "regex"
    BETWEEN = "between"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    EXISTS = "exists"


class Subject(StrEnum):
    TRAIT = "trait"
    PROPERTY = "property"


class ScoreField(StrEnum):
    FIT = "fit"
    INTENT = "intent"
    TOTAL = "total"
    LIKELIHOOD = "likelihood"  # the live model's P(outcome); unknown without one


@dataclass(frozen=True, slots=True)
class Compare:
    """``{trait|property: NAME, OP: VALUE}``."""

    subject: Subject
    name: str
    op: Op
    value: object
    pattern: re.Pattern[str] | None = None
    # For equals/in (and negations) over strings: the case-folded options, for O(1) tests.
    folded: frozenset[str] | None = None


FOLDABLE = frozenset({Op.EQUALS, Op.NOT_EQUALS, Op.IN, Op.NOT_IN})


def make_compare(
    subject: Subject, name: str, op: Op, value: object, pattern: re.Pattern[str] | None = None
) -> Compare:
    """Build a comparison, precomputing the fast path where the semantics allow it."""
    folded = None
    if op in FOLDABLE:
        options = value if isinstance(value, list | tuple) else (value,)
        if options and all(isinstance(o, str) for o in options):
            folded = frozenset(str(o).casefold() for o in options)
    return Compare(subject, name, op, value, pattern, folded)


@dataclass(frozen=True, slots=True)
class RuleEarned:
    """``{rule: ID}``: true when that rule earned points (after decay, before caps)."""

    rule_id: str


@dataclass(frozen=True, slots=True)
class EventSeen:
    """``{event: NAME, within_days: N}``: true when such an event happened in the window."""

    event: str
    within_days: float | None


@dataclass(frozen=True, slots=True)
class ScoreAtLeast:
    """``{fit_at_least: N}`` / ``intent_at_least`` / ``total_at_least`` /
    ``likelihood_at_least``."""

    field: ScoreField
    minimum: float


@dataclass(frozen=True, slots=True)
class AllOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Condition


Condition = Compare | RuleEarned | EventSeen | ScoreAtLeast | AllOf | AnyOf | Not


class Context(Protocol):
    """What a condition may ask about. Implementations answer only what they know."""

    def trait(self, name: str) -> object: ...

    def prop(self, name: str) -> object: ...

    def rule_earned(self, rule_id: str) -> bool: ...

    def event_seen(self, event: str, since: datetime | None) -> bool: ...

    def score(self, field: ScoreField) -> float: ...

    @property
    def as_of(self) -> datetime: ...


def events_named(condition: Condition) -> list[str]:
    """The event names a condition asks about (``{event: …}`` anywhere in it)."""
    if isinstance(condition, EventSeen):
        return [condition.event]
    if isinstance(condition, AllOf | AnyOf):
        return [name for item in condition.items for name in events_named(item)]
    if isinstance(condition, Not):
        return events_named(condition.item)
    return []


def lookup_path(data: Mapping[str, object], path: str) -> object:
    """Read ``a.b.c`` from nested mappings; an exact key with dots wins over nesting."""
    if path in data:
        return data[path]
    current: object = data
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        else:
            return MISSING
    return current


def _fold(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _equal(actual: object, expected: object) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected or (
            isinstance(actual, str) and actual.strip().lower() == str(expected).lower()
        )
    left, right = _number(actual), _number(expected)
    if left is not None and right is not None and not isinstance(expected, str):
        return left == right
    return _fold(actual) == _fold(expected)


def _present(value: object) -> bool:
    return value is not MISSING and value is not None and value != "" and value != []


def compare(op: Op, actual: object, expected: object, pattern: re.Pattern[str] | None) -> bool:
    """Apply one operator. String comparisons ignore case (except ``regex``, as written)."""
    if op is Op.EXISTS:
        return _present(actual) is bool(expected)
    if op in (Op.CONTAINS, Op.NOT_CONTAINS) and isinstance(actual, list | tuple | set | frozenset):
        found = any(_equal(item, expected) for item in actual)
        return found if op is Op.CONTAINS else not found
    if not _present(actual):
        return False
    if op is Op.EQUALS:
        return _equal(actual, expected)
    if op is Op.NOT_EQUALS:
        return not _equal(actual, expected)
    if op is Op.IN or op is Op.NOT_IN:
        options = expected if isinstance(expected, Sequence) else (expected,)
        found = any(_equal(actual, option) for option in options)
        return found if op is Op.IN else not found
    if op is Op.CONTAINS or op is Op.NOT_CONTAINS:
        if isinstance(actual, str):
            found = str(expected).casefold() in actual.casefold()
        elif isinstance(actual, Sequence | set | frozenset):
            found = any(_equal(item, expected) for item in actual)
        else:
            found = False
        return found if op is Op.CONTAINS else not found
    if op is Op.REGEX:
        return pattern is not None and pattern.search(str(actual)) is not None
    number = _number(actual)
    if number is None:
        return False
    if op is Op.BETWEEN:
        bounds: Sequence[float] = expected  # type: ignore[assignment]
        return float(bounds[0]) <= number <= float(bounds[1])
    limit = float(expected)  # type: ignore[arg-type]
    if op is Op.GT:
        return number > limit
    if op is Op.GTE:
        return number >= limit
    if op is Op.LT:
        return number < limit
    return number <= limit


def evaluate(condition: Condition, context: Context) -> bool:
    """Evaluate a condition tree against a context."""
    if isinstance(condition, Compare):
        if condition.subject is Subject.TRAIT:
            actual = context.trait(condition.name)
        else:
            actual = context.prop(condition.name)
        if condition.folded is not None and isinstance(actual, str) and actual:
            found = actual.casefold() in condition.folded
            return found if condition.op in (Op.EQUALS, Op.IN) else not found
        return compare(condition.op, actual, condition.value, condition.pattern)
    if isinstance(condition, AllOf):
        return all(evaluate(item, context) for item in condition.items)
    if isinstance(condition, AnyOf):
        return any(evaluate(item, context) for item in condition.items)
    if isinstance(condition, Not):
        return not evaluate(condition.item, context)
    if isinstance(condition, RuleEarned):
        return context.rule_earned(condition.rule_id)
    if isinstance(condition, EventSeen):
        since = None
        if condition.within_days is not None:
            since = context.as_of - timedelta(days=condition.within_days)
        return context.event_seen(condition.event, since)
    return context.score(condition.field) >= condition.minimum


def describe(condition: Condition) -> str:
    """A short human-readable rendering, used in explanations."""
    if isinstance(condition, Compare):
        value = condition.value
        if isinstance(value, list | tuple):
            value = "[" + ", ".join(str(v) for v in value) + "]"
        return f"{condition.subject.value} {condition.name} {condition.op.value} {value}"
    if isinstance(condition, AllOf):
        return "(" + " and ".join(describe(item) for item in condition.items) + ")"
    if isinstance(condition, AnyOf):
        return "(" + " or ".join(describe(item) for item in condition.items) + ")"
    if isinstance(condition, Not):
        return f"not {describe(condition.item)}"
    if isinstance(condition, RuleEarned):
        return f"rule {condition.rule_id} earned points"
    if isinstance(condition, EventSeen):
        window = f" within {condition.within_days:g} days" if condition.within_days else ""
        return f"event {condition.event}{window}"
    return f"{condition.field.value} >= {condition.minimum:g}"


TraitPredicate = Callable[[Mapping[str, object]], bool]
_TraitGetter = Callable[[Mapping[str, object]], object]
_NUMERIC_OPS = frozenset({Op.BETWEEN, Op.GT, Op.GTE, Op.LT, Op.LTE})


def _trait_getter(name: str) -> _TraitGetter:
    """A closure reading ``name`` from traits, as :func:`lookup_path` does."""
    if "." not in name:
        return lambda traits: traits.get(name, MISSING)
    parts = name.split(".")
    if len(parts) != 2:
        return lambda traits: lookup_path(traits, name)
    outer, inner = parts

    def get_nested(traits: Mapping[str, object]) -> object:
        if name in traits:  # an exact key with dots wins over nesting
            return traits[name]
        current = traits.get(outer, MISSING)
        if type(current) is dict or isinstance(current, Mapping):
            return current.get(inner, MISSING)
        return MISSING

    return get_nested


def trait_predicate(condition: Condition) -> TraitPredicate | None:
    """Compile a condition that reads only traits into a closure over the traits mapping
    (same semantics as :func:`evaluate`, without per-node dispatch); None when the
    condition needs more than traits."""
    if isinstance(condition, Compare):
        if condition.subject is not Subject.TRAIT:
            return None
        return _compare_predicate(condition)
    if isinstance(condition, AllOf | AnyOf):
        parts = [trait_predicate(item) for item in condition.items]
        if any(p is None for p in parts):
            return None
        tests = tuple(p for p in parts if p is not None)
        if len(tests) == 1:
            return tests[0]
        if isinstance(condition, AllOf):

            def all_test(traits: Mapping[str, object]) -> bool:
                for test in tests:  # noqa: SIM110 (a plain loop: no generator per call)
                    if not test(traits):
                        return False
                return True

            return all_test

        def any_test(traits: Mapping[str, object]) -> bool:
            for test in tests:  # noqa: SIM110 (a plain loop: no generator per call)
                if test(traits):
                    return True
            return False

        return any_test
    if isinstance(condition, Not):
        inner = trait_predicate(condition.item)
        if inner is None:
            return None
        return lambda traits: not inner(traits)
    return None


def _compare_predicate(condition: Compare) -> TraitPredicate:
    """One trait comparison. Each closure answers the common value types directly and
    hands every other value to :func:`compare`, so the result is always compare's."""
    name, op, value = condition.name, condition.op, condition.value
    pattern, folded = condition.pattern, condition.folded
    get = _trait_getter(name)
    flat = "." not in name  # then read inline: traits.get(name, MISSING)

    def plain_test(traits: Mapping[str, object]) -> bool:
        return compare(op, get(traits), value, pattern)

    if folded is not None:
        positive = op in (Op.EQUALS, Op.IN)

        def folded_test(traits: Mapping[str, object]) -> bool:
            actual = traits.get(name, MISSING) if flat else get(traits)
            if isinstance(actual, str) and actual:
                return (actual.casefold() in folded) is positive
            return compare(op, actual, value, pattern)

        return folded_test
    if op is Op.EXISTS:
        wanted = bool(value)
        return lambda traits: _present(traits.get(name, MISSING) if flat else get(traits)) is wanted
    if op is Op.EQUALS and isinstance(value, bool):

        def bool_test(traits: Mapping[str, object]) -> bool:
            actual = traits.get(name, MISSING) if flat else get(traits)
            if type(actual) is bool:
                return actual is value
            return compare(op, actual, value, pattern)

        return bool_test
    if op in (Op.CONTAINS, Op.NOT_CONTAINS) and type(value) is str:
        folded_value = value.casefold()
        contains = op is Op.CONTAINS

        def contains_test(traits: Mapping[str, object]) -> bool:
            actual = traits.get(name, MISSING) if flat else get(traits)
            if type(actual) is list:
                # compare's _equal on a str option: case-folded equality for str items
                for item in actual:
                    if type(item) is str:
                        if item.casefold() == folded_value:
                            return contains
                    elif _equal(item, value):
                        return contains
                return not contains
            return compare(op, actual, value, pattern)

        return contains_test
    if op in _NUMERIC_OPS:
        try:
            if op is Op.BETWEEN:
                bounds: Sequence[float] = value  # type: ignore[assignment]
                low, high = float(bounds[0]), float(bounds[1])
            else:
                low = high = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError, IndexError, KeyError):
            return plain_test
        return _numeric_test(op, low, high, name, plain_test)
    return plain_test


def _numeric_test(
    op: Op, low: float, high: float, name: str, fallback: TraitPredicate
) -> TraitPredicate:
    """A numeric comparison with its bounds already converted (``low == high`` unless
    ``between``). Ints and floats are compared here, other values by ``fallback``."""
    get = _trait_getter(name)
    flat = "." not in name

    def between(traits: Mapping[str, object]) -> bool:
        actual = traits.get(name, MISSING) if flat else get(traits)
        kind = type(actual)
        if kind is int or kind is float:
            return low <= float(actual) <= high  # type: ignore[arg-type]
        return fallback(traits)

    def gt(traits: Mapping[str, object]) -> bool:
        actual = traits.get(name, MISSING) if flat else get(traits)
        kind = type(actual)
        if kind is int or kind is float:
            return float(actual) > low  # type: ignore[arg-type]
        return fallback(traits)

    def gte(traits: Mapping[str, object]) -> bool:
        actual = traits.get(name, MISSING) if flat else get(traits)
        kind = type(actual)
        if kind is int or kind is float:
            return float(actual) >= low  # type: ignore[arg-type]
        return fallback(traits)

    def lt(traits: Mapping[str, object]) -> bool:
        actual = traits.get(name, MISSING) if flat else get(traits)
        kind = type(actual)
        if kind is int or kind is float:
            return float(actual) < low  # type: ignore[arg-type]
        return fallback(traits)

    def lte(traits: Mapping[str, object]) -> bool:
        actual = traits.get(name, MISSING) if flat else get(traits)
        kind = type(actual)
        if kind is int or kind is float:
            return float(actual) <= low  # type: ignore[arg-type]
        return fallback(traits)

    tests = {Op.BETWEEN: between, Op.GT: gt, Op.GTE: gte, Op.LT: lt, Op.LTE: lte}
    return tests[op]
