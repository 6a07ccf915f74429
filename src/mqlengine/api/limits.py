"""Request limits of the ingest API (Segment's) and the error type its handlers raise.

Segment accepts at most 32 KB per message and 500 KB per batch request; clients that
follow Segment's limits therefore never hit ours. Bodies are read with the limit applied
while streaming, and gzip bodies are inflated with a cap, so a small compressed body cannot
expand into gigabytes (a "zip bomb").
"""

from __future__ import annotations

import zlib
from typing import Any

from fastapi import Request

from mqlengine.errors import MqlError

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024


class ApiError(MqlError):
    """An HTTP refusal with its own status and headers (too large, rate limited, bad
    credentials): becomes JSON ``{code, message, details}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.status = status
        self.code = code
        self.headers = headers


def too_large(limit: int, what: str) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"{what} is larger than {limit // 1024} KB",
        {"limit_bytes": limit},
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, inflated when gzip-encoded, never more than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit, "request body")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit, "request body")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise ApiError(
            400,
            "unsupported_encoding",
            f"Content-Encoding {encoding!r} is not supported (use gzip or none)",
        )
    return inflate(body, limit, encoding)


def inflate(body: bytes, limit: int, encoding: str = "gzip") -> bytes:
    wbits = 16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise ApiError(400, "invalid_encoding", f"body is not valid {encoding}: {error}") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise too_large(limit, "decompressed request body")
    if not inflater.eof:
        raise ApiError(400, "invalid_encoding", f"body is truncated {encoding} data")
    return data
