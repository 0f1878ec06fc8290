"""Background passes: one replica at a time on PostgreSQL, a failed pass does not stop the next."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from thingbucket.db.periodic import PeriodicTask, exclusive
from thingbucket.runtime import Runtime

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_only_one_holder_of_a_pass_lock_at_a_time(rt: Runtime, backend: str) -> None:
    async with exclusive(rt.db, 0x7462746573) as first:
        assert first
        async with exclusive(rt.db, 0x7462746573) as second:
            # Another session of PostgreSQL stands for another replica; SQLite has one writer.
            assert second is (backend == "sqlite")
    async with exclusive(rt.db, 0x7462746573) as again:
        assert again  # released


class _Flaky(PeriodicTask):
    name = "flaky"
    lock_id = 0x7462746574

    def __init__(self, rt: Runtime) -> None:
        super().__init__(rt.db, 0, 0.01)
        self.calls = 0
        self.done = asyncio.Event()

    async def run_pass(self) -> None:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("first pass fails")
        self.done.set()


async def test_a_failed_pass_is_logged_and_the_next_one_runs(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    task = _Flaky(rt)
    task.start()
    try:
        await asyncio.wait_for(task.done.wait(), 10)
    finally:
        await task.close()
    assert task.calls >= 2
    assert "flaky pass failed" in caplog.text


class _Slow(PeriodicTask):
    name = "slow"
    lock_id = 0x7462746575

    def __init__(self, rt: Runtime) -> None:
        super().__init__(rt.db, 0, 60)
        self.started = asyncio.Event()

    async def run_pass(self) -> None:
        async with self._db.session() as session:
            self.started.set()
            query = "SELECT 1" if self._db.is_sqlite else "SELECT pg_sleep(30)"
            await session.execute(sa.text(query))
            await asyncio.sleep(30)


async def test_closing_stops_a_pass_in_the_middle_of_a_query(rt: Runtime) -> None:
    """A cancelled query invalidates its connection; the cancellation must still end the task
    (it once turned into an error of the rollback, which the loop took for a failed pass)."""
    task = _Slow(rt)
    task.start()
    await asyncio.wait_for(task.started.wait(), 10)
    await asyncio.sleep(0.2)  # inside the query
    await asyncio.wait_for(task.close(), 10)
    async with exclusive(rt.db, _Slow.lock_id) as mine:
        assert mine  # the cancelled pass let go of its lock
