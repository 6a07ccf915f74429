from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from mqlengine.domain.conditions import (
    MISSING,
    AllOf,
    AnyOf,
    Compare,
    Not,
    Op,
    Subject,
    compare,
    describe,
    evaluate,
    lookup_path,
)
from mqlengine.domain.scoring import _TraitContext

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def trait(name: str, op: Op, value: object) -> Compare:
    pattern = re.compile(str(value)) if op is Op.REGEX else None
    return Compare(Subject.TRAIT, name, op, value, pattern)


def ev(condition: Compare | AllOf | AnyOf | Not, traits: dict[str, object]) -> bool:
    return evaluate(condition, _TraitContext(traits, NOW))


def test_lookup_path_nested_and_dotted_keys() -> None:
    assert lookup_path({"company": {"employees": 10}}, "company.employees") == 10
    assert lookup_path({"company.employees": 5}, "company.employees") == 5
    assert lookup_path({"company": "Acme"}, "company.employees") is MISSING


@pytest.mark.parametrize(
    ("op", "actual", "expected", "result"),
    [
        (Op.EQUALS, "VP", "vp", True),
        (Op.EQUALS, 10, 10.0, True),
        (Op.EQUALS, False, False, True),
        (Op.EQUALS, True, False, False),
        (Op.NOT_EQUALS, "a", "b", True),
        (Op.IN, "US", ("us", "ca"), True),
        (Op.IN, "BR", ("US", "CA"), False),
        (Op.NOT_IN, "BR", ("US", "CA"), True),
        (Op.CONTAINS, ["free_mail", "x"], "FREE_MAIL", True),
        (Op.CONTAINS, "Head of Growth", "growth", True),
        (Op.NOT_CONTAINS, [], "x", True),
        (Op.BETWEEN, 200, (200, 5000), True),
        (Op.BETWEEN, "5001", (200, 5000), False),
        (Op.GT, 10, 5, True),
        (Op.GTE, 5, 5, True),
        (Op.LT, 4, 5, True),
        (Op.LTE, 6, 5, False),
        (Op.GT, "not a number", 5, False),
        (Op.EXISTS, "x", True, True),
        (Op.EXISTS, "", True, False),
        (Op.EXISTS, MISSING, False, True),
    ],
)
def test_operators(op: Op, actual: object, expected: object, result: bool) -> None:
    assert compare(op, actual, expected, None) is result


def test_missing_values_are_never_matched_except_exists_false() -> None:
    for op, value in [(Op.NOT_IN, ("US",)), (Op.NOT_EQUALS, "x"), (Op.LT, 5), (Op.EQUALS, "x")]:
        assert compare(op, MISSING, value, None) is False
        assert compare(op, None, value, None) is False


def test_regex_is_case_sensitive_as_written() -> None:
    cond = trait("path", Op.REGEX, "^/pricing")
    assert ev(cond, {"path": "/pricing/enterprise"})
    assert not ev(cond, {"path": "/PRICING"})


def test_boolean_combinators_and_describe() -> None:
    cond = AnyOf((trait("seniority", Op.EQUALS, "student"), Not(trait("country", Op.IN, ("US",)))))
    assert ev(cond, {"seniority": "Student", "country": "US"})
    assert ev(cond, {"seniority": "vp", "country": "BR"})
    assert not ev(cond, {"seniority": "vp", "country": "US"})
    both = AllOf((trait("a", Op.EXISTS, True), trait("b", Op.EXISTS, True)))
    assert not ev(both, {"a": 1})
    assert "seniority equals student" in describe(cond)


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mqlengine.domain.conditions import make_compare  # noqa: E402

words = st.sampled_from(["US", "us", "Ca", "vp", "VP ", "", "ß", "SS", "10", "x"])


@given(
    st.sampled_from([Op.EQUALS, Op.NOT_EQUALS, Op.IN, Op.NOT_IN]),
    st.lists(words, min_size=1, max_size=4),
    words,
)
def test_fast_path_agrees_with_general_comparison(op: Op, options: list[str], actual: str) -> None:
    value: object = tuple(options) if op in (Op.IN, Op.NOT_IN) else options[0]
    fast = make_compare(Subject.TRAIT, "t", op, value)
    assert fast.folded is not None
    assert ev(fast, {"t": actual}) is compare(op, actual, value, None)


from mqlengine.definition.compiler import parse_definition  # noqa: E402
from mqlengine.domain.conditions import trait_predicate  # noqa: E402
from support.paths import EXAMPLE  # noqa: E402

EXAMPLE_DEFINITION = parse_definition(EXAMPLE.read_text(encoding="utf-8")).definition
TRAIT_CONDITIONS = [r.when for r in EXAMPLE_DEFINITION.fit_rules] + [
    g.when for g in (*EXAMPLE_DEFINITION.exclusions, *EXAMPLE_DEFINITION.requirements)
]
trait_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10_000),
    st.sampled_from(["vp", "VP", "student", "US", "br", "software", "", "free_mail"]),
    st.lists(st.sampled_from(["free_mail", "spam", "edu_domain", "x"]), max_size=3),
)
traits_strategy = st.fixed_dictionaries(
    {},
    optional={
        "seniority": trait_values,
        "department": trait_values,
        "country": trait_values,
        "email": trait_values,
        "email_flags": trait_values,
        "flags": trait_values,
        "email_domain": trait_values,
        "consent_marketing": trait_values,
        "company": st.one_of(
            trait_values,
            st.fixed_dictionaries(
                {}, optional={"employees": trait_values, "industry": trait_values}
            ),
        ),
    },
)


@given(traits_strategy)
def test_compiled_trait_predicates_agree_with_the_interpreter(traits: dict[str, object]) -> None:
    for condition in TRAIT_CONDITIONS:
        compiled = trait_predicate(condition)
        assert compiled is not None
        assert compiled(traits) is evaluate(condition, _TraitContext(traits, NOW))


# Every operator over every kind of value a profile holds: the compiled closures answer
# the common types themselves and must agree with the interpreter everywhere else too.
any_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-20, 10_000),
    st.sampled_from([2**70, -(2**70), 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["vp", "VP ", "", "ß", "SS", "10", " 10 ", "1e3", "nan", "true", "False"]),
)
any_value = st.one_of(
    any_scalar,
    st.lists(any_scalar, max_size=3),
    st.lists(any_scalar, max_size=3).map(tuple),
    st.frozensets(st.sampled_from(["vp", "x", "10"]), max_size=2),
    st.dictionaries(st.sampled_from(["employees", "b"]), any_scalar, max_size=2),
)


@st.composite
def trait_compares(draw: st.DrawFn) -> Compare:
    op = draw(st.sampled_from(list(Op)))
    name = draw(st.sampled_from(["t", "company.employees", "a.b.c", "company"]))
    value: object
    if op in (Op.IN, Op.NOT_IN):
        value = tuple(draw(st.lists(any_scalar, min_size=1, max_size=3)))
    elif op is Op.BETWEEN:
        value = tuple(sorted(draw(st.lists(st.integers(-10, 6000), min_size=2, max_size=2))))
        value = draw(st.sampled_from([value, tuple(float(v) for v in value), (1,), ("a", "b")]))
    elif op in (Op.GT, Op.GTE, Op.LT, Op.LTE):
        value = draw(st.one_of(any_scalar.filter(lambda v: v is not None), st.just(10**400)))
    elif op is Op.REGEX:
        value = draw(st.sampled_from(["^v", "0$", "(?i)ss"]))
    else:
        value = draw(any_scalar)
    pattern = re.compile(str(value)) if op is Op.REGEX else None
    return make_compare(Subject.TRAIT, name, op, value, pattern)


def _outcome(test: Callable[[], bool]) -> object:
    try:
        return test()
    except Exception as exc:  # a definition the compiler would refuse: fail the same way
        return type(exc)


@given(
    trait_compares(),
    st.fixed_dictionaries(
        {},
        optional={
            "t": any_value,
            "company": st.one_of(any_value, st.fixed_dictionaries({"employees": any_value})),
            "company.employees": any_value,
            "a": st.fixed_dictionaries({"b": st.fixed_dictionaries({"c": any_value})}),
        },
    ),
)
def test_compiled_comparisons_agree_with_the_interpreter(
    condition: Compare, traits: dict[str, object]
) -> None:
    compiled = trait_predicate(condition)
    assert compiled is not None
    expected = _outcome(lambda: evaluate(condition, _TraitContext(traits, NOW)))
    got = _outcome(lambda: compiled(traits))
    assert got == expected and type(got) is type(expected)
