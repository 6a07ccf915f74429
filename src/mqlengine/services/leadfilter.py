"""The lead list's filters and pages, apart from its queries
(:mod:`mqlengine.services.leads`): what every shell validates before it asks the store,
and what an empty store answers without asking it (``mql leads`` then loads no
SQLAlchemy)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticError

from mqlengine.errors import ValidationError

STAGES = ("lead", "mql", "sal", "sql", "opportunity", "customer", "nurture", "disqualified")
QUEUE = "queue"  # owner=queue: assigned to a team's queue, no rep
UNASSIGNED = "-"  # owner=-: no rep (a team's queue or nobody)
NO_CHANNEL = "(none)"  # channel=(none): persons without a channel
PAGE_SIZES = (25, 50, 100, 200)
COUNT_CAP = 10_000  # the Leads page says "10,000+" rather than count a broad filter's rows


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _problems(error: PydanticError) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in e['loc']) or 'filters'}: "
        f"{e['msg'].removeprefix('Value error, ')}"
        for e in error.errors()
    ]


class LeadFilter(BaseModel):
    """Which leads a list shows; every shell's filters (blanks mean "any").

    ``owner``: a rep's key or e-mail, ``queue`` (a team's queue, no rep) or ``-`` (no rep);
    ``channel``: ``(none)`` for persons without one; ``since``: stage changed at or after;
    ``sla``: ``breached`` (touched after the deadline, or untouched past it), ``due_soon``
    (untouched, the deadline within an hour), ``on_time``, ``due`` (untouched, the deadline
    not passed) or ``none`` (no deadline); ``created_*``/``mql_*``: from (inclusive) and to
    (exclusive). :meth:`parse` turns bad values into one :class:`ValidationError`."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, frozen=True)

    stage: str | None = Field(default=None, max_length=20)
    since: datetime | None = None
    owner: str | None = Field(default=None, max_length=320)
    team: str | None = Field(default=None, max_length=64)
    channel: str | None = Field(default=None, max_length=64)
    mql_type: str | None = Field(default=None, max_length=64)
    score_min: float | None = Field(default=None, ge=-1e9, le=1e9)
    score_max: float | None = Field(default=None, ge=-1e9, le=1e9)
    sla: Literal["on_time", "due_soon", "breached", "due", "none"] | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    mql_from: datetime | None = None
    mql_to: datetime | None = None

    _blanks = field_validator("*", mode="before")(_blank_to_none)

    @field_validator("stage")
    @classmethod
    def _known_stage(cls, value: str | None) -> str | None:
        if value is not None and value not in STAGES:
            raise ValueError(f"unknown stage '{value}' (use one of: {', '.join(STAGES)})")
        return value

    @field_validator("since", "created_from", "created_to", "mql_from", "mql_to")
    @classmethod
    def _zoned(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if not 1900 <= value.year < 9000:
            raise ValueError("must lie between 1900 and 9000")
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        for low, high in (
            ("score_min", "score_max"),
            ("created_from", "created_to"),
            ("mql_from", "mql_to"),
        ):
            a, b = getattr(self, low), getattr(self, high)
            if a is not None and b is not None and a > b:
                raise ValueError(f"{low} must not be after {high}")
        return self

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> Self:
        """From query parameters or options; a bad one is a :class:`ValidationError`
        naming it."""
        try:
            return cls.model_validate(params)
        except PydanticError as error:
            problems = _problems(error)
            raise ValidationError(
                "bad lead filter: " + "; ".join(problems), details={"problems": problems}
            ) from None

    def query(self) -> dict[str, str]:
        """The non-default parameters, for links (pages, sorting, export)."""
        out: dict[str, str] = {}
        for name, value in self.model_dump().items():
            default = type(self).model_fields[name].default
            if value is None or value == default:
                continue
            out[name] = value.isoformat() if isinstance(value, datetime) else str(value)
        return out

    @property
    def deadline_only(self) -> bool:
        """Only leads with an SLA deadline match."""
        return self.sla is not None and self.sla != "none"


class LeadView(LeadFilter):
    """The dashboard's Leads page: the filters, a sort and one page of a given size."""

    sort: Literal[
        "total", "fit", "intent", "mql_at", "created", "stage_changed", "sla_due", "id"
    ] = "total"
    order: Literal["asc", "desc"] = "desc"
    page: int = Field(default=1, ge=1, le=1_000_000)
    size: int = 50

    @field_validator("size")
    @classmethod
    def _page_size(cls, value: int) -> int:
        if value not in PAGE_SIZES:
            raise ValueError(f"page size must be one of {', '.join(map(str, PAGE_SIZES))}")
        return value


@dataclass(frozen=True, slots=True)
class LeadPage:
    rows: list[dict[str, Any]]
    total: int  # how many leads match (at most ``count_cap`` + 1 when capped)
    offset: int
    limit: int
    more: bool = False  # leads follow this page
    capped: bool = False  # more than the count's cap match: ``total`` is the cap

    @property
    def cut(self) -> bool:
        """More leads match than this page shows."""
        return self.more

    # the Leads page's words
    @property
    def matching(self) -> int:
        return self.total

    @property
    def has_next(self) -> bool:
        return self.cut

    @property
    def size(self) -> int:
        return self.limit

    @property
    def page(self) -> int:
        return self.offset // self.limit + 1 if self.limit else 1

    @property
    def pages(self) -> int | None:
        return None if self.capped else max(1, -(-self.total // max(self.limit, 1)))
