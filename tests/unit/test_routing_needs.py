"""``state_needs`` names all that ``route`` reads: a state cut down to it decides alike —
over random teams, rules, availabilities, loads, cursors and account owners."""

from __future__ import annotations

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
    day_start,
    local_midnight,
    match_rule,
    route,
    state_needs,
)

NOW = datetime(2026, 11, 17, 15, 0, tzinfo=UTC)  # a Tuesday
ZONES = ("UTC", "America/New_York", "Europe/Berlin", "Asia/Tokyo", "Australia/Sydney")
KEYS = [f"r{i}" for i in range(8)]
TEAMS = ("a", "b")
NINE_TO_FIVE = BusinessCalendar(
    "h", "UTC", tuple(((540, 1020),) if d < 5 else () for d in range(7))
)

reps_strategy = st.lists(
    st.builds(
        Rep,
        key=st.sampled_from(KEYS),
        team=st.sampled_from(TEAMS),
        timezone=st.sampled_from(ZONES),
        capacity_per_day=st.one_of(st.none(), st.integers(0, 4)),
        working_hours=st.one_of(st.none(), st.just(NINE_TO_FIVE)),
        out_of_office=st.lists(
            st.tuples(st.integers(-48, 24), st.integers(1, 48)).map(
                lambda t: (NOW + timedelta(hours=t[0]), NOW + timedelta(hours=t[0] + t[1]))
            ),
            max_size=1,
        ).map(tuple),
        territories=st.lists(st.sampled_from(["DE", "US", "emea"]), max_size=2).map(tuple),
        active=st.booleans(),
    ),
    min_size=1,
    max_size=8,
    unique_by=lambda r: r.key,
)
rules_strategy = st.lists(
    st.builds(
        RoutingRule,
        id=st.sampled_from(["x", "y", "z"]),
        team=st.sampled_from(TEAMS),
        strategy=st.sampled_from(list(Strategy)),
        mql_types=st.sampled_from([(), ("hand_raiser",), ("engagement",)]),
        account_owner=st.booleans(),
        territory=st.booleans(),
        require_on_shift=st.booleans(),
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda r: r.id,
)
# minutes before "now" of each rep's recent assignments (today's and yesterday's)
recent_strategy = st.dictionaries(
    st.sampled_from(KEYS), st.lists(st.integers(0, 36 * 60), max_size=6), max_size=8
)
state_strategy = st.builds(
    RoutingState,
    open_load=st.dictionaries(st.sampled_from(KEYS), st.integers(0, 9)),
    last_assigned=st.dictionaries(st.sampled_from(TEAMS), st.sampled_from(KEYS)),
    account_owner=st.one_of(st.none(), st.sampled_from([*KEYS, "gone"])),
)


def cut(state: RoutingState, rule: RoutingRule | None, reps: list[Rep]) -> RoutingState:
    """Only what ``state_needs`` names (and the owner's assignments, which a shell reads
    with the owner)."""
    if rule is None:
        return RoutingState()
    needs = state_needs(rule, reps)
    owner = state.account_owner if needs.account_owner else None
    keep = set(needs.recent_for) | ({owner} if owner else set())
    return RoutingState(
        {k: v for k, v in state.recent_assignments.items() if k in keep},
        {k: v for k, v in state.open_load.items() if k in needs.open_load_for},
        {t: k for t, k in state.last_assigned.items() if t == needs.team},
        owner,
    )


@settings(max_examples=600, deadline=None)
@given(
    reps=reps_strategy,
    rules=rules_strategy,
    base=state_strategy,
    recent=recent_strategy,
    mql_type=st.sampled_from(["hand_raiser", "engagement"]),
    country=st.sampled_from(["DE", "US", "FR", None]),
    exclude=st.frozensets(st.sampled_from(KEYS), max_size=2),
    only=st.sampled_from([None, "x", "y"]),
    minutes=st.integers(0, 3 * 24 * 60),
)
def test_a_state_cut_to_the_needs_decides_alike(
    reps: list[Rep],
    rules: list[RoutingRule],
    base: RoutingState,
    recent: dict[str, list[int]],
    mql_type: str,
    country: str | None,
    exclude: frozenset[str],
    only: str | None,
    minutes: int,
) -> None:
    config = RoutingConfig(tuple(rules), "queue", {"emea": frozenset({"DE", "FR"})})
    lead = Lead(1, mql_type, {"country": country} if country else {})
    now = NOW + timedelta(minutes=minutes)
    state = RoutingState(
        {k: tuple(now - timedelta(minutes=m) for m in v) for k, v in recent.items()},
        base.open_load,
        base.last_assigned,
        base.account_owner,
    )
    rule = match_rule(config, lead, now, only_rule=only)
    full = route(config, reps, lead, state, now, exclude=exclude, only_rule=only)
    cut_down = route(
        config, reps, lead, cut(state, rule, reps), now, exclude=exclude, only_rule=only
    )
    assert cut_down == full
    assert full.rule_id == (rule.id if rule is not None else None)


def test_needs_by_strategy() -> None:
    reps = [
        Rep("a1", "a", capacity_per_day=3),
        Rep("a2", "a"),
        Rep("b1", "b", capacity_per_day=2),
    ]
    rr = state_needs(RoutingRule("x", "a", Strategy.ROUND_ROBIN, account_owner=False), reps)
    assert (rr.team, rr.recent_for, rr.open_load_for, rr.account_owner) == (
        "a",
        frozenset({"a1"}),
        frozenset(),
        False,
    )
    weighted = state_needs(RoutingRule("x", "a", Strategy.WEIGHTED_BY_CAPACITY), reps)
    assert weighted.recent_for == {"a1", "a2"} and weighted.account_owner
    least = state_needs(RoutingRule("x", "a", Strategy.LEAST_LOADED), reps)
    assert least.open_load_for == {"a1", "a2"} and least.recent_for == {"a1"}


def test_day_start_is_the_local_midnight() -> None:
    rep = Rep("r", "a", timezone="America/New_York")
    assert day_start("America/New_York", NOW) == local_midnight(rep, NOW)
    assert day_start("America/New_York", NOW) == datetime(2026, 11, 17, 5, 0, tzinfo=UTC)
    assert day_start("Asia/Tokyo", NOW) == datetime(2026, 11, 17, 15, 0, tzinfo=UTC)
