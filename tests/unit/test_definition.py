from __future__ import annotations

import re

import pytest

from mqlengine.definition.compiler import load_definition, parse_definition
from mqlengine.domain.rules import Repeat
from mqlengine.errors import DefinitionError


def diagnostics(text: str) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(text, "mql.yaml")
    return caught.value.diagnostics


def test_example_compiles(example_text: str) -> None:
    loaded = parse_definition(example_text)
    d = loaded.definition
    assert d.version == "2026-11-b2b-v1"
    assert {r.id for r in d.fit_rules} >= {"senior_buyer", "too_small"}
    demo = next(r for r in d.intent_rules if r.id == "demo_request")
    assert demo.repeat is Repeat.ONCE and demo.half_life_days == 60
    assert d.qualify.paths[0].type == "hand_raiser" and d.qualify.paths[0].bypass_threshold
    assert len(d.content_hash) == 64
    assert loaded.warnings == ()


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_unknown_key_is_reported_with_its_line(example_text: str) -> None:
    broken = example_text.replace("      points: 20\n", "      pointz: 20\n", 1)
    found = diagnostics(broken)
    line = line_of(broken, "pointz")
    assert any(d.startswith(f"mql.yaml:{line}:") and "unknown key 'pointz'" in d for d in found)


def test_bad_operator_and_bad_regex_and_bad_type(example_text: str) -> None:
    broken = (
        example_text.replace("{trait: department, in:", "{trait: department, inn:")
        .replace('regex: "^/pricing"', 'regex: "^/pricing("')
        .replace("threshold: 70 ", "threshold: lots ")
    )
    found = "\n".join(diagnostics(broken))
    assert f"mql.yaml:{line_of(broken, 'inn:')}:" in found
    assert "invalid regular expression" in found
    assert f"mql.yaml:{line_of(broken, 'threshold: lots')}:" in found


def test_yaml_syntax_error_and_duplicate_keys() -> None:
    assert re.match(
        r"mql\.yaml:3:\d+: YAML syntax error", diagnostics("version: x\nfit: [1\nq: 2\n")[0]
    )
    assert "duplicate key 'version'" in diagnostics("version: a\nversion: b\n")[0]


def test_semantic_errors() -> None:
    text = """
version: v1
fit:
  rules:
    - {id: a, when: {trait: x, exists: true}, points: 10}
    - {id: a, when: {property: y, exists: true}, points: 5}
intent:
  rules:
    - {id: b, event: E, points: 5, where: {trait: x, equals: 1}}
qualify:
  threshold: 10
  min_fit: 50
  paths:
    - {type: t, when: {rule: nope}}
"""
    found = "\n".join(diagnostics(text))
    assert "mql.yaml:6:" in found and "duplicate rule id 'a'" in found
    assert "'property' conditions are not allowed here" in found
    assert "'trait' conditions are not allowed here" in found
    assert "unknown rule 'nope'" in found
    assert "min_fit 50 is above the best possible fit 15" in found


def test_condition_needs_one_subject_and_operator() -> None:
    text = "version: v1\nqualify: {threshold: 1}\nexclude:\n  - {id: x, when: {trait: a}}\n"
    assert "needs exactly one operator" in diagnostics(text)[0]
    text = "version: v1\nqualify: {threshold: 1}\nexclude:\n  - {id: x, when: {equals: 1}}\n"
    assert "exactly one subject" in diagnostics(text)[0]


def test_missing_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DefinitionError) as caught:
        load_definition(tmp_path / "nope.yaml")
    assert "mql init" in caught.value.diagnostics[0]
