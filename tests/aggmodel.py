"""The naive recomputation that aggregate answers are checked against (no database, no SQL)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

MIN = 60_000  # milliseconds
H = 60 * MIN
DAY = 24 * H
FIXED_MS = {"1m": MIN, "2m": 2 * MIN, "15m": 15 * MIN, "1h": H, "3h": 3 * H}


def local_midnight(d: date, tz: ZoneInfo) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp()) * 1000


def label(ts: int, interval: str, tz_name: str) -> int:
    """The start (epoch ms) of the bucket holding ``ts``."""
    width = FIXED_MS.get(interval)
    if width is not None:
        return ts - ts % width
    tz = ZoneInfo(tz_name)
    day = datetime.fromtimestamp(ts // 1000, tz).date()
    if interval == "1w":
        day -= timedelta(days=day.weekday())
    elif interval == "1mo":
        day = day.replace(day=1)
    else:
        assert interval == "1d"
    return local_midnight(day, tz)


def all_labels(start: int, end: int, interval: str, tz_name: str) -> list[int]:
    """Every bucket from the one holding ``start`` to the last one starting before ``end``."""
    width = FIXED_MS.get(interval)
    if width is not None:
        return list(range(label(start, interval, tz_name), end, width))
    tz = ZoneInfo(tz_name)
    day = datetime.fromtimestamp(start // 1000, tz).date()
    last = datetime.fromtimestamp((end - 1) // 1000, tz).date()
    found = set()
    while day <= last:
        found.add(label(local_midnight(day, tz), interval, tz_name))
        day += timedelta(days=1)
    return sorted(found)


def compute(fn: str, values: list[float]) -> float | int | None:
    n = len(values)
    if fn == "count":
        return n
    if n == 0:
        return None
    if fn == "avg":
        return math.fsum(values) / n
    if fn == "sum":
        return math.fsum(values)
    if fn == "min":
        return min(values)
    if fn == "max":
        return max(values)
    if fn == "first":
        return values[0]
    if fn == "last":
        return values[-1]
    if fn == "spread":
        return max(values) - min(values)
    if fn == "diff":
        return values[-1] - values[0]
    if fn == "median":
        ordered = sorted(values)
        mid = n // 2
        return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    assert fn == "stddev"
    if n < 2:
        return None
    # Scaled by the largest magnitude first, so that squares of tiny values do not underflow.
    top = max(abs(v) for v in values)
    if top == 0:
        return 0.0
    scaled = [v / top for v in values]
    mean = math.fsum(scaled) / n
    return top * math.sqrt(math.fsum((v - mean) ** 2 for v in scaled) / (n - 1))


@dataclass
class Model:
    """What the store should hold: per dimension, the last value written at each timestamp."""

    dims: int
    series: list[dict[int, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.series = [{} for _ in range(self.dims)]

    def apply(self, rows: Sequence[Sequence[Any]]) -> None:
        for ts, *values in rows:
            for column, value in enumerate(values):
                if value is not None:  # null leaves what is stored
                    self.series[column][ts] = float(value)

    def expected(
        self, start: int, end: int, interval: str, tz: str, fns: Sequence[str], fill: str
    ) -> list[tuple[int, list[tuple[str, list[float]]]]]:
        """Rows ``(label, [(fn, values of the bucket), ...])`` (values in time order)."""
        groups: list[dict[int, list[float]]] = []
        for points in self.series:
            by_label: dict[int, list[float]] = {}
            for ts in sorted(points):
                if start <= ts < end:
                    by_label.setdefault(label(ts, interval, tz), []).append(points[ts])
            groups.append(by_label)
        if fill == "none":
            labels = sorted({b for g in groups for b in g})
        else:
            labels = all_labels(start, end, interval, tz)
        return [(b, [(fn, g.get(b, [])) for g in groups for fn in fns]) for b in labels]


def check_cell(got: Any, fn: str, values: list[float], where: str) -> None:
    want = compute(fn, values)
    if want is None or fn == "count":
        assert got == want, where
        return
    assert isinstance(got, int | float), where
    if fn in ("avg", "sum", "stddev"):  # summed in another order (SQL) or another way
        scale = math.fsum(abs(v) for v in values)
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12 * scale), where
    else:  # picked or subtracted from exact values
        assert got == want, where


def gap_fill(
    expected: list[tuple[int, list[tuple[str, list[float]]]]], fill: str
) -> list[list[float | int | None]]:
    """What each empty bucket of each column should read under ``fill`` (previous, linear or a
    number; None for a bucket with samples): one straightforward loop per column."""
    out: list[list[float | int | None]] = [[None] * len(cells) for _, cells in expected]
    for column in range(len(expected[0][1]) if expected else 0):
        fn = expected[0][1][column][0]
        if fn == "count":
            continue  # never filled: 0
        known = [
            (i, b, compute(fn, cells[column][1]))
            for i, (b, cells) in enumerate(expected)
            if cells[column][1]
        ]
        for i, (b, cells) in enumerate(expected):
            if cells[column][1]:
                continue
            before = [(j, t, v) for j, t, v in known if j < i]
            after = [(j, t, v) for j, t, v in known if j > i]
            if fill == "previous":
                out[i][column] = before[-1][2] if before else None
            elif fill == "linear":
                if before and after:
                    (_, ta, va), (_, tb, vb) = before[-1], after[0]
                    if va is not None and vb is not None:
                        out[i][column] = va + (vb - va) * (b - ta) / (tb - ta)
            else:
                out[i][column] = float(fill)
    return out


def check_answer(
    body: dict[str, Any],
    model: Model,
    dims: Sequence[str],
    start: int,
    end: int,
    interval: str,
    tz: str,
    fns: Sequence[str],
    fill: str,
) -> None:
    assert body["columns"] == ["ts", *(f"{d}_{fn}" for d in dims for fn in fns)]
    assert (body["interval"], body["agg"], body["fill"]) == (interval, list(fns), fill)
    expected = model.expected(start, end, interval, tz, fns, fill)
    rows = body["rows"]
    context = f"{interval} {tz} fill={fill} [{start}, {end})"
    assert [r[0] for r in rows] == [b for b, _ in expected], context
    fills = gap_fill(expected, fill) if fill not in ("none", "null") else None
    for i, (row, (b, cells)) in enumerate(zip(rows, expected, strict=True)):
        assert len(row) == 1 + len(cells)
        for column, (got, (fn, values), name) in enumerate(
            zip(row[1:], cells, body["columns"][1:], strict=True)
        ):
            where = f"{context} bucket {b} {name}: {values}"
            if fills is None or values or fn == "count":
                check_cell(got, fn, values, where)
                continue
            want = fills[i][column]
            assert (got is None) == (want is None), where
            if want is not None:  # interpolated in another order
                assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), f"{where} {want}"
