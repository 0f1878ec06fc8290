"""Cold chunks, the pure parts: where chunks may be, how a day is cut into chunks, and what a
delete does to the chunks it meets. The SQL is in ``points.sqlite_store`` (the writer process)
and ``points.repository``; the background task in ``points.cold``.

The rules that keep reads, rollups and deletes exact:

- A chunk covers a stretch ``[start_ts, end_ts)`` of one number series, on minute boundaries,
  and the sample table holds no sample of the series inside it. Reads take the chunks' samples
  and the table's together; no timestamp is in both.
- A day is packed only when none of its minute rollups is dirty, so the rollup pass, which
  rebuilds minutes from the sample table, never has to rebuild a minute inside a chunk: a write
  or a delete that reaches into a chunk first thaws it (its samples go back to the table), and a
  delete that drops whole chunks cuts no minute (hours and days are rebuilt from minutes).
- Only samples older than ``after_days`` are packed. A write anywhere later than that (minus an
  hour of clock difference between replicas) cannot meet a chunk and skips the lookup.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

from thingbucket.points import codec
from thingbucket.points.rollups import LEVELS

MINUTE = LEVELS[0]
DAY = LEVELS[2]
_HOUR = LEVELS[1]


def pack_before(now: int, after_days: int) -> int:
    """The end of the newest day the packer may pack: whole UTC days before it are cold."""
    edge = now - after_days * DAY
    return edge - edge % DAY


def cold_before(now: int, after_days: int) -> int:
    """Writes and reads wholly at or after this cannot meet a chunk (an hour of margin for the
    clocks of other replicas)."""
    return now - after_days * DAY + _HOUR


@dataclass(frozen=True, slots=True)
class Piece:
    start: int  # the stretch the chunk covers: [start, end), minute boundaries
    end: int
    first: int  # its samples: stamps[first:last]
    last: int


def pieces(stamps: Sequence[int], start: int, end: int, cap: int) -> list[Piece]:
    """[start, end) (minute boundaries) cut into chunks of at most ``cap`` of the ascending
    ``stamps``, each ending on a minute (a minute with more than ``cap`` samples is one chunk)."""
    n = len(stamps)
    out: list[Piece] = []
    first, cover = 0, start
    while n - first > cap:
        ts = stamps[first + cap]
        edge = ts - ts % MINUTE  # the minute of the sample past the cap starts the next chunk
        if edge <= stamps[first]:
            edge = stamps[first] - stamps[first] % MINUTE + MINUTE
        last = bisect_left(stamps, edge, first)
        out.append(Piece(cover, edge, first, last))
        first, cover = last, edge
    if first < n:
        out.append(Piece(cover, end, first, n))
    return out


ChunkRow = tuple[int, int, int, int, int, int, bytes]


def chunk_rows(
    sid: int, stamps: list[int], values: list[float], start: int, end: int, cap: int
) -> list[ChunkRow]:
    """The ``sample_chunks`` rows (series_id, start_ts, end_ts, first_ts, last_ts, n, data) of
    a day's ascending samples."""
    return [
        (
            sid,
            p.start,
            p.end,
            stamps[p.first],
            stamps[p.last - 1],
            p.last - p.first,
            codec.encode(stamps[p.first : p.last], values[p.first : p.last]),
        )
        for p in pieces(stamps, start, end, cap)
    ]


@dataclass(frozen=True, slots=True)
class DeletePlan:
    """What a delete of [start, end) does to the chunks it meets."""

    start: int  # the range left to delete from the sample table (and the rollups)
    end: int
    drop: list[int]  # chunk starts: covered whole, deleted
    thaw: list[int]  # chunk starts: cut, back into the sample table first


def plan_delete(
    chunks: Sequence[tuple[int, int]], start: int, end: int, whole_chunks: bool
) -> DeletePlan:
    """``chunks`` are the (start_ts, end_ts) of the series' chunks that overlap [start, end).
    With ``whole_chunks`` (retention), a cut chunk stays and the range shrinks to spare it."""
    drop, thaw = [], []
    for c_start, c_end in chunks:
        if start <= c_start and c_end <= end:
            drop.append(c_start)
        elif not whole_chunks:
            thaw.append(c_start)
        elif c_start < start:
            start = max(start, c_end)
        else:
            end = min(end, c_start)
    return DeletePlan(start, max(start, end), drop, thaw)
