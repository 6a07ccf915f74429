"""The ingest writer: concurrent requests' messages share one pipeline transaction.

SQLite has one writer, and every commit costs a sync to disk; PostgreSQL pays a round trip
and a WAL flush per commit. One writer thread takes every request that is waiting, runs
them through the pipeline as one batch in one transaction, and only after the commit
answers each request — so a 200 still means "durable", while a busy server commits many
requests per sync. A batch that fails is retried request by request, so one poisonous
request fails alone.

The writer does not know which database is behind: what it needs of it (its connection's
setup, background housekeeping, turns with other writers, which errors are lost races)
comes from :meth:`Database.writer_support <mqlengine.store.db.Database.writer_support>`
and :func:`mqlengine.store.dialect.is_conflict`. Callers (the HTTP API) only hand it
messages and await the answer; parsing runs on a small thread pool of its own, never on
the caller's event loop.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import platform
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from mqlengine.errors import Contended, Overloaded, Stopped
from mqlengine.ingest.pipeline import Parsed, Pipeline, Rejection
from mqlengine.ingest.quarantine import quarantine_rows
from mqlengine.ingest.validation import cached_check_email
from mqlengine.store.changes import LostRace
from mqlengine.store.db import Database
from mqlengine.store.dialect import is_conflict
from mqlengine.store.tables_ingest import quarantine

__all__ = ["Contended", "GroupCommitter", "Job", "JobResult", "Overloaded", "Stopped"]

log = logging.getLogger("mqlengine.ingest")


@dataclass
class Job:
    messages: list[Any]
    endpoint: str
    quarantine: list[dict[str, Any]] = field(default_factory=list)  # rows decided upstream
    parsed: Parsed | None = None  # the messages already parsed and checked (off the writer)
    future: Future[JobResult] = field(default_factory=Future)
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class JobResult:
    accepted: int
    duplicates: int
    rejected: list[Rejection]
    persons: list[int]
    mqls: list[int]  # persons this commit made MQL (whole group)


_STOP = object()
CONFLICT_RETRIES = 12


def _backoff(attempt: int) -> float:
    """Seconds before retry ``attempt`` (0-based): doubling from ~4 ms up to ~200 ms, with
    jitter, so two writers that keep colliding fall out of step."""
    return random.uniform(0.5, 1.5) * min(0.2, 0.004 * 2.0**attempt)


_heap_frozen = False
# Collector thresholds for a writer process: a young generation of 20,000 objects instead
# of 700 (a batch allocates that many in a few milliseconds), and full collections ten
# times rarer. The writer's long-lived memory (identities, person rows, events) is large
# and holds no garbage, yet every full collection walked all of it: 10-15 % of the
# writer's time at the default thresholds.
GC_THRESHOLDS = (20_000, 20, 10)


def _freeze_startup_heap() -> None:
    """Move what exists at start-up (modules, the definition, SQLAlchemy metadata …) out of
    the garbage collector's reach. It is never garbage, yet every full collection scanned
    it: a pause of ~80 ms for every thread — the writer and the event loop — every couple
    of seconds under load, which was most of the tail of the ingest latency. Once per
    process; the collector's thresholds are raised at the same time."""
    global _heap_frozen
    if not _heap_frozen:
        _heap_frozen = True
        gc.collect()  # garbage that exists now would otherwise be kept forever
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)


IDLE_RELEASE_SECONDS = 30.0


def _glibc_malloc_trim() -> Callable[[int], int] | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_MALLOC_TRIM = _glibc_malloc_trim()


def _trim_heap() -> None:
    """Hand the C allocator's free memory back to the system: glibc otherwise keeps the
    freed pages of its arenas (after 60,000 events, an idle release gave back 20 MB more
    with it than without)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class GroupCommitter:
    def __init__(
        self,
        database: Database,
        pipeline: Callable[[], Pipeline],
        *,
        max_batch_messages: int = 400,
        small_job_messages: int = 10,
        interactive_batch_messages: int = 100,
        max_bulk_wait: float = 1.0,
        max_pending_messages: int = 200_000,
        durable: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        idle_release: float | None = IDLE_RELEASE_SECONDS,
    ) -> None:
        """``durable``: commits survive power loss, not only a crash (SQLite's
        ``synchronous=FULL``); ``clock``: the time a batch is received and committed;
        ``idle_release``: seconds without a batch after which the writer gives back what
        it remembers (:meth:`release_memory`; None: never)."""
        self.database = database
        self.support = database.writer_support(durable=durable)
        self.clock = clock
        self.pipeline = pipeline
        self.max_batch = max_batch_messages
        self.small_job = small_job_messages
        self.interactive_batch = interactive_batch_messages
        self.max_bulk_wait = max_bulk_wait
        self._last_small = float("-inf")  # when the writer last saw a small request
        self.max_pending = max_pending_messages
        self.durable = durable
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._parsers: ThreadPoolExecutor | None = None
        self.conflict_retries = CONFLICT_RETRIES
        self.idle_release = idle_release
        self._holding = False  # batches were written since the memory was last released
        self.stats = {
            "commits": 0,
            "jobs": 0,
            "messages": 0,
            "retries": 0,
            "conflicts": 0,
            "gave_way": 0,  # times the writer let another writer of the file go first
            "releases": 0,  # times an idle writer gave its memory back
        }

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stopping = False
                _freeze_startup_heap()
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
        with self._lock:
            parsers, self._parsers = self._parsers, None
        if parsers is not None:
            parsers.shutdown(wait=False)

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

    async def ingest_messages(
        self,
        messages: list[Any],
        endpoint: str,
        *,
        quarantine: list[dict[str, Any]] | None = None,
    ) -> JobResult:
        """Parse and check ``messages`` on the writer's parser threads (never on the
        caller's event loop, and while the writer is busy with earlier requests'
        transaction), then queue them and wait for the commit."""
        if self._stopping:
            raise Stopped("the server is shutting down")
        parsed: Parsed | None = None
        if messages:
            loop = asyncio.get_running_loop()
            parsed = await loop.run_in_executor(self._parser_pool(), self.parse, messages)
        return await self.ingest(Job(messages, endpoint, quarantine or [], parsed))

    def parse(self, messages: list[Any]) -> Parsed:
        """What the pipeline in force makes of ``messages`` (received now)."""
        return self.pipeline().parse(messages, self.clock())

    # Two threads: parsing holds the GIL, so more would not parse faster; two let one
    # request's parse start while another's result is handed back.
    PARSER_THREADS = 2

    def _parser_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._parsers is None:
                self._parsers = ThreadPoolExecutor(
                    self.PARSER_THREADS, thread_name_prefix="mql-parse"
                )
            return self._parsers

    @property
    def pending(self) -> int:
        return self._pending

    # -- memory ------------------------------------------------------------------------
    def release_memory(self, connection: Connection | None = None) -> None:
        """Give back what the writer holds between batches: its memory of persons, the
        scorer's memo, the e-mail verdicts, its connection's cache (``connection``: the
        writer's own), then unreachable objects and (glibc) the allocator's free pages.
        On the writer thread only; the next batch reads what it needs again."""
        self._holding = False
        if connection is not None:
            try:
                self.support.release_memory(connection)
            except DBAPIError:
                log.exception("the writer's connection could not release its cache")
        try:
            memory = self.pipeline().memory
        except Exception:  # the definition cannot be read now: nothing to release then
            log.exception("could not release the writer's memory")
            return
        if memory is not None:
            memory.release()
        cached_check_email.cache_clear()
        gc.collect()
        _trim_heap()
        self.stats["releases"] += 1

    # -- the writer --------------------------------------------------------------------
    def _run(self) -> None:
        connection = self.database.engine.connect()
        small: deque[Job] = deque()  # single events, small batches: latency-sensitive
        bulk: deque[Job] = deque()  # batches: throughput-sensitive
        try:
            self.support.prepare(connection)
            self.support.start_housekeeping()
            stop = False
            while True:
                # Take everything that is waiting (block only when there is nothing to do),
                # so a request that arrived during the last commit can go next.
                block = not small and not bulk and not stop
                while True:
                    try:
                        if not block:
                            item = self._queue.get_nowait()
                        elif self._holding and self.idle_release is not None:
                            item = self._queue.get(timeout=self.idle_release)
                        else:
                            item = self._queue.get()
                    except queue.Empty:
                        if not block:
                            break
                        self.release_memory(connection)  # idle for ``idle_release`` s
                        continue
                    block = False
                    if item is _STOP:
                        stop = True
                    elif len(item.messages) <= self.small_job:
                        small.append(item)
                        self._last_small = item.enqueued
                    else:
                        bulk.append(item)
                if not small and not bulk:
                    if stop:
                        break
                    continue
                self._commit_group(connection, self._next_group(small, bulk))
                self._holding = True
        finally:
            connection.close()
            self.support.stop_housekeeping()
            self._fail_leftovers(small, bulk)

    def _next_group(self, small: deque[Job], bulk: deque[Job]) -> list[Job]:
        """Small requests first (their commit is short, and they never queue behind a big
        group), unless a batch has waited too long; then FIFO up to a size limit.

        The limit is ``max_batch`` (bigger groups, fewer syncs: throughput), but only
        ``interactive_batch`` while small requests are flowing: a small request that
        arrives during a commit waits for it, so that commit is kept short.

        A group of batches also takes the small requests waiting then (a few messages
        each). Without that, a writer that could not keep up with the batches — every
        head of the bulk lane overdue — never served the small lane again: on PostgreSQL
        under a 2,000 events/s load a single qualifying event waited over 30 s."""
        now = time.perf_counter()
        lane = small
        if not small or (bulk and now - bulk[0].enqueued > self.max_bulk_wait):
            lane = bulk
        limit = self.max_batch
        if lane is bulk and now - self._last_small < self.max_bulk_wait:
            limit = self.interactive_batch
        jobs: list[Job] = []
        count = 0
        if lane is bulk:
            while small and count + len(small[0].messages) <= limit:
                job = small.popleft()
                jobs.append(job)
                count += len(job.messages)
        first = lane.popleft()
        jobs.append(first)
        count += len(first.messages)
        while lane and count + len(lane[0].messages) <= limit:
            job = lane.popleft()
            jobs.append(job)
            count += len(job.messages)
        return jobs

    def _fail_leftovers(self, *lanes: deque[Job]) -> None:
        """Requests that raced with :meth:`stop` get an answer instead of waiting forever."""
        leftovers = [job for lane in lanes for job in lane]
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                leftovers.append(item)
        for job in leftovers:
            if not job.future.done():
                self._finish(job, error=Stopped("the server is shutting down"))

    def _commit_group(self, connection: Connection, jobs: list[Job]) -> None:
        try:
            results = self._commit_retrying(connection, jobs)
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

    def _commit_retrying(self, connection: Connection, jobs: list[Job]) -> list[JobResult]:
        """Commit, retrying when another writer got there first: a second server process
        created the same person (unique identity), changed the identities of a person
        this transaction resolved against before it claimed it (``LostRace``), a deadlock
        or a serialization failure, or SQLite's lock. The transaction rolled back whole,
        so running it again is safe, and the retry sees the other writer's rows (its
        events count as duplicates)."""
        for attempt in range(self.conflict_retries):
            if self.support.give_way():
                self.stats["gave_way"] += 1
            try:
                return self._commit(connection, jobs)
            except (DBAPIError, LostRace) as error:
                if isinstance(error, DBAPIError) and not is_conflict(error):
                    raise
                self.stats["conflicts"] += 1
                if attempt == self.conflict_retries - 1:
                    raise Contended(
                        f"other writers changed the same rows {self.conflict_retries} times "
                        "in a row; retry the request"
                    ) from error
                time.sleep(_backoff(attempt))
        raise AssertionError("unreachable")

    def _commit(self, connection: Connection, jobs: list[Job]) -> list[JobResult]:
        pipeline = self.pipeline()
        combined: list[Any] = []
        offsets: list[int] = []
        for job in jobs:
            offsets.append(len(combined))
            combined.extend(job.messages)
        now = self.clock()
        results = self._commit_jobs(connection, pipeline, jobs, combined, offsets, now)
        self.stats["commits"] += 1
        self.stats["jobs"] += len(jobs)
        self.stats["messages"] += len(combined)
        return results

    def _commit_jobs(
        self,
        connection: Connection,
        pipeline: Pipeline,
        jobs: list[Job],
        combined: list[Any],
        offsets: list[int],
        now: datetime,
    ) -> list[JobResult]:
        parsed: Parsed | None = None
        if all(job.parsed is not None for job in jobs):
            good: list[Any] = []
            bad: list[Rejection] = []
            for job, offset in zip(jobs, offsets, strict=True):
                assert job.parsed is not None
                good.extend((index + offset, m, f) for index, m, f in job.parsed[0])
                bad.extend(
                    Rejection(r.index + offset, r.message_id, r.field, r.reason, r.code)
                    for r in job.parsed[1]
                )
            parsed = (good, bad)
        with pipeline.transaction(connection):
            batch = (
                pipeline.ingest(connection, combined, now=now, parsed=parsed) if combined else None
            )
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
        return results
