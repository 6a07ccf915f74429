"""The project's exception tree.

One root, a few branches; each branch maps once to an HTTP status and a CLI exit code
(see ``HTTP_STATUS`` and ``EXIT_CODE``) so every entry point reports errors the same way.

    MqlError
    ├── DefinitionError      the mql.yaml is invalid (carries file:line diagnostics)
    ├── ValidationError      input data is malformed (carries where + what)
    ├── NotFoundError        a person, account or object does not exist
    ├── ConflictError        the request contradicts current state (illegal stage change)
    ├── AuthError            missing or wrong credentials
    │   └── ForbiddenError   a known key without the scope the action needs (403)
    ├── ConfigError          settings are missing or contradictory
    └── UnavailableError     something the engine needs cannot serve now (the database is
        │                    unreachable, the writer is busy): retry later (503)
        ├── Overloaded       the writer has more waiting than it may queue
        ├── Stopped          the writer is shutting down
        └── Contended        other writers kept winning the same rows
"""

from __future__ import annotations

from typing import Any


class MqlError(Exception):
    """Root of every error the engine raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class DefinitionError(MqlError):
    code = "definition_invalid"

    def __init__(self, message: str, *, diagnostics: list[str] | None = None) -> None:
        super().__init__(message, details=diagnostics or [])
        self.diagnostics = diagnostics or []


class ValidationError(MqlError):
    code = "invalid_input"


class NotFoundError(MqlError):
    code = "not_found"


class ConflictError(MqlError):
    code = "conflict"


class AuthError(MqlError):
    code = "unauthorized"


class ForbiddenError(AuthError):
    """The key is known but lacks the scope the action needs."""

    code = "forbidden"


class ConfigError(MqlError):
    code = "config_invalid"


class UnavailableError(MqlError):
    """The engine cannot do the work now, but the same request may succeed later.

    ``retry_after``: seconds a client should wait (HTTP ``Retry-After``)."""

    code = "unavailable"
    retry_after = 1


class Overloaded(UnavailableError):
    """The writer has more waiting than it may queue: the client should retry later."""

    code = "overloaded"


class Stopped(UnavailableError):
    """The writer is shutting down (a restarting server): retry in a few seconds."""

    code = "unavailable"
    retry_after = 5


class Contended(UnavailableError):
    """Other writers kept winning the same rows: the client should retry."""

    code = "contended"


HTTP_STATUS: dict[type[MqlError], int] = {
    DefinitionError: 422,
    ValidationError: 400,
    NotFoundError: 404,
    ConflictError: 409,
    AuthError: 401,
    ForbiddenError: 403,
    ConfigError: 500,
    UnavailableError: 503,
    MqlError: 500,
}

EXIT_CODE: dict[type[MqlError], int] = {
    DefinitionError: 3,
    ValidationError: 4,
    NotFoundError: 5,
    ConflictError: 6,
    AuthError: 7,
    ConfigError: 8,
    UnavailableError: 9,
    MqlError: 1,
}


def status_for(error: MqlError) -> int:
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


def exit_code_for(error: MqlError) -> int:
    for cls in type(error).__mro__:
        if cls in EXIT_CODE:
            return EXIT_CODE[cls]
    return 1
