"""What the API promises in its OpenAPI schema, declared once: the error body, the statuses
each kind of route can answer, and bounded types for ids and times.

Every error is JSON ``{code, message, details}`` (:class:`ErrorOut`). A router declares the
statuses it can answer with :func:`errors` (``APIRouter(responses=errors(401, 404, …))``),
so the schema lists each one with the error model; ``422`` replaces FastAPI's default
validation body, which this API never sends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import AfterValidator, BaseModel

from mqlengine.domain.bounds import BIGINT_MAX, OutOfBounds, utc_moment


class ErrorOut(BaseModel):
    """The body of every error answer."""

    code: str
    message: str
    details: Any = None


DESCRIPTIONS: dict[int, str] = {
    400: "Invalid input (a parameter or field says what is wrong in `message`)",
    401: "Missing or unknown key",
    403: "The key may not do this",
    404: "No such object or route",
    405: "Method not allowed",
    409: "Conflicts with the current state (e.g. an illegal stage change)",
    413: "Request body too large",
    422: "The request does not match this schema (`details` lists where)",
    429: "Rate limited (see Retry-After)",
    503: "Temporarily unavailable: the database or the writer (see Retry-After)",
}

# Statuses every route can answer: a body or parameter outside the schema, a database
# that cannot serve now.
COMMON = (422, 503)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` table for these statuses (plus :data:`COMMON`)."""
    return {
        status: {"model": ErrorOut, "description": DESCRIPTIONS[status]}
        for status in sorted({*statuses, *COMMON})
    }


def error_schemas(*statuses: int) -> dict[str, dict[str, Any]]:
    """The same table as raw OpenAPI (for routes documented with ``openapi_extra``)."""
    reference = {"$ref": "#/components/schemas/ErrorOut"}
    return {
        str(status): {
            "description": DESCRIPTIONS[status],
            "content": {"application/json": {"schema": reference}},
        }
        for status in sorted({*statuses, *COMMON})
    }


def _moment(value: datetime) -> datetime:
    try:
        moment = utc_moment(value)
    except OutOfBounds as error:
        raise ValueError(str(error)) from None
    return value if value.tzinfo is None else moment


# A date-time the engine can store and compute with: in UTC when it has an offset, left
# naive otherwise (so the service can say a time zone is needed).
Moment = Annotated[datetime, AfterValidator(_moment)]
# A row id: a positive integer that fits BIGINT.
RowId = Annotated[int, Path(ge=1, le=BIGINT_MAX)]
