from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from mqlengine.domain.lifecycle import (
    TRANSITIONS,
    Action,
    Refusal,
    Stage,
    StageChange,
    check_transition,
    decide_on_feedback,
    decide_on_score,
)
from mqlengine.domain.scoring import ScoreCard

NOW = datetime(2026, 11, 20, tzinfo=UTC)
CARD = ScoreCard(
    definition_version="v1",
    as_of=NOW,
    fit=30,
    intent=50,
    total=80,
    fit_raw=30,
    intent_raw=50,
    total_raw=80,
    contributions=(),
    excluded_because=(),
    missing_requirements=(),
    meets_threshold=True,
    qualifies=True,
    retains=True,
    mql_type="engagement",
    matched_path=None,
    threshold=70,
    min_fit=20,
    distance_to_threshold=0,
)
LOW = replace(CARD, total=55, qualifies=False, retains=False, mql_type=None, meets_threshold=False)


def test_lead_qualifies_and_mql_demotes_below_band() -> None:
    change = decide_on_score(Stage.LEAD, CARD, NOW)
    assert isinstance(change, StageChange)
    assert (change.to_stage, change.mql_type, change.definition_version) == (
        Stage.MQL,
        "engagement",
        "v1",
    )
    assert decide_on_score(Stage.MQL, CARD, NOW) is None
    down = decide_on_score(Stage.MQL, LOW, NOW)
    assert (
        down is not None and down.to_stage is Stage.LEAD and down.reason == "score_below_hysteresis"
    )
    excluded = replace(LOW, excluded_because=("student",))
    assert decide_on_score(Stage.MQL, excluded, NOW).reason == "excluded:student"  # type: ignore[union-attr]


def test_sales_owned_stages_are_not_moved_by_score() -> None:
    for stage in (Stage.SAL, Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER, Stage.DISQUALIFIED):
        assert decide_on_score(stage, CARD, NOW) is None
        assert decide_on_score(stage, LOW, NOW) is None


def test_recycled_lead_reactivates_after_cooldown() -> None:
    recycled = NOW - timedelta(days=10)
    assert decide_on_score(Stage.NURTURE, CARD, NOW, recycled_at=recycled, cooldown_days=30) is None
    change = decide_on_score(Stage.NURTURE, CARD, NOW, recycled_at=recycled, cooldown_days=5)
    assert change is not None and change.reactivated and change.to_stage is Stage.MQL


def test_feedback_validation() -> None:
    codes = ("not_now", "timing")
    ok = decide_on_feedback(
        Stage.MQL,
        Action.RECYCLE,
        NOW,
        actor="ann",
        reason="timing",
        reason_codes=codes,
        definition_version="v1",
    )
    assert isinstance(ok, StageChange) and ok.to_stage is Stage.NURTURE and ok.actor == "ann"
    missing = decide_on_feedback(
        Stage.MQL,
        Action.RECYCLE,
        NOW,
        actor="ann",
        reason=None,
        reason_codes=codes,
        definition_version="v1",
    )
    assert isinstance(missing, Refusal) and missing.code == "reason_required"
    unknown = decide_on_feedback(
        Stage.MQL,
        Action.RECYCLE,
        NOW,
        actor="ann",
        reason="bored",
        reason_codes=codes,
        definition_version="v1",
    )
    assert isinstance(unknown, Refusal) and "not_now" in unknown.message
    illegal = decide_on_feedback(
        Stage.CUSTOMER,
        Action.ACCEPT,
        NOW,
        actor="ann",
        reason=None,
        reason_codes=(),
        definition_version="v1",
    )
    assert isinstance(illegal, Refusal) and illegal.code == "illegal_transition"
    touch = decide_on_feedback(
        Stage.MQL,
        Action.TOUCH,
        NOW,
        actor="ann",
        reason=None,
        reason_codes=(),
        definition_version="v1",
    )
    assert touch is None
    convert = decide_on_feedback(
        Stage.SQL,
        Action.CONVERT,
        NOW,
        actor="ann",
        reason=None,
        reason_codes=(),
        definition_version="v1",
    )
    assert isinstance(convert, StageChange) and convert.to_stage is Stage.OPPORTUNITY


def test_transition_table_is_closed_and_customer_is_terminal() -> None:
    assert set(TRANSITIONS) == set(Stage)
    assert TRANSITIONS[Stage.CUSTOMER] == frozenset()
    refusal = check_transition(Stage.LEAD, Stage.CUSTOMER)
    assert refusal is not None and "allowed from lead" in refusal.message
