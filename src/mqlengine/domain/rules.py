"""The compiled MQL definition: frozen values the rest of the engine trusts.

`definition/` turns a user's ``mql.yaml`` into these; nothing else builds them, so every
invariant checked there (unique rule ids, valid regexes, sane thresholds) holds here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from mqlengine.domain.conditions import Condition
from mqlengine.domain.consent import ConsentPolicy
from mqlengine.domain.routing import RoutingConfig
from mqlengine.domain.sla import SlaConfig


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
    # with a live model, an MQL needs at least this likelihood (None: the model never gates)
    min_likelihood: float | None = None


class CheckAction(StrEnum):
    """What the ingest validate step does when a check fires."""

    REJECT = "reject"  # the message is refused (reported per index, quarantined)
    FLAG = "flag"  # stored; the flag is visible on the person and usable in exclusions
    IGNORE = "ignore"  # stored; the check leaves no trace


# Checks the validate step knows, with what they do unless the definition says otherwise.
VALIDATION_CHECKS: dict[str, CheckAction] = {
    "invalid_email": CheckAction.FLAG,
    "disposable": CheckAction.FLAG,
    "free_mail": CheckAction.FLAG,
    "role_account": CheckAction.FLAG,
    "edu_domain": CheckAction.FLAG,
    "bot": CheckAction.FLAG,
    "honeypot": CheckAction.FLAG,
    "too_fast": CheckAction.FLAG,
}


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """Per check: reject, flag or ignore; plus the form checks' parameters."""

    checks: tuple[tuple[str, CheckAction], ...] = tuple(VALIDATION_CHECKS.items())
    honeypot_fields: tuple[str, ...] = ("website_url_confirm", "hp", "honeypot")
    min_form_seconds: float = 3.0

    def action(self, check: str) -> CheckAction:
        for name, action in self.checks:
            if name == check:
                return action
        return VALIDATION_CHECKS.get(check, CheckAction.FLAG)

    def checks_with(self, action: CheckAction) -> frozenset[str]:
        return frozenset(name for name in VALIDATION_CHECKS if self.action(name) is action)


@dataclass(frozen=True, slots=True)
class IdentityPolicy:
    """How identities are normalised before they are compared."""

    gmail_normalize: bool = False  # fold Gmail dots/+tags and provider +tags


STAGE_ORDER = ("lead", "mql", "sal", "sql", "opportunity", "customer")


@dataclass(frozen=True, slots=True)
class PredictConfig:
    """The ``predict:`` section: what the likelihood predicts and how it is watched.

    The label: a lead that entered ``label_from`` (lead: first seen; mql: became an MQL)
    is positive when it reached ``label_reached`` or a later stage of :data:`STAGE_ORDER`
    within ``within_days``; a lead whose window has not closed yet is not labelled."""

    label_reached: str = "sql"
    within_days: float = 90.0
    label_from: str = "mql"
    min_rows: int = 200
    traits: tuple[str, ...] = ()  # empty: the traits the fit rules and gates read
    shadow: bool = False  # the newest candidate model scores beside the live one
    drift_warn_psi: float = 0.2
    drift_window_days: int = 30

    def reached_stages(self) -> tuple[str, ...]:
        """The stages that count as having reached ``label_reached``."""
        return STAGE_ORDER[STAGE_ORDER.index(self.label_reached) :]


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
    routing: RoutingConfig | None = None
    sla: SlaConfig | None = None
    validation: ValidationPolicy = field(default_factory=ValidationPolicy)
    identity: IdentityPolicy = field(default_factory=IdentityPolicy)
    consent: ConsentPolicy = field(default_factory=ConsentPolicy)
    predict: PredictConfig = field(default_factory=PredictConfig)

    def intent_half_life(self, rule: IntentRule) -> float:
        return self.half_life_days if rule.half_life_days is None else rule.half_life_days

    def reason_codes(self, action: str) -> tuple[str, ...]:
        return self.reasons.get(action, ())
