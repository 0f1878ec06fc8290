"""Rollups are exact: random writes, rewrites, deletes, (partial) rollup passes and packing into
cold chunks in any order, then aggregates over any window and with any gap fill, checked
against a naive recomputation, on both backends."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggmodel import DAY, MIN, H, Model, check_answer
from helpers import make_bucket, make_person, make_property, make_thing, pack_property
from thingbucket.points.rollups import catch_up
from thingbucket.runtime import Runtime

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = 1_780_000_000_000 - 1_780_000_000_000 % DAY  # a UTC midnight in 2026, epoch ms
FUNCTIONS = ("count", "sum", "min", "max", "avg", "first", "last", "spread", "diff")
INTERVALS = ("1m", "2m", "15m", "1h", "3h", "1d")
FILLS = ("none", "none", "null", "previous", "linear", "-2.5")
SPAN = 3 * DAY
values = st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False))


def instant(ts: int, snap: str) -> int:
    unit = {"minute": MIN, "hour": H, "day": DAY}.get(snap)
    return ts - ts % unit if unit else ts


instants = st.builds(
    instant,
    st.integers(T0 - H, T0 + SPAN),
    st.sampled_from(["any", "any", "minute", "hour", "day"]),
)


@dataclass
class Case:
    ops: list[tuple[Any, ...]]
    windows: list[tuple[str, str, int, int, str]]  # (interval, tz, from, to, fill)
    finish: str  # "all" rollups built at the end, "some", or "none"


@st.composite
def cases(draw: st.DrawFn) -> Case:
    pool = draw(st.lists(instants, min_size=1, max_size=40, unique=True))
    ops: list[tuple[Any, ...]] = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["write", "write", "write", "delete", "rollup", "pack"]))
        if kind == "write":
            rows = draw(st.lists(st.tuples(st.sampled_from(pool), values), min_size=1, max_size=60))
            ops.append(("write", [[ts, v] for ts, v in rows]))
        elif kind == "delete":
            a, b = sorted(draw(st.tuples(instants, instants)))
            ops.append(("delete", a, max(b, a + 1)))
        elif kind == "pack":  # days whose minutes are all built go into chunks of 100
            ops.append(("pack", draw(st.booleans())))  # after building every rollup or not
        else:
            ops.append(("rollup", draw(st.sampled_from([1, 3, 10, 10_000]))))
    windows = []
    for interval in draw(st.lists(st.sampled_from(INTERVALS), min_size=1, max_size=4)):
        edge = st.one_of(instants, st.sampled_from(pool))
        a, b = sorted(draw(st.tuples(edge, edge)))
        tz = draw(st.sampled_from(["UTC", "Europe/Amsterdam"])) if interval == "1d" else "UTC"
        fill = draw(st.sampled_from(FILLS))
        if fill != "none":  # every bucket is answered: keep the window to a few hundred
            b = min(b, a + 300 * {"1m": MIN, "2m": 2 * MIN}.get(interval, 15 * MIN))
        windows.append((interval, tz, a, max(b, a + 1), fill))
    return Case(ops, windows, draw(st.sampled_from(["all", "all", "some", "none"])))


_THING: dict[int, tuple[Any, str]] = {}


async def new_property(client: httpx.AsyncClient, rt: Runtime) -> tuple[Any, str, str]:
    found = _THING.get(id(rt))
    if found is None:
        owner = await make_person(client, rt)
        bucket = await make_bucket(client, owner)
        thing = await make_thing(client, owner, bucket["id"])
        found = _THING[id(rt)] = (owner, thing["id"])
    owner, thing_id = found
    prop = await make_property(client, owner, thing_id, type="SPEED")
    return owner, f"/api/v1/things/{thing_id}/properties/{prop['id']}/points", prop["id"]


async def rollup_rows(rt: Runtime, property_id: str) -> int:
    async with rt.db.session() as session:
        count = await session.scalar(
            sa.text(
                "SELECT count(*) FROM rollups r JOIN series s ON s.id = r.series_id "
                "WHERE s.property_id = :p"
            ),
            {"p": property_id},
        )
    return int(count or 0)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
async def test_aggregates_with_rollups_match_a_naive_recomputation(
    client: httpx.AsyncClient, rt: Runtime, case: Case
) -> None:
    owner, url, property_id = await new_property(client, rt)
    model = Model(1)
    for op in case.ops:
        if op[0] == "write":
            answer = await client.post(url, json={"points": op[1]}, headers=owner.headers)
            assert answer.status_code == 204, answer.text
            model.apply(op[1])
        elif op[0] == "delete":
            answer = await client.delete(
                url, params={"from": op[1], "to": op[2]}, headers=owner.headers
            )
            assert answer.status_code == 200, answer.text
            model.series[0] = {t: v for t, v in model.series[0].items() if not op[1] <= t < op[2]}
        elif op[0] == "pack":
            if op[1]:
                await catch_up(rt)
            await pack_property(rt, property_id, (T0 - DAY) * 1000, (T0 + SPAN + DAY) * 1000)
        else:
            await rt.writer.recompute_rollups(op[1])
    if case.finish == "all":
        await catch_up(rt)
        assert (await rollup_rows(rt, property_id) > 0) == bool(model.series[0])
    elif case.finish == "some":
        await rt.writer.recompute_rollups(5)
    for interval, tz, start, end, fill in case.windows:
        answer = await client.get(
            url,
            params={"from": start, "to": end, "interval": interval, "agg": ",".join(FUNCTIONS),
                    "tz": tz, "fill": fill},
            headers=owner.headers,
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        check_answer(answer.json(), model, ["speed"], start, end, interval, tz, FUNCTIONS, fill)


async def test_a_late_sample_changes_the_answer_at_once(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner, url, property_id = await new_property(client, rt)
    rows = [[T0 + i * 1000, 1.0] for i in range(7200)]  # two hours at 1 Hz
    assert (await client.post(url, json={"points": rows}, headers=owner.headers)).status_code == 204
    await catch_up(rt)
    query: dict[str, str | int] = {
        "from": T0,
        "to": T0 + 2 * H,
        "interval": "1h",
        "agg": "count,sum,max",
    }
    before = (await client.get(url, params=query, headers=owner.headers)).json()["rows"]
    assert before == [[T0, 3600, 3600.0, 1.0], [T0 + H, 3600, 3600.0, 1.0]]
    # The answer comes from the hour rollups: a doctored row shows through ...
    async with rt.db.session() as session:
        await session.execute(
            sa.text(
                "UPDATE rollups SET n = n + 1000 WHERE level = 1 AND bucket = :b AND series_id = "
                "(SELECT id FROM series WHERE property_id = :p)"
            ),
            {"b": T0 * 1000, "p": property_id},
        )
    doctored = (await client.get(url, params=query, headers=owner.headers)).json()["rows"]
    assert doctored[0][1] == 4600
    # ... until a write marks its hour dirty: then that hour comes from finer levels again.
    late = [[T0 + 1500, 99.0], [T0 + H + 1000, 5.0]]  # a new sample and a rewritten one
    assert (await client.post(url, json={"points": late}, headers=owner.headers)).status_code == 204
    after = (await client.get(url, params=query, headers=owner.headers)).json()["rows"]
    assert after == [[T0, 3601, 3699.0, 99.0], [T0 + H, 3600, 3604.0, 5.0]]
    await catch_up(rt)
    assert (await client.get(url, params=query, headers=owner.headers)).json()["rows"] == after


async def test_deleting_a_property_leaves_no_rollup_work_behind(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    # Deleting a property deletes its samples from the start of time to its end: the buckets at
    # int64's ends must neither overflow nor stop the pass for every other series.
    owner, url, _ = await new_property(client, rt)
    rows = [[T0, 1.0], [T0 + DAY, 2.0]]
    assert (await client.post(url, json={"points": rows}, headers=owner.headers)).status_code == 204
    gone = await client.delete(url.removesuffix("/points"), headers=owner.headers)
    assert gone.status_code == 204
    left = -1
    for _ in range(50):
        await catch_up(rt)
        async with rt.db.session() as session:
            left = int(await session.scalar(sa.text("SELECT count(*) FROM rollup_dirty")) or 0)
        if left == 0:
            break
        await asyncio.sleep(0.05)
    assert left == 0


async def test_rollups_stay_exact_when_passes_run_beside_writes(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    """Passes of a few buckets race with writes and rewrites of the same buckets (on
    PostgreSQL they run on their own connections, beside the writes); once every mark is
    rebuilt, the rollup-built answers equal a naive recomputation."""
    owner, url, _ = await new_property(client, rt)
    model = Model(1)
    # Within a group of five no two writes share a timestamp; each group rewrites the last.
    batches = [
        [[T0 + (i % 5) * 7 + j * 97_000, float(i * 1000 + j)] for j in range(200)]
        for i in range(30)
    ]
    passes_done = asyncio.Event()

    async def passes() -> None:
        while not passes_done.is_set():
            await rt.writer.recompute_rollups(7)
            await asyncio.sleep(0)

    async def write(rows: list[list[float]]) -> None:
        answer = await client.post(url, json={"points": rows}, headers=owner.headers)
        assert answer.status_code == 204, answer.text

    racing = [asyncio.create_task(passes()) for _ in range(2)]
    try:
        for start in range(0, len(batches), 5):  # five concurrent writes at a time
            group = batches[start : start + 5]
            await asyncio.gather(*(write(rows) for rows in group))
            for rows in group:  # in order: a later rewrite of a timestamp wins either way
                model.apply([(int(t), v) for t, v in rows])
    finally:
        passes_done.set()
        await asyncio.gather(*racing)
    await catch_up(rt)
    for interval in ("1m", "1h", "1d"):
        params = {
            "from": T0 - DAY,
            "to": T0 + DAY,
            "interval": interval,
            "agg": ",".join(FUNCTIONS),
        }
        answer = await client.get(url, params=params, headers=owner.headers)
        assert answer.status_code == 200, answer.text
        check_answer(
            answer.json(), model, ["speed"], T0 - DAY, T0 + DAY, interval, "UTC", FUNCTIONS, "none"
        )
