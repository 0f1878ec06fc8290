"""SingleFlight: concurrent misses of one key share one lookup, and nothing more is shared."""

from __future__ import annotations

import asyncio

import pytest

from thingbucket.kit.singleflight import SingleFlight


class _Lookup:
    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()

    async def __call__(self) -> int:
        self.calls += 1
        await self.gate.wait()
        return self.calls


async def test_callers_that_miss_together_share_one_lookup() -> None:
    flights, lookup = SingleFlight(), _Lookup()
    callers = [asyncio.create_task(flights.run("k", lookup)) for _ in range(50)]
    await asyncio.sleep(0)
    lookup.gate.set()
    assert await asyncio.gather(*callers) == [1] * 50
    assert lookup.calls == 1
    # Landed: the next miss looks up again (the caller's cache decides what is reused).
    assert await flights.run("k", lookup) == 2


async def test_other_keys_are_looked_up_apart() -> None:
    flights, lookup = SingleFlight(), _Lookup()
    lookup.gate.set()
    assert sorted(await asyncio.gather(flights.run("a", lookup), flights.run("b", lookup))) == [
        1,
        2,
    ]


async def test_a_cancelled_caller_does_not_cancel_the_lookup_of_the_others() -> None:
    flights, lookup = SingleFlight(), _Lookup()
    first = asyncio.create_task(flights.run("k", lookup))
    second = asyncio.create_task(flights.run("k", lookup))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    lookup.gate.set()
    assert await second == 1
    assert first.cancelled()


async def test_an_error_reaches_every_caller_and_is_not_kept() -> None:
    flights = SingleFlight()
    calls = 0

    async def failing() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise LookupError("gone")

    callers = [asyncio.create_task(flights.run("k", failing)) for _ in range(3)]
    for caller in callers:
        with pytest.raises(LookupError):
            await caller
    assert calls == 1
    with pytest.raises(LookupError):
        await flights.run("k", failing)
    assert calls == 2
