"""The one sample writer: callers are resolved only after the commit that holds their rows.

SQLite has a single writer, so one process of its own (``points.writer_process``) owns one
connection and commits several queued requests together (group commit). If a shared transaction
fails, each member is retried alone once, so no request is acknowledged or failed on the strength
of another's rows. PostgreSQL writes through a
small pool, one transaction per request. Both bound the samples waiting for a commit and answer
``Overloaded`` beyond it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import logging
import pickle
import sqlite3
import sys
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from thingbucket.errors import Overloaded, Unavailable
from thingbucket.points import writer_process
from thingbucket.points.batch import RangeDelete, SampleBatch
from thingbucket.points.repository import PostgresSamples

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
    packed: int = 0  # samples moved into cold chunks


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

    async def pack(self, series_id: int, start: int, end: int, cap: int) -> int:
        """Pack a series' samples of [start, end) (a UTC day) into cold chunks of at most
        ``cap``; how many it packed (none while a minute there waits for the rollup pass)."""
        ...


_PIPE_BYTES = 1 << 20  # Linux's default ceiling for unprivileged processes


@dataclass(slots=True)
class _Pending:
    weight: int
    future: asyncio.Future[WriteResult]


def _run_hooks(hooks: list[AfterCommit], result: WriteResult) -> None:
    for hook in hooks:
        try:
            hook(result)
        except Exception:  # a failing listener never affects an acknowledged write
            log.exception("after-commit hook failed")


def _failure(kind: str, text: str) -> Unavailable:
    if kind == "bug":
        log.error("sample write failed: %s", text)
    else:
        log.warning("sample write failed: %s", text)
    return StorageFull(retry_after=30) if kind == "full" else Unavailable(retry_after=5)


def _widen_pipe(stream: asyncio.StreamWriter) -> None:
    """Room in the pipe for many jobs: the process reads it only between groups (Linux; where
    the size cannot be set, asyncio buffers the rest)."""
    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)
    pipe = stream.get_extra_info("pipe")
    if setsize is None or pipe is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(pipe.fileno(), setsize, _PIPE_BYTES)


class SqliteWriter:
    """The parent's end of the writer process (``points.writer_process``, which says why it is a
    process): jobs go out in order over its stdin, results come back over its stdout, and each
    caller is resolved when its result arrives, that is after the commit that holds its rows.
    If the process dies, the jobs it had are failed (503) and a new one is started."""

    def __init__(
        self,
        path: str,
        pragmas: list[str],
        *,
        max_queued: int,
        group_max: int,
        cold_after_days: int = 7,
    ) -> None:
        self._setup = (path, pragmas, group_max, cold_after_days)
        self._max_queued = max_queued
        self._pending: dict[int, _Pending] = {}
        self._outbox: list[bytes] = []  # frames of this turn of the event loop
        self._ids = itertools.count()
        self._queued = 0
        self._closing = False
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self.hooks: list[AfterCommit] = []

    @property
    def queued_samples(self) -> int:
        return self._queued

    @property
    def pid(self) -> int | None:
        """The writer process's id while one runs."""
        return self._proc.pid if self._proc is not None else None

    def forget_partitions(self) -> None:
        pass  # SQLite has no partitions

    async def start(self) -> None:
        self._proc = await self._spawn()
        self._reader = asyncio.create_task(self._read(), name="thingbucket-sqlite-writer")

    async def _spawn(self) -> asyncio.subprocess.Process:
        """A new writer process, answering to its set-up; raises sqlite3.Error if it cannot
        open the database."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-P",  # never import from the working directory
            "-m",
            writer_process.MODULE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None
        _widen_pipe(proc.stdin)
        proc.stdin.write(writer_process.frame(self._setup))
        try:
            status, reason = await self._receive(proc)
        except asyncio.IncompleteReadError:
            status, reason = "failed", f"the writer process exited ({await proc.wait()})"
        if status != "ready":
            proc.stdin.close()
            await proc.wait()
            raise sqlite3.OperationalError(reason)
        return proc

    @staticmethod
    async def _receive(proc: asyncio.subprocess.Process) -> Any:
        assert proc.stdout is not None
        size = int.from_bytes(await proc.stdout.readexactly(4), "big")
        return pickle.loads(await proc.stdout.readexactly(size))  # noqa: S301 (our child)

    async def _read(self) -> None:
        """Results, until the process ends; then, unless closing, a new process."""
        while True:
            proc = self._proc
            assert proc is not None
            try:
                while True:
                    job_id, result = await self._receive(proc)
                    self._settle(job_id, result)
            except asyncio.IncompleteReadError:
                pass
            code = await proc.wait()
            self._proc = None
            lost = list(self._pending.values())
            self._pending.clear()
            self._queued = 0
            for job in lost:
                if not job.future.done():
                    job.future.set_exception(Unavailable(retry_after=1))
            if self._closing:
                return
            log.error("the sample writer process exited (%s); starting a new one", code)
            while not self._closing:
                try:
                    self._proc = await self._spawn()
                    break
                except (OSError, sqlite3.Error) as exc:
                    log.error("could not start the sample writer process: %s", exc)
                    await asyncio.sleep(1)
            if self._proc is None:
                return

    def _flush(self, proc: asyncio.subprocess.Process) -> None:
        """The jobs of one turn of the event loop in one write: each write wakes the process
        when it waits, and a wake-up per job took the event loop's core from it for a while.
        Jobs meant for a process that has died since were failed with it: they are dropped."""
        if proc is self._proc and proc.stdin is not None and self._outbox:
            proc.stdin.writelines(self._outbox)
        self._outbox.clear()

    def _settle(self, job_id: int, result: tuple[Any, ...]) -> None:
        job = self._pending.pop(job_id)
        self._queued -= job.weight
        if job.future.done():
            return
        if result[0] != "ok":
            job.future.set_exception(_failure(result[1], result[2]))
            return
        _, ranges, samples, deleted, recomputed, packed = result
        done = WriteResult(ranges, samples, deleted, recomputed, packed)
        job.future.set_result(done)
        _run_hooks(self.hooks, done)

    async def close(self) -> None:
        self._closing = True
        proc = self._proc
        if proc is not None and proc.stdin is not None:
            self._flush(proc)
            proc.stdin.close()  # the process answers what it has, then ends
        if self._reader is not None:
            await self._reader

    async def write(self, batch: SampleBatch) -> WriteResult:
        # Typed arrays pickle as their bytes: a fraction of the cost of a list of numbers.
        payload = (
            array("q", batch.sids),
            array("q", batch.stamps),
            array("d", batch.values),
            batch.text,
        )
        return await self._submit("write", payload, len(batch))

    async def delete(self, spec: RangeDelete) -> WriteResult:
        payload = (spec.series, spec.start, spec.end, spec.whole_chunks)
        return await self._submit("delete", payload, 1)

    async def recompute_rollups(self, limit: int) -> int:
        return (await self._submit("recompute", limit, 1)).recomputed

    async def pack(self, series_id: int, start: int, end: int, cap: int) -> int:
        return (await self._submit("pack", (series_id, start, end, cap), 1)).packed

    async def _submit(self, kind: str, payload: object, weight: int) -> WriteResult:
        proc = self._proc
        if self._closing or proc is None or proc.stdin is None:
            raise Unavailable(retry_after=1)
        if self._queued and self._queued + weight > self._max_queued:
            raise Overloaded(retry_after=1)
        job_id = next(self._ids)
        future: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        self._pending[job_id] = _Pending(weight, future)
        self._queued += weight
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self._flush, proc)
        self._outbox.append(writer_process.frame((job_id, kind, payload)))
        # Shielded: a caller that goes away does not cancel a write that may already be committed.
        return await asyncio.shield(future)


def _postgres_error(exc: BaseException) -> Unavailable:
    if "could not extend file" in str(exc) or "No space left" in str(exc):
        return StorageFull(retry_after=30)
    return Unavailable(retry_after=5)


_ROLLUP_LOCK = 0x7462726F6C6C  # serialises rollup passes across replicas


class PostgresWriter:
    """A pooled path: each request commits in its own transaction on one of a few connections."""

    def __init__(
        self, dsn: str, *, max_queued: int, connections: int, cold_after_days: int = 7
    ) -> None:
        self._dsn = dsn
        self._max_queued = max_queued
        self._connections = connections
        self._samples = PostgresSamples(cold_after_days)
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

    async def pack(self, series_id: int, start: int, end: int, cap: int) -> int:
        async def run(conn: Any) -> WriteResult:
            packed = await self._samples.pack(conn, series_id, start, end, cap)
            return WriteResult(ranges={}, packed=packed)

        return (await self._run(run, 1)).packed

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
