"""Pure funnel maths: rates, percentiles, velocity, spend proration, health rules and score."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqlengine.domain.funnel import (
    HealthInputs,
    HealthRules,
    health_alerts,
    health_rules_from,
    health_score,
    month_overlap,
    parse_month,
    percentile,
    pipeline_velocity,
    rate,
)


def test_rate_is_none_without_denominator() -> None:
    assert rate(3, 4) == 0.75
    assert rate(0, 0) is None
    assert rate(None, 4) is None
    assert rate(1, None) is None


def test_percentile_interpolates_like_duckdb_quantile_cont() -> None:
    values = [1, 22.5, 36, 48, 72]
    assert percentile(values, 0.5) == 36
    assert percentile(values, 0.9) == pytest.approx(62.4)
    assert percentile([5.0], 0.9) == 5.0
    assert percentile([], 0.5) is None
    with pytest.raises(ValueError):
        percentile([1.0], 1.5)


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=50), st.floats(0, 1))
def test_percentile_stays_within_range(values: list[float], q: float) -> None:
    result = percentile(values, q)
    assert result is not None
    assert min(values) - 1e-6 <= result <= max(values) + 1e-6


def test_pipeline_velocity() -> None:
    assert pipeline_velocity(10, 0.25, 20_000, 50) == pytest.approx(1000.0)
    assert pipeline_velocity(10, None, 20_000, 50) is None
    assert pipeline_velocity(10, 0.2, 20_000, 0) is None


def test_month_overlap_prorates_partial_months() -> None:
    jan = parse_month("2026-01")
    assert month_overlap(jan, None, None) == 1.0
    since = datetime(2026, 1, 15, tzinfo=UTC)
    assert month_overlap(jan, since, None) == pytest.approx(17 / 31)
    assert month_overlap(jan, datetime(2026, 2, 1, tzinfo=UTC), None) == 0.0
    assert month_overlap(parse_month("2026-12-05"), None, datetime(2026, 12, 16, tzinfo=UTC)) == (
        pytest.approx(15 / 31)
    )
    with pytest.raises(ValueError):
        parse_month("January")


def test_alerts_follow_the_rules_of_thumb() -> None:
    rules = HealthRules(min_mqls=3)
    inputs = HealthInputs(
        mqls=5, acceptance_rate=0.4, mql_to_sql=0.4, sla_compliance=0.4, speed_to_lead_p50_hours=36
    )
    alerts = {a.code: a for a in health_alerts(inputs, rules)}
    assert set(alerts) == {"low_acceptance", "low_sla_compliance"}
    assert alerts["low_acceptance"].severity == "warning"  # 0.4 > 0.7 / 2
    assert alerts["low_sla_compliance"].severity == "critical"  # 0.4 <= 0.9 / 2
    low_sql = HealthInputs(5, 0.9, 0.19, None, None)
    assert [a.code for a in health_alerts(low_sql, rules)] == ["low_mql_to_sql"]
    # Too few MQLs: rates are noise, no alert.
    assert health_alerts(HealthInputs(2, 0.1, 0.0, 0.0, None), rules) == []


def test_health_score_formula() -> None:
    rules = HealthRules()
    perfect = HealthInputs(100, 0.8, 0.3, 0.95, 2.0, previous_mqls=90)
    assert health_score(perfect, rules).score == 100
    # acceptance at half its target costs half its weight (12.5 of 100).
    half = HealthInputs(100, 0.35, 0.3, 0.95, 2.0, previous_mqls=90)
    assert health_score(half, rules).score == round(100 - 12.5)
    # Missing components are dropped and the weights renormalised.
    only_two = HealthInputs(10, 0.35, 0.2, None, None)
    expected = 100 * (25 * 0.5 + 25 * 1.0) / 50
    assert health_score(only_two, rules).score == round(expected)
    # Speed to lead twice as slow as target scores 0.5 on that component.
    slow = health_score(HealthInputs(10, None, None, None, 48.0), rules)
    assert slow.score == 50
    assert health_score(HealthInputs(0, None, None, None, None), rules).score is None


def test_health_rules_from_mapping_keeps_defaults() -> None:
    rules = health_rules_from({"min_acceptance": 0.6, "window_days": 30})
    assert rules.min_acceptance == 0.6
    assert rules.window_days == 30
    assert rules.min_mql_to_sql == 0.2
    assert health_rules_from(None) == HealthRules()


def test_definition_health_section_is_validated(example_text: str) -> None:
    from mqlengine.definition.compiler import parse_definition
    from mqlengine.errors import DefinitionError

    loaded = parse_definition(example_text)
    assert loaded.spec.health.min_acceptance == 0.70
    bad = example_text.replace("min_acceptance: 0.70", "min_acceptance: 1.7")
    with pytest.raises(DefinitionError) as error:
        parse_definition(bad)
    assert any("min_acceptance" in d for d in error.value.diagnostics)
