"""Serving the app with uvicorn (httptools), with the timeouts uvicorn lacks.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but has no limit on
how long a client may take to send a request's headers: a client that opens a connection
and dribbles a header line every few seconds holds it forever ("slowloris"). The protocol
here adds one timer per connection:

* **headers** — from the connection's start, and from the first byte of each further
  request, the headers must be complete within ``header_timeout`` seconds; otherwise the
  client gets ``408`` and the connection is closed (a connection that sent nothing is
  just closed);
* **a body nobody reads** — when a response went out before the request's body was in
  (a ``401`` for a wrong key, a ``429``), the rest of the body must arrive within
  ``body_timeout`` seconds, then the connection is closed.

The body an endpoint reads is bounded by :class:`mqlengine.api.middleware.BodyTimeout`.
The protocol hooks are the parser callbacks httptools calls (``on_message_begin``,
``on_headers_complete``, ``on_message_complete``) and the asyncio protocol's own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mqlengine.api.middleware import SECURITY_HEADERS

KEEP_ALIVE_SECONDS = 5


def _timeout_response(seconds: float) -> bytes:
    body = json.dumps(
        {
            "code": "request_timeout",
            "message": f"the request headers did not arrive within {seconds:g} s",
            "details": {"timeout_seconds": seconds},
        }
    ).encode()
    head = [b"HTTP/1.1 408 Request Timeout"]
    head += [name + b": " + value for name, value in SECURITY_HEADERS]
    head += [
        b"cache-control: no-store",
        b"content-type: application/json",
        b"content-length: " + str(len(body)).encode(),
        b"connection: close",
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header timeout and a bounded unread body."""

    header_timeout: float = 10.0
    body_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timer: asyncio.TimerHandle | None = None
        self._in_headers = False

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(seconds, self._read_expired)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_expired(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False  # a response is on its way; close after it
            return
        if self._in_headers:
            self.transport.write(_timeout_response(self.header_timeout))
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._arm(self.header_timeout)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()
        cycle = self.cycle
        if cycle is not None and cycle.response_complete and not self.transport.is_closing():
            # an unread body drained after its response: the connection is idle now
            self._arm(self.header_timeout)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not self.transport.is_closing():
            self._arm(self.body_timeout)  # the rest of an unread body, then close


def timed_protocol(header_timeout: float, body_timeout: float) -> type[TimedHttpToolsProtocol]:
    return type(
        "TimedHttpToolsProtocol",
        (TimedHttpToolsProtocol,),
        {"header_timeout": header_timeout, "body_timeout": body_timeout},
    )


def run(
    app: Any,
    *,
    host: str,
    port: int,
    header_timeout: float,
    body_timeout: float,
    trusted_proxies: Sequence[str] = (),
    log_level: str = "info",
    access_log: bool = False,
    log_config: dict[str, Any] | None = None,
) -> None:
    """Serve ``app``; ``X-Forwarded-For`` is believed only from ``trusted_proxies``;
    ``log_config``: uvicorn's logging set-up (``mql serve`` passes one that masks personal
    data)."""
    extra: dict[str, Any] = {} if log_config is None else {"log_config": log_config}
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        **extra,
        http=timed_protocol(header_timeout, body_timeout),
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies) if trusted_proxies else None,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
