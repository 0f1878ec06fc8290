"""Rollups: per number series, count/sum/min/max/first/last per 1 min, 1 h and 1 day (UTC).

How they stay exact:

- Every write marks the buckets it touches dirty, in the transaction of its samples; a delete
  drops the rollups of the buckets it covers whole and marks the ones it cuts. So a bucket is
  either dirty, or its rollup row is right, or it has no row and no samples.
- A background pass (through the writer, so never beside a write of the same bucket) recomputes
  dirty buckets: minutes from the samples, hours from clean minutes, days from clean hours.
- A query reads rollup rows and dirty marks in one statement; a dirty bucket is read one level
  finer, down to the samples; the edges of a range that do not fill a bucket come from the
  samples. An answer never uses a stale row.

The pure parts and the background pass live here; the SQL in ``points.repository``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from thingbucket.db.periodic import PeriodicTask

if TYPE_CHECKING:
    from thingbucket.runtime import Runtime

log = logging.getLogger(__name__)

LEVELS: tuple[int, ...] = (60_000_000, 3_600_000_000, 86_400_000_000)  # microseconds
_INT64 = (-(2**63), 2**63 - 1)

Mark = tuple[int, int, int]  # (series id, level, bucket start)


_DENSE = 64  # minutes: a batch whose series span at most this many is marked by its ranges


def marks_for(
    sids: Iterable[int], stamps: Iterable[int], ranges: dict[int, tuple[int, int]] | None = None
) -> set[Mark]:
    """The buckets of every level that these samples (two columns: series id, timestamp) fall
    in. With the batch's ``ranges``
    (series -> first, last timestamp) and dense data, every minute between them, which costs
    nothing per sample (a minute without samples is merely rebuilt to nothing); otherwise one
    modulo per sample."""
    minute = LEVELS[0]
    firsts: set[tuple[int, int]]
    if ranges is not None and all(
        hi // minute - lo // minute < _DENSE for lo, hi in ranges.values()
    ):
        firsts = {
            (sid, b)
            for sid, (lo, hi) in ranges.items()
            for b in range(lo - lo % minute, hi + 1, minute)
        }
    else:
        firsts = {(sid, ts - ts % minute) for sid, ts in zip(sids, stamps, strict=True)}
    out: set[Mark] = {(sid, 0, b) for sid, b in firsts}
    for level in range(1, len(LEVELS)):
        w = LEVELS[level]
        out.update((sid, level, b - b % w) for sid, b in firsts)
    return out


def delete_plan(start: int, end: int) -> list[tuple[int, int, int, list[int]]]:
    """For a delete of [start, end): per level, the buckets it covers whole ([lo, hi), their
    rollups go) and the ones it cuts (to mark dirty)."""
    plan = []
    for level, w in enumerate(LEVELS):
        lo = -(-start // w) * w  # first whole bucket
        hi = (end // w) * w  # end of the last whole bucket
        cut = {start - start % w, (end - 1) - (end - 1) % w}
        # A bucket starting before the int64 range holds nothing (timestamps are int64).
        cut = {b for b in cut if not (lo <= b and b + w <= hi) and b >= _INT64[0]}
        lo, hi = max(lo, _INT64[0]), min(hi, _INT64[1])
        plan.append((level, lo, max(lo, hi), sorted(cut)))
    return plan


def fitting_level(
    edges: Sequence[int], start: int, end: int, width: int | None = None
) -> int | None:
    """The coarsest level whose buckets tile every query bucket, if a whole one fits; ``width``
    is the query buckets' when they are all equal."""
    for level in range(len(LEVELS) - 1, -1, -1):
        w = LEVELS[level]
        if width is not None:
            tiles = edges[0] % w == 0 and width % w == 0
        else:
            tiles = all(e % w == 0 for e in edges)
        if tiles and -(-start // w) * w < (end // w) * w:
            return level
    return None


async def catch_up(rt: Runtime, *, rounds: int = 1_000) -> int:
    """Rebuild dirty buckets until none is left (or ``rounds`` passes); how many it rebuilt."""
    limit = rt.settings.rollups.batch_buckets
    total = 0
    for _ in range(rounds):
        done = await rt.writer.recompute_rollups(limit)
        total += done
        if done == 0:
            break
    return total


class RollupTask(PeriodicTask):
    """``catch_up`` every ``rollups.interval_s``: queries stay exact meanwhile, only slower; the
    marks of a failed pass stay for the next one. The writer serialises the work itself."""

    name = "rollups"

    def __init__(self, rt: Runtime) -> None:
        interval = rt.settings.rollups.interval_s
        super().__init__(rt.db, interval, interval)
        self._rt = rt

    async def run_pass(self) -> None:
        await catch_up(self._rt, rounds=20)
