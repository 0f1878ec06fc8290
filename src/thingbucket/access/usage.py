"""``last_used_at`` of credentials, written at most once per 60 s each, off the request path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from thingbucket.db.base import utcnow

log = logging.getLogger(__name__)
INTERVAL_S = 60.0

Updater = Callable[[dict[str, datetime]], Awaitable[None]]


class UsageTracker:
    def __init__(self) -> None:
        self._written: dict[tuple[str, str], float] = {}
        self._pending: dict[str, dict[str, datetime]] = {}
        self._updaters: dict[str, Updater] = {}
        self._task: asyncio.Task[None] | None = None

    def register(self, kind: str, updater: Updater) -> None:
        self._updaters[kind] = updater

    def mark(self, kind: str, credential_id: str) -> None:
        now = time.monotonic()
        key = (kind, credential_id)
        last = self._written.get(key)
        if last is not None and now - last < INTERVAL_S:
            return
        self._written[key] = now
        self._pending.setdefault(kind, {})[credential_id] = utcnow()

    def start(self, period_s: float = 5.0) -> None:
        self._task = asyncio.create_task(self._loop(period_s), name="thingbucket-last-used")

    async def _loop(self, period_s: float) -> None:
        while True:
            await asyncio.sleep(period_s)
            await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for kind, stamps in pending.items():
            updater = self._updaters.get(kind)
            if updater is None:
                continue
            try:
                await updater(stamps)
            except Exception:
                log.warning("could not record last use of %d %s credentials", len(stamps), kind)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
