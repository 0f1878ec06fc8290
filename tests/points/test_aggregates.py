"""Aggregated point reads through the native API, compared with a naive recomputation, on SQLite
and PostgreSQL.

Two code paths answer an aggregate: count, sum, min, max, first and last per bucket in SQL (and
avg, spread, diff from them), or, once median or stddev is asked for, every function from the raw
samples in Python. The property tests below query both.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggmodel import DAY, MIN, H, Model, check_answer, local_midnight
from helpers import Account, make_bucket, make_person, make_property, make_thing
from thingbucket.points.aggregate import fill_column
from thingbucket.runtime import Runtime

pytestmark = pytest.mark.asyncio(loop_scope="session")

SQL_FUNCTIONS = ("avg", "min", "max", "sum", "count", "first", "last", "spread", "diff")
ALL_FUNCTIONS = (*SQL_FUNCTIONS, "median", "stddev")
INTERVALS = ("1m", "15m", "1h", "1d", "1w", "1mo")
FILLS = ("none", "null", "previous", "linear", "7")
# The longest range queried per interval, so that one example stays around a few thousand buckets.
MAX_SPAN = {"1m": 2 * DAY, "15m": 15 * DAY}
ZONES = ("UTC", "Europe/Amsterdam")
# The instants of the DST changes of 2026 in Amsterdam (both at 01:00 UTC).
DST_CHANGES = (
    int(datetime(2026, 3, 29, 1, tzinfo=UTC).timestamp()) * 1000,
    int(datetime(2026, 10, 25, 1, tzinfo=UTC).timestamp()) * 1000,
)
ACCELEROMETER = ("acceleration-x", "acceleration-y", "acceleration-z")


def ms(text: str) -> int:
    dt = datetime.fromisoformat(text)
    assert dt.tzinfo is not None
    return int(dt.timestamp() * 1000)


# --- set-up -------------------------------------------------------------------------------------


@dataclass
class Place:
    owner: Account
    thing_id: str


_PLACES: dict[int, Place] = {}


async def place(client: httpx.AsyncClient, rt: Runtime) -> Place:
    """One person and thing per backend; every test (and example) makes a property of its own."""
    found = _PLACES.get(id(rt))
    if found is None:
        owner = await make_person(client, rt)
        bucket = await make_bucket(client, owner)
        thing = await make_thing(client, owner, bucket["id"])
        found = _PLACES[id(rt)] = Place(owner, thing["id"])
    return found


@dataclass
class Prop:
    client: httpx.AsyncClient
    owner: Account
    url: str
    dims: tuple[str, ...]

    async def write(self, rows: Sequence[Sequence[Any]]) -> None:
        answer = await self.client.post(
            self.url, json={"points": [list(r) for r in rows]}, headers=self.owner.headers
        )
        assert answer.status_code == 204, answer.text

    async def get(self, **params: Any) -> httpx.Response:
        return await self.client.get(self.url, params=params, headers=self.owner.headers)

    async def aggregate(self, **params: Any) -> dict[str, Any]:
        answer = await self.get(**params)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


async def new_prop(
    client: httpx.AsyncClient, rt: Runtime, dims: Sequence[str] | None = None
) -> Prop:
    """A property with number dimensions ``dims``, or an accelerometer (three of them)."""
    p = await place(client, rt)
    if dims is None:
        made = await make_property(client, p.owner, p.thing_id, type="ACCELEROMETER")
    else:
        made = await make_property(
            client, p.owner, p.thing_id, dimensions=[{"id": d, "name": d} for d in dims]
        )
    ids = tuple(d["id"] for d in made["dimensions"])
    assert dims is None or ids == tuple(dims)
    url = f"/api/v1/things/{p.thing_id}/properties/{made['id']}/points"
    return Prop(client, p.owner, url, ids)


async def error_code(prop: Prop, status: int, **params: Any) -> str:
    answer = await prop.get(**params)
    assert answer.status_code == status, answer.text
    code: str = answer.json()["error"]["code"]
    return code


# --- property tests -----------------------------------------------------------------------------

numbers = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.floats(-1, 1, allow_nan=False, allow_infinity=False),
    st.integers(-1000, 1000),
)


@dataclass
class Case:
    dims: int
    batches: list[list[list[Any]]]
    windows: list[tuple[int, int]]  # one [from, to) per interval
    fills: list[str]  # one per interval
    order: list[int]  # a permutation of the functions


def snapped(ts: int, how: str) -> int:
    if how == "hour":
        return ts - ts % H
    if how == "day":  # a local midnight in Amsterdam (also an hour edge in UTC)
        ams = ZoneInfo("Europe/Amsterdam")
        return local_midnight(datetime.fromtimestamp(ts // 1000, ams).date(), ams)
    return ts


@st.composite
def cases(draw: st.DrawFn, functions: int) -> Case:
    change = draw(st.sampled_from(DST_CHANGES))
    lo = change - draw(st.integers(DAY, 30 * DAY))
    hi = change + draw(st.integers(DAY, 30 * DAY))
    dims = draw(st.sampled_from([1, 3]))
    # Spread over the range, or bunched around a few instants so that short buckets hold several.
    centres = draw(st.lists(st.integers(lo, hi), min_size=1, max_size=3))
    around = st.sampled_from(centres).flatmap(lambda c: st.integers(c - 40 * MIN, c + 40 * MIN))
    instants = st.builds(
        snapped,
        st.one_of(st.integers(lo, hi), around),
        st.sampled_from(["any", "any", "any", "hour", "day"]),
    )
    # A pool of timestamps smaller than the rows, so that some timestamps are written again.
    pool = draw(st.lists(instants, min_size=1, max_size=80, unique=True))
    cell = st.one_of(st.none(), numbers) if dims > 1 else numbers
    row = st.tuples(st.sampled_from(pool), st.lists(cell, min_size=dims, max_size=dims))
    rows = [[ts, *values] for ts, values in draw(st.lists(row, min_size=1, max_size=160))]
    cuts = sorted(draw(st.lists(st.integers(0, len(rows)), max_size=2)))
    bounds = [0, *cuts, len(rows)]
    batches = [rows[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    edge = st.one_of(st.integers(lo - DAY, hi + DAY), st.sampled_from(pool), around)
    windows = []
    for interval in INTERVALS:
        a, b = sorted(draw(st.tuples(edge, edge)))
        b = max(b, a + 1)
        windows.append((a, min(b, a + MAX_SPAN.get(interval, b - a))))
    fills = draw(st.lists(st.sampled_from(FILLS), min_size=6, max_size=6))
    order = draw(st.permutations(range(functions)))
    return Case(dims, batches, windows, fills, order)


async def run_case(client: httpx.AsyncClient, rt: Runtime, case: Case, fns: Sequence[str]) -> None:
    prop = await new_prop(client, rt, None if case.dims == 3 else ["level_1"])
    model = Model(case.dims)
    for batch in case.batches:
        await prop.write(batch)
        model.apply(batch)
    for interval, (start, end), fill in zip(INTERVALS, case.windows, case.fills, strict=True):
        for tz in ZONES:
            body = await prop.aggregate(
                **{"from": start, "to": end},
                interval=interval,
                agg=",".join(fns),
                tz=tz,
                fill=fill,
            )
            check_answer(body, model, prop.dims, start, end, interval, tz, fns, fill)


EXAMPLES = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@EXAMPLES
@given(case=cases(len(SQL_FUNCTIONS)))
async def test_sql_aggregates_match_a_naive_recomputation(
    client: httpx.AsyncClient, rt: Runtime, case: Case
) -> None:
    await run_case(client, rt, case, [SQL_FUNCTIONS[i] for i in case.order])


@EXAMPLES
@given(case=cases(len(ALL_FUNCTIONS)))
async def test_aggregates_from_raw_samples_match_a_naive_recomputation(
    client: httpx.AsyncClient, rt: Runtime, case: Case
) -> None:
    # median and stddev need the samples: every function of the query comes from Python then.
    await run_case(client, rt, case, [ALL_FUNCTIONS[i] for i in case.order])


# --- explicit cases -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "hours"),
    [("2026-03-29", 23), ("2026-10-25", 25), ("2026-06-14", 24)],
)
async def test_dst_days_in_amsterdam_have_23_and_25_hours(
    client: httpx.AsyncClient, rt: Runtime, day: str, hours: int
) -> None:
    prop = await new_prop(client, rt, ["v"])
    ams = ZoneInfo("Europe/Amsterdam")
    midnight = local_midnight(date.fromisoformat(day), ams)
    following = local_midnight(date.fromisoformat(day) + timedelta(days=1), ams)
    assert following - midnight == hours * H
    # Two samples in every hour of the day: at :00 and :30.
    await prop.write([[midnight + i * 30 * MIN, float(i)] for i in range(2 * hours)])
    window = {"from": midnight, "to": following, "tz": "Europe/Amsterdam"}
    body = await prop.aggregate(**window, interval="1h", agg="count,first", fill="null")
    assert body["rows"] == [[midnight + i * H, 2, float(2 * i)] for i in range(hours)]
    body = await prop.aggregate(**window, interval="1d", agg="count,min,max", fill="null")
    assert body["rows"] == [[midnight, 2 * hours, 0.0, float(2 * hours - 1)]]
    assert datetime.fromtimestamp(body["rows"][0][0] / 1000, ams).hour == 0
    # RFC 3339 bounds with offsets say the same.
    iso = {
        "from": datetime.fromtimestamp(midnight / 1000, ams).isoformat(),
        "to": datetime.fromtimestamp(following / 1000, ams).isoformat(),
    }
    body = await prop.aggregate(**iso, interval="1d", agg="count", tz="Europe/Amsterdam")
    assert body["rows"] == [[midnight, 2 * hours]]
    # The same local day in UTC days: it starts 1 or 2 hours before UTC midnight.
    body = await prop.aggregate(**iso, interval="1d", agg="count", tz="UTC")
    utc_midnight = ms(f"{day}T00:00:00+00:00")
    assert [r[0] for r in body["rows"]] == [utc_midnight - DAY, utc_midnight]
    assert sum(r[1] for r in body["rows"]) == 2 * hours


async def test_weeks_and_months_in_a_zone_start_at_local_midnight(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    prop = await new_prop(client, rt, ["v"])
    # Sunday 1 November 2026, 00:30 in Amsterdam, is still October in UTC.
    t = ms("2026-11-01T00:30:00+01:00")
    await prop.write([[t, 1.0], [ms("2026-10-31T12:00:00+01:00"), 2.0]])
    window = {"from": ms("2026-10-01T00:00:00+02:00"), "to": ms("2026-12-01T00:00:00+01:00")}
    body = await prop.aggregate(**window, interval="1mo", agg="sum", tz="Europe/Amsterdam")
    assert body["rows"] == [
        [ms("2026-10-01T00:00:00+02:00"), 2.0],
        [ms("2026-11-01T00:00:00+01:00"), 1.0],
    ]
    body = await prop.aggregate(**window, interval="1mo", agg="sum", tz="UTC")
    assert body["rows"] == [[ms("2026-10-01T00:00:00+00:00"), 3.0]]
    body = await prop.aggregate(**window, interval="1w", agg="sum", tz="Europe/Amsterdam")
    assert body["rows"] == [[ms("2026-10-26T00:00:00+01:00"), 3.0]]  # a Monday
    # Two weeks start on odd ISO weeks: 26 October is in week 44, its bucket starts with week 43.
    body = await prop.aggregate(**window, interval="2w", agg="sum", tz="Europe/Amsterdam")
    assert body["rows"] == [[ms("2026-10-19T00:00:00+02:00"), 3.0]]
    body = await prop.aggregate(**window, interval="1y", agg="count", tz="America/New_York")
    assert body["rows"] == [[ms("2026-01-01T00:00:00-05:00"), 2]]


async def fill_prop(client: httpx.AsyncClient, rt: Runtime) -> tuple[Prop, int]:
    """Hourly buckets 0..5 from ``base``: data in hour 1 (8, 12) and hour 4 (40)."""
    prop = await new_prop(client, rt, ["v"])
    base = ms("2026-06-01T00:00:00+00:00")
    await prop.write(
        [
            [base + 10 * MIN, 999.0],  # before 'from': not counted
            [base + H + 5 * MIN, 8.0],
            [base + H + 50 * MIN, 12.0],
            [base + 4 * H, 40.0],
            [base + 6 * H, 999.0],  # at 'to': excluded
        ]
    )
    return prop, base


@pytest.mark.parametrize(
    ("fill", "averages"),
    [
        ("null", [None, 10.0, None, None, 40.0, None]),
        ("previous", [None, 10.0, 10.0, 10.0, 40.0, 40.0]),
        ("linear", [None, 10.0, 20.0, 30.0, 40.0, None]),
        ("0", [0.0, 10.0, 0.0, 0.0, 40.0, 0.0]),
        ("-2.5", [-2.5, 10.0, -2.5, -2.5, 40.0, -2.5]),
    ],
)
async def test_fill_modes_on_a_gap(
    client: httpx.AsyncClient, rt: Runtime, fill: str, averages: list[float | None]
) -> None:
    prop, base = await fill_prop(client, rt)
    body = await prop.aggregate(
        **{"from": base + 30 * MIN, "to": base + 6 * H}, interval="1h", agg="avg,count", fill=fill
    )
    assert body["columns"] == ["ts", "v_avg", "v_count"]
    assert body["fill"] == fill
    counts = [0, 2, 0, 0, 1, 0]  # never filled
    # The first bucket starts before 'from': its label is its start, base.
    assert body["rows"] == [[base + i * H, averages[i], counts[i]] for i in range(6)]


async def test_fill_none_omits_empty_buckets(client: httpx.AsyncClient, rt: Runtime) -> None:
    prop, base = await fill_prop(client, rt)
    window = {"from": base + 30 * MIN, "to": base + 6 * H}
    body = await prop.aggregate(**window, interval="1h", agg="avg,count,min")
    assert body["rows"] == [[base + H, 10.0, 2, 8.0], [base + 4 * H, 40.0, 1, 40.0]]
    assert body["fill"] == "none"
    assert body == await prop.aggregate(**window, interval="1h", agg="avg,count,min", fill="none")
    # The default function is avg.
    body = await prop.aggregate(**window, interval="1h")
    assert (body["columns"], body["agg"]) == (["ts", "v_avg"], ["avg"])
    assert body["rows"] == [[base + H, 10.0], [base + 4 * H, 40.0]]


async def test_linear_fill_interpolates_on_bucket_start_times(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    # Monthly buckets differ in length: linear fill weighs by the bucket starts, not by index.
    prop = await new_prop(client, rt, ["v"])
    jan, feb, mar = (ms(f"2026-0{m}-01T00:00:00+00:00") for m in (1, 2, 3))
    await prop.write([[jan + H, 0.0], [mar + H, 59.0]])
    body = await prop.aggregate(
        **{"from": jan, "to": mar + DAY}, interval="1mo", agg="last,stddev", fill="linear"
    )
    assert body["rows"] == [[jan, 0.0, None], [feb, 31.0, None], [mar, 59.0, None]]


async def test_functions_of_one_bucket_on_both_paths(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    prop = await new_prop(client, rt, ["v"])
    base = ms("2026-07-01T00:00:00+00:00")
    # Written out of order, and timestamps written twice in one batch and again in another:
    # the later write wins.
    await prop.write(
        [[base + 3000, 77.0], [base + 1000, 2.0], [base + 2000, 100.0], [base + 3000, 4.0]]
    )
    await prop.write([[base + 2000, 9.0], [base + 4000, 5.0]])
    window = {"from": base, "to": base + H, "interval": "1h"}
    expected: dict[str, float] = {
        "avg": 5.0,
        "min": 2.0,
        "max": 9.0,
        "sum": 20.0,
        "count": 4,
        "first": 2.0,
        "last": 5.0,
        "spread": 7.0,
        "diff": 3.0,
        "median": 4.5,
    }
    body = await prop.aggregate(**window, agg=",".join(SQL_FUNCTIONS))
    assert body["rows"] == [[base, *(expected[fn] for fn in SQL_FUNCTIONS)]]
    body = await prop.aggregate(**window, agg=",".join(ALL_FUNCTIONS))
    row = body["rows"][0]
    assert row[:-1] == [base, *(expected[fn] for fn in ALL_FUNCTIONS[:-1])]
    assert math.isclose(row[-1], math.sqrt((9 + 16 + 1 + 0) / 3), rel_tol=1e-12)  # stddev
    # One sample: stddev has none, spread and diff are 0.
    body = await prop.aggregate(
        **{"from": base + 4000, "to": base + H, "interval": "1h"}, agg="stddev,spread,diff,median"
    )
    assert body["rows"] == [[base, None, 0.0, 0.0, 5.0]]


async def test_columns_follow_dimension_then_function_order(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    prop = await new_prop(client, rt)
    assert prop.dims == ACCELEROMETER
    base = ms("2026-08-01T00:00:00+00:00")
    await prop.write(
        [
            [base, 1.0, None, 3.0],
            [base + MIN, None, None, 6.0],
            [base + 20 * MIN, None, 5.0, None],  # the next 15-minute bucket
        ]
    )
    body = await prop.aggregate(**{"from": base, "to": base + H}, interval="15m", agg="max,count")
    assert body["columns"] == [
        "ts",
        "acceleration-x_max",
        "acceleration-x_count",
        "acceleration-y_max",
        "acceleration-y_count",
        "acceleration-z_max",
        "acceleration-z_count",
    ]
    assert (body["interval"], body["agg"], body["fill"]) == ("15m", ["max", "count"], "none")
    assert body["property_id"] in prop.url
    assert [d["id"] for d in body["dimensions"]] == list(ACCELEROMETER)
    # A bucket with data in some dimension shows None (and count 0) in the others.
    assert body["rows"] == [
        [base, 1.0, 1, None, 0, 6.0, 2],
        [base + 15 * MIN, None, 0, 5.0, 1, None, 0],
    ]
    # A dimension id may contain '_': columns are read by position.
    odd = await new_prop(client, rt, ["a_b", "a"])
    await odd.write([[base, 1.0, 2.0]])
    body = await odd.aggregate(**{"from": base, "to": base + H}, interval="1h", agg="min,avg")
    assert body["columns"] == ["ts", "a_b_min", "a_b_avg", "a_min", "a_avg"]
    assert body["rows"] == [[base, 1.0, 1.0, 2.0, 2.0]]


async def test_fixed_intervals_align_to_the_epoch_whatever_the_zone(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    prop = await new_prop(client, rt, ["v"])
    t = ms("2026-05-05T10:40:00+00:00")
    await prop.write([[t, 1.0]])
    for tz in ("UTC", "Asia/Kolkata", "Europe/Amsterdam"):  # Kolkata is UTC+05:30
        body = await prop.aggregate(
            **{"from": t - DAY, "to": t + DAY}, interval="1h", agg="count", tz=tz
        )
        assert body["rows"] == [[ms("2026-05-05T10:00:00+00:00"), 1]]
        body = await prop.aggregate(
            **{"from": t - DAY, "to": t + DAY}, interval="7m", agg="count", tz=tz
        )
        assert body["rows"] == [[t - t % (7 * MIN), 1]]
    body = await prop.aggregate(
        **{"from": t - DAY, "to": t + DAY}, interval="1d", agg="count", tz="Asia/Kolkata"
    )
    assert body["rows"] == [[ms("2026-05-05T00:00:00+05:30"), 1]]


async def test_precision_applies_to_bounds_and_labels(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    prop = await new_prop(client, rt, ["v"])
    t = ms("2026-05-05T10:40:00+00:00")
    await prop.write([[t, 1.0], [t + 1, 3.0]])
    body = await prop.aggregate(
        **{"from": t // 1000 - 3600, "to": t // 1000 + 3600},
        interval="1h",
        agg="avg",
        precision="s",
    )
    assert body["rows"] == [[ms("2026-05-05T10:00:00+00:00") // 1000, 2.0]]


async def test_csv_and_ndjson_of_an_aggregate(client: httpx.AsyncClient, rt: Runtime) -> None:
    prop, base = await fill_prop(client, rt)
    params: dict[str, str | int] = {
        "from": base + 30 * MIN,
        "to": base + 6 * H,
        "interval": "1h",
        "agg": "avg,count",
    }
    body = await prop.aggregate(**params, fill="null")
    answer = await prop.get(**params, fill="null", format="csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    lines = answer.text.splitlines()
    assert lines[0].split(",") == body["columns"] == ["ts", "v_avg", "v_count"]
    assert len(lines) == 1 + len(body["rows"]) == 7
    assert lines[1:3] == [f"{base},,0", f"{base + H},10.0,2"]
    answer = await prop.client.get(
        prop.url, params=params, headers={**prop.owner.headers, "Accept": "text/csv"}
    )
    assert answer.text.splitlines() == [
        "ts,v_avg,v_count",
        f"{base + H},10.0,2",
        f"{base + 4 * H},40.0,1",
    ]
    answer = await prop.get(**params, format="ndjson")
    assert answer.text.splitlines() == [
        f'{{"ts":{base + H},"values":[10.0,2]}}',
        f'{{"ts":{base + 4 * H},"values":[40.0,1]}}',
    ]


# --- refusals -----------------------------------------------------------------------------------

RANGE = {"from": ms("2026-06-01T00:00:00+00:00"), "to": ms("2026-06-02T00:00:00+00:00")}


@pytest.mark.parametrize(
    "params",
    [
        *({"interval": bad} for bad in ("5x", "0h", "1M", "h", "1.5h", "-1h", "1mon", "")),
        *({"interval": "1h", "agg": bad} for bad in ("mean", "avg,mean", "", ",", "avg,avg")),
        *({"interval": "1d", "tz": bad} for bad in ("Mars/Olympus_Mons", "../../etc/passwd")),
        *({"interval": "1h", "fill": bad} for bad in ("zero", "nan", "inf", "-inf", "1e999", "")),
    ],
)
async def test_invalid_aggregates_are_refused(
    client: httpx.AsyncClient, rt: Runtime, params: dict[str, str]
) -> None:
    prop = await new_prop(client, rt, ["v"])
    assert await error_code(prop, 400, **RANGE, **params) == "INVALID_AGGREGATE"


async def test_an_unknown_zone_is_refused_with_a_fixed_interval_too(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    prop = await new_prop(client, rt, ["v"])
    code = await error_code(prop, 400, **RANGE, interval="1h", tz="Mars/Olympus_Mons")
    assert code == "INVALID_AGGREGATE"


@pytest.mark.parametrize("interval", ["10000y", "999999w"])
async def test_huge_calendar_multiples_are_not_an_internal_error(
    client: httpx.AsyncClient, rt: Runtime, interval: str
) -> None:
    prop = await new_prop(client, rt, ["v"])
    answer = await prop.get(**RANGE, interval=interval)
    assert answer.status_code in (200, 400), answer.text
    if answer.status_code == 400:
        assert answer.json()["error"]["code"] == "INVALID_AGGREGATE"


async def test_too_many_buckets(client: httpx.AsyncClient, rt: Runtime) -> None:
    prop = await new_prop(client, rt, ["v"])
    ten_years = {"from": ms("2016-01-01T00:00:00+00:00"), "to": ms("2026-01-01T00:00:00+00:00")}
    assert await error_code(prop, 400, **ten_years, interval="1s") == "TOO_MANY_BUCKETS"
    assert await error_code(prop, 400, **ten_years, interval="1m") == "TOO_MANY_BUCKETS"
    # The default limit is 100,000 buckets: exactly that many is fine, one more is not.
    start = ms("2026-01-01T00:00:00+00:00")
    limit = rt.settings.limits.buckets_per_query
    assert limit == 100_000
    window = {"from": start, "to": start + limit * MIN}
    body = await prop.aggregate(**window, interval="1m", agg="count")
    assert body["rows"] == []
    window["to"] += 1
    assert await error_code(prop, 400, **window, interval="1m") == "TOO_MANY_BUCKETS"
    body = await prop.aggregate(**ten_years, interval="1d", agg="count", tz="Europe/Amsterdam")
    assert body["rows"] == []


async def test_an_empty_range_is_refused(client: httpx.AsyncClient, rt: Runtime) -> None:
    prop = await new_prop(client, rt, ["v"])
    at = RANGE["from"]
    assert await error_code(prop, 400, **{"from": at, "to": at}, interval="1h") == "INVALID_RANGE"


@pytest.mark.parametrize(
    ("agg", "rows"),
    [
        ("count,min,first", [[-2 * H, 1, 2.0, 2.0], [-H, 2, 1.0, 3.0], [0, 1, 4.0, 4.0]]),
        ("count,first,median", [[-2 * H, 1, 2.0, 2.0], [-H, 2, 3.0, 2.0], [0, 1, 4.0, 4.0]]),
    ],
)
async def test_buckets_before_the_epoch(
    client: httpx.AsyncClient, rt: Runtime, agg: str, rows: list[list[float]]
) -> None:
    # SQL's % truncates towards zero: buckets of negative timestamps must still start below them.
    prop = await new_prop(client, rt, ["v"])
    await prop.write([[-1, 1.0], [-H - 1, 2.0], [-H, 3.0], [0, 4.0]])
    window = {"from": -3 * H, "to": H}
    body = await prop.aggregate(**window, interval="1h", agg=agg)
    assert body["rows"] == rows
    body = await prop.aggregate(**window, interval="1d", agg=agg, tz="Europe/Amsterdam")
    # 1 January 1970 began at 23:00 UTC the day before in Amsterdam (UTC+01:00), at -H.
    assert [r[:2] for r in body["rows"]] == [[-25 * H, 1], [-H, 3]]


@pytest.mark.parametrize("agg", ["count,sum,first,last", "count,median,first,last"])
async def test_buckets_spanning_more_samples_than_one_read(
    client: httpx.AsyncClient, rt: Runtime, agg: str
) -> None:
    # More samples than one chunk of the raw scan (20,000): a bucket may span two chunks.
    prop = await new_prop(client, rt, ["v"])
    base = ms("2026-02-02T00:00:00+00:00")
    n = 21_000
    for start in range(0, n, 7000):
        await prop.write([[base + i * 1000, float(i)] for i in range(start, start + 7000)])
    window = {"from": base, "to": base + DAY}
    body = await prop.aggregate(**window, interval="1d", agg=agg)
    middle = (n - 1) / 2
    second = middle * n if "sum" in agg else middle
    assert body["rows"] == [[base, n, second, 0.0, float(n - 1)]]
    body = await prop.aggregate(**window, interval="1h", agg=agg)
    assert [r[1] for r in body["rows"]] == [3600] * 5 + [n - 5 * 3600]
    assert [r[3] for r in body["rows"]] == [float(3600 * h) for h in range(6)]


async def test_linear_fill_never_overwrites_a_bucket_with_samples() -> None:
    """Found by the hypothesis test: the stddev of one sample is null, yet its bucket has a
    sample; it is a neighbour without a value (its gaps stay empty), not a gap to fill."""
    column = [1.0, None, None, None, 5.0, None, 9.0]
    present = [True, False, True, False, True, False, True]
    stamps = [0, 1, 2, 3, 4, 5, 6]
    assert fill_column(column, present, "linear", stamps) == [1.0, None, None, None, 5.0, 7.0, 9.0]
    assert fill_column(column, present, "previous", stamps) == [1.0, 1.0, None, None, 5.0, 5.0, 9.0]
