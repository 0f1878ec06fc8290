"""Bucket edges of aggregates: epoch-aligned fixed widths, and calendar units in a time zone.

The calendar reference here is built independently of the module: it walks local dates one by
one, decides from the date alone whether a bucket starts there, and finds the first instant of
that local date by a binary search over UTC seconds with zoneinfo.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thingbucket.kit.timebuckets import (
    BucketError,
    Interval,
    TooManyBuckets,
    edges,
    parse_interval,
)

S = 1_000_000  # microseconds per second
H = 3600 * S
DAY = 24 * H
ZONES = ["UTC", "Europe/Amsterdam", "America/New_York", "America/Santiago", "Australia/Sydney"]
LIMIT = 100_000


def us(text: str) -> int:
    """Microseconds of an ISO 8601 timestamp with its offset."""
    dt = datetime.fromisoformat(text)
    assert dt.tzinfo is not None
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * S + delta.microseconds


def local(ts_us: int, tz: str) -> datetime:
    seconds, micros = divmod(ts_us, S)
    return datetime.fromtimestamp(seconds, ZoneInfo(tz)) + timedelta(microseconds=micros)


# --- the naive reference ------------------------------------------------------------------------


def first_instant(d: date, tz: str) -> int:
    """The first UTC second (in microseconds) whose local date in ``tz`` is ``d`` or later."""
    zi = ZoneInfo(tz)
    guess = int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())
    lo, hi = guess - 30 * 3600, guess + 30 * 3600  # local date < d at lo, >= d at hi
    assert datetime.fromtimestamp(lo, zi).date() < d <= datetime.fromtimestamp(hi, zi).date()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zi).date() >= d:
            hi = mid
        else:
            lo = mid
    return hi * S


def starts_bucket(d: date, n: int, unit: str) -> bool:
    """Whether a calendar bucket of ``n`` ``unit`` starts on local date ``d``."""
    if unit == "d":
        return (d.timetuple().tm_yday - 1) % n == 0
    if unit == "w":
        return d.isoweekday() == 1 and (d.isocalendar()[1] - 1) % n == 0
    if unit == "mo":
        return d.day == 1 and (d.month - 1) % n == 0
    assert unit == "y"
    return d.month == 1 and d.day == 1 and d.year % n == 0


def reference_edges(n: int, unit: str, tz: str, start: int, end: int) -> list[int]:
    if unit in ("s", "m", "h"):
        width = n * {"s": S, "m": 60 * S, "h": H}[unit]
        out = [start // width * width]
        while out[-1] < end:
            out.append(out[-1] + width)
        return out
    d = local(start, tz).date()
    while not (starts_bucket(d, n, unit) and first_instant(d, tz) <= start):
        d -= timedelta(days=1)
    out = [first_instant(d, tz)]
    while out[-1] < end:
        d += timedelta(days=1)
        if starts_bucket(d, n, unit):
            out.append(first_instant(d, tz))
    return out


def check_shape(found: list[int], start: int, end: int) -> None:
    assert found[0] <= start < found[1]
    assert found[-2] < end <= found[-1]
    assert all(a < b for a, b in itertools.pairwise(found))


# --- parse_interval -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "n", "unit", "fixed"),
    [
        ("1s", 1, "s", S),
        ("1m", 1, "m", 60 * S),
        ("15m", 15, "m", 15 * 60 * S),
        ("1h", 1, "h", H),
        ("36h", 36, "h", 36 * H),
        ("1d", 1, "d", None),
        ("1w", 1, "w", None),
        ("2w", 2, "w", None),
        ("1mo", 1, "mo", None),
        ("3mo", 3, "mo", None),
        ("1y", 1, "y", None),
        ("999999999s", 999_999_999, "s", 999_999_999 * S),
    ],
)
def test_parse_interval_reads_count_and_unit(
    text: str, n: int, unit: str, fixed: int | None
) -> None:
    interval = parse_interval(text)
    assert interval == Interval(n, unit)  # type: ignore[arg-type]
    assert interval.fixed_us == fixed
    assert str(interval) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "m",
        "1",
        "0m",
        "01m",
        "-1h",
        "1.5h",
        "1 h",
        "1M",
        "1H",
        "1mon",
        "1min",
        "1ms",
        "h1",
        "1e3s",
        "1000000000s",
        "1hh",
        "１h",
    ],
)
def test_parse_interval_refuses_anything_else(text: str) -> None:
    with pytest.raises(BucketError):
        parse_interval(text)


@given(st.integers(1, 999_999_999), st.sampled_from(["s", "m", "h", "d", "w", "mo", "y"]))
def test_parse_interval_round_trips(n: int, unit: str) -> None:
    interval = parse_interval(f"{n}{unit}")
    assert (interval.n, interval.unit, str(interval)) == (n, unit, f"{n}{unit}")


@given(st.text(max_size=12))
def test_parse_interval_parses_or_raises_bucket_error(text: str) -> None:
    try:
        interval = parse_interval(text)
    except BucketError:
        return
    assert str(interval) == text.strip()


# --- fixed widths -------------------------------------------------------------------------------


def test_fixed_widths_align_to_the_epoch_also_before_it() -> None:
    one_h = parse_interval("1h")
    assert edges(one_h, "UTC", -1, 0, LIMIT) == [-H, 0]
    assert edges(one_h, "UTC", -H, 1, LIMIT) == [-H, 0, H]
    assert edges(one_h, "UTC", -H - 1, -H + 1, LIMIT) == [-2 * H, -H, 0]
    assert edges(parse_interval("15m"), "UTC", -1, 1, LIMIT) == [-15 * 60 * S, 0, 15 * 60 * S]
    # 1 January 1969 00:00 UTC lies on a day of 86,400 s counted from the epoch.
    assert edges(parse_interval("24h"), "UTC", -365 * DAY + 5, -365 * DAY + 6, LIMIT) == [
        -365 * DAY,
        -364 * DAY,
    ]
    # 7 h buckets: 7 does not divide 24, so they run across midnight from the epoch.
    seven = edges(
        parse_interval("7h"),
        "UTC",
        us("2026-01-01T00:00:00+00:00"),
        1 + us("2026-01-01T00:00:00+00:00"),
        LIMIT,
    )
    assert seven[0] % (7 * H) == 0
    assert seven[0] <= us("2026-01-01T00:00:00+00:00") < seven[1]


def test_fixed_widths_ignore_the_time_zone() -> None:
    start, end = us("2026-03-29T00:00:00+01:00"), us("2026-03-30T00:00:00+02:00")
    utc = edges(parse_interval("1h"), "UTC", start, end, LIMIT)
    for tz in ("Europe/Amsterdam", "Asia/Kolkata", "America/St_Johns"):
        assert edges(parse_interval("1h"), tz, start, end, LIMIT) == utc
    assert len(utc) == 24  # 23 hours: 23 buckets and their end


@settings(max_examples=200)
@given(
    st.integers(1, 90),
    st.sampled_from(["s", "m", "h"]),
    st.integers(-(10**16), 10**16),
    st.integers(1, 500 * H),
)
def test_fixed_widths_match_the_reference(n: int, unit: str, start: int, span: int) -> None:
    interval = parse_interval(f"{n}{unit}")
    width = interval.fixed_us
    assert width is not None
    span = min(span, 200 * width)
    found = edges(interval, "UTC", start, start + span, LIMIT)
    assert found == reference_edges(n, unit, "UTC", start, start + span)
    check_shape(found, start, start + span)
    assert all(e % width == 0 for e in found)
    assert all(b - a == width for a, b in itertools.pairwise(found))


# --- calendar units -----------------------------------------------------------------------------

calendar_intervals = st.one_of(
    st.tuples(st.integers(1, 12), st.just("d")),
    st.tuples(st.integers(1, 5), st.just("w")),
    st.tuples(st.integers(1, 12), st.just("mo")),
    st.tuples(st.integers(1, 4), st.just("y")),
)


@settings(max_examples=150, deadline=None)
@given(
    calendar_intervals,
    st.sampled_from(ZONES),
    st.integers(us("1995-01-01T00:00:00+00:00"), us("2040-01-01T00:00:00+00:00")),
    st.integers(1, 120 * DAY),
    st.sampled_from(["any", "midnight", "hour"]),
)
def test_calendar_edges_match_a_day_by_day_reference(
    interval: tuple[int, str], tz: str, start: int, span: int, snap: str
) -> None:
    n, unit = interval
    if snap != "any":  # start exactly on a local midnight or a UTC hour, where edges lie
        start = first_instant(local(start, tz).date(), tz) if snap == "midnight" else start // H * H
    if unit == "y":
        span *= 10
    end = start + span
    found = edges(parse_interval(f"{n}{unit}"), tz, start, end, LIMIT)
    assert found == reference_edges(n, unit, tz, start, end)
    check_shape(found, start, end)


def hours(found: list[int]) -> list[float]:
    return [(b - a) / H for a, b in itertools.pairwise(found)]


@pytest.mark.parametrize(
    ("tz", "short_day", "long_day"),
    [
        ("Europe/Amsterdam", date(2026, 3, 29), date(2026, 10, 25)),
        ("America/New_York", date(2026, 3, 8), date(2026, 11, 1)),
        ("Australia/Sydney", date(2026, 10, 4), date(2026, 4, 5)),
    ],
)
def test_days_last_23_or_25_hours_on_dst_changes(tz: str, short_day: date, long_day: date) -> None:
    zi = ZoneInfo(tz)
    for day, length in ((short_day, 23), (long_day, 25)):
        midnight = int(datetime(day.year, day.month, day.day, tzinfo=zi).timestamp()) * S
        found = edges(parse_interval("1d"), tz, midnight, midnight + 1, LIMIT)
        assert found == [midnight, midnight + length * H]
        # The hours of that day, from local midnight to local midnight: 23 or 25 of them.
        assert len(edges(parse_interval("1h"), tz, found[0], found[1], LIMIT)) == length + 1
        week = edges(parse_interval("1d"), tz, midnight - 3 * DAY, midnight + 3 * DAY, LIMIT)
        assert sorted(set(hours(week))) == sorted({float(length), 24.0})


def test_days_without_a_midnight_start_at_the_end_of_the_gap() -> None:
    # Santiago springs forward at 00:00 (to 01:00) and falls back at 24:00 (to 23:00).
    tz = "America/Santiago"
    found = edges(
        parse_interval("1d"),
        tz,
        us("2026-09-05T12:00:00-04:00"),
        us("2026-09-07T12:00:00-03:00"),
        LIMIT,
    )
    assert found == [
        us("2026-09-05T00:00:00-04:00"),
        us("2026-09-06T01:00:00-03:00"),
        us("2026-09-07T00:00:00-03:00"),
        us("2026-09-08T00:00:00-03:00"),
    ]
    # The repeated hour 23:00-24:00 of 4 April belongs to 4 April, a day of 25 hours.
    repeated = us("2026-04-04T23:30:00-04:00")
    found = edges(parse_interval("1d"), tz, repeated, repeated + 1, LIMIT)
    assert found == [us("2026-04-04T00:00:00-03:00"), us("2026-04-05T00:00:00-04:00")]
    assert hours(found) == [25.0]


def test_weeks_start_on_monday_and_two_weeks_on_odd_iso_weeks() -> None:
    tz = "Europe/Amsterdam"
    start, end = us("2026-01-01T00:00:00+01:00"), us("2027-01-10T00:00:00+01:00")
    weeks = edges(parse_interval("1w"), tz, start, end, LIMIT)
    assert weeks[0] == us("2025-12-29T00:00:00+01:00")  # Monday of ISO week 1 of 2026
    for edge in weeks:
        moment = local(edge, tz)
        assert (moment.isoweekday(), moment.hour, moment.minute) == (1, 0, 0)
    assert sorted(set(hours(weeks))) == [167.0, 168.0, 169.0]  # DST weeks
    two = edges(parse_interval("2w"), tz, start, end, LIMIT)
    assert [local(e, tz).isocalendar()[1] for e in two] == [*range(1, 54, 2), 1, 3]
    # ISO 2026 has 53 weeks: week 53 starts a bucket of one week, ended by week 1 of 2027.
    assert local(two[-3], tz).date() == date(2026, 12, 28)
    assert local(two[-2], tz).date() == date(2027, 1, 4)


def test_months_quarters_and_years() -> None:
    tz = "America/New_York"
    start, end = us("2025-02-10T00:00:00-05:00"), us("2027-02-01T00:00:00-05:00")
    quarters = edges(parse_interval("3mo"), tz, start, end, LIMIT)
    assert [(local(e, tz).year, local(e, tz).month, local(e, tz).day) for e in quarters] == [
        (year, month, 1) for year in (2025, 2026) for month in (1, 4, 7, 10)
    ] + [(2027, 1, 1), (2027, 4, 1)]
    assert all(local(e, tz).hour == 0 for e in quarters)
    five = edges(parse_interval("5mo"), tz, start, end, LIMIT)
    # 5 months do not divide the year: the November bucket ends early at 1 January.
    assert [local(e, tz).month for e in five] == [1, 6, 11, 1, 6, 11, 1, 6]
    years = edges(parse_interval("1y"), "UTC", start, end, LIMIT)
    assert years == [us(f"{y}-01-01T00:00:00+00:00") for y in (2025, 2026, 2027, 2028)]
    decades = edges(parse_interval("10y"), "UTC", start, start + 1, LIMIT)
    assert decades == [us("2020-01-01T00:00:00+00:00"), us("2030-01-01T00:00:00+00:00")]


def test_two_days_across_a_year_end_restart_on_1_january() -> None:
    two = parse_interval("2d")
    # 2025 has 365 days: 31 December is day 365, which starts a bucket cut short at 1 January.
    found = edges(two, "UTC", us("2025-12-30T12:00:00+00:00"), us("2026-01-03T12:00:00+00:00"), 10)
    assert found == [
        us(f"{d}T00:00:00+00:00")
        for d in ("2025-12-29", "2025-12-31", "2026-01-01", "2026-01-03", "2026-01-05")
    ]
    # 2024 is a leap year: 30 December (day 365) starts the last bucket, of two days.
    found = edges(
        two,
        "Europe/Amsterdam",
        us("2024-12-31T12:00:00+01:00"),
        us("2025-01-01T12:00:00+01:00"),
        10,
    )
    assert found == [
        us("2024-12-30T00:00:00+01:00"),
        us("2025-01-01T00:00:00+01:00"),
        us("2025-01-03T00:00:00+01:00"),
    ]


def test_the_first_bucket_holds_start_and_the_last_starts_before_end() -> None:
    tz = "Europe/Amsterdam"
    found = edges(
        parse_interval("1d"),
        tz,
        us("2026-03-28T15:00:00+01:00"),
        us("2026-03-30T00:00:00+02:00"),
        9,
    )
    # The end is exclusive: a bucket starting at the end is not in the range.
    assert found == [
        us("2026-03-28T00:00:00+01:00"),
        us("2026-03-29T00:00:00+01:00"),
        us("2026-03-30T00:00:00+02:00"),
    ]


def test_too_many_buckets_raises_past_the_limit_only() -> None:
    start = us("2016-01-01T00:00:00+00:00")
    with pytest.raises(TooManyBuckets) as info:
        edges(parse_interval("1s"), "UTC", start, start + 10 * 365 * DAY, LIMIT)
    assert info.value.limit == LIMIT
    assert isinstance(info.value, BucketError)
    one_m = parse_interval("1m")
    assert len(edges(one_m, "UTC", 0, 10 * 60 * S, 10)) == 11
    with pytest.raises(TooManyBuckets):
        edges(one_m, "UTC", 0, 10 * 60 * S + 1, 10)
    one_d = parse_interval("1d")
    midnight = us("2026-03-25T00:00:00+01:00")  # ten local days, one of them of 23 hours
    assert len(edges(one_d, "Europe/Amsterdam", midnight, midnight + 10 * DAY - H, 10)) == 11
    with pytest.raises(TooManyBuckets):
        edges(one_d, "Europe/Amsterdam", midnight, midnight + 10 * DAY - H, 9)
    with pytest.raises(TooManyBuckets):  # one hour more reaches into an eleventh day
        edges(one_d, "Europe/Amsterdam", midnight, midnight + 10 * DAY - H + 1, 10)
    with pytest.raises(TooManyBuckets):
        edges(parse_interval("1w"), "UTC", start, start + 3000 * DAY, 100)


def test_calendar_units_refuse_unknown_zones_and_ranges_outside_datetime() -> None:
    with pytest.raises(BucketError):
        edges(parse_interval("1d"), "Mars/Olympus_Mons", 0, DAY, LIMIT)
    with pytest.raises(BucketError):
        edges(parse_interval("1d"), "../../etc/passwd", 0, DAY, LIMIT)
    with pytest.raises(BucketError):
        edges(parse_interval("1mo"), "UTC", -(2**62), 0, LIMIT)
    with pytest.raises(BucketError):
        edges(parse_interval("1y"), "UTC", 0, 2**62, LIMIT)


@pytest.mark.parametrize("text", ["10000y", "200000mo", "9999999d", "999999w"])
def test_huge_calendar_multiples_give_a_bucket_or_a_bucket_error(text: str) -> None:
    start = us("2026-05-01T00:00:00+00:00")
    try:
        found = edges(parse_interval(text), "UTC", start, start + 1, LIMIT)
    except BucketError:
        return
    assert found[0] <= start < found[1]
