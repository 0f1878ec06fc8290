"""The SQLite sample writer's own process: ``python -m thingbucket.points.writer_process``.

Why a process and not a thread: sqlite3 runs its statements without the GIL, but takes it back
after each one, and beside a busy event loop that waits up to the interpreter's switch interval
(5 ms) every time. Measured here: the same groups of writes at 640k samples/s in a thread beside
an idle loop, 200k/s beside a busy one. In a process of its own the writer has its own GIL (and
the second core), and the event loop never waits for it.

The parent (``points.writer.SqliteWriter``) talks to it over its stdin and stdout in frames: a
4-byte big-endian length, then a pickle (both ends are this package; nothing else writes there).

- parent to child: first the set-up ``(path, pragmas, group_max, cold_after_days)``, then jobs
  ``(job id, kind, payload)``: ``"write"`` with the number columns as typed arrays (series ids
  and timestamps ``q``, values ``d``) and the text rows, ``"delete"`` with
  ``(series, start, end, whole_chunks)``, ``"recompute"`` with a bucket limit, ``"pack"`` with
  ``(series id, start, end, samples per chunk)``.
- child to parent: first ``("ready", "")`` or ``("failed", reason)``, then per job
  ``(job id, ("ok", ranges, samples, deleted, recomputed, packed))`` or
  ``(job id, ("error", "full" | "storage" | "bug", text))``.

Jobs are taken in order and committed in groups (several writes in one transaction); a group
that fails is retried a job at one time, so no job is answered on the strength of another's
rows. Closing the child's stdin ends it once every job it read is answered; it ignores SIGINT
and SIGTERM, which a terminal or service manager also sends to it: the parent decides.
"""

from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import sys
import traceback
from collections import deque
from dataclasses import dataclass
from typing import Any

from thingbucket.points.batch import RangeDelete, SampleBatch
from thingbucket.points.sqlite_store import SqliteStore

MODULE = "thingbucket.points.writer_process"
_HEADER = 4
# Result: ("ok", ranges, samples, deleted, recomputed, packed) or ("error", kind, text).
Result = tuple[Any, ...]


def frame(obj: object) -> bytes:
    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return len(body).to_bytes(_HEADER, "big") + body


def take_frames(buffer: bytearray) -> list[Any]:
    """Every whole frame at the start of ``buffer``, decoded and removed from it."""
    out = []
    offset = 0
    with memoryview(buffer) as view:
        while len(buffer) - offset >= _HEADER:
            size = int.from_bytes(view[offset : offset + _HEADER], "big")
            end = offset + _HEADER + size
            if len(buffer) < end:
                break
            # Frames come only from the other end of this pipe pair: this package.
            out.append(pickle.loads(view[offset + _HEADER : end]))  # noqa: S301
            offset = end
    del buffer[:offset]
    return out


@dataclass(slots=True)
class _Job:
    id: int
    batch: SampleBatch | None = None
    delete: RangeDelete | None = None
    recompute: int = 0
    pack: tuple[int, int, int, int] | None = None
    result: Result | None = None

    @property
    def weight(self) -> int:
        return len(self.batch) if self.batch is not None else 1


def _job(message: tuple[int, str, Any]) -> _Job:
    job_id, kind, payload = message
    if kind == "write":
        sids, stamps, values, text = payload
        batch = SampleBatch.of_columns(sids.tolist(), stamps.tolist(), values.tolist(), text)
        return _Job(job_id, batch=batch)
    if kind == "delete":
        return _Job(job_id, delete=RangeDelete(*payload))
    if kind == "pack":
        return _Job(job_id, pack=tuple(payload))
    return _Job(job_id, recompute=int(payload))


class _Inbox:
    """Jobs read from the parent. Read only between groups, never while one commits: a frame
    that arrives meanwhile waits in the pipe (sized to hold many) instead of waking a reader,
    since each wake-up on 2 busy cores took the event loop's core from it for a while."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray()
        self.jobs: deque[_Job] = deque()
        self.ended = False

    def _read(self, *, wait: bool) -> None:
        """What the pipe holds (waiting for something first if ``wait``)."""
        os.set_blocking(self._fd, wait)
        try:
            while chunk := os.read(self._fd, 1 << 20):
                self._buffer += chunk
                os.set_blocking(self._fd, False)
            self.ended = True  # end of file: the parent closed our stdin
        except BlockingIOError:
            pass
        self.jobs.extend(_job(message) for message in take_frames(self._buffer))

    def take(self, group_max: int) -> list[_Job] | None:
        """The next group: jobs in order up to ``group_max`` samples (at least one job); None
        once stdin has closed and every job was taken."""
        if not self.ended:
            self._read(wait=False)
        while not self.jobs and not self.ended:
            self._read(wait=True)
        if not self.jobs:
            return None
        group = [self.jobs.popleft()]
        taken = group[0].weight
        while self.jobs and taken + self.jobs[0].weight <= group_max:
            job = self.jobs.popleft()
            taken += job.weight
            group.append(job)
        return group


def _error(exc: Exception) -> Result:
    if isinstance(exc, sqlite3.Error):
        text = str(exc)
        return ("error", "full" if "full" in text.lower() else "storage", text)
    return ("error", "bug", "".join(traceback.format_exception(exc)))


class _Writer:
    def __init__(self, conn: sqlite3.Connection, cold_after_days: int) -> None:
        self._conn = conn
        self._store = SqliteStore(cold_after_days)

    def _apply(self, jobs: list[_Job]) -> list[Result]:
        """The jobs in order; consecutive writes are stored by shared statements."""
        results: list[Result] = []
        writes: list[tuple[SampleBatch, dict[int, tuple[int, int]]]] = []
        for job in jobs:
            if job.batch is not None:
                ranges = job.batch.ranges()
                writes.append((job.batch, ranges))
                results.append(("ok", ranges, len(job.batch), 0, 0, 0))
                continue
            if writes:
                self._store.write(self._conn, writes)
                writes = []
            if job.pack is not None:
                packed = self._store.pack(self._conn, *job.pack)
                results.append(("ok", {}, 0, 0, 0, packed))
                continue
            if job.delete is None:
                done = self._store.recompute(self._conn, job.recompute)
                results.append(("ok", {}, 0, 0, done, 0))
                continue
            spec = job.delete
            deleted = self._store.delete(self._conn, spec)
            ranges = {sid: (spec.start, spec.end - 1) for sid, _ in spec.series}
            results.append(("ok", ranges, 0, deleted, 0, 0))
        if writes:
            self._store.write(self._conn, writes)
        return results

    def _transaction(self, jobs: list[_Job]) -> list[Result]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            results = self._apply(jobs)
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        return results

    def commit(self, group: list[_Job]) -> None:
        """Every job of the group gets a result; whatever fails fails its jobs only."""
        try:
            for job, result in zip(group, self._transaction(group), strict=True):
                job.result = result
            return
        except Exception as exc:
            if len(group) == 1:
                group[0].result = _error(exc)
                return
        for job in group:  # the shared transaction failed: each member once on its own
            try:
                job.result = self._transaction([job])[0]
            except Exception as exc:
                job.result = _error(exc)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_setup(fd: int) -> tuple[str, list[str], int, int]:
    """The first frame (the parent sends no job before the answer to it)."""
    buffer = bytearray()
    while not (messages := take_frames(buffer)):
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            raise SystemExit(0)
        buffer += chunk
    path, pragmas, group_max, cold_after_days = messages[0]
    return str(path), list(pragmas), int(group_max), int(cold_after_days)


def main() -> int:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    # The answers go to a private copy of stdout; anything printed goes to stderr instead.
    out = os.dup(1)
    os.dup2(2, 1)
    path, pragmas, group_max, cold_after_days = _read_setup(0)
    try:
        conn = sqlite3.connect(path, isolation_level=None, cached_statements=512)
        for pragma in pragmas:
            conn.execute(pragma)
    except sqlite3.Error as exc:
        _write_all(out, frame(("failed", str(exc))))
        return 1
    _write_all(out, frame(("ready", "")))
    inbox = _Inbox(0)
    writer = _Writer(conn, cold_after_days)
    try:
        while (group := inbox.take(group_max)) is not None:
            writer.commit(group)
            _write_all(out, b"".join(frame((job.id, job.result)) for job in group))
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
