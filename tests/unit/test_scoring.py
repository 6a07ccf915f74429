from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqlengine.definition.compiler import parse_definition
from mqlengine.domain.scoring import Event, decay_factor, score
from support.clock import NOW

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


# --- trait verdicts: what the traits alone decide, judged once and reused -----------------

from collections.abc import Mapping  # noqa: E402

from mqlengine.domain.conditions import (  # noqa: E402
    MISSING,
    Context,
    ScoreField,
    evaluate,
    lookup_path,
)
from mqlengine.domain.scoring import ScoreCard, Scorer  # noqa: E402
from support.paths import EXAMPLE  # noqa: E402

EXAMPLE_DEFINITION = parse_definition(EXAMPLE.read_text(encoding="utf-8")).definition
# Paths that mix traits with rules, events and scores, and a rule read both by a path and
# by the fit section.
MIXED_DEFINITION = parse_definition(
    """
version: t2
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
    - {id: demo, event: Demo Requested, points: 30, repeat: once}
    - {id: click, event: Email Link Clicked, points: 2, within_days: 30}
    - {id: unsub, event: Unsubscribed, points: -20, repeat: once}
exclude:
  - {id: student, when: {any: [{trait: seniority, equals: student}, {trait: email_flags, contains: edu_domain}]}}
require:
  - {id: has_email, when: {trait: email, exists: true}}
qualify:
  threshold: 40
  min_fit: 10
  hysteresis: 10
  total_cap: 70
  paths:
    - type: senior_demo
      when: {all: [{rule: senior}, {rule: demo}, {not: {event: Unsubscribed, within_days: 60}}]}
      bypass_threshold: true
    - type: big_fit
      when: {all: [{rule: big}, {fit_at_least: 20}]}
    - type: engaged
      when: {any: [{all: [{trait: country, in: [US, CA]}, {intent_at_least: 15}]}, {total_at_least: 60}]}
    - type: clicker
      when: {all: [{not: {trait: seniority, equals: manager}}, {event: Email Link Clicked}]}
""",
    "t2.yaml",
).definition
DEFINITIONS = {"t1": DEFINITION, "t2": MIXED_DEFINITION, "example": EXAMPLE_DEFINITION}

any_names = st.sampled_from(
    [
        "Page Viewed",
        "Demo Requested",
        "Email Link Clicked",
        "Unsubscribed",
        "Workspace Activated",
        "Trial Started",
        "Webinar Attended",
        "Email Bounced",
        "Other",
    ]
)
rich_events_strategy = st.lists(
    st.tuples(
        any_names,
        st.floats(min_value=-2, max_value=400, allow_nan=False),  # negative: after as_of
        st.sampled_from(["/pricing", "/pricing/a", "/blog/x", "/careers", "/"]),
        st.sampled_from(["hard", "soft"]),
    ),
    max_size=30,
).map(
    lambda items: [
        event(i, n, age, path=p, bounce_type=b) for i, (n, age, p, b) in enumerate(items)
    ]
)
trait_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 100_000),
    st.sampled_from(["vp", "VP", "student", "manager", "director", "US", "ca", "BR", "", "900"]),
    st.lists(st.sampled_from(["free_mail", "edu_domain", "spam", "x"]), max_size=3),
)
rich_traits_strategy = st.fixed_dictionaries(
    {},
    optional={
        "email": st.sampled_from(["x@y.co", "", "a@rivalytics.com"]),
        "email_domain": st.sampled_from(["y.co", "rivalytics.com"]),
        "seniority": trait_value,
        "department": st.sampled_from(["marketing", "sales", "engineering"]),
        "country": trait_value,
        "email_flags": trait_value,
        "flags": trait_value,
        "consent_marketing": trait_value,
        "company": st.one_of(
            trait_value,
            st.fixed_dictionaries(
                {},
                optional={
                    "employees": trait_value,
                    "industry": st.sampled_from(["software", "retail", "FinTech"]),
                },
            ),
        ),
    },
)


@settings(max_examples=300)
@given(
    st.sampled_from(sorted(DEFINITIONS)),
    rich_traits_strategy,
    rich_events_strategy,
    st.floats(min_value=-1, max_value=60, allow_nan=False),
)
def test_a_trait_verdict_gives_the_same_card(name, traits, events, days_later) -> None:  # type: ignore[no-untyped-def]
    scorer = Scorer(DEFINITIONS[name])
    as_of = NOW + timedelta(days=days_later)
    verdict = scorer.judge_traits(traits)
    card = scorer.score(traits, events, as_of)
    assert scorer.score(traits, events, as_of, verdict=verdict) == card
    # the verdict alone stands for the traits: they are not read again
    assert scorer.score({}, events, as_of, verdict=verdict) == card
    # a verdict judged by another scorer of the same definition serves as well
    assert Scorer(DEFINITIONS[name]).score(traits, events, as_of, verdict=verdict) == card
    assert verdict == scorer.judge_traits(dict(traits))
    assert verdict.fit_contributions == tuple(c for c in card.contributions if c.kind == "fit")
    assert (verdict.fit_raw, verdict.fit) == (card.fit_raw, card.fit)
    assert verdict.excluded_because == card.excluded_because
    assert verdict.missing_requirements == card.missing_requirements


class _Reference:
    """The path questions answered from a finished card and the raw events: the
    interpreter's view, independent of how the scorer compiles its paths."""

    def __init__(self, traits: Mapping[str, object], card: ScoreCard, events: list[Event]) -> None:
        self._traits, self._card, self._events = traits, card, events

    def trait(self, name: str) -> object:
        return lookup_path(self._traits, name)

    def prop(self, name: str) -> object:
        return MISSING

    def rule_earned(self, rule_id: str) -> bool:
        item = {c.rule_id: c for c in self._card.contributions}.get(rule_id)
        return item is not None and item.earned > 0

    def event_seen(self, event: str, since: datetime | None) -> bool:
        return any(
            e.name == event
            and e.timestamp <= self._card.as_of
            and (since is None or e.timestamp >= since)
            for e in self._events
        )

    def score(self, field: ScoreField) -> float:
        card = self._card
        return {ScoreField.FIT: card.fit, ScoreField.INTENT: card.intent}.get(field, card.total)

    @property
    def as_of(self) -> datetime:
        return self._card.as_of


@settings(max_examples=300)
@given(
    st.sampled_from(sorted(DEFINITIONS)),
    rich_traits_strategy,
    rich_events_strategy,
    st.floats(min_value=-1, max_value=60, allow_nan=False),
)
def test_the_matched_path_is_the_first_the_interpreter_accepts(
    name, traits, events, days_later
) -> None:  # type: ignore[no-untyped-def]
    definition = DEFINITIONS[name]
    card = Scorer(definition).score(traits, events, NOW + timedelta(days=days_later))
    context: Context = _Reference(traits, card, events)
    expected = next((p.type for p in definition.qualify.paths if evaluate(p.when, context)), None)
    assert card.matched_path == expected


def test_mixed_paths_read_traits_rules_events_and_scores() -> None:
    scorer = Scorer(MIXED_DEFINITION)
    vp = {"email": "a@b.co", "seniority": "vp", "country": "BR"}
    demo = [event(1, "Demo Requested", 1)]
    assert scorer.score(vp, demo, NOW).matched_path == "senior_demo"
    unsubscribed = [*demo, event(2, "Unsubscribed", 59)]
    card = scorer.score(vp, unsubscribed, NOW)
    assert card.matched_path is None and card.mql_type == "score"  # qualifies on the total
    assert scorer.score(vp, unsubscribed, NOW + timedelta(days=2)).matched_path == "senior_demo"
    manager = {"email": "a@b.co", "seniority": "manager", "company": {"employees": 2000}}
    assert scorer.score(manager, [], NOW).matched_path == "big_fit"
    us = {"email": "a@b.co", "country": "us"}
    pricing = [
        event(3, "Page Viewed", 0, path="/pricing"),
        event(4, "Page Viewed", 1, path="/pricing"),
    ]
    assert scorer.score(us, pricing, NOW).matched_path == "engaged"
    clicks = [event(5, "Email Link Clicked", 40)]  # older than the click rule's window
    assert scorer.score(us, clicks, NOW).matched_path == "clicker"
    assert scorer.score({**us, "seniority": "manager"}, clicks, NOW).matched_path is None


def test_trait_only_paths_hold_at_their_bounds() -> None:
    scorer = Scorer(EXAMPLE_DEFINITION)
    traits = {"email": "a@b.co", "seniority": "vp", "department": "marketing", "country": "US"}
    at_45 = {**traits, "company": {"employees": 800, "industry": "retail"}}  # 20 + 10 + 15
    card = scorer.score(at_45, [], NOW)
    assert card.fit == 45 and card.matched_path == "fit_qualified"
    assert scorer.score(traits, [], NOW).matched_path is None  # fit 30
    verdict = scorer.judge_traits(at_45)
    demo = [event(1, "Demo Requested", 29.9)]
    assert scorer.score(at_45, demo, NOW, verdict=verdict).matched_path == "hand_raiser"
    assert scorer.score(at_45, demo, NOW + timedelta(days=1), verdict=verdict).matched_path == (
        "fit_qualified"
    )


def test_a_verdict_from_another_definition_is_refused() -> None:
    verdict = Scorer(EXAMPLE_DEFINITION).judge_traits(TRAITS)
    with pytest.raises(ValueError, match="another definition"):
        Scorer(DEFINITION).score(TRAITS, [], NOW, verdict=verdict)


def test_the_event_names_scoring_uses() -> None:
    names = Scorer(DEFINITION).event_names
    assert names == {"Page Viewed", "Demo Requested", "Email Link Clicked", "Unsubscribed"}


def test_trimming_the_memo_drops_the_matches_asked_for_longest_ago() -> None:
    """The memo keeps two generations: trimming drops the older one, and a match asked
    for from it moves back to the newer one; the scores never change."""
    scorer = Scorer(DEFINITION)
    old = [event(i, "Page Viewed", 1, path="/pricing") for i in range(4)]
    new = [event(10 + i, "Email Link Clicked", 1) for i in range(4)]
    before = scorer.score(TRAITS, old, NOW)
    assert scorer.memo_size() == 4
    assert not scorer.trim_matches(9)  # the newer generation holds less than half
    assert scorer.trim_matches(8)  # … now half: it becomes the older one
    assert scorer.memo_size() == 4
    scorer.score(TRAITS, [*old[:1], *new], NOW)  # one old match asked for again
    assert scorer.trim_matches(8)  # the three not asked for again are dropped
    assert scorer.memo_size() == 5
    assert scorer.score(TRAITS, old, NOW) == before  # matched again, the same card
    scorer.forget_matches()
    assert scorer.memo_size() == 0
