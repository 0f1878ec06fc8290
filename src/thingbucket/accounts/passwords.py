"""argon2id hashing off the event loop, with a bounded queue (security.md §3.4)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from thingbucket.config import SecuritySettings
from thingbucket.errors import Overloaded

T = TypeVar("T")

MIN_LENGTH = 8
MAX_LENGTH = 1024


class Passwords:
    def __init__(self, settings: SecuritySettings) -> None:
        self._hasher = Argon2Hasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        workers = os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        self._capacity = workers * 5  # running plus at most 4 x cpu_count waiting
        self._in_use = 0
        # Unknown accounts are checked against this so that their answer takes as long.
        self._dummy = self._hasher.hash("thingbucket dummy password")

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._in_use >= self._capacity:
            raise Overloaded(retry_after=1)
        self._in_use += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn)
        finally:
            self._in_use -= 1

    def hash_sync(self, password: str) -> str:
        return self._hasher.hash(password)

    async def hash(self, password: str) -> str:
        return await self._run(lambda: self._hasher.hash(password))

    async def verify(self, stored: str | None, password: str) -> bool:
        """True when ``password`` matches; a missing hash is checked against a dummy one."""
        target = stored or self._dummy

        def check() -> bool:
            try:
                return self._hasher.verify(target, password) and stored is not None
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return await self._run(check)

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)

    def close(self) -> None:
        self._pool.shutdown(wait=False)
