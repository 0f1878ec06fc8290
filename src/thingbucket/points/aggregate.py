"""Aggregate functions per bucket, and gap fill: pure functions over plain values.

The repository answers count, sum, min, max, first and last per bucket in SQL; every other
function (median, stddev) is computed here from the raw samples of the bucket. Both meet in
``Stats``, from which each requested function is read.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
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

    def get(self, fn: Function) -> Any:
        if fn == "count":
            return self.count
        if fn in ("first", "last"):
            return self.first if fn == "first" else self.last
        if self.sum is None:  # not a number series
            return None
        if fn == "avg":
            return self.sum / self.count
        if fn in ("min", "max", "sum"):
            return getattr(self, fn)
        if fn == "spread":
            return self.max - self.min
        if fn == "diff":
            return self.last - self.first
        assert self.values is not None
        if fn == "median":
            return statistics.median(self.values)
        return statistics.stdev(self.values) if self.count > 1 else None


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
        known = [i for i, present in enumerate(filled) if present and column[i] is not None]
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
