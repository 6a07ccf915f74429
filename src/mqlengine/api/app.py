"""The FastAPI application factory. Routers live in their own modules and are included here.

Errors from the project's tree become JSON ``{code, message, details}`` with the status
mapped once in :mod:`mqlengine.errors`; so do the API's own refusals (:class:`ApiError`),
request validation (422) and unknown routes (404).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mqlengine.api import auth
from mqlengine.api.contract import allowed_methods, document, errors, invalid_details
from mqlengine.api.ingest import IngestState
from mqlengine.api.limits import ApiError
from mqlengine.api.middleware import (
    BodyTimeout,
    Guard,
    IngestCors,
    SecurityHeaders,
    exact_origin,
)
from mqlengine.api.ratelimit import RateLimitConfig, RateLimits
from mqlengine.errors import MqlError, status_for
from mqlengine.ingest.writer import GroupCommitter
from mqlengine.settings import WebSettings
from mqlengine.version import __version__
from mqlengine.wiring import Wiring


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


def create_app(
    wiring: Wiring | None = None,
    *,
    write_keys: Sequence[str] | None = None,
    require_write_keys: bool = False,
    rate_limit: float | None = None,
    web: WebSettings | None = None,
    durable: bool = True,
    server_side_only: bool | None = None,
) -> FastAPI:
    """Build the app around one :class:`Wiring` (database, definition in force, clock,
    enrichers, pipelines).

    ``write_keys`` default to the settings' (``MQL_WRITE_KEYS``); keys made with
    ``mql keys create`` are read from the store. Without any write key the ingest endpoints
    accept nothing; with ``require_write_keys`` (what ``mql serve`` does) the app refuses to
    be built at all rather than run without keys. Access: :mod:`mqlengine.api.auth`.

    ``web`` (default: the settings') sets CORS origins, rate limits and the body timeout;
    ``rate_limit`` overrides its events per second per write key.
    """
    eng = wiring or Wiring()
    keys = tuple(write_keys) if write_keys is not None else eng.settings.write_keys
    committer = GroupCommitter(eng.db, eng.pipeline_source(), durable=durable, clock=eng.clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        committer.start()
        try:
            yield
        finally:
            committer.stop()
            app.state.keys.close()  # the keys' last-use stamps still pending

    app = FastAPI(
        title="MQL Engine",
        version=__version__,
        description="Segment-compatible ingest, explainable lead scores, MQL lifecycle.",
        lifespan=lifespan,
        docs_url=None,  # served offline by mqlengine.dashboard.docs
        redoc_url=None,
    )
    app.state.wiring = eng
    verifier = auth.install(
        app,
        eng,
        write_keys=keys,
        require_write_keys=require_write_keys,
        server_side_only=eng.settings.server_side_only
        if server_side_only is None
        else server_side_only,
    )
    protections = web or eng.settings.web
    rates = RateLimitConfig.from_settings(protections)
    if rate_limit is not None:
        rates = replace(rates, ingest_per_key=rate_limit)
    app.state.limits = RateLimits(rates)
    app.state.ingest = IngestState(verifier, committer, app.state.limits)
    # the last added is the outermost: headers on everything, CORS answers before limits
    app.add_middleware(Guard, limits=app.state.limits)
    app.add_middleware(BodyTimeout, seconds=protections.body_timeout)
    origins = [exact_origin(o) for o in protections.cors_origins]  # refused now, not later
    if app.state.server_side_only:
        origins = []  # no browser may send events: no CORS at all
    app.add_middleware(IngestCors, origins=origins)
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(MqlError)
    async def _mql_error(_request: Request, error: MqlError) -> JSONResponse:
        return error_response(status_for(error), error.code, error.message, error.details)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, error.message, error.details, error.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        details = invalid_details(error.errors())
        return error_response(422, "invalid_request", "the request is not valid", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        headers = getattr(error, "headers", None)
        if error.status_code == 405:  # every method of the path, not only the first route's
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(app, request.scope))}
        return error_response(error.status_code, code, str(error.detail), None, headers)

    @app.get("/healthz", tags=["admin"], responses=errors())
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
    from mqlengine.dashboard import desk, docs

    app.include_router(desk.router)
    app.include_router(docs.router)
    from mqlengine.api import feedback, reps

    app.include_router(feedback.router)
    app.include_router(reps.router)
    from mqlengine.api import access

    app.include_router(access.router)

    from mqlengine.api import privacy

    app.include_router(privacy.router)
    from mqlengine.api import corrections

    app.include_router(corrections.router)

    document(app)
    return app


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory mqlengine.api.app:app_from_env``: settings from the
    environment, write keys required. Under plain uvicorn, add
    ``--http mqlengine.api.server:TimedHttpToolsProtocol`` for the header timeout (10 s)
    and ``--forwarded-allow-ips`` for a proxy; ``mql serve`` does both from the settings."""
    from mqlengine.logmask import install

    wiring = Wiring()
    settings = wiring.settings
    install([*settings.write_keys, *settings.read_keys, settings.secret_key or ""])
    wiring.definition()  # fail at start-up, not on the first request
    return create_app(wiring, require_write_keys=True)
