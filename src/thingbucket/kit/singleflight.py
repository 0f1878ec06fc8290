"""One lookup shared by every caller that asks for the same key while it runs.

When a cached credential or decision expires, every request then in flight misses together; on
a busy connection that is hundreds of identical lookups (measured: 30 a second per target under
MQTT load instead of one). Callers keep their own cache; this only joins their misses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar, cast

T = TypeVar("T")


class SingleFlight:
    def __init__(self) -> None:
        self._flights: dict[Hashable, asyncio.Future[Any]] = {}

    async def run(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """``load()``'s result, or the result of the load of ``key`` already running. The load
        runs as a task of its own: a caller that is cancelled does not cancel it for the others
        (so it must not use the caller's session)."""
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(load())
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        return cast(T, await asyncio.shield(flight))

    def _landed(self, key: Hashable, flight: asyncio.Future[Any]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.cancelled():
            flight.exception()  # retrieved here, in case every caller was cancelled
