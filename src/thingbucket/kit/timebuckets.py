"""Time buckets for aggregates: epoch-aligned fixed widths and calendar units in a time zone.

``s``/``m``/``h`` buckets align to the Unix epoch in UTC. ``d``/``w``/``mo``/``y`` are calendar
units in the given zone (DST-correct: a local day may last 23 or 25 hours); multiples count from
the calendar start: days from 1 January, weeks from the Monday of ISO week 1, months from January,
years from year 0. A multiple that does not divide its year evenly ends early at the next start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from thingbucket.kit.time import datetime_to_us, us_to_datetime

Unit = Literal["s", "m", "h", "d", "w", "mo", "y"]
FIXED_US: dict[str, int] = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000}
_INTERVAL = re.compile(r"^([1-9][0-9]{0,8})(s|m|h|d|w|mo|y)$")
# Calendar arithmetic needs datetime's year range, with a margin for the zone offset.
_CAL_MIN_US = datetime_to_us(datetime(2, 1, 1))
_CAL_MAX_US = datetime_to_us(datetime(9998, 1, 1))


class BucketError(ValueError):
    """An interval, a time zone or a range that cannot be bucketed."""


class TooManyBuckets(BucketError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} buckets")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Interval:
    n: int
    unit: Unit

    @property
    def fixed_us(self) -> int | None:
        """The width in microseconds of an epoch-aligned interval, None for calendar units."""
        base = FIXED_US.get(self.unit)
        return None if base is None else base * self.n

    def __str__(self) -> str:
        return f"{self.n}{self.unit}"


def parse_interval(text: str) -> Interval:
    m = _INTERVAL.match(text.strip())
    if not m:
        raise BucketError(f"not an interval: {text[:20]!r} (use <n><unit>, unit s|m|h|d|w|mo|y)")
    unit: Unit = m[2]  # type: ignore[assignment]
    return Interval(int(m[1]), unit)


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BucketError(f"unknown time zone {name[:64]!r}") from None


def _add_months(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _calendar_bucket(d: date, interval: Interval) -> tuple[date, date]:
    """The local calendar bucket [start, end) holding day ``d``."""
    n = interval.n
    if interval.unit == "d":
        year_start, next_year = date(d.year, 1, 1), date(d.year + 1, 1, 1)
        start = year_start + timedelta(days=(d - year_start).days // n * n)
        return start, min(start + timedelta(days=n), next_year)
    if interval.unit == "w":
        iso_year = d.isocalendar()[0]
        week1 = date.fromisocalendar(iso_year, 1, 1)
        next_week1 = date.fromisocalendar(iso_year + 1, 1, 1)
        start = week1 + timedelta(days=(d - week1).days // (7 * n) * 7 * n)
        return start, min(start + timedelta(days=7 * n), next_week1)
    if interval.unit == "mo":
        start = date(d.year, (d.month - 1) // n * n + 1, 1)
        return start, min(_add_months(start, n), date(d.year + 1, 1, 1))
    start_year = d.year - d.year % n
    return date(max(start_year, 1), 1, 1), date(start_year + n, 1, 1)


def _local_midnight_us(d: date, tz: ZoneInfo) -> int:
    # fold=0: a midnight that a DST gap skips maps to the first instant after the gap.
    return datetime_to_us(datetime(d.year, d.month, d.day, tzinfo=tz))


def edges(interval: Interval, tz_name: str, start: int, end: int, limit: int) -> list[int]:
    """Bucket edges ``e0 <= start < e1 < ... < ek``, ``ek >= end``: buckets are [e_i, e_i+1).

    The first bucket is the one holding ``start`` (its label may lie before ``start``).
    Raises ``TooManyBuckets`` past ``limit`` buckets.
    """
    if end <= start:
        return [start, start]
    width = interval.fixed_us
    if width is not None:
        first = start - start % width
        count = -(-(end - first) // width)
        if count > limit:
            raise TooManyBuckets(limit)
        return list(range(first, first + (count + 1) * width, width))
    if start < _CAL_MIN_US or end > _CAL_MAX_US:
        raise BucketError("calendar intervals need a range between the years 2 and 9997")
    try:
        return _calendar_edges(interval, zone(tz_name), start, end, limit)
    except (ValueError, OverflowError) as exc:
        if isinstance(exc, BucketError):
            raise
        # A multiple so large that its bucket ends past the calendar (e.g. 10000y).
        raise BucketError(f"{interval} reaches beyond the year 9999") from None


def _calendar_edges(
    interval: Interval, tz: ZoneInfo, start: int, end: int, limit: int
) -> list[int]:
    day = us_to_datetime(start).astimezone(tz).date()
    lo, hi = _calendar_bucket(day, interval)
    out = [_local_midnight_us(lo, tz)]
    if out[0] > start:  # only where a gap swallowed the local midnight before ``start``
        lo, hi = _calendar_bucket(lo - timedelta(days=1), interval)
        out = [_local_midnight_us(lo, tz)]
    while out[-1] < end:
        if len(out) > limit:
            raise TooManyBuckets(limit)
        out.append(_local_midnight_us(hi, tz))
        hi = _calendar_bucket(hi, interval)[1]
    return out
