"""Request rate limits (security.md §5.5): token buckets per credential, thing, organization and
source address.

A bucket holds up to ``burst`` tokens and gains ``per_s`` tokens a second; a request takes one
token from every bucket that applies to it, or, when any of them is empty, takes none and is
refused. The levels live behind ``BucketStore`` (one call per decision, all or nothing), kept in
process by ``MemoryStore``; a shared store for several replicas implements the same call. A
decision is a few dict lookups and some arithmetic: no database, no lock, no await that suspends.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Protocol

from thingbucket.access.principal import Principal
from thingbucket.config import RateLimitSettings

BucketKind = Literal["credential", "thing", "organization", "address"]
Clock = Callable[[], float]
_ONE = 1.0 - 1e-9  # a token, allowing for the rounding of elapsed time x rate


@dataclass(frozen=True, slots=True)
class Rate:
    per_s: float
    burst: int


@dataclass(frozen=True, slots=True)
class Bucket:
    kind: BucketKind
    key: str  # unique across kinds: "<kind>:<id>"
    rate: Rate


class BucketStore(Protocol):
    async def take(self, buckets: Sequence[Bucket], now: float) -> tuple[bool, list[float]]:
        """Take one token from every bucket if each holds one (else take none).

        Returns whether the tokens were taken and each bucket's level afterwards, in order.
        ``now`` is a monotonic time in seconds.
        """
        ...


def level_at(tokens: float, stamp: float, rate: Rate, now: float) -> float:
    """A bucket's level at ``now``, having held ``tokens`` at ``stamp`` (never above its burst)."""
    return min(float(rate.burst), tokens + max(0.0, now - stamp) * rate.per_s)


class MemoryStore:
    """Bucket levels in a dict: ``key -> [tokens, stamp, per_s, burst]``.

    An absent bucket is a full one, so a bucket that has filled up again can be forgotten without
    changing any decision: when more than ``max_buckets`` are held, the full ones are dropped, then
    (under a flood of new keys) the oldest, down to 90% of the bound.
    """

    def __init__(self, max_buckets: int = 100_000) -> None:
        self.max_buckets = max_buckets
        self._levels: dict[str, list[float]] = {}

    def __len__(self) -> int:
        return len(self._levels)

    async def take(self, buckets: Sequence[Bucket], now: float) -> tuple[bool, list[float]]:
        return self.take_now(buckets, now)

    def take_now(self, buckets: Sequence[Bucket], now: float) -> tuple[bool, list[float]]:
        levels = self._levels
        current: list[float] = []
        allowed = True
        for bucket in buckets:
            entry = levels.get(bucket.key)
            level = (
                float(bucket.rate.burst)
                if entry is None
                else level_at(entry[0], entry[1], bucket.rate, now)
            )
            if level < _ONE:
                allowed = False
            current.append(level)
        if not allowed:
            return False, current
        for i, bucket in enumerate(buckets):
            level = current[i] - 1.0
            current[i] = level
            entry = levels.get(bucket.key)
            if entry is None:
                levels[bucket.key] = [level, now, bucket.rate.per_s, float(bucket.rate.burst)]
            else:
                entry[0] = level
                entry[1] = now
        if len(levels) > self.max_buckets:
            self._sweep(now)
        return True, current

    def _sweep(self, now: float) -> None:
        levels = self._levels
        for key in [
            k
            for k, (tokens, stamp, per_s, burst) in levels.items()
            if tokens + max(0.0, now - stamp) * per_s >= burst
        ]:
            del levels[key]
        target = int(self.max_buckets * 0.9)
        if len(levels) > target:
            # Dicts keep insertion order: the oldest buckets go first.
            for key in list(levels)[: len(levels) - target]:
                del levels[key]


@dataclass(frozen=True, slots=True)
class Decision:
    """What the buckets said about one request, and the ``X-RateLimit-*`` values of the tightest."""

    allowed: bool
    bucket: Bucket  # the tightest bucket (when refused, the one that refused for longest)
    limit: int  # its burst
    remaining: int  # whole tokens left in it
    reset: int  # epoch seconds at which it is full again
    retry_after: int  # when refused: whole seconds (>= 1) until every bucket holds a token

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset).encode()),
        ]


@lru_cache(maxsize=4096)
def address_key(address: str) -> str:
    """The bucket key of a client address: IPv4 as is, IPv6 by its /64 (one subscriber's prefix,
    so that rotating addresses inside it does not escape the limit)."""
    if ":" not in address:
        return address
    try:
        ip = ipaddress.IPv6Address(address.split("%", 1)[0])
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, 64), strict=False))


class RateLimiter:
    """The buckets of §5.5 for a principal or a source address, and their decision."""

    def __init__(
        self,
        settings: RateLimitSettings | None = None,
        *,
        store: BucketStore | None = None,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
    ) -> None:
        s = settings or RateLimitSettings()
        self.settings = s
        self.store: BucketStore = store or MemoryStore(s.max_buckets)
        self._clock = clock
        self._wall = wall
        self.credential = Rate(s.credential_per_s, s.credential_burst)
        self.thing = Rate(s.thing_per_s, s.thing_burst)
        self.organization = Rate(s.organization_per_s, s.organization_burst)
        self.address = Rate(s.address_per_s, s.address_burst)

    def buckets_for(self, who: Principal) -> list[Bucket]:
        """The buckets a principal's request takes from (none for the CLI's system principal).

        API keys and person tokens: their credential; things: the thing (all its device tokens and
        JWTs together); API keys and things also their organization. A person's tokens belong to
        no one organization, so they have the credential bucket only.
        """
        buckets: list[Bucket] = []
        if who.kind == "thing":
            if who.id and self.thing.per_s > 0:
                buckets.append(Bucket("thing", "thing:" + who.id, self.thing))
        elif who.kind in ("person", "api_key"):
            credential = who.credential_id or who.id
            if credential and self.credential.per_s > 0:
                buckets.append(Bucket("credential", "credential:" + credential, self.credential))
        else:
            return buckets
        if who.organization_id and self.organization.per_s > 0:
            buckets.append(
                Bucket("organization", "organization:" + who.organization_id, self.organization)
            )
        return buckets

    def buckets_for_address(self, address: str | None) -> list[Bucket]:
        """The bucket of a source address (none when the address is unknown or the rate off)."""
        if not address or self.address.per_s <= 0:
            return []
        return [Bucket("address", "address:" + address_key(address), self.address)]

    async def check(self, buckets: Sequence[Bucket]) -> Decision | None:
        """Take a token from each bucket, or refuse; None when no bucket applies."""
        if not buckets:
            return None
        now = self._clock()
        allowed, levels = await self.store.take(buckets, now)
        return self._decide(buckets, levels, allowed)

    async def check_principal(self, who: Principal) -> Decision | None:
        return await self.check(self.buckets_for(who))

    async def check_address(self, address: str | None) -> Decision | None:
        return await self.check(self.buckets_for_address(address))

    def _decide(self, buckets: Sequence[Bucket], levels: list[float], allowed: bool) -> Decision:
        wall = self._wall()
        if allowed:
            # The tightest: the fewest whole tokens left, then the latest refill.
            index = min(
                range(len(buckets)),
                key=lambda i: (
                    math.floor(levels[i]),
                    -(buckets[i].rate.burst - levels[i]) / buckets[i].rate.per_s,
                ),
            )
            wait = 0
        else:
            waits = [
                (1.0 - level) / bucket.rate.per_s if level < _ONE else 0.0
                for bucket, level in zip(buckets, levels, strict=True)
            ]
            index = max(range(len(buckets)), key=waits.__getitem__)
            wait = max(1, math.ceil(waits[index]))
        bucket, level = buckets[index], levels[index]
        return Decision(
            allowed=allowed,
            bucket=bucket,
            limit=bucket.rate.burst,
            remaining=max(0, math.floor(level)),
            reset=math.ceil(wall + (bucket.rate.burst - level) / bucket.rate.per_s),
            retry_after=wait,
        )
