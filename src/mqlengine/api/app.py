"""The FastAPI application factory. Routers live in their own modules and are included here.

Errors from the project's tree become JSON ``{code, message, details}`` with the status
mapped once in :mod:`mqlengine.errors`; so do the API's own refusals (:class:`ApiError`),
request validation (422) and unknown routes (404).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mqlengine import __version__
from mqlengine.api.auth import WriteKeys
from mqlengine.api.ingest import IngestState, RateLimiter
from mqlengine.api.limits import ApiError
from mqlengine.engine import Engine
from mqlengine.errors import ConfigError, MqlError, status_for
from mqlengine.ingest.firmographics import Enricher
from mqlengine.ingest.pipeline import Pipeline
from mqlengine.ingest.writer import GroupCommitter
from mqlengine.ingest.writerstate import WriterState
from mqlengine.services.qualify import scorer_for


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message, "details": details},
        status_code=status,
        headers=headers,
    )


class _PipelineSource:
    """The pipeline for the definition in force (rebuilt when another one is activated)."""

    def __init__(self, engine: Engine, enrichers: Sequence[Enricher]) -> None:
        self.engine = engine
        self.enrichers = tuple(enrichers)
        self._pipeline: Pipeline | None = None

    def __call__(self) -> Pipeline:
        definition = self.engine.definition().definition
        if self._pipeline is None or self._pipeline.definition is not definition:
            # The writer's memory between transactions is bound to the definition (it
            # keeps only the events its rules can score), so it starts afresh with it.
            state = WriterState(scorer_for(definition).relevant)
            self._pipeline = Pipeline(definition, enricher=self.enrichers, state=state)
        return self._pipeline


def create_app(
    engine: Engine | None = None,
    *,
    write_keys: Sequence[str] | None = None,
    require_write_keys: bool = False,
    enrichers: Sequence[Enricher] = (),
    rate_limit: float | None = None,
    durable: bool = True,
) -> FastAPI:
    """Build the app around one :class:`Engine` (database + definition in force).

    ``write_keys`` default to the engine's settings (``MQL_WRITE_KEYS``). Without any key
    the ingest endpoints accept nothing; with ``require_write_keys`` (what ``mql serve``
    does) the app refuses to be built at all rather than run without keys.
    """
    eng = engine or Engine()
    keys = tuple(write_keys) if write_keys is not None else eng.settings.write_keys
    if require_write_keys and not keys:
        raise ConfigError(
            "no write key configured: set MQL_WRITE_KEYS or pass --write-key "
            "(the server does not accept anonymous writes)"
        )
    committer = GroupCommitter(eng.db, _PipelineSource(eng, enrichers), durable=durable)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        committer.start()
        try:
            yield
        finally:
            committer.stop()

    app = FastAPI(
        title="MQL Engine",
        version=__version__,
        description="Segment-compatible ingest, explainable lead scores, MQL lifecycle.",
        lifespan=lifespan,
    )
    app.state.engine = eng
    app.state.write_keys = WriteKeys(keys)
    app.state.ingest = IngestState(app.state.write_keys, committer, RateLimiter(rate_limit))

    @app.exception_handler(MqlError)
    async def _mql_error(_request: Request, error: MqlError) -> JSONResponse:
        return error_response(status_for(error), error.code, error.message, error.details)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, error.message, error.details, error.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(e.get("loc", ())), "message": e.get("msg", "")} for e in error.errors()
        ]
        return error_response(422, "invalid_request", "the request is not valid", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return error_response(
            error.status_code, code, str(error.detail), None, getattr(error, "headers", None)
        )

    @app.get("/healthz", tags=["admin"])
    def healthz() -> dict[str, Any]:
        with eng.db.read() as connection:
            connection.exec_driver_sql("SELECT 1")
        return {
            "status": "ok",
            "version": __version__,
            "database": eng.db.dialect,
            "ingest_pending": committer.pending,
        }

    # Routers (each module exposes `router`); add new ones here.
    from mqlengine.api import ingest, persons

    app.include_router(ingest.router)
    app.include_router(persons.router)
    from mqlengine.api import reports
    from mqlengine.dashboard.routes import router as dashboard_router

    app.include_router(reports.router)
    app.include_router(dashboard_router)
    from mqlengine.api import feedback, reps

    app.include_router(feedback.router)
    app.include_router(reps.router)
    return app


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory mqlengine.api.app:app_from_env``: settings from the
    environment, write keys required."""
    from mqlengine.settings import Settings

    settings = Settings.from_env()
    enrichers: list[Enricher] = []
    if settings.firmographics_csv is not None:
        from mqlengine.ingest.firmographics import CsvFirmographics

        enrichers.append(CsvFirmographics(settings.firmographics_csv))
    engine = Engine(settings)
    engine.definition()  # fail at start-up, not on the first request
    return create_app(engine, require_write_keys=True, enrichers=enrichers)
