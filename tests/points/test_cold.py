"""Cold chunks on SQLite and PostgreSQL: packed days read, aggregate, export and delete exactly
as before; late writes and deletes reach into them; retention takes them whole."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from helpers import Setup, make_setup, pack_property
from thingbucket.kit.time import now_us
from thingbucket.points import cold, retention
from thingbucket.points.rollups import catch_up
from thingbucket.runtime import Runtime

pytestmark = pytest.mark.asyncio(loop_scope="session")
DAY_MS = 86_400_000
# Three UTC days, 60 days ago: old enough for any cold.after_days the tests use.
T0 = (now_us() // 1000 // DAY_MS - 60) * DAY_MS
END = T0 + 3 * DAY_MS
DIMENSIONS = [
    {"id": "t", "name": "temperature", "kind": "number"},
    {"id": "h", "name": "humidity", "kind": "number"},
    {"id": "s", "name": "state", "kind": "text"},
]
INEXACT = ("sum", "avg", "stddev")  # summed in another order on another path


def readings() -> list[list[Any]]:
    """Every 41 s, two numbers (one -0.0 and an odd float among them) and a text now and then."""
    rows: list[list[Any]] = []
    for i, ts in enumerate(range(T0 + 500, END - 500, 41_000)):
        temp = round(20 + 5 * math.sin(i / 300), 2) if i % 1000 else -0.0
        hum = i * 0.1 + 1e-9 if i % 7 == 0 else None
        rows.append([ts, temp, hum, "on" if i % 50 == 0 else None])
    return rows


async def setup(client: httpx.AsyncClient, rt: Runtime) -> tuple[Setup, str]:
    s = await make_setup(client, rt, dimensions=DIMENSIONS)
    rows = readings()
    for i in range(0, len(rows), 5000):
        body = {"points": rows[i : i + 5000]}
        answer = await client.post(s.points_url, json=body, headers=s.owner.headers)
        assert answer.status_code == 204, answer.text
    await catch_up(rt)
    return s, s.points_url


async def read(client: httpx.AsyncClient, s: Setup, url: str, **params: Any) -> Any:
    answer = await client.get(url, params=params, headers=s.owner.headers)
    assert answer.status_code == 200, answer.text
    if params.get("format") == "csv":
        return answer.text
    return answer.json()


async def answers(client: httpx.AsyncClient, s: Setup, url: str) -> dict[str, Any]:
    """What a user sees of the three days, in every way the API reads samples."""
    out: dict[str, Any] = {}
    whole = {"from": T0 - 1000, "to": END}
    out["raw"] = (await read(client, s, url, **whole))["rows"]
    out["desc"] = (await read(client, s, url, **whole, order="desc", limit=700))["rows"]
    pages, cursor = [], None
    for _ in range(50):  # paged across chunk edges and the text series' samples
        page = await read(
            client, s, url, **whole, limit=1111, **({"cursor": cursor} if cursor else {})
        )
        pages.extend(page["rows"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    out["pages"] = pages
    out["csv"] = await read(client, s, url, **whole, format="csv")
    out["lttb"] = (await read(client, s, url, **whole, max_points=60))["rows"]
    inner = {"from": T0 + 3_333, "to": END - 77_777}
    functions = "count,sum,min,max,first,last,avg,median,stddev"
    for interval, tz in (("45s", "UTC"), ("1m", "UTC"), ("7m", "UTC"), ("1h", "UTC"),
                         ("1d", "Europe/Amsterdam")):  # fmt: skip
        got = await read(client, s, url, **inner, interval=interval, agg=functions, tz=tz)
        out[f"agg {interval}"] = (got["columns"], got["rows"])
    bucket = await client.get(f"/api/v1/buckets/{s.bucket['id']}", headers=s.owner.headers)
    out["oldest"] = bucket.json()["oldest_sample_at"]
    return out


def assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert before.keys() == after.keys()
    for key, want in before.items():
        if not key.startswith("agg"):
            assert after[key] == want, key
            continue
        columns, rows = want
        got_columns, got_rows = after[key]
        assert got_columns == columns
        assert len(got_rows) == len(rows), key
        for row, got in zip(rows, got_rows, strict=True):
            for column, a, b in zip(columns, row, got, strict=True):
                if column.endswith(INEXACT) and a is not None and b is not None:
                    assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9), (key, column, a, b)
                else:
                    assert a == b, (key, column, row[0], a, b)


async def table_samples(rt: Runtime, property_id: str) -> tuple[int, int]:
    """(samples in samples_num, samples in chunks) of the property's number series."""
    async with rt.db.session() as session:
        hot = await session.scalar(
            sa.text(
                "SELECT count(*) FROM samples_num x JOIN series s ON s.id = x.series_id "
                "WHERE s.property_id = :p"
            ),
            {"p": property_id},
        )
        packed = await session.scalar(
            sa.text(
                "SELECT coalesce(sum(n), 0) FROM sample_chunks c JOIN series s "
                "ON s.id = c.series_id WHERE s.property_id = :p"
            ),
            {"p": property_id},
        )
    return int(hot or 0), int(packed or 0)


async def pack(rt: Runtime, s: Setup, cap: int = 400) -> int:
    return await pack_property(rt, s.prop["id"], (T0 - DAY_MS) * 1000, (END + DAY_MS) * 1000, cap)


async def test_packed_days_read_aggregate_and_export_as_before(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s, url = await setup(client, rt)
    before = await answers(client, s, url)
    hot, _ = await table_samples(rt, s.prop["id"])
    assert await pack(rt, s) == hot
    assert await table_samples(rt, s.prop["id"]) == (0, hot)
    assert_same(before, await answers(client, s, url))
    # A day's chunks hold at most the cap, each a stretch on minute boundaries.
    async with rt.db.session() as session:
        chunks = (
            await session.execute(
                sa.text(
                    "SELECT start_ts, end_ts, first_ts, last_ts, n FROM sample_chunks c "
                    "JOIN series s ON s.id = c.series_id WHERE s.property_id = :p "
                    "ORDER BY c.series_id, start_ts"
                ),
                {"p": s.prop["id"]},
            )
        ).all()
    assert len(chunks) > 6
    for start, end, first, last, n in chunks:
        assert start % 60_000_000 == end % 60_000_000 == 0
        assert start <= first <= last < end
        assert 0 < n <= 400


async def test_a_day_is_packed_only_once_its_minutes_are_built(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s, url = await setup(client, rt)
    late = [[T0 + DAY_MS + 1, 1.5, None, None]]
    assert (
        await client.post(url, json={"points": late}, headers=s.owner.headers)
    ).status_code == 204
    hot, _ = await table_samples(rt, s.prop["id"])
    packed = await pack(rt, s)
    assert 0 < packed < hot  # the day with a dirty minute waits
    await catch_up(rt)
    assert await pack(rt, s) == hot - packed


async def test_late_writes_and_deletes_reach_into_packed_days(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s, url = await setup(client, rt)
    await pack(rt, s)
    rows = (await read(client, s, url, **{"from": T0, "to": END}))["rows"]
    old = rows[len(rows) // 2][0]
    # A rewrite of a packed sample and a new one between two: the later write wins, as always.
    late = [[old, 99.5, None, None], [old + 1, -3.25, 7.0, "late"]]
    assert (
        await client.post(url, json={"points": late}, headers=s.owner.headers)
    ).status_code == 204
    got = (await read(client, s, url, **{"from": old, "to": old + 2}))["rows"]
    previous = rows[len(rows) // 2]
    assert got == [[old, 99.5, *previous[2:]], [old + 1, -3.25, 7.0, "late"]]
    await catch_up(rt)
    one_minute = await read(
        client, s, url, **{"from": old - old % 60_000, "to": old - old % 60_000 + 60_000},
        interval="1m", agg="max,count",
    )  # fmt: skip
    in_minute = [r for r in rows if old - old % 60_000 <= r[0] < old - old % 60_000 + 60_000]
    assert one_minute["rows"][0][1] == max(99.5, *(r[1] for r in in_minute if r[0] != old))

    # A delete that cuts into packed days: exactly its samples go (every dimension's).
    a, z = T0 + DAY_MS // 2, T0 + DAY_MS + DAY_MS // 3
    expected = sum(
        sum(v is not None for v in r[1:])
        for r in (await read(client, s, url, **{"from": a, "to": z}))["rows"]
    )
    gone = await client.delete(url, params={"from": a, "to": z}, headers=s.owner.headers)
    assert gone.json() == {"deleted": expected}
    assert (await read(client, s, url, **{"from": a, "to": z}))["rows"] == []
    kept = (await read(client, s, url, **{"from": T0, "to": END}))["rows"]
    assert kept
    assert all(not a <= r[0] < z for r in kept)
    # Packed again, the days still read the same.
    await catch_up(rt)
    await pack(rt, s)
    assert (await read(client, s, url, **{"from": T0, "to": END}))["rows"] == kept


async def test_retention_takes_chunks_whole_once_all_of_them_expired(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s, url = await setup(client, rt)
    await pack(rt, s, cap=100_000)  # a chunk per day and series
    rows = (await read(client, s, url, **{"from": T0, "to": END}))["rows"]
    # Retention ends in the middle of the second day: the first day goes, the second stays.
    now = (T0 + DAY_MS + DAY_MS // 2) * 1000 + 100 * DAY_MS * 1000
    patched = await client.patch(
        s.points_url.removesuffix("/points"), json={"retention_days": 100}, headers=s.owner.headers
    )
    assert patched.status_code == 200
    first_day = [r for r in rows if r[0] < T0 + DAY_MS]
    first_day_numbers = sum(v is not None for r in first_day for v in r[1:3])
    first_day_texts = sum(r[3] is not None for r in rows if r[0] < (now // 1000) - 100 * DAY_MS)
    dry = await retention.run(rt, dry_run=True, now=now)
    (mine,) = [e for e in dry.properties if e.property_id == s.prop["id"]]
    assert mine.samples == first_day_numbers + first_day_texts
    done = await retention.run(rt, now=now)
    (mine,) = [e for e in done.properties if e.property_id == s.prop["id"]]
    assert mine.samples == first_day_numbers + first_day_texts
    left = (await read(client, s, url, **{"from": T0, "to": END}))["rows"]
    assert [r[0] for r in left if r[1] is not None] == [
        r[0] for r in rows if r[0] >= T0 + DAY_MS and r[1] is not None
    ]


async def test_the_cold_pass_packs_every_old_day_and_a_dry_run_counts_them(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s, _ = await setup(client, rt)
    hot, _ = await table_samples(rt, s.prop["id"])
    # A pass "now" = a week after the data: only this test's days (and older) are old enough.
    now = (END + 8 * DAY_MS) * 1000
    async with rt.db.session() as session:
        sids = {
            r[0]
            for r in await session.execute(
                sa.text("SELECT id FROM series WHERE property_id = :p"), {"p": s.prop["id"]}
            )
        }
    dry = await cold.run(rt, dry_run=True, now=now)
    mine = [d for d in dry.days if d.series_id in sids]
    assert sum(d.samples for d in mine) == hot
    assert await table_samples(rt, s.prop["id"]) == (hot, 0)
    done = await cold.run(rt, now=now)
    assert sum(d.samples for d in done.days if d.series_id in sids) == hot
    assert await table_samples(rt, s.prop["id"]) == (0, hot)
