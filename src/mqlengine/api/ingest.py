"""Segment's HTTP Tracking API: ``POST /v1/batch``, ``/v1/identify``, ``/v1/track`` …

What a client can rely on:

* ``200 {"success": true}`` means every accepted message is committed (and its person
  rescored and qualified) — RudderStack's SDK treats any other 2xx as a failure.
* A repeated ``messageId`` is a no-op with the same answer, so SDK retries never
  double-count intent.
* In a batch, bad messages are listed per index (``rejected``) while the good ones are
  stored; every rejected payload is kept in the quarantine table (``mql quarantine``).
* Errors are JSON ``{code, message, details}``: 400 bad JSON / every message invalid,
  401 wrong or missing write key, 403 a key without the ``write`` scope (or, in
  server-side-only mode, one not marked server-side), 413 over Segment's limits, 422
  valid JSON of the wrong shape, 429 over the key's or the address's rate limit
  (``Retry-After``: the real wait), 503 the writer is overloaded or stopping, or other
  writers kept changing the same rows (retry).

The hot path avoids per-message pydantic: bodies are parsed with orjson and validated
by :func:`mqlengine.ingest.messages.parse_message` on the writer's parser threads (see
:meth:`mqlengine.ingest.writer.GroupCommitter.ingest_messages`); this module only checks
the request, hands the messages over and awaits the commit.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, Response

from mqlengine.api.auth import check_ingest_key, ingest_key, unauthorized
from mqlengine.api.contract import ingest_doc
from mqlengine.api.limits import MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, ApiError, read_body
from mqlengine.api.middleware import client_address
from mqlengine.api.ratelimit import RateLimits
from mqlengine.errors import UnavailableError, status_for
from mqlengine.ingest.messages import TYPES
from mqlengine.ingest.quarantine import body_row as _quarantine_body
from mqlengine.ingest.writer import GroupCommitter, Job
from mqlengine.services.keys import KeyVerifier, Principal

router = APIRouter(prefix="/v1", tags=["ingest"])
SUCCESS = orjson.dumps({"success": True})


@dataclass
class IngestState:
    keys: KeyVerifier
    committer: GroupCommitter
    limits: RateLimits


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


async def _refuse(
    state: IngestState, endpoint: str, error: ApiError, body: bytes, field: str | None = None
) -> ApiError:
    """Keep an authenticated but unusable body in quarantine, then return the error."""
    row = _quarantine_body(endpoint, error.code, error.message, body, field)
    with contextlib.suppress(UnavailableError):
        await state.committer.ingest(Job([], endpoint, quarantine=[row]))
    return error


def _merge_batch_level(messages: list[Any], payload: dict[str, Any]) -> None:
    """Batch-level ``sentAt``/``context`` (Segment's python SDK, analytics.js) apply to
    every message that does not carry its own."""
    sent_at = payload.get("sentAt")
    context = payload.get("context")
    if sent_at is None and not isinstance(context, dict):
        return
    for message in messages:
        if not isinstance(message, dict):
            continue
        if sent_at is not None and "sentAt" not in message:
            message["sentAt"] = sent_at
        if isinstance(context, dict) and context:
            own = message.get("context")
            if own is None:
                message["context"] = dict(context)
            elif isinstance(own, dict):
                message["context"] = {**context, **own}


def _privacy_signals(messages: list[Any], request: Request) -> None:
    """The request's ``DNT: 1`` / ``Sec-GPC: 1`` headers, noted in each message's
    ``context.privacy``: the definition's ``consent:`` section decides whether they
    withdraw tracking consent (the parse stage reads them there)."""
    signals: dict[str, bool] = {}
    if request.headers.get("dnt", "").strip() == "1":
        signals["doNotTrack"] = True
    if request.headers.get("sec-gpc", "").strip() == "1":
        signals["globalPrivacyControl"] = True
    if not signals:
        return
    for message in messages:
        if not isinstance(message, dict):
            continue
        context = message.get("context")
        if context is None:
            message["context"] = {"privacy": signals}
        elif isinstance(context, dict):
            privacy = context.get("privacy")
            given = privacy if isinstance(privacy, dict) else {}
            message["context"] = {**context, "privacy": {**given, **signals}}


async def handle(request: Request, endpoint: str, principal: Principal | None) -> Response:
    """``principal``: the write key from the headers (checked by :func:`ingest_key`), or
    None when the key is to be found in the body (``writeKey``)."""
    state: IngestState = request.app.state.ingest
    limit = MAX_BATCH_BYTES if endpoint == "batch" else MAX_MESSAGE_BYTES
    body = await read_body(request, limit)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if principal is None:
            raise unauthorized("missing write key (and the body is not JSON)") from None
        bad = ApiError(400, "invalid_json", f"body is not valid JSON: {error}")
        raise await _refuse(state, endpoint, bad, body) from None
    if principal is None:
        body_key = payload.get("writeKey") if isinstance(payload, dict) else None
        if not isinstance(body_key, str) or not body_key:
            raise unauthorized()
        principal = await check_ingest_key(request, body_key)
    key = principal.key_id
    if not isinstance(payload, dict):
        shape = ApiError(422, "invalid_shape", "the body must be a JSON object")
        raise await _refuse(state, endpoint, shape, body)

    if endpoint == "batch":
        messages = payload.get("batch")
        if not isinstance(messages, list):
            shape = ApiError(422, "invalid_shape", "a batch body needs a 'batch' array")
            raise await _refuse(state, endpoint, shape, body, "batch")
        for name, kind in (("context", dict), ("sentAt", str)):
            if payload.get(name) is not None and not isinstance(payload[name], kind):
                what = "an object" if kind is dict else "a string"
                shape = ApiError(422, "invalid_shape", f"a batch's '{name}' must be {what}")
                raise await _refuse(state, endpoint, shape, body, name)
        _merge_batch_level(messages, payload)
    else:
        payload.pop("writeKey", None)
        payload["type"] = endpoint
        messages = [payload]
    if not messages:
        return Response(SUCCESS, media_type="application/json")
    _privacy_signals(messages, request)
    state.limits.ingest(key, client_address(request.scope), len(messages))

    # Per-message size: only a body over 32 KB can hold an oversized message.
    oversize: dict[int, int] = {}
    if endpoint == "batch" and len(body) > MAX_MESSAGE_BYTES:
        for index, message in enumerate(messages):
            size = len(orjson.dumps(message))
            if size > MAX_MESSAGE_BYTES:
                oversize[index] = size
    kept = [m for i, m in enumerate(messages) if i not in oversize] if oversize else messages
    quarantined = []
    for index, size in oversize.items():
        message = messages[index]
        row = _quarantine_body(
            endpoint,
            "too_large",
            f"message is {size} bytes, over the {MAX_MESSAGE_BYTES // 1024} KB limit",
            orjson.dumps(message),
        )
        row["message_index"] = index
        message_id = message.get("messageId") if isinstance(message, dict) else None
        row["message_id"] = message_id[:255] if isinstance(message_id, str) else None
        quarantined.append(row)

    try:
        result = await state.committer.ingest_messages(kept, endpoint, quarantine=quarantined)
    except UnavailableError as error:
        # overloaded, stopping or contended: the client retries after Retry-After
        retry = {"Retry-After": str(error.retry_after)}
        raise ApiError(status_for(error), error.code, error.message, headers=retry) from None

    rejected = [r.to_dict() for r in result.rejected]
    if oversize:
        index_of = [i for i in range(len(messages)) if i not in oversize]
        for item in rejected:
            item["index"] = index_of[item["index"]]
        for index, row in zip(oversize, quarantined, strict=True):
            rejected.append(
                {
                    "index": index,
                    "messageId": row["message_id"],
                    "code": "too_large",
                    "field": "",
                    "reason": row["reason"],
                }
            )
        rejected.sort(key=lambda r: r["index"])
    if rejected and len(rejected) == len(messages):
        first = rejected[0]
        status = 413 if all(r["code"] == "too_large" for r in rejected) else 400
        message = f"{first['field']}: {first['reason']}" if first["field"] else str(first["reason"])
        if endpoint == "batch":
            message = f"all {len(messages)} messages were rejected (first: {message})"
        raise ApiError(status, "invalid_message", message, rejected)
    if rejected:
        return _json({"success": True, "rejected": rejected})
    return Response(SUCCESS, media_type="application/json")


def _route(endpoint: str) -> None:
    async def ingest_endpoint(
        request: Request, principal: Principal | None = Depends(ingest_key)
    ) -> Response:
        return await handle(request, endpoint, principal)

    ingest_endpoint.__name__ = f"ingest_{endpoint}"
    router.add_api_route(
        f"/{endpoint}",
        ingest_endpoint,
        methods=["POST"],
        summary=f"Segment {endpoint}",
        openapi_extra=ingest_doc(endpoint),
        response_class=Response,
    )


for _endpoint in ("batch", *TYPES):
    _route(_endpoint)
