"""What the API promises in its OpenAPI schema, declared once: the error body, the statuses
each kind of route can answer, and bounded types for ids and times.

Every error is JSON ``{code, message, details}`` (:class:`ErrorOut`). A router declares the
statuses it can answer with :func:`errors` (``APIRouter(responses=errors(401, 404, …))``),
so the schema lists each one with the error model; ``422`` replaces FastAPI's default
validation body, which this API never sends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import FastAPI, Path
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field
from starlette.routing import Match

from mqlengine.domain.bounds import BIGINT_MAX, OutOfBounds, utc_moment
from mqlengine.domain.wording import explain_invalid


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
    408: "The request's body did not arrive in time (the connection is closed)",
    409: "Conflicts with the current state (e.g. an illegal stage change)",
    413: "Request body too large",
    422: "The request does not match this schema (`details` lists where)",
    429: "Rate limited (see Retry-After)",
    503: "Temporarily unavailable: the database or the writer (see Retry-After)",
}

# Statuses every route can answer: a body that did not arrive in time, a body or parameter
# outside the schema, the key's or the address's rate limit, a database that cannot serve
# now.
COMMON = (408, 422, 429, 503)


def invalid_details(problems: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A 422's ``details``: where each problem is and what to do, in the engine's words
    (never pydantic's text or its links)."""
    return [
        {"loc": list(p.get("loc", ())), "message": explain_invalid(p), "type": p.get("type")}
        for p in problems
    ]


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


def _iso_text(value: Any) -> Any:
    if not isinstance(value, str | datetime):
        raise ValueError("expected an ISO 8601 date-time string")
    return value


def _moment(value: datetime) -> datetime:
    try:
        moment = utc_moment(value)
    except OutOfBounds as error:
        raise ValueError(str(error)) from None
    return value if value.tzinfo is None else moment


# The schema's statement of the range (1901 to 8999, so no offset can leave it); the
# validator holds the exact one, MIN_MOMENT to MAX_MOMENT.
MOMENT_PATTERN = r"^(190[1-9]|19[1-9][0-9]|[2-8][0-9]{3})-"

# A date-time the engine can store and compute with: in UTC when it has an offset, left
# naive otherwise (so the service can say a time zone is needed).
Moment = Annotated[
    datetime,
    BeforeValidator(_iso_text),
    AfterValidator(_moment),
    Field(json_schema_extra={"pattern": MOMENT_PATTERN}),
]
# A row id: a positive integer that fits BIGINT.
RowId = Annotated[int, Path(ge=1, le=BIGINT_MAX)]


# -- the ingest endpoints' bodies (validated by hand on the hot path, documented here) --
_ID = {"type": ["string", "number", "null"], "description": "text (numbers are taken as text)"}
_OBJECT = {"type": ["object", "null"], "additionalProperties": True}
_TIME = {
    "type": ["string", "null"],
    "pattern": MOMENT_PATTERN,
    "description": "ISO 8601, 1900-01-01 to 9000-01-01; a timestamp at most a day ahead",
}


def message_schema(kind: str | None) -> dict[str, Any]:
    """A Segment message as the API reads it. What the schema cannot say (a parseable time
    in range, nesting, the definition's validation checks) is refused per message with 400,
    or listed under ``rejected`` in a batch."""
    properties: dict[str, Any] = {
        "type": {"enum": ["identify", "track", "page", "screen", "group", "alias"]}
        if kind is None
        else {},
        "userId": _ID,
        "anonymousId": _ID,
        "messageId": _ID,
        "timestamp": _TIME,
        "sentAt": _TIME,
        "originalTimestamp": _TIME,
        "properties": _OBJECT,
        "traits": _OBJECT,
        "context": _OBJECT,
        "writeKey": {"description": "the write key, when not sent as Basic auth"},
    }
    required: list[str] = ["type"] if kind is None else []
    if kind == "track":
        properties["event"] = {"type": "string", "minLength": 1, "maxLength": 255}
        required.append("event")
    if kind == "group":
        properties["groupId"] = _ID
        required.append("groupId")
    if kind == "alias":
        properties["previousId"] = _ID
        required.extend(("previousId", "userId"))
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "anyOf": [{"required": ["userId"]}, {"required": ["anonymousId"]}],
        "additionalProperties": True,
    }


BATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "batch": {
            "type": "array",
            "description": "messages (see the single endpoints); an item that is not a "
            "valid message is listed under `rejected` while the others are stored",
            "items": {},
        },
        "sentAt": {
            "type": ["string", "null"],
            "description": "applies to every message without its own (checked with them)",
        },
        "context": _OBJECT,
        "writeKey": {"description": "the write key, when not sent as Basic auth"},
    },
    "required": ["batch"],
    "additionalProperties": True,
}

INGESTED: dict[str, Any] = {
    "type": "object",
    "properties": {
        "success": {"const": True},
        "rejected": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "messageId": {"type": ["string", "null"]},
                    "code": {"type": "string"},
                    "field": {"type": "string"},
                    "reason": {"type": "string"},
                },
                "required": ["index", "code", "field", "reason"],
            },
        },
    },
    "required": ["success"],
}


def ingest_doc(endpoint: str) -> dict[str, Any]:
    """``openapi_extra`` of one ingest endpoint: its body and every answer."""
    schema = BATCH_SCHEMA if endpoint == "batch" else message_schema(endpoint)
    return {
        "requestBody": {
            "required": True,
            "description": "A Segment spec message (or {batch: [...]} for /v1/batch). "
            "Authenticate with Basic auth (write key as user name) or 'writeKey'. "
            "Content-Encoding: gzip is accepted.",
            "content": {"application/json": {"schema": schema}},
        },
        "responses": {
            "200": {
                "description": "Committed; bad messages of a batch listed under `rejected`",
                "content": {"application/json": {"schema": INGESTED}},
            },
            **error_schemas(400, 401, 413, 429),
        },
        "security": SECURITY,
    }


SECURITY: list[dict[str, list[str]]] = [{"basic": []}, {"bearer": []}]
SECURITY_SCHEMES: dict[str, Any] = {
    "basic": {"type": "http", "scheme": "basic", "description": "the key as user name"},
    "bearer": {"type": "http", "scheme": "bearer", "description": "the key"},
}


def document(app: FastAPI) -> None:
    """Complete the app's OpenAPI schema with how to authenticate: every ``/v1`` route
    takes a key (Basic auth user name or Bearer)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        for path, operations in schema.get("paths", {}).items():
            if path.startswith("/v1/"):
                for operation in operations.values():
                    operation.setdefault("security", SECURITY)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def allowed_methods(app: FastAPI, scope: Any) -> list[str]:
    """Every method some route answers on this request's path (the ``Allow`` of a 405)."""
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(scope)  # PARTIAL: the path matches, the method does not
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)
