"""A throw-away PostgreSQL cluster for the test session.

``postgres_server()`` yields an admin URL (``postgresql://postgres@127.0.0.1:PORT/postgres``)
on which tests create their own databases. It either uses the server named by
``MQL_TEST_POSTGRES_URL`` or starts one from the newest ``/usr/lib/postgresql/*/bin``:
``initdb`` into a temporary directory (no fsync: the data dies with the session), ``postgres``
on a free loopback port with its unix socket inside that directory, stopped with
``pg_ctl stop -m fast`` however the session ends.

PostgreSQL refuses to run as root, so under uid 0 the cluster belongs to a dedicated system
user (``mqltest``, created when missing) and every server binary runs through ``runuser``.

Missing binaries skip the PostgreSQL tests with a clear reason, unless ``CI`` is set or
``MQL_REQUIRE_POSTGRES=1``: then they are a hard failure, so CI never silently skips.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

SYSTEM_USER = "mqltest"
SUPERUSER = "postgres"
START_TIMEOUT = 30.0
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_connections": "300",
    "shared_buffers": "64MB",
    "log_min_messages": "warning",
    "logging_collector": "off",
    # deliberately not UTC: the store must hand back UTC whatever the session's zone is
    "timezone": "Asia/Kolkata",
}


class PostgresUnavailable(RuntimeError):
    """No server to test against (binaries missing or the cluster would not start)."""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


def postgres_required() -> bool:
    """CI (``CI`` set) or ``MQL_REQUIRE_POSTGRES=1``: no server is a failure, not a skip."""
    return _truthy(os.environ.get("CI")) or _truthy(os.environ.get("MQL_REQUIRE_POSTGRES"))


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", Path(path).parent.name) or ["0"])


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb, postgres and pg_ctl."""
    override = os.environ.get("MQL_POSTGRES_BIN")
    candidates = [override] if override else glob.glob("/usr/lib/postgresql/*/bin")
    for bindir in sorted(candidates, key=_version_key, reverse=True):
        if all(os.access(Path(bindir, name), os.X_OK) for name in ("initdb", "postgres", "pg_ctl")):
            return Path(bindir)
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _ensure_system_user() -> None:
    if _user_exists(SYSTEM_USER):
        return
    done = subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            SYSTEM_USER,
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 and not _user_exists(SYSTEM_USER):  # a parallel run may win
        raise PostgresUnavailable(f"cannot create user {SYSTEM_USER}: {done.stderr.strip()}")


class Cluster:
    """One initdb'd data directory and the server running on it."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.as_root = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="mql-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self.started = False

    def _command(self, name: str, *args: str) -> list[str]:
        command = [str(self.bindir / name), *args]
        return ["runuser", "-u", SYSTEM_USER, "--", *command] if self.as_root else command

    def _run(self, name: str, *args: str, timeout: float = 60) -> None:
        env = {**os.environ, "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}
        try:
            done = subprocess.run(
                self._command(name, *args),
                cwd=self.root,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise PostgresUnavailable(f"{name} could not run: {error}") from None
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
            raise PostgresUnavailable(
                f"{name} {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}{log}"
            )

    def start(self) -> str:
        if self.as_root:
            _ensure_system_user()
            user = pwd.getpwnam(SYSTEM_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )
        options = " ".join(f"-c {k}={v}" for k, v in SERVER_SETTINGS.items())
        for attempt in range(3):
            self.port = free_port()
            try:
                self._run(
                    "pg_ctl",
                    "start",
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-w",
                    "-t",
                    str(int(START_TIMEOUT)),
                    "-o",
                    f"-p {self.port} -k '{self.root}' {options}",
                    timeout=START_TIMEOUT + 5,
                )
            except PostgresUnavailable:
                if attempt == 2:
                    raise
                continue  # the port was taken between probing and binding: try another
            self.started = True
            break
        url = f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"
        wait_ready(url, START_TIMEOUT)
        return url

    def stop(self) -> None:
        try:
            # postmaster.pid also covers a server that came up after pg_ctl gave up waiting
            if self.started or (self.data / "postmaster.pid").exists():
                try:
                    self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w")
                except PostgresUnavailable:
                    if self.started:
                        raise  # it was running and would not stop: say so
                self.started = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def wait_ready(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2, autocommit=True) as connection:
                connection.execute("SELECT 1")
            return
        except psycopg.OperationalError as error:
            if time.monotonic() > deadline:
                raise PostgresUnavailable(f"PostgreSQL at {url} not ready: {error}") from None
            time.sleep(0.05)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yield an admin URL: ``MQL_TEST_POSTGRES_URL`` or a fresh throw-away cluster."""
    external = os.environ.get("MQL_TEST_POSTGRES_URL")
    if external:
        wait_ready(external, 10)
        yield external
        return
    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable(
            "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin "
            "(run scripts/system-deps.sh, or set MQL_TEST_POSTGRES_URL)"
        )
    cluster = Cluster(bindir)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead."""
    base, _, query = url.partition("?")
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}" + (f"?{query}" if query else "")


def create_database(admin_url: str, *, template: str | None = None) -> str:
    """A new, uniquely named database on the server; returns its URL."""
    name = f"t_{uuid.uuid4().hex}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(statement)
    return with_database(admin_url, name)


def drop_database(admin_url: str, url: str) -> None:
    name = url.partition("?")[0].rpartition("/")[2]
    statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(statement)


def dump(url: str) -> str:
    """``pg_dump`` of the database at ``url`` (schema and every row), as SQL text."""
    bindir = find_bindir()
    if bindir is None or not os.access(bindir / "pg_dump", os.X_OK):
        raise PostgresUnavailable("pg_dump not found")
    libpq_url = url.replace("postgresql+psycopg://", "postgresql://")
    done = subprocess.run(
        [str(bindir / "pg_dump"), "--no-owner", "--dbname", libpq_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout
