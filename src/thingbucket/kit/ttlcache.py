"""A small time- and generation-bounded cache for credential and permission lookups.

An entry is used only while it is younger than its TTL (at most 1 s for decisions, security.md
§3.8) and while the database generation it was read under is still current: any control-plane
commit in this process bumps the generation, so the process that made a change sees it at once.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, ttl_s: float = 1.0, maxsize: int = 10_000) -> None:
        self._ttl = ttl_s
        self._maxsize = maxsize
        self._entries: OrderedDict[K, tuple[float, int, V]] = OrderedDict()

    def get(self, key: K, generation: int) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, gen, value = entry
        if gen != generation or time.monotonic() >= expires:
            del self._entries[key]
            return None
        return value

    def put(self, key: K, value: V, generation: int, ttl_s: float | None = None) -> None:
        ttl = self._ttl if ttl_s is None else min(ttl_s, self._ttl)
        if ttl <= 0:
            return
        self._entries[key] = (time.monotonic() + ttl, generation, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._maxsize:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
