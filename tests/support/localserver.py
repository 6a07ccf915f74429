"""Run ``mql serve`` as a child process on a free loopback port (tests and benchmarks).

The server is a real process with a real socket, so what is measured or tested is what a
deployment runs; the context manager always stops it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

# Benchmarks send thousands of events a second from one address with one key: what they
# measure is the server, so the ingest limits are raised out of their way (the limiter
# still runs on every request).
BENCH_LIMITS = ("--rate-ingest-per-key", "1000000", "--rate-ingest-per-address", "1000000")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class LocalServer:
    url: str
    write_key: str  # scope write: ingest only
    process: subprocess.Popen[bytes]
    log: Path
    read_key: str = "test-read-key"  # scope read: persons, reports, the dashboard
    admin_key: str = "test-admin-key"  # scope admin: reps, teams, keys, audit (and read)


@contextmanager
def local_server(
    database_url: str,
    definition: Path,
    *,
    write_key: str = "test-key",
    read_key: str = "test-read-key",
    admin_key: str = "test-admin-key",
    log: Path,
    extra_args: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
    startup_timeout: float = 30.0,
) -> Iterator[LocalServer]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "mqlengine",
        "--database",
        database_url,
        "--definition",
        str(definition),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--write-key",
        write_key,
        "--log-level",
        "warning",
        *extra_args,
    ]
    environment = {
        **os.environ,
        "MQL_READ_KEYS": read_key,
        "MQL_ADMIN_KEYS": admin_key,
        **(env or {}),
    }
    environment.pop("MQL_WRITE_KEYS", None)
    read_key = environment["MQL_READ_KEYS"].split(",")[0].strip()
    admin_key = environment["MQL_ADMIN_KEYS"].split(",")[0].strip()
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"server did not start in {startup_timeout} s: {log.read_text()}"
                )
            time.sleep(0.05)
        yield LocalServer(url, write_key, process, log, read_key, admin_key)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
