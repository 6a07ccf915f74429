"""Shared fixtures of the batch engines' parity tests: definitions that use every
condition and rule kind, hand-made edge-case histories, Hypothesis strategies for
random histories, and the card comparison every engine must pass against the reference
(:class:`~mqlengine.batch.engine.PythonEngine`)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

from mqlengine.batch.engine import EVENTS_SCHEMA, PERSONS_SCHEMA, BatchInput
from mqlengine.definition.compiler import parse_definition
from mqlengine.domain.rules import Definition
from support.clock import NOW

# Uses every operator on traits (flat, dotted, an exact dotted key), every combinator,
# fit rules with negative points and a cap, intent rules with and without `where`, every
# repeat policy, rule caps, global and per-rule half-lives (incl. 0: no decay),
# within_days, both caps, exclusions, requirements, hysteresis, min_fit, a recycle
# cool-down, and paths with event-seen windows, rules earned, score floors and bypass.
EVERY_KIND_YAML = """
version: every-kind-1
decay: {half_life_days: 10}
fit:
  cap: 40
  rules:
    - {id: senior, when: {trait: seniority, in: [vp, director, c_level]}, points: 15}
    - {id: manager, when: {trait: seniority, equals: manager}, points: 5}
    - {id: mid_company, when: {trait: company.employees, between: [50, 5000]}, points: 10}
    - {id: big_company, when: {trait: company.employees, gt: 5000}, points: 12}
    - {id: tiny_company, when: {trait: company.employees, lt: 10}, points: -8}
    - {id: gte_rule, when: {trait: revenue, gte: 1000000}, points: 4}
    - {id: lte_rule, when: {trait: age_days, lte: 3}, points: 3}
    - {id: saas, when: {trait: company.industry, not_in: [retail, government]}, points: 2}
    - {id: has_phone, when: {trait: phone, exists: true}, points: 1}
    - {id: no_phone, when: {trait: phone, exists: false}, points: -1}
    - {id: tagged, when: {trait: tags, contains: champion}, points: 6}
    - {id: untagged, when: {trait: tags, not_contains: churned}, points: 1}
    - {id: title_ops, when: {trait: title, contains: ops}, points: 2}
    - {id: title_re, when: {trait: title, regex: "^(Head|Chief) of"}, points: 3}
    - {id: not_intern, when: {not: {trait: title, contains: intern}}, points: 1}
    - {id: verified, when: {trait: verified, equals: true}, points: 2}
    - {id: plan_named, when: {trait: plan, not_equals: free}, points: 1}
    - {id: exact_dotted, when: {trait: utm.source, equals: partner}, points: 2}
    - id: combo
      when:
        all:
          - {trait: country, in: [US, CA, GB]}
          - any:
              - {trait: department, equals: marketing}
              - {trait: department, equals: sales}
      points: 7
intent:
  cap: 60
  rules:
    - {id: pricing, event: Page Viewed, where: {property: path, regex: "^/pricing"}, points: 4, repeat: once_per_day, cap: 12}
    - {id: demo, event: Demo Requested, points: 30, repeat: once, half_life_days: 30}
    - {id: trial, event: Trial Started, points: 20, repeat: once, half_life_days: 0}
    - {id: webinar, event: Webinar Attended, points: 6, cap: 15}
    - {id: blog, event: Page Viewed, where: {property: path, contains: /blog/}, points: 1, within_days: 14, cap: 5}
    - {id: big_deal, event: Quote Viewed, where: {property: amount, gt: 1000}, points: 9}
    - id: plan_pick
      event: Plan Selected
      where:
        any:
          - {property: plan.name, in: [pro, enterprise]}
          - {not: {property: trial, equals: true}}
      points: 5
    - {id: seats, event: Plan Selected, where: {property: seats, between: [10, 100]}, points: 3, repeat: once}
    - {id: unsub, event: Unsubscribed, points: -25, repeat: once, half_life_days: 365}
    - {id: bounce, event: Email Bounced, where: {property: bounce_type, exists: true}, points: -10, repeat: once_per_day, cap: 10}
exclude:
  - {id: competitor, when: {trait: email_domain, in: [rival.com]}}
  - {id: spam, when: {trait: flags, contains: spam}}
require:
  - {id: has_email, when: {trait: email, exists: true}}
qualify:
  threshold: 50
  min_fit: 5
  hysteresis: 10
  total_cap: 90
  recycle_cooldown_days: 7
  min_likelihood: 0.2          # no model in batch: gates nothing, as online without one
  default_type: score
  paths:
    - type: predicted          # no model in batch: never matches, as online without one
      bypass_threshold: true
      when: {likelihood_at_least: 0.5}
    - type: hand_raiser
      bypass_threshold: true
      when: {all: [{event: Demo Requested, within_days: 14}, {fit_at_least: 10}]}
    - type: product_qualified
      when: {any: [{rule: trial}, {all: [{event: Trial Started}, {intent_at_least: 20}]}]}
    - type: fit_qualified
      when: {all: [{rule: senior}, {total_at_least: 45}, {not: {event: Unsubscribed}}]}
"""

# For Hypothesis: the trait, property and event values the strategies draw from.
EVENT_NAMES = (
    "Page Viewed",
    "Demo Requested",
    "Trial Started",
    "Webinar Attended",
    "Quote Viewed",
    "Plan Selected",
    "Unsubscribed",
    "Email Bounced",
    "Other Thing",
)


def every_kind_definition() -> Definition:
    return parse_definition(EVERY_KIND_YAML, "every-kind.yaml").definition


def persons_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Persons from dicts (``profile`` as a mapping; ``stage`` defaults to lead)."""
    return pa.Table.from_pylist(
        [
            {
                "person_id": row["person_id"],
                "profile": json.dumps(row.get("profile", {}), sort_keys=True),
                "stage": row.get("stage", "lead"),
                "recycled_at": row.get("recycled_at"),
            }
            for row in rows
        ],
        schema=PERSONS_SCHEMA,
    )


def events_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Events from dicts (``properties`` as a mapping)."""
    return pa.Table.from_pylist(
        [
            {
                "person_id": row["person_id"],
                "event_id": row["event_id"],
                "name": row["name"],
                "timestamp": row["timestamp"],
                "properties": json.dumps(row.get("properties", {}), sort_keys=True),
            }
            for row in rows
        ],
        schema=EVENTS_SCHEMA,
    )


def edge_case_input(as_of: datetime = NOW) -> BatchInput:
    """Hand-made histories at the edges: timestamp ties broken by event id, events on
    both sides of a UTC midnight and exactly at ``as_of`` or after it, window edges,
    caps reached from above and below, negative points, untracked persons, recycled
    persons inside and past the cool-down, and every system-managed stage."""
    midnight = as_of.replace(hour=0, minute=0, second=0, microsecond=0)
    senior = {
        "email": "a@x.com",
        "seniority": "vp",
        "company": {"employees": 300, "industry": "software"},
        "country": "US",
        "department": "marketing",
    }
    persons: list[dict[str, Any]] = [
        {"person_id": 1, "profile": senior},
        {"person_id": 2, "profile": senior, "stage": "mql"},
        {"person_id": 3, "profile": {**senior, "flags": ["spam"]}, "stage": "mql"},
        {"person_id": 4, "profile": {**senior, "consent": {"tracking": False}}},
        {
            "person_id": 5,
            "profile": senior,
            "stage": "nurture",
            "recycled_at": as_of - timedelta(days=3),
        },
        {
            "person_id": 6,
            "profile": senior,
            "stage": "nurture",
            "recycled_at": as_of - timedelta(days=7),
        },
        {"person_id": 7, "profile": {"seniority": "manager", "tags": ["churned"]}},
        {"person_id": 8, "profile": {**senior, "utm.source": "partner", "utm": {"x": 1}}},
        {"person_id": 9, "profile": {}, "stage": "sal"},
        {"person_id": 10, "profile": {**senior, "company": {"employees": "7"}}},
    ]
    events: list[dict[str, Any]] = []

    def add(pid: int, eid: str, name: str, at: datetime, **props: Any) -> None:
        events.append(
            {"person_id": pid, "event_id": eid, "name": name, "timestamp": at, "properties": props}
        )

    for pid in (1, 2, 3, 4, 5, 6, 8, 10):
        # a tie: same moment, two ids (`once` keeps the larger id); one at as_of exactly
        add(pid, f"{pid}-d-b", "Demo Requested", as_of - timedelta(days=2))
        add(pid, f"{pid}-d-a", "Demo Requested", as_of - timedelta(days=2))
        add(pid, f"{pid}-t", "Trial Started", as_of)
        add(pid, f"{pid}-late", "Trial Started", as_of + timedelta(seconds=1))
        # pricing views either side of midnight, two in one day (once_per_day)
        add(pid, f"{pid}-p1", "Page Viewed", midnight - timedelta(microseconds=1), path="/pricing")
        add(pid, f"{pid}-p2", "Page Viewed", midnight, path="/pricing/teams")
        add(pid, f"{pid}-p3", "Page Viewed", midnight + timedelta(hours=1), path="/PRICING")
        # blog views at the window edge (14 days) and inside it, cap 5
        add(pid, f"{pid}-b0", "Page Viewed", as_of - timedelta(days=14), path="/en/blog/x")
        for k in range(8):
            add(pid, f"{pid}-b{k + 1}", "Page Viewed", as_of - timedelta(days=k), path="/blog/y")
        add(pid, f"{pid}-w", "Webinar Attended", as_of - timedelta(days=1))
    # negative points: bounces twice a day (once_per_day), then an unsubscribe
    for day in range(3):
        for k in range(2):
            add(
                7,
                f"7-bo{day}{k}",
                "Email Bounced",
                as_of - timedelta(days=day, hours=k),
                bounce_type="hard",
            )
    add(7, "7-u", "Unsubscribed", as_of - timedelta(days=40))
    add(7, "7-q", "Quote Viewed", as_of - timedelta(days=1), amount="2500")
    add(7, "7-q2", "Quote Viewed", as_of - timedelta(days=1), amount=999)
    add(7, "7-pl", "Plan Selected", as_of - timedelta(days=1), plan={"name": "Pro"}, seats=10)
    add(9, "9-d", "Demo Requested", as_of - timedelta(hours=1))
    return BatchInput(persons_table(persons), events_table(events))


def demo_like_definition_yaml(threshold: float = 20) -> str:
    """A small definition with integer points (sums exact in any order), for ties."""
    return f"""
version: ties-1
decay: {{half_life_days: 0}}
fit:
  rules:
    - {{id: base, when: {{trait: email, exists: true}}, points: 10}}
intent:
  rules:
    - {{id: view, event: Page Viewed, points: 5, cap: 10}}
    - {{id: demo, event: Demo Requested, points: 5, repeat: once}}
qualify:
  threshold: {threshold}
  hysteresis: 5
"""


# --- Hypothesis strategies -------------------------------------------------------------

_words = st.sampled_from(
    ["vp", "VP", "director", "manager", "intern", "marketing", "sales", "US", "gb", "CA",
     "champion", "churned", "spam", "free", "pro", "Pro", "enterprise", "hard", "", " 42 ",
     "7", "1e3", "true", "False", "Head of Ops", "chief of staff", "/pricing", "/blog/a",
     "/Pricing/x", "straße", "STRASSE"]
)  # fmt: skip
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-10, max_value=20_000),
    st.sampled_from([0.5, 2.5, 49.5, 5000.0, 1e6, -3.25]),
    _words,
)
_values = st.one_of(_scalars, st.lists(_scalars, max_size=3))


@st.composite
def profiles(draw: st.DrawFn) -> dict[str, Any]:
    keys = st.sampled_from(
        ["seniority", "title", "country", "department", "tags", "flags", "phone", "email",
         "revenue", "age_days", "verified", "plan", "email_domain", "utm.source"]
    )  # fmt: skip
    profile: dict[str, Any] = draw(st.dictionaries(keys, _values, max_size=8))
    if draw(st.booleans()):
        profile["company"] = draw(
            st.dictionaries(st.sampled_from(["employees", "industry"]), _values, max_size=2)
        )
    if draw(st.integers(0, 9)) == 0:
        profile["consent"] = {"tracking": draw(st.sampled_from([True, False, "no"]))}
    return profile


@st.composite
def histories(draw: st.DrawFn, as_of: datetime = NOW) -> BatchInput:
    """A few persons with random profiles, stages and events around ``as_of`` (ties,
    midnights and future events included)."""
    count = draw(st.integers(min_value=1, max_value=6))
    persons: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    midnight = as_of.replace(hour=0, minute=0, second=0, microsecond=0)
    offsets = st.one_of(
        st.integers(min_value=-40 * 86_400, max_value=3_600).map(lambda s: timedelta(seconds=s)),
        st.sampled_from([timedelta(0), timedelta(days=-14), timedelta(days=-7)]),
    )
    for pid in range(1, count + 1):
        stage = draw(st.sampled_from(["lead", "lead", "mql", "nurture", "sal"]))
        recycled = None
        if stage == "nurture" and draw(st.booleans()):
            recycled = as_of - timedelta(days=draw(st.integers(0, 10)))
        persons.append(
            {"person_id": pid, "profile": draw(profiles()), "stage": stage, "recycled_at": recycled}
        )
        for k in range(draw(st.integers(min_value=0, max_value=12))):
            base = draw(st.sampled_from([as_of, midnight, midnight - timedelta(days=1)]))
            properties = draw(
                st.dictionaries(
                    st.sampled_from(["path", "amount", "trial", "seats", "bounce_type"]),
                    _values,
                    max_size=3,
                )
            )
            if draw(st.booleans()):
                properties["plan"] = {"name": draw(_words)}
            events.append(
                {
                    "person_id": pid,
                    "event_id": f"e{pid}-{draw(st.integers(0, 3))}-{k}",
                    "name": draw(st.sampled_from(EVENT_NAMES)),
                    "timestamp": base + draw(offsets),
                    "properties": properties,
                }
            )
    return BatchInput(persons_table(persons), events_table(events))


# --- comparison ---------------------------------------------------------------------------


def assert_same_cards(reference: pa.Table, other: pa.Table, *, tolerance: float = 1e-9) -> None:
    """Identical cards: figures to ``tolerance``, verdicts, types, lists, rule points and
    next stages exactly; the same persons in the same order."""
    assert other.schema.names == reference.schema.names
    expected, actual = reference.to_pylist(), other.to_pylist()
    assert [r["person_id"] for r in actual] == [r["person_id"] for r in expected]
    for want, got in zip(expected, actual, strict=True):
        where = f"person {want['person_id']}"
        for key, value in want.items():
            if key in ("fit", "intent", "total"):
                assert abs(got[key] - value) <= tolerance, (where, key, value, got[key])
            elif key == "rule_points":
                points, other_points = json.loads(value), json.loads(got[key])
                assert sorted(other_points) == sorted(points), (where, key, value, got[key])
                for rule_id, figure in points.items():
                    assert abs(other_points[rule_id] - figure) <= tolerance, (where, rule_id)
            else:
                assert got[key] == value, (where, key, value, got[key])
