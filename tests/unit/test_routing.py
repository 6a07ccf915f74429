"""Routing properties: one owner per MQL, capacity never exceeded, fair round-robin,
account-owner stickiness — over random teams, availabilities and arrival times."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from mqlengine.domain.calendar import BusinessCalendar
from mqlengine.domain.routing import (
    Lead,
    Rep,
    RoutingConfig,
    RoutingRule,
    RoutingState,
    Strategy,
    advance,
    assigned_today,
    fairness,
    route,
)

START = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)  # a Monday
ZONES = ("UTC", "America/New_York", "Europe/Berlin", "Asia/Tokyo")
NINE_TO_FIVE = BusinessCalendar(
    "h", "UTC", tuple(((540, 1020),) if d < 5 else () for d in range(7))
)


def lead(i: int, **traits: object) -> Lead:
    return Lead(i, "hand_raiser", {"country": "DE", "company": {"employees": 500}, **traits})


def config(
    strategy: Strategy, *, account_owner: bool = True, territory: bool = False
) -> RoutingConfig:
    return RoutingConfig(
        (RoutingRule("all", "sales", strategy, account_owner=account_owner, territory=territory),),
        "queue",
    )


reps_strategy = st.lists(
    st.builds(
        Rep,
        key=st.sampled_from([f"r{i}" for i in range(8)]),
        team=st.just("sales"),
        timezone=st.sampled_from(ZONES),
        capacity_per_day=st.one_of(st.none(), st.integers(0, 5)),
        out_of_office=st.lists(
            st.tuples(st.integers(0, 72), st.integers(1, 48)).map(
                lambda t: (START + timedelta(hours=t[0]), START + timedelta(hours=t[0] + t[1]))
            ),
            max_size=2,
        ).map(tuple),
        active=st.booleans(),
    ),
    min_size=1,
    max_size=8,
    unique_by=lambda r: r.key,
)
arrivals = st.lists(st.integers(0, 4 * 24 * 60), min_size=1, max_size=60).map(
    lambda minutes: [START + timedelta(minutes=m) for m in sorted(minutes)]
)


@settings(max_examples=150, deadline=None)
@given(reps=reps_strategy, times=arrivals, strategy=st.sampled_from(list(Strategy)))
def test_every_mql_gets_exactly_one_owner_and_capacity_holds(
    reps: list[Rep], times: list[datetime], strategy: Strategy
) -> None:
    state = RoutingState()
    by_key = {r.key: r for r in reps}
    cfg = config(strategy)
    for i, at in enumerate(times):
        decision = route(cfg, reps, lead(i), state, at)
        # exactly one owner: a rep of the team, or the fallback queue — never both, never none
        assert (decision.rep is None) == (decision.team == "queue")
        if decision.rep is not None:
            rep = by_key[decision.rep]
            assert rep.active
            assert not any(a <= at < b for a, b in rep.out_of_office)
            if rep.capacity_per_day is not None:
                assert assigned_today(rep, state, at) < rep.capacity_per_day
        state = advance(state, decision, at)
        for rep in reps:
            if rep.capacity_per_day is not None:
                assert assigned_today(rep, state, at) <= rep.capacity_per_day


@settings(max_examples=100, deadline=None)
@given(n_reps=st.integers(1, 8), n_leads=st.integers(1, 80))
def test_round_robin_is_fair_within_one(n_reps: int, n_leads: int) -> None:
    reps = [Rep(f"r{i}", "sales") for i in range(n_reps)]
    state = RoutingState()
    counts: Counter[str] = Counter()
    cfg = config(Strategy.ROUND_ROBIN)
    for i in range(n_leads):
        at = START + timedelta(minutes=i)
        decision = route(cfg, reps, lead(i), state, at)
        assert decision.rep is not None
        counts[decision.rep] += 1
        state = advance(state, decision, at)
        loads = [counts[r.key] for r in reps]
        assert max(loads) - min(loads) <= 1


@settings(max_examples=100, deadline=None)
@given(
    capacities=st.lists(st.integers(1, 10), min_size=2, max_size=6),
    n_leads=st.integers(1, 60),
)
def test_weighted_by_capacity_follows_capacity(capacities: list[int], n_leads: int) -> None:
    reps = [Rep(f"r{i}", "sales", capacity_per_day=c) for i, c in enumerate(capacities)]
    state = RoutingState()
    cfg = config(Strategy.WEIGHTED_BY_CAPACITY)
    for i in range(min(n_leads, sum(capacities))):
        at = START + timedelta(hours=12, seconds=i)
        decision = route(cfg, reps, lead(i), state, at)
        assert decision.rep is not None
        state = advance(state, decision, at)
    # each rep's fill ratio differs from any other's by at most one lead's worth
    for a in reps:
        for b in reps:
            fa = assigned_today(a, state, at) / a.weight
            fb = assigned_today(b, state, at) / b.weight
            assert fa - fb <= 1 / b.weight + 1 / a.weight + 1e-9


@settings(max_examples=100, deadline=None)
@given(reps=reps_strategy, at=st.integers(0, 3 * 24 * 60), owner_index=st.integers(0, 7))
def test_account_owner_stickiness(reps: list[Rep], at: int, owner_index: int) -> None:
    moment = START + timedelta(minutes=at)
    owner = reps[owner_index % len(reps)]
    state = RoutingState(account_owner=owner.key)
    decision = route(config(Strategy.ROUND_ROBIN), reps, lead(1), state, moment)
    available = (
        owner.active
        and not any(a <= moment < b for a, b in owner.out_of_office)
        and (owner.capacity_per_day is None or owner.capacity_per_day > 0)
    )
    if available:
        assert decision.rep == owner.key and decision.strategy == "account_owner"
    else:
        assert decision.rep != owner.key


def test_stickiness_can_be_switched_off() -> None:
    reps = [Rep("a", "sales"), Rep("b", "sales")]
    state = RoutingState(account_owner="b")
    decision = route(config(Strategy.ROUND_ROBIN, account_owner=False), reps, lead(1), state, START)
    assert decision.rep == "a" and decision.strategy == "round_robin"


def test_territory_and_fallback() -> None:
    reps = [Rep("uk", "sales", territories=("GB",)), Rep("dach", "sales", territories=("dach",))]
    cfg = RoutingConfig(
        (RoutingRule("t", "sales", territory=True),),
        "queue",
        {"dach": frozenset({"DE", "AT", "CH"})},
    )
    assert route(cfg, reps, lead(1, country="AT"), RoutingState(), START).rep == "dach"
    assert route(cfg, reps, lead(1, country="gb"), RoutingState(), START).rep == "uk"
    nobody = route(cfg, reps, lead(1, country="US"), RoutingState(), START)
    assert nobody.rep is None and nobody.team == "queue"
    assert ("uk", "outside_territory") in nobody.skipped


def test_on_shift_reps_first_and_require_on_shift() -> None:
    day = Rep("day", "sales", working_hours=NINE_TO_FIVE)
    night = Rep("night", "sales", working_hours=None)
    saturday = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    monday_10 = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
    state = RoutingState(last_assigned={"sales": "night"})  # round-robin would pick "day" next
    assert (
        route(config(Strategy.ROUND_ROBIN), [day, night], lead(1), state, saturday).rep == "night"
    )
    assert route(config(Strategy.ROUND_ROBIN), [day, night], lead(1), state, monday_10).rep == "day"
    strict = RoutingConfig((RoutingRule("s", "sales", require_on_shift=True),), "queue")
    assert route(strict, [day], lead(1), RoutingState(), saturday).rep is None


def test_rules_match_in_order_on_type_and_traits() -> None:
    from mqlengine.domain.conditions import Compare, Op, Subject

    big = Compare(Subject.TRAIT, "company.employees", Op.GTE, 1000.0)
    cfg = RoutingConfig(
        (
            RoutingRule("ent", "enterprise", mql_types=("hand_raiser",), when=big),
            RoutingRule("rest", "smb"),
        ),
        "queue",
    )
    reps = [Rep("e", "enterprise"), Rep("s", "smb")]
    assert route(cfg, reps, lead(1, company={"employees": 5000}), RoutingState(), START).rep == "e"
    assert route(cfg, reps, lead(1), RoutingState(), START).rep == "s"
    other = Lead(2, "engagement", {"company": {"employees": 5000}})
    assert route(cfg, reps, other, RoutingState(), START).rule_id == "rest"


def test_least_loaded_and_fairness_index() -> None:
    reps = [Rep("a", "sales"), Rep("b", "sales")]
    state = RoutingState(open_load={"a": 3, "b": 1})
    assert route(config(Strategy.LEAST_LOADED), reps, lead(1), state, START).rep == "b"
    assert fairness({"a": 5, "b": 5}) == 1.0
    assert fairness({"a": 10, "b": 0}) == 0.5
    assert fairness({"a": 4, "b": 2}, {"a": 2.0, "b": 1.0}) == 1.0
