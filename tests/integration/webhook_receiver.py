"""A real HTTP receiver on 127.0.0.1 for webhook tests: records every delivery, can fail
or stall on demand, and is always shut down by its context manager."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    received_at: float


@dataclass
class Receiver:
    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    # (attempt number starting at 1) → (status, delay seconds)
    behaviour: Callable[[int], tuple[int, float]] = lambda _n: (200, 0.0)
    arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ids(self) -> list[str]:
        return [d.headers["webhook-id"] for d in self.deliveries]


@contextmanager
def receiver(behaviour: Callable[[int], tuple[int, float]] | None = None) -> Iterator[Receiver]:
    state = Receiver(url="")
    if behaviour is not None:
        state.behaviour = behaviour

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            with state.lock:
                state.deliveries.append(
                    Delivery({k.lower(): v for k, v in self.headers.items()}, body, time.time())
                )
                attempt = len(state.deliveries)
            state.arrived.set()
            status, delay = state.behaviour(attempt)
            if delay:
                time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *_args: object) -> None:
            return

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # the default (5) drops SYNs under concurrent deliveries

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
