"""Downsampling under ``max_points``: LTTB for raw reads, a coarser interval for aggregates.

Pure functions and a small streaming picker: the raw path feeds samples in time order and keeps
only one candidate per bucket, so memory is bounded by ``max_points`` whatever the range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from thingbucket.kit.timebuckets import FIXED_US, Interval

# Average lengths of the calendar units, only to pick a multiple; the edges stay calendar edges.
_APPROX_US = {**FIXED_US, "d": 86_400_000_000, "w": 604_800_000_000}
_APPROX_US.update(mo=2_629_746_000_000, y=31_556_952_000_000)


def estimated_buckets(interval: Interval, start: int, end: int) -> int:
    return math.ceil((end - start) / (_APPROX_US[interval.unit] * interval.n))


def coarser(interval: Interval, factor: int) -> Interval:
    """``interval`` made ``factor`` times longer, in the same unit (so it aligns the same way)."""
    return Interval(interval.n * max(1, factor), interval.unit)


def fitting(interval: Interval, start: int, end: int, max_points: int) -> Interval:
    """The first multiple of ``interval`` that gives at most about ``max_points`` buckets."""
    return coarser(interval, math.ceil(estimated_buckets(interval, start, end) / max_points))


def lttb_grid(start: int, end: int, max_points: int) -> tuple[list[int], int]:
    """Epoch-aligned edges of at most ``max_points - 2`` equal buckets covering [start, end)."""
    width = max(1, math.ceil((end - start) / (max_points - 2)))
    while True:
        first = start - start % width
        count = math.ceil((end - first) / width)
        if count <= max_points - 2:
            return [first + i * width for i in range(count + 1)], width
        width += max(1, width // 100)


class Lttb:
    """Largest-Triangle-Three-Buckets (Steinarsson 2013) over time buckets.

    ``targets`` gives, per bucket, the point the next choice aims at: the (mean ts, mean value)
    of the next non-empty bucket. The first and the last sample are always kept; in between, one
    sample per non-empty bucket: the one making the largest triangle with the sample kept before
    it and the next bucket's mean.
    """

    def __init__(self, edges: Sequence[int], targets: Sequence[tuple[float, float] | None]):
        self._first = edges[0]
        self._width = edges[1] - edges[0]  # lttb_grid's buckets are equal
        self._last_bucket = len(edges) - 2
        # For each bucket, the target of the next non-empty one (None past the last).
        self._next: list[tuple[float, float] | None] = [None] * len(targets)
        ahead: tuple[float, float] | None = None
        for i in range(len(targets) - 1, -1, -1):
            self._next[i] = ahead
            ahead = targets[i] if targets[i] is not None else ahead
        self._bucket = -1
        self._kept: list[tuple[int, float]] = []  # the last one anchors the next choice
        self._best: tuple[float, int, float] | None = None  # (area, ts, value)
        self._last: tuple[int, float] | None = None

    def _bucket_of(self, ts: int) -> int:
        return min((ts - self._first) // self._width, self._last_bucket)

    def _close(self) -> None:
        if self._best is not None:
            _, ts, value = self._best
            self._kept.append((ts, value))
            self._best = None

    def feed(self, ts: int, value: float) -> None:
        self._last = (ts, value)
        if not self._kept:
            self._kept.append((ts, value))
            self._bucket = self._bucket_of(ts)
            return
        bucket = self._bucket_of(ts)
        if bucket != self._bucket:
            self._close()
            self._bucket = bucket
        target = self._next[bucket]
        if target is None:  # the last bucket: keep its last sample, below
            return
        ax, ay = self._kept[-1]
        cx, cy = target
        area = abs((ax - cx) * (value - ay) - (ax - ts) * (cy - ay))
        if self._best is None or area > self._best[0]:
            self._best = (area, ts, value)

    def kept(self) -> list[tuple[int, float]]:
        """The samples kept, ``(ts, value)`` in time order."""
        self._close()
        if self._last is not None and self._kept[-1][0] != self._last[0]:
            self._kept.append(self._last)
        return self._kept
