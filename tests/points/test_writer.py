"""The one writer: group commit, acknowledgement after commit, bounded queue, failure isolation."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from conftest import base_settings
from thingbucket.config import Settings
from thingbucket.db.engine import Database, sqlite_pragmas
from thingbucket.db.migrate import upgrade_head
from thingbucket.errors import Overloaded, Unavailable
from thingbucket.points.batch import RangeDelete, SampleBatch
from thingbucket.points.writer import PostgresWriter, SqliteWriter, WriteResult
from thingbucket.runtime import build_runtime

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _migrated(settings: Settings) -> None:
    db = Database(settings)
    try:
        await upgrade_head(db)
    finally:
        await db.dispose()


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> tuple[Settings, str]:
    settings = base_settings(tmp_path)
    await _migrated(settings)
    return settings, str(tmp_path / "thingbucket.db")


def _count(path: str, table: str = "samples_num") -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def test_concurrent_writes_are_each_acknowledged_after_their_commit(
    sqlite_db: tuple[Settings, str],
) -> None:
    settings, path = sqlite_db
    writer = SqliteWriter(path, sqlite_pragmas(settings), max_queued=100_000, group_max=50_000)
    seen: list[WriteResult] = []
    writer.hooks.append(seen.append)
    await writer.start()
    try:

        async def one(i: int) -> int:
            batch = SampleBatch(num=[(i, ts, float(ts)) for ts in range(100)])
            result = await writer.write(batch)
            assert result.ranges == {i: (0, 99)}
            # Acknowledged means committed: another connection sees the rows now.
            with sqlite3.connect(path) as conn:
                n = conn.execute("SELECT count(*) FROM samples_num WHERE series_id = ?", (i,))
                return int(n.fetchone()[0])

        counts = await asyncio.gather(*(one(i) for i in range(1, 51)))
        assert counts == [100] * 50
        assert len(seen) == 50
        assert _count(path) == 5000
    finally:
        await writer.close()


async def test_a_full_queue_answers_overloaded(sqlite_db: tuple[Settings, str]) -> None:
    settings, path = sqlite_db
    writer = SqliteWriter(path, sqlite_pragmas(settings), max_queued=10, group_max=10)
    await writer.start()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # hold the write lock so the writer cannot drain
    try:
        first = asyncio.ensure_future(
            writer.write(SampleBatch(num=[(1, t, 1.0) for t in range(8)]))
        )
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded):
            await writer.write(SampleBatch(num=[(2, t, 1.0) for t in range(8)]))
        blocker.execute("COMMIT")
        await first
        assert _count(path) == 8
    finally:
        blocker.close()
        await writer.close()


async def test_a_failing_request_in_a_shared_transaction_fails_alone(
    sqlite_db: tuple[Settings, str],
) -> None:
    settings, path = sqlite_db
    writer = SqliteWriter(path, sqlite_pragmas(settings), max_queued=1000, group_max=1000)
    await writer.start()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        good1 = asyncio.ensure_future(writer.write(SampleBatch(num=[(1, 1, 1.0)])))
        # SQLite stores NaN as NULL, which the NOT NULL column refuses.
        bad = asyncio.ensure_future(writer.write(SampleBatch(num=[(2, 1, float("nan"))])))
        good2 = asyncio.ensure_future(writer.write(SampleBatch(num=[(3, 1, 3.0)])))
        await asyncio.sleep(0.05)  # all three are queued behind the lock, one group
        blocker.execute("COMMIT")
        await good1
        await good2
        with pytest.raises(Exception) as info:
            await bad
        assert getattr(info.value, "error_code", "") == "STORAGE_UNAVAILABLE"
        with sqlite3.connect(path) as conn:
            rows = conn.execute(
                "SELECT series_id, value FROM samples_num ORDER BY series_id"
            ).fetchall()
        assert rows == [(1, 1.0), (3, 3.0)]
    finally:
        blocker.close()
        await writer.close()


async def test_deletes_go_through_the_writer(sqlite_db: tuple[Settings, str]) -> None:
    settings, path = sqlite_db
    writer = SqliteWriter(path, sqlite_pragmas(settings), max_queued=1000, group_max=1000)
    await writer.start()
    try:
        await writer.write(SampleBatch(num=[(5, t, 1.0) for t in range(10)], text=[(6, 3, "a")]))
        result = await writer.delete(RangeDelete(((5, "number"), (6, "text")), 2, 8))
        assert result.deleted == 7
        assert _count(path) == 4
        assert _count(path, "samples_text") == 0
    finally:
        await writer.close()


async def test_one_group_applies_its_writes_and_deletes_in_queue_order(
    sqlite_db: tuple[Settings, str],
) -> None:
    """A group's consecutive writes are stored by shared statements: a later write of a
    timestamp still wins, a delete between writes removes only what came before it, and each
    write's dirty rollup buckets are its own (none between two far-apart writes)."""
    settings, path = sqlite_db
    writer = SqliteWriter(path, sqlite_pragmas(settings), max_queued=100_000, group_max=100_000)
    await writer.start()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # everything below queues into one group
    year_us = 365 * 86_400_000_000
    try:
        jobs = [
            writer.write(SampleBatch(num=[(7, t, 1.0) for t in range(150)])),
            writer.write(SampleBatch(num=[(7, t, 2.0) for t in range(100, 1250)])),
            writer.delete(RangeDelete(((7, "number"),), 0, 50)),
            writer.write(SampleBatch(num=[(7, 10, 3.0), (8, year_us, 4.0)], text=[(9, 1, "x")])),
            writer.write(SampleBatch(num=[(7, 1249, 5.0)])),
        ]
        tasks = [asyncio.ensure_future(j) for j in jobs]
        await asyncio.sleep(0.05)
        blocker.execute("COMMIT")
        results = await asyncio.gather(*tasks)
        assert [r.samples for r in results] == [150, 1150, 0, 3, 1]
        assert results[2].deleted == 50
        with sqlite3.connect(path) as conn:
            rows = dict(
                conn.execute("SELECT ts, value FROM samples_num WHERE series_id = 7").fetchall()
            )
            marks = conn.execute(
                "SELECT series_id, count(*) FROM rollup_dirty WHERE level = 0 GROUP BY series_id"
            ).fetchall()
        want = dict.fromkeys(range(50, 100), 1.0) | dict.fromkeys(range(100, 1249), 2.0)
        assert rows == want | {10: 3.0, 1249: 5.0}
        assert _count(path, "samples_text") == 1
        # Series 7's samples lie in its first minute, series 8's one sample a year later.
        assert sorted(marks) == [(7, 1), (8, 1)]
    finally:
        blocker.close()
        await writer.close()


@pytest.mark.needs_pg
async def test_postgres_writer_upserts_and_dedupes_a_batch(pg_url: str, tmp_path: Path) -> None:
    settings = base_settings(tmp_path, pg_url)
    await _migrated(settings)
    rt = build_runtime(settings)
    writer = rt.writer
    assert isinstance(writer, PostgresWriter)
    await writer.start()
    try:
        sid = 900_000_001
        year_2020 = 1_577_836_800_000_000
        ts = [
            year_2020 + i * 86_400_000_000 * 40 for i in range(5)
        ]  # spans several monthly partitions
        batch = SampleBatch(num=[(sid, t, 1.0) for t in ts] + [(sid, ts[0], 2.0)])
        await writer.write(batch)
        await writer.write(SampleBatch(num=[(sid, ts[1], 3.0)]))
        await writer.write(SampleBatch(text=[(sid + 1, ts[0], "x"), (sid + 1, ts[0], "y")]))
        async with rt.db.engine.connect() as conn:
            from sqlalchemy import text

            rows = (
                await conn.execute(
                    text("SELECT ts, value FROM samples_num WHERE series_id = :s ORDER BY ts"),
                    {"s": sid},
                )
            ).all()
            texts = (
                (
                    await conn.execute(
                        text("SELECT value FROM samples_text WHERE series_id = :s"), {"s": sid + 1}
                    )
                )
                .scalars()
                .all()
            )
        assert [tuple(r) for r in rows] == [
            (ts[0], 2.0),
            (ts[1], 3.0),
            (ts[2], 1.0),
            (ts[3], 1.0),
            (ts[4], 1.0),
        ]
        assert list(texts) == ["y"]
        deleted = await writer.delete(RangeDelete(((sid, "number"),), ts[0], ts[2]))
        assert deleted.deleted == 2
    finally:
        await writer.close()
        await rt.db.dispose()
        rt.passwords.close()


async def test_a_killed_writer_process_fails_its_jobs_and_is_replaced(
    sqlite_db: tuple[Settings, str],
) -> None:
    """Jobs the process held when it died answer 503 (never a false acknowledgement); the next
    write goes to a new process and commits."""
    settings, path = sqlite_db
    writer = SqliteWriter(path, sqlite_pragmas(settings), max_queued=100_000, group_max=100_000)
    await writer.start()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the job waits in the process for the write lock
    try:
        first = writer.pid
        assert first is not None
        held = asyncio.ensure_future(writer.write(SampleBatch(num=[(1, 1, 1.0)])))
        await asyncio.sleep(0.2)
        os.kill(first, signal.SIGKILL)
        with pytest.raises(Unavailable):
            await held
        blocker.execute("ROLLBACK")
        for _ in range(100):  # the replacement starts in the background
            if writer.pid not in (None, first):
                break
            await asyncio.sleep(0.05)
        assert writer.pid not in (None, first)
        result = await writer.write(SampleBatch(num=[(2, 5, 2.0)]))
        assert result.samples == 1
        assert _count(path) == 1
    finally:
        blocker.close()
        await writer.close()


async def test_the_writer_process_ignores_the_terminals_interrupt(
    sqlite_db: tuple[Settings, str],
) -> None:
    """Ctrl-C reaches every process of the terminal's group: the writer leaves stopping to the
    server, which answers what is queued before it closes the writer."""
    settings, path = sqlite_db
    writer = SqliteWriter(path, sqlite_pragmas(settings), max_queued=100_000, group_max=100_000)
    await writer.start()
    try:
        assert writer.pid is not None
        os.kill(writer.pid, signal.SIGINT)
        os.kill(writer.pid, signal.SIGTERM)
        await asyncio.sleep(0.1)
        assert (await writer.write(SampleBatch(num=[(3, 1, 1.0)]))).samples == 1
        queued = [writer.write(SampleBatch(num=[(4, t, 1.0)])) for t in range(50)]
        tasks = [asyncio.ensure_future(q) for q in queued]
        await asyncio.sleep(0)  # queued, then the close comes
    finally:
        await writer.close()
    assert [r.samples for r in await asyncio.gather(*tasks)] == [1] * 50
    assert _count(path) == 51


async def test_a_writer_that_cannot_open_the_database_refuses_to_start(tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    missing = str(tmp_path / "no-such-dir" / "thingbucket.db")
    writer = SqliteWriter(missing, sqlite_pragmas(settings), max_queued=10, group_max=10)
    with pytest.raises(sqlite3.OperationalError, match="unable to open"):
        await writer.start()
