"""The compiled MQL definition: frozen values the rest of the engine trusts.

`definition/` turns a user's ``mql.yaml`` into these; nothing else builds them, so every
invariant checked there (unique rule ids, valid regexes, sane thresholds) holds here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from mqlengine.domain.conditions import Condition


class Repeat(StrEnum):
    EVERY_TIME = "every_time"
    ONCE = "once"
    ONCE_PER_DAY = "once_per_day"


@dataclass(frozen=True, slots=True)
class FitRule:
    id: str
    when: Condition
    points: float
    description: str = ""


@dataclass(frozen=True, slots=True)
class IntentRule:
    id: str
    event: str
    points: float
    where: Condition | None = None
    repeat: Repeat = Repeat.EVERY_TIME
    cap: float | None = None
    half_life_days: float | None = None  # None: the definition's default; 0: no decay
    within_days: float | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class Gate:
    """An exclusion or a requirement: a named condition."""

    id: str
    when: Condition
    description: str = ""


@dataclass(frozen=True, slots=True)
class QualifyPath:
    type: str
    when: Condition
    bypass_threshold: bool = False


@dataclass(frozen=True, slots=True)
class Qualify:
    threshold: float
    min_fit: float = 0.0
    hysteresis: float = 0.0
    total_cap: float | None = None
    recycle_cooldown_days: float = 0.0
    paths: tuple[QualifyPath, ...] = ()
    default_type: str = "score"


@dataclass(frozen=True, slots=True)
class Definition:
    version: str
    description: str
    content_hash: str
    half_life_days: float
    fit_rules: tuple[FitRule, ...]
    fit_cap: float | None
    intent_rules: tuple[IntentRule, ...]
    intent_cap: float | None
    exclusions: tuple[Gate, ...]
    requirements: tuple[Gate, ...]
    qualify: Qualify
    stages: tuple[str, ...]
    reasons: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def intent_half_life(self, rule: IntentRule) -> float:
        return self.half_life_days if rule.half_life_days is None else rule.half_life_days

    def reason_codes(self, action: str) -> tuple[str, ...]:
        return self.reasons.get(action, ())
