"""Group commit: concurrent requests' messages share one pipeline transaction.

SQLite has one writer, and every commit costs a sync to disk; PostgreSQL pays a round trip
and a WAL flush per commit. One writer thread takes every request that is waiting, runs
them through the pipeline as one batch in one transaction, and only after the commit
answers each request — so a 200 still means "durable", while a busy server commits many
requests per sync. A batch that fails is retried request by request, so one poisonous
request fails alone.

On SQLite the writer's connection runs with ``synchronous=FULL``: with group commit the
extra sync per transaction is cheap, and an acknowledged event then survives power loss,
not only a crash of the process.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from mqlengine.ingest.pipeline import Pipeline, Rejection, quarantine_rows
from mqlengine.store.db import Database
from mqlengine.store.tables_ingest import quarantine

log = logging.getLogger("mqlengine.ingest")


@dataclass
class Job:
    messages: list[Any]
    endpoint: str
    quarantine: list[dict[str, Any]] = field(default_factory=list)  # rows decided upstream
    future: Future[JobResult] = field(default_factory=Future)
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class JobResult:
    accepted: int
    duplicates: int
    rejected: list[Rejection]
    persons: list[int]
    mqls: list[int]  # persons this commit made MQL (whole group)


class Overloaded(Exception):
    """The writer has more waiting than it may queue: the client should retry later."""


class Stopped(Exception):
    """The server is shutting down."""


_STOP = object()


class GroupCommitter:
    def __init__(
        self,
        database: Database,
        pipeline: Callable[[], Pipeline],
        *,
        max_batch_messages: int = 5000,
        max_pending_messages: int = 200_000,
        durable: bool = True,
    ) -> None:
        self.database = database
        self.pipeline = pipeline
        self.max_batch = max_batch_messages
        self.max_pending = max_pending_messages
        self.durable = durable
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.stats = {"commits": 0, "jobs": 0, "messages": 0, "retries": 0}

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stopping = False
                self._thread = threading.Thread(
                    target=self._run, name="mql-group-commit", daemon=True
                )
                self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then stop the writer."""
        with self._lock:
            thread = self._thread
            self._stopping = True
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout)
        self._thread = None

    # -- submitting --------------------------------------------------------------------
    def submit(self, job: Job) -> Future[JobResult]:
        if self._stopping:
            raise Stopped("the server is shutting down")
        size = max(len(job.messages), 1)
        with self._lock:
            if self._pending + size > self.max_pending and self._pending > 0:
                raise Overloaded(f"{self._pending} messages are waiting to be written")
            self._pending += size
        self.start()
        self._queue.put(job)
        return job.future

    async def ingest(self, job: Job) -> JobResult:
        return await asyncio.wrap_future(self.submit(job))

    @property
    def pending(self) -> int:
        return self._pending

    # -- the writer --------------------------------------------------------------------
    def _run(self) -> None:
        connection = self.database.engine.connect()
        try:
            if self.durable and self.database.is_sqlite:
                raw = connection.connection.dbapi_connection
                assert raw is not None
                raw.execute("PRAGMA synchronous=FULL")
            stop = False
            while not stop:
                first = self._queue.get()
                if first is _STOP:
                    break
                jobs: list[Job] = [first]
                count = len(first.messages)
                while count < self.max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    jobs.append(item)
                    count += len(item.messages)
                self._commit_group(connection, jobs)
        finally:
            connection.close()

    def _commit_group(self, connection: Connection, jobs: list[Job]) -> None:
        try:
            results = self._commit(connection, jobs)
        except Exception as error:
            if len(jobs) == 1:
                log.exception("ingest transaction failed")
                self._finish(jobs[0], error=error)
                return
            self.stats["retries"] += 1
            for job in jobs:  # isolate the failing request
                self._commit_group(connection, [job])
            return
        for job, result in zip(jobs, results, strict=True):
            self._finish(job, result=result)

    def _finish(
        self, job: Job, *, result: JobResult | None = None, error: BaseException | None = None
    ) -> None:
        with self._lock:
            self._pending -= max(len(job.messages), 1)
        if error is not None:
            job.future.set_exception(error)
        else:
            assert result is not None
            job.future.set_result(result)

    def _commit(self, connection: Connection, jobs: list[Job]) -> list[JobResult]:
        pipeline = self.pipeline()
        combined: list[Any] = []
        offsets: list[int] = []
        for job in jobs:
            offsets.append(len(combined))
            combined.extend(job.messages)
        now = datetime.now(UTC)
        with connection.begin():
            batch = pipeline.ingest(connection, combined, now=now) if combined else None
            rows: list[dict[str, Any]] = []
            results: list[JobResult] = []
            mqls = [
                pid
                for pid, change in (batch.stage_changes if batch else [])
                if change.to_stage == "mql"
            ]
            for job, offset in zip(jobs, offsets, strict=True):
                end = offset + len(job.messages)
                rejected = [
                    Rejection(r.index - offset, r.message_id, r.field, r.reason, r.code)
                    for r in (batch.rejected if batch else [])
                    if offset <= r.index < end
                ]
                duplicates = sum(
                    1 for i in (batch.duplicate_indexes if batch else []) if offset <= i < end
                )
                rows.extend(job.quarantine)
                rows.extend(quarantine_rows(job.messages, rejected, job.endpoint, now))
                results.append(
                    JobResult(
                        accepted=len(job.messages) - len(rejected) - duplicates,
                        duplicates=duplicates,
                        rejected=rejected,
                        persons=sorted(batch.persons) if batch else [],
                        mqls=mqls,
                    )
                )
            if rows:
                connection.execute(quarantine.insert(), rows)
        self.stats["commits"] += 1
        self.stats["jobs"] += len(jobs)
        self.stats["messages"] += len(combined)
        return results
