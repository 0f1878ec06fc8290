"""What the sample writer is given: a batch of samples, a range delete, and the rollup marks
each implies. Pure data, importing nothing heavy: the SQLite writer process imports it too."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain

from thingbucket.points.rollups import Mark, delete_plan

NumRow = tuple[int, int, float]
TextRow = tuple[int, int, str]
TABLE_FOR_KIND = {"number": "samples_num"}
TEXT_TABLE = "samples_text"


def table_for(kind: str) -> str:
    return TABLE_FOR_KIND.get(kind, TEXT_TABLE)


class SampleBatch:
    """Samples of one request or message, in request order (a later duplicate wins).

    Numbers are three parallel columns (series id, timestamp, value): the decoders build them and
    the writers bind them without a tuple per sample. Text values (text, booleans, JSON) are
    rows. ``SampleBatch(num=rows)`` takes number rows, for the paths where rows come one by one.
    """

    __slots__ = ("sids", "stamps", "text", "values")

    def __init__(self, num: Iterable[NumRow] = (), text: Iterable[TextRow] = ()) -> None:
        rows = list(num)
        self.sids: list[int] = [r[0] for r in rows]
        self.stamps: list[int] = [r[1] for r in rows]
        self.values: list[float] = [r[2] for r in rows]
        self.text: list[TextRow] = list(text)

    @classmethod
    def of_columns(
        cls, sids: list[int], stamps: list[int], values: list[float], text: list[TextRow]
    ) -> SampleBatch:
        batch = cls()
        batch.sids, batch.stamps, batch.values, batch.text = sids, stamps, values, text
        return batch

    @property
    def num(self) -> list[NumRow]:
        """The number samples as rows."""
        return list(zip(self.sids, self.stamps, self.values, strict=True))

    def add_number(self, sid: int, ts: int, value: float) -> None:
        self.sids.append(sid)
        self.stamps.append(ts)
        self.values.append(value)

    def __len__(self) -> int:
        return len(self.sids) + len(self.text)

    def extend(self, other: SampleBatch) -> None:
        self.sids.extend(other.sids)
        self.stamps.extend(other.stamps)
        self.values.extend(other.values)
        self.text.extend(other.text)

    def ranges(self) -> dict[int, tuple[int, int]]:
        """Per series, the (first, last) timestamp touched."""
        sids = self.sids
        if not self.text and sids and sids.count(sids[0]) == len(sids):
            # One series, the common batch: min and max in C.
            return {sids[0]: (min(self.stamps), max(self.stamps))}
        out: dict[int, tuple[int, int]] = {}
        text = ((r[0], r[1]) for r in self.text)
        for sid, ts in chain(zip(sids, self.stamps, strict=True), text):
            lo_hi = out.get(sid)
            if lo_hi is None:
                out[sid] = (ts, ts)
            elif ts < lo_hi[0]:
                out[sid] = (ts, lo_hi[1])
            elif ts > lo_hi[1]:
                out[sid] = (lo_hi[0], ts)
        return out


@dataclass(frozen=True, slots=True)
class RangeDelete:
    series: tuple[tuple[int, str], ...]  # (series id, kind)
    start: int
    end: int  # exclusive
    # Retention: a cold chunk the range only cuts stays whole, and its stretch with it (its
    # samples go when all of them have expired); otherwise such a chunk is thawed and cut.
    whole_chunks: bool = False


def num_ranges(
    batch: SampleBatch, ranges: dict[int, tuple[int, int]]
) -> dict[int, tuple[int, int]] | None:
    """The ranges of the number series alone; None when text series share the batch (their
    ranges would mark buckets of series that have no rollups, harmless but wasted)."""
    return ranges if not batch.text else None


def delete_marks(
    series_id: int, start: int, end: int
) -> tuple[list[tuple[int, int, int, int]], list[Mark]]:
    """Rollup ranges a delete of [start, end) of a number series drops whole, and the buckets
    it cuts."""
    whole: list[tuple[int, int, int, int]] = []
    cut: list[Mark] = []
    for level, lo, hi, edges in delete_plan(start, end):
        if lo < hi:
            whole.append((series_id, level, lo, hi))
        cut.extend((series_id, level, b) for b in edges)
    return whole, cut
