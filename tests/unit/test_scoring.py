from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqlengine.definition.compiler import parse_definition
from mqlengine.domain.scoring import Event, decay_factor, score

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DEFINITION = parse_definition(
    """
version: t1
decay: {half_life_days: 10}
fit:
  cap: 30
  rules:
    - {id: senior, when: {trait: seniority, equals: vp}, points: 20}
    - {id: big, when: {trait: company.employees, gte: 1000}, points: 20}
    - {id: tiny, when: {trait: company.employees, lt: 10}, points: -15}
intent:
  cap: 50
  rules:
    - {id: pricing, event: Page Viewed, where: {property: path, regex: "^/pricing"}, points: 10, repeat: once_per_day, cap: 25}
    - {id: demo, event: Demo Requested, points: 30, repeat: once, half_life_days: 0}
    - {id: click, event: Email Link Clicked, points: 2}
    - {id: recent_click, event: Email Link Clicked, points: 1, within_days: 3}
    - {id: unsub, event: Unsubscribed, points: -20, repeat: once}
exclude:
  - {id: student, when: {trait: seniority, equals: student}}
require:
  - {id: has_email, when: {trait: email, exists: true}}
qualify:
  threshold: 40
  min_fit: 10
  hysteresis: 10
  total_cap: 70
  paths:
    - {type: hand_raiser, when: {rule: demo}}
""",
    "t.yaml",
).definition


def event(i: int, name: str, days_ago: float, **props: object) -> Event:
    return Event(f"e{i}", name, NOW - timedelta(days=days_ago), props)


TRAITS = {"email": "a@b.co", "seniority": "vp", "company": {"employees": 5000}}


def test_worked_example_adds_up() -> None:
    events = [
        event(1, "Page Viewed", 0, path="/pricing"),
        event(2, "Page Viewed", 0.01, path="/pricing/x"),  # same day: once_per_day keeps one
        event(3, "Page Viewed", 10, path="/pricing"),  # one half-life ago
        event(4, "Email Link Clicked", 20),  # outside recent_click window
        event(5, "Page Viewed", 1, path="/blog"),  # no rule
    ]
    card = score(DEFINITION, TRAITS, events, NOW)
    assert card.fit_raw == 40 and card.fit == 30 and card.fit_cap_adjustment == -10
    pricing = card.contribution("pricing")
    assert pricing is not None
    assert len(pricing.hits) == 2
    assert pricing.earned == pytest.approx(10 + 5)
    click = card.contribution("click")
    assert click is not None and click.points == pytest.approx(2 * 0.25)
    assert card.contribution("recent_click") is None
    assert card.intent == pytest.approx(15.5)
    assert card.total == pytest.approx(45.5)
    assert card.qualifies and card.mql_type == "score"
    parts = sum(c.points for c in card.contributions)
    assert parts + card.fit_cap_adjustment + card.intent_cap_adjustment == pytest.approx(card.total)


def test_repeat_once_takes_most_recent_and_no_decay_when_half_life_zero() -> None:
    events = [event(1, "Demo Requested", 50), event(2, "Demo Requested", 5)]
    card = score(DEFINITION, TRAITS, events, NOW)
    demo = card.contribution("demo")
    assert demo is not None and demo.event_ids == ("e2",) and demo.points == 30
    assert card.mql_type == "hand_raiser"


def test_future_events_are_ignored_and_as_of_replays_the_past() -> None:
    events = [event(1, "Demo Requested", 5)]
    before = score(DEFINITION, TRAITS, events, NOW - timedelta(days=6))
    assert before.contribution("demo") is None and before.intent == 0
    with pytest.raises(ValueError):
        score(DEFINITION, TRAITS, events, NOW.replace(tzinfo=None))


def test_negative_rules_and_exclusions_and_requirements() -> None:
    events = [event(1, "Demo Requested", 1), event(2, "Unsubscribed", 1)]
    card = score(DEFINITION, TRAITS, events, NOW)
    assert card.contribution("unsub").points == pytest.approx(-20 * 0.5**0.1)  # type: ignore[union-attr]
    student = score(DEFINITION, {**TRAITS, "seniority": "student"}, events, NOW)
    assert student.excluded_because == ("student",) and not student.qualifies
    anonymous = score(DEFINITION, {"seniority": "vp"}, events, NOW)
    assert anonymous.missing_requirements == ("has_email",) and not anonymous.qualifies


def test_hysteresis_band() -> None:
    # total 35: below the threshold (40) but inside the band (>= 30): retains, does not qualify
    traits = {"email": "a@b.co", "seniority": "vp"}
    events = [event(1, "Page Viewed", 0, path="/pricing"), event(2, "Email Link Clicked", 0)]
    card = score(DEFINITION, traits, events, NOW)
    assert card.total == pytest.approx(20 + 10 + 2 + 1)
    assert not card.qualifies and card.retains


names = st.sampled_from(
    ["Page Viewed", "Demo Requested", "Email Link Clicked", "Unsubscribed", "Other"]
)
paths = st.sampled_from(["/pricing", "/pricing/a", "/blog", "/"])
events_strategy = st.lists(
    st.tuples(names, st.floats(min_value=0, max_value=400, allow_nan=False), paths),
    max_size=40,
).map(lambda items: [event(i, n, age, path=p) for i, (n, age, p) in enumerate(items)])
traits_strategy = st.fixed_dictionaries(
    {
        "email": st.sampled_from(["x@y.co", ""]),
        "seniority": st.sampled_from(["vp", "student", "manager"]),
        "company": st.fixed_dictionaries({"employees": st.integers(0, 100_000)}),
    }
)


@given(st.floats(0, 1000), st.floats(0, 1000), st.floats(0.1, 365))
def test_decay_is_monotone_and_bounded(a: float, b: float, half_life: float) -> None:
    young, old = sorted((a, b))
    assert 0.0 <= decay_factor(old, half_life) <= decay_factor(young, half_life) <= 1.0
    assert decay_factor(a, 0) == 1.0


@settings(max_examples=150)
@given(traits_strategy, events_strategy, st.randoms())
def test_order_independence_caps_and_exclusions(traits, events, rnd) -> None:  # type: ignore[no-untyped-def]
    card = score(DEFINITION, traits, events, NOW)
    shuffled = list(events)
    rnd.shuffle(shuffled)
    assert score(DEFINITION, traits, shuffled, NOW) == card
    assert card.fit <= 30 and card.intent <= 50 and card.total <= 70
    for item in card.contributions:
        if item.rule_id == "pricing":
            assert item.points <= 25
        for hit in item.hits:
            assert 0 <= hit.decay_factor <= 1
    if card.excluded_because or card.missing_requirements:
        assert not card.qualifies and card.mql_type is None
    if card.qualifies:
        assert card.total >= 40 or card.matched_path == "hand_raiser"


@given(events_strategy, st.floats(1, 100))
def test_more_time_never_increases_positive_decayed_points(events, extra_days) -> None:  # type: ignore[no-untyped-def]
    positive = [e for e in events if e.name in ("Page Viewed", "Email Link Clicked")]
    later = NOW + timedelta(days=extra_days)
    now_card = score(DEFINITION, TRAITS, positive, NOW)
    later_card = score(DEFINITION, TRAITS, positive, later)
    assert later_card.intent <= now_card.intent + 1e-9
