"""Aggregate functions per bucket, and gap fill: pure functions over plain values.

The repository answers count, sum, min, max, first and last per bucket in SQL; every other
function (median, stddev) is computed here from the raw samples of the bucket. Both meet in
``Stats``, from which each requested function is read. An answer's buckets are held as
``Columns`` (one list per field): a month of minutes is 43,200 buckets, and an object per bucket
would cost more than reading them from the database.
"""

from __future__ import annotations

import itertools
import math
import operator
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Function = Literal[
    "avg", "min", "max", "sum", "count", "first", "last", "median", "stddev", "spread", "diff"
]
FUNCTIONS: tuple[Function, ...] = (
    "avg",
    "min",
    "max",
    "sum",
    "count",
    "first",
    "last",
    "median",
    "stddev",
    "spread",
    "diff",
)
# What the SQL aggregate cannot answer: these need the bucket's raw values.
NEEDS_VALUES = frozenset({"median", "stddev"})
# Functions that are defined for text, boolean and JSON dimensions too.
ANY_KIND = frozenset({"count", "first", "last"})


@dataclass(slots=True)
class Stats:
    count: int
    sum: float | None = None
    min: Any = None
    max: Any = None
    first: Any = None
    last: Any = None
    values: list[float] | None = None  # only when a function needs them


@dataclass(slots=True)
class Columns:
    """The non-empty buckets of one series in time order: ``index`` holds each one's position
    in the query's grid, the other fields one value per bucket (``sum``, ``min`` and ``max``
    only for numbers, ``values`` only when a function needs them)."""

    index: Sequence[int]
    count: Sequence[int]
    first: Sequence[Any]
    last: Sequence[Any]
    sum: Sequence[float] | None = None
    min: Sequence[Any] | None = None
    max: Sequence[Any] | None = None
    values: Sequence[list[float]] | None = None

    @classmethod
    def of_rows(cls, index: Sequence[int], rows: Sequence[Sequence[Any]]) -> Columns:
        """From rows ``(bucket, n, sum, min, max, first, last, ...)`` of numbers."""
        if not rows:
            return cls(index, [], [], [], [], [], [])
        _, n, total, lo, hi, first, last, *_ = zip(*rows, strict=False)  # 7 or 8 wide
        return cls(index, n, first, last, total, lo, hi)

    @classmethod
    def of_stats(cls, pairs: Iterable[tuple[int, Stats]], numeric: bool, values: bool) -> Columns:
        pairs = list(pairs)
        stats = [st for _, st in pairs]
        return cls(
            [i for i, _ in pairs],
            [st.count for st in stats],
            [st.first for st in stats],
            [st.last for st in stats],
            [st.sum or 0.0 for st in stats] if numeric else None,
            [st.min for st in stats] if numeric else None,
            [st.max for st in stats] if numeric else None,
            [st.values or [] for st in stats] if values else None,
        )

    def get(self, fn: Function) -> list[Any]:
        """The function's value per bucket (None throughout where it is not defined)."""
        if fn == "count":
            return list(self.count)
        if fn in ("first", "last"):
            return list(self.first if fn == "first" else self.last)
        if self.sum is None or self.min is None or self.max is None:  # not a number series
            return [None] * len(self.index)
        if fn == "avg":
            return list(map(operator.truediv, self.sum, self.count))
        if fn in ("min", "max", "sum"):
            return list(getattr(self, fn))
        if fn == "spread":
            return list(map(operator.sub, self.max, self.min))
        if fn == "diff":
            return list(map(operator.sub, self.last, self.first))
        assert self.values is not None
        if fn == "median":
            return [statistics.median(v) for v in self.values]
        return [statistics.stdev(v) if len(v) > 1 else None for v in self.values]


def combine(index: Sequence[int], rows: Sequence[Sequence[Any]]) -> Columns:
    """Columns from rows ``(bucket, n, sum, min, max, first, last, ...)`` in time order whose
    positions ``index`` ascend; rows that share a position are one bucket."""
    if all(map(operator.lt, index, itertools.islice(index, 1, None))):
        return Columns.of_rows(index, rows)
    at: list[int] = []
    ns: list[int] = []
    sums: list[float] = []
    los: list[Any] = []
    his: list[Any] = []
    firsts: list[Any] = []
    lasts: list[Any] = []
    for i, (_, n, total, lo, hi, first, last, *_) in zip(index, rows, strict=True):
        if at and at[-1] == i:
            ns[-1] += n
            sums[-1] += total
            los[-1] = min(los[-1], lo)
            his[-1] = max(his[-1], hi)
            lasts[-1] = last
        else:
            at.append(i)
            ns.append(n)
            sums.append(total)
            los.append(lo)
            his.append(hi)
            firsts.append(first)
            lasts.append(last)
    return Columns(at, ns, firsts, lasts, sums, los, his)


def stats_of(ts_values: Sequence[tuple[int, Any]], numeric: bool, keep_values: bool) -> Stats:
    """Stats of one bucket's samples, in ascending time order."""
    values = [v for _, v in ts_values]
    out = Stats(count=len(values), first=values[0], last=values[-1])
    if numeric:
        out.sum = math.fsum(values)
        out.min = min(values)
        out.max = max(values)
        if keep_values:
            out.values = values
    return out


def fill_column(
    column: list[Any], filled: list[bool], mode: str, stamps: Sequence[int]
) -> list[Any]:
    """Fill the empty buckets (``filled[i]`` False) of one output column.

    ``previous`` carries the last value seen in the range forward; ``linear`` interpolates on the
    bucket start times between the nearest non-empty buckets and leaves the edges empty; a number
    is used as is; ``null`` leaves them empty.
    """
    if mode == "null":
        return column
    if mode == "previous":
        last = None
        out = []
        for value, present in zip(column, filled, strict=True):
            if present:
                last = value
                out.append(value)
            else:
                out.append(last)
        return out
    if mode == "linear":
        out = list(column)
        # Between neighbours with samples only: a bucket with samples but no value (the stddev
        # of one sample) is a neighbour that leaves its gaps empty, never itself filled.
        known = [i for i, present in enumerate(filled) if present]
        for a, b in itertools.pairwise(known):
            va, vb = column[a], column[b]
            if not isinstance(va, (int, float)) or not isinstance(vb, (int, float)):
                continue
            span = stamps[b] - stamps[a]
            for i in range(a + 1, b):
                out[i] = va + (vb - va) * (stamps[i] - stamps[a]) / span
        return out
    constant = float(mode)
    return [value if present else constant for value, present in zip(column, filled, strict=True)]
