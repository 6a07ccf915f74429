"""Every batch engine gives the reference's cards: the online scorer person by person
(:class:`PythonEngine`) and DuckDB's compiled SQL agree to 1e-9 on figures and exactly on
verdicts, types, rule points and next stages — on a small demo store, a definition using
every condition and rule kind, hand-made edge cases and Hypothesis-generated histories.
A condition or rule kind added later without a SQL form fails here."""

from __future__ import annotations

import dataclasses
import re
import typing
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mqlengine.batch import sqlcompile
from mqlengine.batch.duckdb_engine import DuckDBEngine
from mqlengine.batch.engine import BatchInput, PythonEngine
from mqlengine.batch.engines import engine_by_name
from mqlengine.batch.source import from_store
from mqlengine.batch.sqlcompile import Scope, SqlCompiler, SqlUnsupported, condition_sql
from mqlengine.definition import schema
from mqlengine.definition.compiler import parse_definition
from mqlengine.demo.run import run_demo
from mqlengine.domain import conditions, rules
from mqlengine.domain.conditions import Op, Subject, make_compare
from mqlengine.errors import ValidationError
from mqlengine.settings import Settings
from mqlengine.wiring import Wiring
from support.batchfixtures import (
    EVERY_KIND_YAML,
    assert_same_cards,
    demo_like_definition_yaml,
    edge_case_input,
    events_table,
    every_kind_definition,
    histories,
    persons_table,
)
from support.clock import NOW

DUCK = DuckDBEngine(threads=1)
REFERENCE = PythonEngine()


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Wiring:
    path = tmp_path_factory.mktemp("parity") / "mql.db"
    settings = Settings(database_url=f"sqlite:///{path}", definition_path=path.parent / "none.yaml")
    wiring = Wiring(settings, clock=lambda: NOW)
    run_demo(wiring, now=NOW, persons_count=150, days=45, seed=11)
    return wiring


@pytest.mark.parametrize("days_later", [0, 1, 30])
def test_demo_definition_on_a_demo_store(demo_store: Wiring, days_later: int) -> None:
    definition = demo_store.definition().definition
    data = from_store(demo_store.db)
    as_of = NOW + timedelta(days=days_later, hours=7)
    reference = REFERENCE.score(definition, data, as_of)
    assert reference.num_rows >= 100
    assert_same_cards(reference, DUCK.score(definition, data, as_of))


def test_every_kind_on_the_demo_store(demo_store: Wiring) -> None:
    data = from_store(demo_store.db)
    definition = every_kind_definition()
    assert_same_cards(REFERENCE.score(definition, data, NOW), DUCK.score(definition, data, NOW))


@pytest.mark.parametrize("hours", [0, 1, 13, 24 * 8])
def test_every_kind_on_the_edge_cases(hours: int) -> None:
    definition = every_kind_definition()
    as_of = NOW + timedelta(hours=hours)
    data = edge_case_input(NOW)
    reference = REFERENCE.score(definition, data, as_of)
    # the edge cases do reach what they are about
    rows = {r["person_id"]: r for r in reference.to_pylist()}
    if hours == 0:
        assert rows[1]["next_stage"] == "mql" and rows[1]["mql_type"] == "hand_raiser"
        assert rows[3]["next_stage"] == "lead" and rows[3]["excluded_because"] == ["spam"]
        assert rows[4]["intent"] == 0.0  # tracking withdrawn
        assert rows[5]["qualifies"] and rows[5]["next_stage"] is None  # cool-down
        assert rows[6]["next_stage"] == "mql"
        assert rows[7]["intent"] < 0
        assert rows[9]["next_stage"] is None  # sales own it
    assert_same_cards(reference, DUCK.score(definition, data, as_of))


@pytest.mark.parametrize("threshold", [20, 25, 30])
def test_ties_at_the_threshold(threshold: float) -> None:
    """Integer points without decay land exactly on the threshold and the hysteresis
    edge; both engines must take the same side."""
    definition = parse_definition(demo_like_definition_yaml(threshold), "ties.yaml").definition
    persons = persons_table(
        [
            {"person_id": i, "profile": {"email": f"p{i}@x.com"}, "stage": stage}
            for i, stage in enumerate(["lead", "mql", "mql", "lead"], start=1)
        ]
    )
    events = events_table(
        [
            {
                "person_id": pid,
                "event_id": f"{pid}-{k}",
                "name": "Page Viewed" if k < pid else "Demo Requested",
                "timestamp": NOW - timedelta(hours=k),
            }
            for pid in range(1, 5)
            for k in range(pid + 1)
        ]
    )
    data = BatchInput(persons, events)
    assert_same_cards(REFERENCE.score(definition, data, NOW), DUCK.score(definition, data, NOW))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=histories(), hours=st.sampled_from([0, 5, 23, 24 * 15]))
def test_generated_histories(data: BatchInput, hours: int) -> None:
    definition = every_kind_definition()
    as_of = NOW + timedelta(hours=hours)
    assert_same_cards(REFERENCE.score(definition, data, as_of), DUCK.score(definition, data, as_of))


def test_generated_histories_under_the_demo_definition(demo_store: Wiring) -> None:
    definition = demo_store.definition().definition

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=histories())
    def check(data: BatchInput) -> None:
        assert_same_cards(REFERENCE.score(definition, data, NOW), DUCK.score(definition, data, NOW))

    check()


# --- every kind has a batch form ---------------------------------------------------------


def _members(annotation: object) -> set[type]:
    """The classes of a union type alias."""
    return {arg for arg in typing.get_args(annotation) if isinstance(arg, type)}


def test_every_condition_kind_compiles() -> None:
    """Each condition class of the domain, each operator and each subject compiles; a
    class added to the ``Condition`` union without a SQL form fails here."""
    kinds = _members(conditions.Condition)
    assert kinds == {
        conditions.Compare,
        conditions.RuleEarned,
        conditions.EventSeen,
        conditions.ScoreAtLeast,
        conditions.AllOf,
        conditions.AnyOf,
        conditions.Not,
    }, "a new condition kind: give it a SQL form in batch/sqlcompile.py and add it here"
    leaf = make_compare(Subject.TRAIT, "a", Op.EQUALS, "x")
    samples: dict[type, conditions.Condition] = {
        conditions.Compare: leaf,
        conditions.RuleEarned: conditions.RuleEarned("r"),
        conditions.EventSeen: conditions.EventSeen("E", 3),
        conditions.ScoreAtLeast: conditions.ScoreAtLeast(conditions.ScoreField.TOTAL, 1),
        conditions.AllOf: conditions.AllOf((leaf, leaf)),
        conditions.AnyOf: conditions.AnyOf((leaf,)),
        conditions.Not: conditions.Not(leaf),
    }
    scope = Scope(
        "j", Subject.TRAIT, fit="fit", intent="i", total="t", earned={"r": "TRUE"}, seen={"E": "s"}
    )
    for kind in kinds:
        assert condition_sql(samples[kind], scope)
    # every operator of the schema, on every subject
    assert {op.value for op in Op} == set(schema.OPERATORS)
    values: dict[Op, object] = {Op.BETWEEN: (1, 2), Op.IN: ("a",), Op.NOT_IN: ("a",)}
    for op in Op:
        pattern = re.compile("^x") if op is Op.REGEX else None
        for subject in Subject:
            value = values.get(op, 1)
            sql = condition_sql(
                make_compare(subject, "a.b", op, value, pattern), Scope("j", subject)
            )
            # valid SQL, answering as the domain does (never NULL) when the value is missing
            answer = duckdb.sql(f"SELECT {sql} FROM (SELECT CAST('{{}}' AS JSON) AS j)")
            assert answer.fetchall() == [
                (conditions.compare(op, conditions.MISSING, value, pattern),)
            ]


def test_every_rule_field_is_known() -> None:
    """The scoring fields of rules and the qualify section that the SQL handles; a field
    added to them (a new repeat policy, a new cap) must be given a SQL form first."""
    handled = {
        rules.FitRule: {"id", "when", "points", "description"},
        rules.IntentRule: {
            "id", "event", "points", "where", "repeat", "cap", "half_life_days",
            "within_days", "description",
        },
        rules.Gate: {"id", "when", "description"},
        rules.QualifyPath: {"type", "when", "bypass_threshold"},
        rules.Qualify: {
            "threshold", "min_fit", "hysteresis", "total_cap", "recycle_cooldown_days",
            "paths", "default_type",
            "min_likelihood",  # gates nothing without a model: batch engines score rules only
        },
    }  # fmt: skip
    for cls, fields in handled.items():
        assert {f.name for f in dataclasses.fields(cls)} == fields, cls.__name__
    assert {r.value for r in rules.Repeat} == {"every_time", "once", "once_per_day"}
    # and the every-kind definition really uses every repeat policy and condition kind
    definition = every_kind_definition()
    assert {r.repeat for r in definition.intent_rules} == set(rules.Repeat)
    assert all(word in EVERY_KIND_YAML for word in schema.OPERATORS)
    assert all(word in EVERY_KIND_YAML for word in schema.SPECIALS)
    SqlCompiler(definition)


def test_a_python_only_regex_is_refused_by_name(tmp_path: Path) -> None:
    definition = parse_definition(
        """
version: v
fit:
  rules:
    - {id: lookahead, when: {trait: title, regex: "^(?!intern)"}, points: 1}
qualify: {threshold: 1}
""",
        "x.yaml",
    ).definition
    with pytest.raises(SqlUnsupported, match=r"fit rule lookahead.*python engine"):
        SqlCompiler(definition)
    assert issubclass(sqlcompile.SqlUnsupported, ValidationError)


def test_engines_by_name() -> None:
    assert engine_by_name("python").name == "python"
    assert engine_by_name("duckdb").name == "duckdb"
    with pytest.raises(ValidationError, match="unknown batch engine 'nope'"):
        engine_by_name("nope")
    try:
        import mqlengine.batch.spark_engine  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(ValidationError, match="spark engine is not available"):
            engine_by_name("spark")
