"""Background passes of a serving process (retention, rollups, cold chunks).

Each pass is its own unit of work; a failed pass is logged and the next one tries again. On
PostgreSQL a pass that must not run twice at once holds a session advisory lock, so of several
replicas one runs it and the others skip that turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import ClassVar

import sqlalchemy as sa

from thingbucket.db.engine import Database

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def exclusive(db: Database, key: int) -> AsyncIterator[bool]:
    """True while this process holds the advisory lock ``key``; False if another one does.
    SQLite has one process writing anyway: always True there."""
    if db.is_sqlite:
        yield True
        return
    async with db.session() as lock:
        got = bool(await lock.scalar(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}))
        try:
            yield got
        finally:
            if got:
                await lock.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})


class PeriodicTask:
    """``run_pass`` after ``first_s``, then every ``interval_s``; under ``lock_id`` if set."""

    name: ClassVar[str]
    lock_id: ClassVar[int | None] = None

    def __init__(self, db: Database, first_s: float, interval_s: float) -> None:
        self._db = db
        self._first_s = first_s
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def run_pass(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"thingbucket-{self.name}")

    async def _loop(self) -> None:
        await asyncio.sleep(self._first_s)
        while True:
            try:
                if self.lock_id is None:
                    await self.run_pass()
                else:
                    async with exclusive(self._db, self.lock_id) as mine:
                        if mine:
                            await self.run_pass()
            except Exception:
                log.exception("%s pass failed", self.name)
            await asyncio.sleep(self._interval_s)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
