"""The strict schema of ``mql.yaml`` (pydantic). Unknown keys are errors, not surprises."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
OPERATORS = (
    "equals",
    "not_equals",
    "in",
    "not_in",
    "contains",
    "not_contains",
    "regex",
    "between",
    "gt",
    "gte",
    "lt",
    "lte",
    "exists",
)
NULLABLE_OPERATORS = ("equals", "not_equals")  # comparing with null is a question
SUBJECTS = ("trait", "property")
SPECIALS = (
    "rule",
    "event",
    "fit_at_least",
    "intent_at_least",
    "total_at_least",
    "likelihood_at_least",
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class LeafCondition(Strict):
    """One comparison (``{trait: x, in: [..]}``) or one special test (``{rule: id}``)."""

    trait: str | None = None
    property: str | None = None
    rule: str | None = None
    event: str | None = None
    within_days: float | None = Field(default=None, gt=0)
    fit_at_least: float | None = None
    intent_at_least: float | None = None
    total_at_least: float | None = None
    likelihood_at_least: float | None = Field(default=None, ge=0, le=1)
    equals: Any = None
    not_equals: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    not_in: list[Any] | None = None
    contains: Any = None
    not_contains: Any = None
    regex: str | None = None
    between: tuple[float, float] | None = None
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    exists: bool | None = None

    @model_validator(mode="after")
    def _one_subject_one_operator(self) -> LeafCondition:
        fields = self.model_fields_set
        subjects = [s for s in SUBJECTS if s in fields]
        specials = [s for s in SPECIALS if s in fields]
        operators = [o for o in OPERATORS if (o if o != "in" else "in_") in fields]
        if len(subjects) + len(specials) != 1:
            raise ValueError(
                "a condition names exactly one subject: trait, property, rule, event, "
                "fit_at_least, intent_at_least, total_at_least or likelihood_at_least"
            )
        if subjects:
            if len(operators) != 1:
                raise ValueError(
                    f"a {subjects[0]} condition needs exactly one operator "
                    f"(one of: {', '.join(OPERATORS)}), got {len(operators)}"
                )
            if "within_days" in fields:
                raise ValueError("within_days goes with event conditions only")
        elif operators:
            raise ValueError(f"'{specials[0]}' takes no operator; remove '{operators[0]}'")
        if "within_days" in fields and "event" not in fields:
            raise ValueError("within_days goes with event conditions only")
        named = (*subjects, *specials, *(o for o in operators if o not in NULLABLE_OPERATORS))
        for name in named:
            if getattr(self, "in_" if name == "in" else name) is None:
                raise ValueError(f"'{name}' needs a value, got null")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as error:
                raise ValueError(f"invalid regular expression {self.regex!r}: {error}") from None
        if self.between is not None and self.between[0] > self.between[1]:
            raise ValueError("between needs [low, high] with low <= high")
        return self

    def subject_key(self) -> str:
        for name in (*SUBJECTS, *SPECIALS):
            if name in self.model_fields_set:
                return name
        raise AssertionError("validated condition without subject")

    def operator_key(self) -> str:
        for name in OPERATORS:
            if (name if name != "in" else "in_") in self.model_fields_set:
                return name
        raise AssertionError("validated comparison without operator")


class AllCondition(Strict):
    all: list[Condition] = Field(min_length=1)


class AnyCondition(Strict):
    any: list[Condition] = Field(min_length=1)


class NotCondition(Strict):
    not_: Condition = Field(alias="not")


def _condition_kind(value: Any) -> str:
    if isinstance(value, dict):
        for key in ("all", "any", "not"):
            if key in value:
                return key
        return "leaf"
    if isinstance(value, BaseModel):
        return {AllCondition: "all", AnyCondition: "any", NotCondition: "not"}.get(
            type(value), "leaf"
        )
    return "leaf"


Condition = Annotated[
    Annotated[AllCondition, Tag("all")]
    | Annotated[AnyCondition, Tag("any")]
    | Annotated[NotCondition, Tag("not")]
    | Annotated[LeafCondition, Tag("leaf")],
    Discriminator(_condition_kind),
]
AllCondition.model_rebuild()
AnyCondition.model_rebuild()
NotCondition.model_rebuild()


class DecaySpec(Strict):
    half_life_days: float = Field(default=30, ge=0)


class FitRuleSpec(Strict):
    id: Identifier
    when: Condition
    points: float
    description: str = ""


class IntentRuleSpec(Strict):
    id: Identifier
    event: str = Field(min_length=1)
    where: Condition | None = None
    points: float
    repeat: Literal["every_time", "once", "once_per_day"] = "every_time"
    cap: float | None = Field(default=None, gt=0)
    half_life_days: float | None = Field(default=None, ge=0)
    within_days: float | None = Field(default=None, gt=0)
    description: str = ""


class FitSpec(Strict):
    cap: float | None = Field(default=None, gt=0)
    rules: list[FitRuleSpec] = Field(default_factory=list)


class IntentSpec(Strict):
    cap: float | None = Field(default=None, gt=0)
    rules: list[IntentRuleSpec] = Field(default_factory=list)


class GateSpec(Strict):
    id: Identifier
    when: Condition
    description: str = ""


class PathSpec(Strict):
    type: Identifier
    when: Condition
    bypass_threshold: bool = False


class QualifySpec(Strict):
    threshold: float
    min_fit: float = 0
    hysteresis: float = Field(default=0, ge=0)
    total_cap: float | None = Field(default=None, gt=0)
    recycle_cooldown_days: float = Field(default=0, ge=0)
    paths: list[PathSpec] = Field(default_factory=list)
    default_type: Identifier = "score"
    min_likelihood: float | None = Field(default=None, ge=0, le=1)


STAGES = ("lead", "mql", "sal", "sql", "opportunity", "customer", "nurture", "disqualified")


class ReasonsSpec(Strict):
    reject: list[Identifier] = Field(default_factory=list)
    recycle: list[Identifier] = Field(default_factory=list)
    disqualify: list[Identifier] = Field(default_factory=list)
    lost: list[Identifier] = Field(default_factory=list)


Duration = Annotated[str, Field(pattern=r"^\d+(\.\d+)?\s*(s|m|h|d|w)$")]


# --- handoff: routing and SLA -------------------------------------------------------------

Strategy = Literal["round_robin", "weighted_by_capacity", "least_loaded"]


class RoutingRuleSpec(Strict):
    """First match wins: ``mql_types`` (any of) and ``when`` (traits, rules, scores)."""

    id: Identifier
    team: Identifier
    strategy: Strategy = "round_robin"
    mql_types: list[Identifier] = Field(default_factory=list)
    when: Condition | None = None
    account_owner: bool = True  # stickiness: the account's owner first, if available
    territory: bool = False  # only reps whose territory covers the lead's country
    require_on_shift: bool = False  # nobody on shift → fallback queue
    description: str = ""


class RoutingSpec(Strict):
    rules: list[RoutingRuleSpec] = Field(default_factory=list)
    fallback: Identifier
    regions: dict[Identifier, list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]]] = Field(
        default_factory=dict
    )


EscalationName = Literal["notify_manager", "reassign"]


def _notify_manager() -> list[EscalationName]:
    return ["notify_manager"]


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun", "weekdays", "every_day"]


class CalendarSpec(Strict):
    timezone: str = Field(min_length=1)
    hours: dict[Weekday, list[str]] = Field(min_length=1)
    holidays: list[date] = Field(default_factory=list)


class SlaPolicySpec(Strict):
    id: Identifier
    first_touch_within: Duration
    calendar: Identifier = "always"
    mql_types: list[Identifier] = Field(default_factory=list)
    when: Condition | None = None
    escalate: list[EscalationName] = Field(default_factory=lambda: _notify_manager())
    max_reassignments: int = Field(default=1, ge=0, le=10)


class SlaSpec(Strict):
    calendars: dict[Identifier, CalendarSpec] = Field(default_factory=dict)
    policies: list[SlaPolicySpec] = Field(default_factory=list)


class TestEventSpec(Strict):
    event: str = Field(min_length=1)
    properties: dict[str, Any] = Field(default_factory=dict)
    ago: Duration = "0s"


class ExpectSpec(Strict):
    stage: Literal["lead", "mql"] | None = None
    type: str | None = None
    total_between: tuple[float, float] | None = None
    fit_between: tuple[float, float] | None = None
    intent_between: tuple[float, float] | None = None
    excluded_because: list[str] | None = None
    missing: list[str] | None = None
    rules_include: list[str] | None = None


class DefinitionTestSpec(Strict):
    name: str = Field(min_length=1)
    traits: dict[str, Any] = Field(default_factory=dict)
    events: list[TestEventSpec] = Field(default_factory=list)
    expect: ExpectSpec


CheckActionName = Literal["reject", "flag", "ignore"]


class ValidationSpec(Strict):
    """Per check of the ingest validate step: reject the message, flag the person, or ignore."""

    invalid_email: CheckActionName = "flag"
    disposable: CheckActionName = "flag"
    free_mail: CheckActionName = "flag"
    role_account: CheckActionName = "flag"
    edu_domain: CheckActionName = "flag"
    bot: CheckActionName = "flag"
    honeypot: CheckActionName = "flag"
    too_fast: CheckActionName = "flag"
    honeypot_fields: list[str] = Field(
        default_factory=lambda: ["website_url_confirm", "hp", "honeypot"]
    )
    min_form_seconds: float = Field(default=3.0, ge=0)


class IdentitySpec(Strict):
    gmail_normalize: bool = False


class ConsentSpec(Strict):
    """Where consent is read, and which privacy signals of a request are honoured."""

    tracking_trait: str = Field(default="consent.tracking", min_length=1)
    marketing_trait: str = Field(default="consent.marketing", min_length=1)
    tracking_categories: list[str] = Field(default_factory=lambda: ["analytics"])
    marketing_categories: list[str] = Field(default_factory=lambda: ["marketing", "advertising"])
    honor_do_not_track: bool = False
    honor_global_privacy_control: bool = False
    keep_properties: list[str] = Field(default_factory=lambda: ["path"])


class HealthSpec(Strict):
    """Rules of thumb for the funnel's health alerts (``mql report health``, dashboard)."""

    window_days: int = Field(default=90, ge=1, le=3650)
    min_mql_to_sql: float = Field(default=0.20, ge=0, le=1)
    min_acceptance: float = Field(default=0.70, ge=0, le=1)
    min_sla_compliance: float = Field(default=0.90, ge=0, le=1)
    speed_to_lead_hours: float = Field(default=24, gt=0)
    min_mqls: int = Field(default=20, ge=0)


LabelStage = Literal["mql", "sal", "sql", "opportunity", "customer"]


class LabelSpec(Strict):
    """The outcome the likelihood predicts: ``reached`` (or a later stage) within
    ``within_days`` of entering ``from`` (lead: first seen; mql: became an MQL)."""

    reached: LabelStage = "sql"
    within_days: float = Field(default=90, gt=0, le=3650)
    from_: Literal["lead", "mql"] = Field(default="mql", alias="from")


class PredictSpec(Strict):
    """The predictive likelihood learned from the store's own outcomes (``mql model``)."""

    label: LabelSpec = Field(default_factory=LabelSpec)
    min_rows: int = Field(default=200, ge=20)
    traits: list[str] = Field(default_factory=list)
    shadow: bool = False
    drift_warn_psi: float = Field(default=0.2, gt=0)
    drift_window_days: int = Field(default=30, ge=1, le=3650)

    @model_validator(mode="after")
    def _label_after_start(self) -> PredictSpec:
        if self.label.from_ == "mql" and self.label.reached == "mql":
            raise ValueError("label.reached must be a stage after label.from (mql)")
        return self


class DefinitionSpec(Strict):
    version: str = Field(min_length=1, max_length=100)
    description: str = ""
    decay: DecaySpec = Field(default_factory=DecaySpec)
    fit: FitSpec = Field(default_factory=FitSpec)
    intent: IntentSpec = Field(default_factory=IntentSpec)
    exclude: list[GateSpec] = Field(default_factory=list)
    require: list[GateSpec] = Field(default_factory=list)
    qualify: QualifySpec
    stages: list[Literal[STAGES]] = Field(default_factory=lambda: list(STAGES))  # type: ignore[valid-type]
    reasons: ReasonsSpec = Field(default_factory=ReasonsSpec)
    routing: RoutingSpec | None = None
    sla: SlaSpec | None = None
    tests: list[DefinitionTestSpec] = Field(default_factory=list)
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    identity: IdentitySpec = Field(default_factory=IdentitySpec)
    consent: ConsentSpec = Field(default_factory=ConsentSpec)
    health: HealthSpec = Field(default_factory=HealthSpec)
    predict: PredictSpec = Field(default_factory=PredictSpec)

    @field_validator("stages")
    @classmethod
    def _core_stages(cls, stages: list[str]) -> list[str]:
        missing = [s for s in ("lead", "mql") if s not in stages]
        if missing:
            raise ValueError(f"stages must include {', '.join(missing)}")
        return stages
