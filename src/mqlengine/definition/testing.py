"""The definition's own example tests (``tests:`` in mql.yaml), run like dbt tests.

Each example is a fresh lead: its traits go through the same profile builder the ingest
pipeline uses (so ``email: bo@uni.edu`` is flagged ``edu_domain`` exactly as in production),
its events are placed ``ago`` before ``now``, and the expectations are checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mqlengine.definition.compiler import LoadedDefinition
from mqlengine.definition.schema import DefinitionTestSpec
from mqlengine.domain.scoring import Event, ScoreCard, score

ProfileBuilder = Callable[[Mapping[str, Any]], Mapping[str, Any]]
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 15m, 2h, 3d, 1w)")
    return timedelta(seconds=float(match.group(1)) * UNITS[match.group(2)])


@dataclass(frozen=True)
class TestResult:
    name: str
    passed: bool
    failures: tuple[str, ...]
    card: ScoreCard


def _between(label: str, value: float, bounds: tuple[float, float] | None) -> list[str]:
    if bounds is None or bounds[0] <= value <= bounds[1]:
        return []
    return [f"{label} {value:.2f} is outside [{bounds[0]:g}, {bounds[1]:g}]"]


def run_test(
    loaded: LoadedDefinition, test: DefinitionTestSpec, now: datetime, build: ProfileBuilder
) -> TestResult:
    profile = build(test.traits)
    events = [
        Event(f"test-{i}", e.event, now - parse_duration(e.ago), e.properties)
        for i, e in enumerate(test.events)
    ]
    card = score(loaded.definition, profile, events, now)
    expect = test.expect
    failures: list[str] = []
    stage = "mql" if card.qualifies else "lead"
    if expect.stage is not None and expect.stage != stage:
        why = ""
        if card.excluded_because:
            why = f" (excluded: {', '.join(card.excluded_because)})"
        elif card.missing_requirements:
            why = f" (missing: {', '.join(card.missing_requirements)})"
        elif not card.qualifies:
            why = f" (total {card.total:.2f}, fit {card.fit:.2f})"
        failures.append(f"expected stage {expect.stage}, got {stage}{why}")
    if expect.type is not None and expect.type != card.mql_type:
        failures.append(f"expected type {expect.type}, got {card.mql_type}")
    failures += _between("total", card.total, expect.total_between)
    failures += _between("fit", card.fit, expect.fit_between)
    failures += _between("intent", card.intent, expect.intent_between)
    if expect.excluded_because is not None:
        missing = set(expect.excluded_because) - set(card.excluded_because)
        if missing:
            failures.append(
                f"expected exclusion(s) {', '.join(sorted(missing))}; "
                f"got {', '.join(card.excluded_because) or 'none'}"
            )
    if expect.missing is not None:
        absent = set(expect.missing) - set(card.missing_requirements)
        if absent:
            failures.append(f"expected missing requirement(s) {', '.join(sorted(absent))}")
    if expect.rules_include is not None:
        earned = {c.rule_id for c in card.contributions}
        lacking = [r for r in expect.rules_include if r not in earned]
        if lacking:
            failures.append(f"expected rule(s) {', '.join(lacking)} to contribute")
    return TestResult(test.name, not failures, tuple(failures), card)


def run_tests(loaded: LoadedDefinition, now: datetime, build: ProfileBuilder) -> list[TestResult]:
    return [run_test(loaded, test, now, build) for test in loaded.spec.tests]
