"""Login throttle per account and per source address (security.md §3.4), kept in process."""

from __future__ import annotations

import math
import time
from collections import deque

from thingbucket.errors import Throttled


class LoginThrottled(Throttled):
    code = "LOGIN_THROTTLED"
    message = "Too many failed logins; retry later."


class LoginThrottle:
    def __init__(self, per_account: int, per_address: int, window_s: float) -> None:
        self._per_account = per_account
        self._per_address = per_address
        self._window = window_s
        self._accounts: dict[str, deque[float]] = {}
        self._addresses: dict[str, deque[float]] = {}

    def _recent(self, table: dict[str, deque[float]], key: str, now: float) -> deque[float]:
        failures = table.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        if not failures:
            del table[key]
        return failures

    def check(self, account: str, address: str | None) -> None:
        """Raise LoginThrottled when either bucket is full; call before checking the password."""
        now = time.monotonic()
        for table, key, limit in (
            (self._accounts, account, self._per_account),
            (self._addresses, address, self._per_address),
        ):
            if key is None:
                continue
            failures = self._recent(table, key, now)
            if len(failures) >= limit:
                wait = failures[0] + self._window - now
                raise LoginThrottled(retry_after=max(1, math.ceil(wait)))

    def failed(self, account: str, address: str | None) -> None:
        now = time.monotonic()
        self._accounts.setdefault(account, deque()).append(now)
        if address is not None:
            self._addresses.setdefault(address, deque()).append(now)

    def succeeded(self, account: str) -> None:
        self._accounts.pop(account, None)
