"""The one sample writer: callers are resolved only after the commit that holds their rows.

SQLite has a single writer, so one thread owns one connection and commits several queued requests
together (group commit). If a shared transaction fails, each member is retried alone once, so no
request is acknowledged or failed on the strength of another's rows. PostgreSQL writes through a
small pool, one transaction per request. Both bound the samples waiting for a commit and answer
``Overloaded`` beyond it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from thingbucket.errors import Overloaded, Unavailable
from thingbucket.points.repository import PostgresSamples, RangeDelete, SampleBatch, SqliteSamples

log = logging.getLogger(__name__)


class StorageFull(Unavailable):
    code = "STORAGE_FULL"
    message = "Storage is full; retry later."


@dataclass(frozen=True, slots=True)
class WriteResult:
    ranges: dict[int, tuple[int, int]]  # series id -> (first, last) timestamp touched
    samples: int = 0
    deleted: int = 0
    recomputed: int = 0  # rollup buckets rebuilt


AfterCommit = Callable[[WriteResult], None]


class Writer(Protocol):
    hooks: list[AfterCommit]

    @property
    def queued_samples(self) -> int: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, batch: SampleBatch) -> WriteResult: ...

    async def delete(self, spec: RangeDelete) -> WriteResult: ...

    def forget_partitions(self) -> None:
        """Retention dropped partitions: make them again when a write needs them."""

    async def recompute_rollups(self, limit: int) -> int:
        """Rebuild up to ``limit`` dirty rollup buckets; how many it rebuilt."""
        ...


@dataclass(slots=True)
class _Job:
    batch: SampleBatch | None
    delete: RangeDelete | None
    weight: int
    future: asyncio.Future[WriteResult]
    result: WriteResult | None = None
    error: BaseException | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    recompute: int = 0  # a rollup pass of up to this many buckets, neither batch nor delete


def _run_hooks(hooks: list[AfterCommit], result: WriteResult) -> None:
    for hook in hooks:
        try:
            hook(result)
        except Exception:  # a failing listener never affects an acknowledged write
            log.exception("after-commit hook failed")


def _job_error(exc: Exception) -> Unavailable:
    if isinstance(exc, sqlite3.Error):
        log.warning("sample write failed: %s", exc)
        return _sqlite_error(exc)
    log.exception("sample write failed")
    return Unavailable(retry_after=5)


def _sqlite_error(exc: sqlite3.Error) -> Unavailable:
    text = str(exc).lower()
    if "full" in text:
        return StorageFull(retry_after=30)
    return Unavailable(retry_after=5)


class SqliteWriter:
    def __init__(
        self,
        path: str,
        pragmas: list[str],
        *,
        max_queued: int,
        group_max: int,
    ) -> None:
        self._path = path
        self._pragmas = pragmas
        self._max_queued = max_queued
        self._group_max = group_max
        self._samples = SqliteSamples()
        self._jobs: deque[_Job] = deque()
        self._cv = threading.Condition()
        self._queued = 0
        self._closing = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.hooks: list[AfterCommit] = []

    @property
    def queued_samples(self) -> int:
        return self._queued

    def forget_partitions(self) -> None:
        pass  # SQLite has no partitions

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="thingbucket-sqlite-writer", daemon=True
        )
        self._thread.start()
        await ready

    async def close(self) -> None:
        with self._cv:
            self._closing = True
            self._cv.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    async def write(self, batch: SampleBatch) -> WriteResult:
        return await self._submit(batch, None, len(batch))

    async def delete(self, spec: RangeDelete) -> WriteResult:
        return await self._submit(None, spec, 1)

    async def recompute_rollups(self, limit: int) -> int:
        return (await self._submit(None, None, 1, recompute=limit)).recomputed

    async def _submit(
        self, batch: SampleBatch | None, spec: RangeDelete | None, weight: int, recompute: int = 0
    ) -> WriteResult:
        assert self._loop is not None, "writer not started"
        job = _Job(batch, spec, weight, self._loop.create_future(), recompute=recompute)
        with self._cv:
            if self._closing:
                raise Unavailable(retry_after=5)
            if self._queued and self._queued + weight > self._max_queued:
                raise Overloaded(retry_after=1)
            self._queued += weight
            self._jobs.append(job)
            self._cv.notify()
        # Shielded: a caller that goes away does not cancel a write that may already be committed.
        return await asyncio.shield(job.future)

    # --- writer thread ---------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # Room for every multi-row statement size the samples repository prepares.
        conn = sqlite3.connect(
            self._path, isolation_level=None, check_same_thread=False, cached_statements=512
        )
        for pragma in self._pragmas:
            conn.execute(pragma)
        return conn

    def _run(self, ready: asyncio.Future[None]) -> None:
        assert self._loop is not None
        try:
            conn = self._connect()
        except sqlite3.Error as exc:
            self._loop.call_soon_threadsafe(_settle_ready, ready, exc)
            return
        self._loop.call_soon_threadsafe(_settle_ready, ready, None)
        try:
            while True:
                with self._cv:
                    while not self._jobs and not self._closing:
                        self._cv.wait()
                    if not self._jobs:
                        return
                    group = [self._jobs.popleft()]
                    taken = group[0].weight
                    while self._jobs and taken + self._jobs[0].weight <= self._group_max:
                        job = self._jobs.popleft()
                        taken += job.weight
                        group.append(job)
                self._commit(conn, group)
                with self._cv:
                    self._queued -= taken
                self._loop.call_soon_threadsafe(self._settle, group)
        finally:
            conn.close()

    def _apply(self, conn: sqlite3.Connection, jobs: list[_Job]) -> list[WriteResult]:
        """The jobs in order. Consecutive writes are stored together: each statement gives up
        the GIL and then waits to take it back from a busy event loop, so a group of many small
        messages costs a few statements rather than a few per message."""
        results: list[WriteResult] = []
        writes: list[tuple[SampleBatch, dict[int, tuple[int, int]]]] = []
        for job in jobs:
            if job.batch is not None:
                ranges = job.batch.ranges()
                writes.append((job.batch, ranges))
                results.append(WriteResult(ranges=ranges, samples=len(job.batch)))
                continue
            if writes:
                self._samples.write(conn, writes)
                writes = []
            if job.recompute:
                done = self._samples.recompute(conn, job.recompute)
                results.append(WriteResult(ranges={}, recomputed=done))
                continue
            assert job.delete is not None
            spec = job.delete
            deleted = self._samples.delete(conn, spec)
            ranges = {sid: (spec.start, spec.end - 1) for sid, _ in spec.series}
            results.append(WriteResult(ranges=ranges, deleted=deleted))
        if writes:
            self._samples.write(conn, writes)
        return results

    def _transaction(self, conn: sqlite3.Connection, jobs: list[_Job]) -> list[WriteResult]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            results = self._apply(conn, jobs)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results

    def _commit(self, conn: sqlite3.Connection, group: list[_Job]) -> None:
        # Whatever fails fails its jobs, never the writer thread (every later write would wait).
        try:
            for job, result in zip(group, self._transaction(conn, group), strict=True):
                job.result = result
            return
        except Exception as exc:
            if len(group) == 1:
                group[0].error = _job_error(exc)
                return
        for job in group:  # the shared transaction failed: each member once on its own
            try:
                job.result = self._transaction(conn, [job])[0]
            except Exception as exc:
                job.error = _job_error(exc)

    def _settle(self, group: list[_Job]) -> None:
        for job in group:
            if job.future.done():
                continue
            if job.error is not None:
                job.future.set_exception(job.error)
            else:
                assert job.result is not None
                job.future.set_result(job.result)
                _run_hooks(self.hooks, job.result)


def _settle_ready(ready: asyncio.Future[None], exc: BaseException | None) -> None:
    if exc is None:
        ready.set_result(None)
    else:
        ready.set_exception(exc)


def _postgres_error(exc: BaseException) -> Unavailable:
    if "could not extend file" in str(exc) or "No space left" in str(exc):
        return StorageFull(retry_after=30)
    return Unavailable(retry_after=5)


_ROLLUP_LOCK = 0x7462726F6C6C  # serialises rollup passes across replicas


class PostgresWriter:
    """A pooled path: each request commits in its own transaction on one of a few connections."""

    def __init__(self, dsn: str, *, max_queued: int, connections: int) -> None:
        self._dsn = dsn
        self._max_queued = max_queued
        self._connections = connections
        self._samples = PostgresSamples()
        self._pool: Any = None
        self._queued = 0
        self.hooks: list[AfterCommit] = []

    @property
    def queued_samples(self) -> int:
        return self._queued

    def forget_partitions(self) -> None:
        self._samples.forget_partitions()

    async def recompute_rollups(self, limit: int) -> int:
        async def run(conn: Any) -> WriteResult:
            # One pass at a time across replicas; the others wait their turn.
            await conn.execute("SELECT pg_advisory_lock($1)", _ROLLUP_LOCK)
            try:
                done = await self._samples.recompute(conn, limit)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _ROLLUP_LOCK)
            return WriteResult(ranges={}, recomputed=done)

        return (await self._run(run, 1)).recomputed

    async def start(self) -> None:
        import asyncpg

        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=1,
            max_size=self._connections,
            command_timeout=60,
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def write(self, batch: SampleBatch) -> WriteResult:
        import asyncpg

        ranges = batch.ranges()

        async def run(conn: Any) -> WriteResult:
            for attempt in (1, 2):
                await self._samples.prepare(conn, batch, ranges)
                try:
                    await self._samples.write(conn, batch, ranges)
                    break
                except asyncpg.CheckViolationError as exc:
                    # Retention dropped a month this process still knew: make it again, once.
                    if attempt == 2 or "no partition" not in str(exc):
                        raise
                    self._samples.forget_partitions()
            return WriteResult(ranges=ranges, samples=len(batch))

        return await self._run(run, len(batch))

    async def delete(self, spec: RangeDelete) -> WriteResult:
        async def run(conn: Any) -> WriteResult:
            async with conn.transaction():
                deleted = await self._samples.delete(conn, spec)
            return WriteResult(
                ranges={sid: (spec.start, spec.end - 1) for sid, _ in spec.series}, deleted=deleted
            )

        return await self._run(run, 1)

    async def _run(self, fn: Callable[[Any], Any], weight: int) -> WriteResult:
        import asyncpg

        if self._queued and self._queued + weight > self._max_queued:
            raise Overloaded(retry_after=1)
        self._queued += weight
        try:
            async with self._pool.acquire() as conn:
                result: WriteResult = await fn(conn)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("sample write failed: %s", type(exc).__name__)
            raise _postgres_error(exc) from exc
        finally:
            self._queued -= weight
        _run_hooks(self.hooks, result)
        return result
