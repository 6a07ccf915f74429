"""Properties of the definition loader: whatever text or structure it is given, it either
compiles a definition or raises :class:`DefinitionError` whose every diagnostic names a
place (``mql.yaml:LINE:COL: what``) — never another exception."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mqlengine.definition.compiler import parse_definition
from mqlengine.errors import DefinitionError
from support.paths import EXAMPLE

LOCATED = re.compile(r"^mql\.yaml:\d+:\d+: \S")
EXAMPLE_DATA: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["", "mql", "1e400", "-1", "every_time", "^(", "vp", "Page Viewed"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=12) | st.sampled_from(["id", "when", "points"]), inner, max_size=4
        )
    ),
    max_leaves=12,
)


def _check(text: str) -> None:
    try:
        parse_definition(text)
    except DefinitionError as error:
        assert error.diagnostics, error.message
        for line in error.diagnostics:
            assert LOCATED.match(line), line


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found.extend(_paths(value, (*prefix, index)))
    return found


EXAMPLE_PATHS = _paths(EXAMPLE_DATA)


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("version: '1'\nfit: \x08\n", "mql.yaml:2:6:", "U+0008"),
        ("a: &x [*x]\n", "mql.yaml:1:4:", "alias that contains itself"),
        ("a: " + "[" * 200 + "]" * 200 + "\n", "mql.yaml:1:", "levels deep"),
        ("? [a, b]\n: 1\n", "mql.yaml:", "unknown"),
    ],
)
def test_yaml_the_parser_cannot_take_is_a_located_diagnostic(
    text: str, where: str, what: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(text)
    assert any(line.startswith(where) and what in line for line in caught.value.diagnostics), (
        caught.value.diagnostics
    )


def test_a_condition_subject_or_operator_of_null_is_a_located_diagnostic(
    example_text: str,
) -> None:
    for before, after in (
        ("trait: seniority, in:", "trait: null, in:"),
        ("in: [vp, c_level, director, head]", "in: null"),
    ):
        assert before in example_text
        with pytest.raises(DefinitionError) as caught:
            parse_definition(example_text.replace(before, after, 1))
        assert any("needs a value, got null" in line for line in caught.value.diagnostics)
        assert all(LOCATED.match(line) for line in caught.value.diagnostics)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_text_compiles_or_fails_with_located_diagnostics(text: str) -> None:
    _check(text)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_any_structure_compiles_or_fails_with_located_diagnostics(data: Any) -> None:
    _check(yaml.safe_dump(data, allow_unicode=True))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(EXAMPLE_PATHS), values), min_size=1, max_size=3))
def test_the_example_with_any_value_replaced_compiles_or_fails_located(
    changes: list[tuple[tuple[Any, ...], Any]],
) -> None:
    """The example, with values anywhere in it replaced: the error, if any, says where."""
    data = copy.deepcopy(EXAMPLE_DATA)
    for path, value in changes:
        target = data
        try:
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change replaced what this path went through
    _check(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
