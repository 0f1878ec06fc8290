"""``max_points``: LTTB for raw reads, a coarser interval for aggregates, flagged in the answer."""

from __future__ import annotations

import math

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import Setup, make_property, make_setup
from thingbucket.points.downsample import Lttb, lttb_grid
from thingbucket.runtime import Runtime

ASYNC = pytest.mark.asyncio(loop_scope="session")
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, epoch ms


def lttb(samples: list[tuple[int, float]], start: int, end: int, max_points: int) -> list[int]:
    edges, width = lttb_grid(start, end, max_points)
    sums: dict[int, list[float]] = {}
    for ts, value in samples:
        b = min((ts - edges[0]) // width, len(edges) - 2)
        sums.setdefault(b, []).append(value)
    targets = [
        (edges[i] + width / 2, sum(sums[i]) / len(sums[i])) if i in sums else None
        for i in range(len(edges) - 1)
    ]
    picker = Lttb(edges, targets)
    for ts, value in samples:
        picker.feed(ts, value)
    return [ts for ts, _ in picker.kept()]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 10**9), min_size=1, max_size=400, unique=True),
    st.integers(3, 60),
)
def test_lttb_keeps_first_last_and_at_most_max_points_of_the_input(
    stamps: list[int], max_points: int
) -> None:
    stamps.sort()
    samples = [(ts, float(hash((ts, 7)) % 1000)) for ts in stamps]
    kept = lttb(samples, stamps[0], stamps[-1] + 1, max_points)
    assert kept[0] == stamps[0]
    assert kept[-1] == stamps[-1]
    assert len(kept) <= max_points
    assert kept == sorted(set(kept))
    assert set(kept) <= set(stamps)


def test_lttb_keeps_a_lone_spike() -> None:
    samples = [(i, math.sin(i / 50)) for i in range(10_000)]
    samples[6_543] = (6_543, 40.0)
    kept = lttb(samples, 0, 10_000, 100)
    assert 6_543 in kept
    assert len(kept) <= 100


async def write_series(client: httpx.AsyncClient, s: Setup, url: str, n: int) -> list[float]:
    values = [round(math.sin(i / 40), 6) for i in range(n)]
    values[n // 3] = 50.0
    for first in range(0, n, 5_000):
        rows = [[T0 + i * 1000, values[i]] for i in range(first, min(n, first + 5_000))]
        answer = await client.post(url, json={"points": rows}, headers=s.owner.headers)
        assert answer.status_code == 204, answer.text
    return values


@ASYNC
async def test_raw_reads_under_max_points_are_lttb_of_the_stored_samples(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    prop = await make_property(client, s.owner, s.thing["id"], type="SPEED")
    url = f"/api/v1/things/{s.thing['id']}/properties/{prop['id']}/points"
    values = await write_series(client, s, url, 12_000)
    window = {"from": T0, "to": T0 + 12_000 * 1000}
    answer = await client.get(url, params={**window, "max_points": 200}, headers=s.owner.headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["downsampled"] is True
    assert body["next_cursor"] is None
    rows = body["rows"]
    assert 100 < len(rows) <= 200
    assert rows[0][0] == T0
    assert rows[-1][0] == T0 + 11_999 * 1000
    assert [T0 + 4_000 * 1000, 50.0] in rows  # the spike survives
    for ts, value in rows:  # every row is a stored sample, unchanged
        assert values[(ts - T0) // 1000] == value
    expected = lttb([(T0 * 1000 + i * 10**6, v) for i, v in enumerate(values)],
                    T0 * 1000, (T0 + 12_000 * 1000) * 1000, 200)  # fmt: skip
    assert [r[0] * 1000 for r in rows] == expected

    whole = await client.get(url, params={**window, "max_points": 20_000}, headers=s.owner.headers)
    assert whole.json()["downsampled"] is False
    assert len(whole.json()["rows"]) == 12_000
    csv = await client.get(
        url, params={**window, "max_points": 200, "format": "csv"}, headers=s.owner.headers
    )
    assert csv.status_code == 400
    assert csv.json()["error"]["code"] == "INVALID_QUERY"


@ASYNC
async def test_aggregates_under_max_points_use_a_coarser_interval(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    prop = await make_property(client, s.owner, s.thing["id"], type="SPEED")
    url = f"/api/v1/things/{s.thing['id']}/properties/{prop['id']}/points"
    await write_series(client, s, url, 7_200)  # two hours at 1 Hz
    window: dict[str, str | int] = {"from": T0, "to": T0 + 7_200_000, "agg": "avg,max,count"}
    fine = await client.get(
        url, params={**window, "interval": "10s", "max_points": 100}, headers=s.owner.headers
    )
    body = fine.json()
    assert body["downsampled"] is True
    assert body["interval"] == "80s"  # 720 buckets of 10 s, at most 100: eight times longer
    assert len(body["rows"]) <= 100
    direct = await client.get(url, params={**window, "interval": "80s"}, headers=s.owner.headers)
    assert body["rows"] == direct.json()["rows"]
    assert direct.json()["downsampled"] is False
    assert sum(r[3] for r in body["rows"]) == 7_200

    days: dict[str, str | int] = {"from": T0, "to": T0 + 3 * 365 * 86_400_000, "agg": "count"}
    calendar = await client.get(
        url, params={**days, "interval": "1d", "max_points": 30, "fill": "null"},
        headers=s.owner.headers,
    )  # fmt: skip
    cal = calendar.json()
    assert cal["downsampled"] is True
    assert cal["interval"].endswith("d")
    assert len(cal["rows"]) <= 30
    assert sum(r[1] or 0 for r in cal["rows"]) == 7_200
