"""All sample SQL, one implementation per backend, talking to the driver directly with tuples.

Writes are one bulk upsert per table and batch (PostgreSQL ``unnest`` here; SQLite multi-row
statements in ``points.sqlite_store``, which the writer process loads without this module), never
one statement per sample. Reads page per series on the ``(series_id, ts)`` key.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import re
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from thingbucket.buckets.models import Bucket
from thingbucket.kit.time import TS_MAX_US, now_us
from thingbucket.points import codec
from thingbucket.points.batch import (
    TEXT_TABLE,
    RangeDelete,
    SampleBatch,
    delete_marks,
    num_ranges,
    table_for,
)
from thingbucket.points.chunks import chunk_rows, cold_before, plan_delete
from thingbucket.points.models import Series
from thingbucket.points.rollup_sql import (
    DROP_WHOLE,
    PG_CLEAN_FINER,
    PG_FROM_FINER,
    PG_FROM_SAMPLES,
    PG_IN_BATCH,
    PG_TAKE,
    pg,
)
from thingbucket.points.rollups import LEVELS, marks_for
from thingbucket.properties.models import Property

# Per bucket: (bucket start, count, sum, min, max, first, last), buckets in ascending order.
AggRow = tuple[int, int, float, float, float, float, float]


@dataclass(frozen=True, slots=True)
class Grid:
    """Bucket edges ``e0 < e1 < ... < ek``; ``width`` is set when they are evenly spaced from
    the epoch, so that SQL can compute a bucket by arithmetic instead of a join."""

    edges: Sequence[int]
    width: int | None = None

    def bucket_of(self, ts: int) -> int:
        """Index of the bucket holding ``ts`` (which lies within the edges)."""
        if self.width is not None:
            return (ts - self.edges[0]) // self.width
        return bisect.bisect_right(self.edges, ts) - 1


class SampleReader(Protocol):
    async def read(
        self,
        session: AsyncSession,
        table: str,
        series_id: int,
        start: int,
        end: int,
        limit: int,
        descending: bool,
    ) -> list[tuple[int, Any]]: ...

    async def read_epoch(
        self,
        session: AsyncSession,
        table: str,
        series_id: int,
        start: int,
        end: int,
        limit: int,
        descending: bool,
        factor: int,
    ) -> tuple[list[tuple[int | float, Any]], int | None]:
        """``read`` with timestamps already in epoch units of ``factor`` microseconds (an int
        when exact), converted by the database; and, for a full page, the stored key of its
        last row, where the next page starts."""
        ...

    async def aggregate(
        self, session: AsyncSession, series_id: int, start: int, end: int, grid: Grid
    ) -> list[AggRow]:
        """count, sum, min, max, first and last of a number series per non-empty bucket."""
        ...


def _epoch_sql(factor: int) -> str:
    """SQLite: microseconds to epoch units, an integer when exact (its columns are untyped)."""
    if factor == 1:
        return "ts"
    return f"CASE WHEN ts % {factor} = 0 THEN ts / {factor} ELSE CAST(ts AS REAL) / {factor} END"


def _page_sql(table: str, epoch: str, descending: bool, mark: list[str]) -> tuple[str, str]:
    """The page query and the query for the key of its last row (placeholders in ``mark``)."""
    sid, a, z, n = mark
    order = "DESC" if descending else "ASC"
    where = f"series_id = {sid} AND ts >= {a} AND ts < {z}"
    page = f"SELECT {epoch}, value FROM {table} WHERE {where} ORDER BY ts {order} LIMIT {n}"
    edge = "min" if descending else "max"
    last = f"SELECT {edge}(ts) FROM (SELECT ts FROM {table} WHERE {where} ORDER BY ts {order} "
    return page, last + f"LIMIT {n}) AS page"


async def scan(
    reader: SampleReader,
    session: AsyncSession,
    table: str,
    series_id: int,
    start: int,
    end: int,
    chunk: int = 20_000,
) -> AsyncIterator[list[tuple[int, Any]]]:
    """Samples in ascending order, in chunks read by key (memory bounded by ``chunk``)."""
    while start < end:
        rows = await reader.read(session, table, series_id, start, end, chunk, False)
        if rows:
            yield rows
        if len(rows) < chunk:
            return
        start = rows[-1][0] + 1


# First and last by key lookup of the group's min(ts) and max(ts): one index probe each, on both
# backends, instead of ordered aggregates that SQLite lacks.
_AGG_OUTER = (
    "SELECT g.b, g.n, g.s, g.lo, g.hi, f.value, l.value, g.t0, g.t1 FROM ({inner}) AS g "
    "JOIN samples_num f ON f.series_id = {sid} AND f.ts = g.t0 "
    "JOIN samples_num l ON l.series_id = {sid} AND l.ts = g.t1 ORDER BY g.b"
)
_AGG_COLUMNS = "count(*) AS n, sum(s.value) AS s, min(s.value) AS lo, max(s.value) AS hi, " + (
    "min(s.ts) AS t0, max(s.ts) AS t1"
)


async def _driver_connection(session: AsyncSession) -> Any:
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    return raw.driver_connection


def _dedupe(
    sids: Sequence[int], stamps: Sequence[int], values: Sequence[Any]
) -> tuple[Sequence[int], Sequence[int], Sequence[Any]]:
    """Columns for one statement; a later row for the same key wins (PostgreSQL refuses both)."""
    if len(set(zip(sids, stamps, strict=True))) == len(sids):  # no key twice: the common case
        return sids, stamps, values
    last: dict[tuple[int, int], Any] = {}
    for sid, ts, value in zip(sids, stamps, values, strict=True):
        last[(sid, ts)] = value
    return [k[0] for k in last], [k[1] for k in last], list(last.values())


_UPSERT_CLAUSE = " ON CONFLICT (series_id, ts) DO UPDATE SET value = EXCLUDED.value"


async def _insert_first(conn: Any, upsert: str, args: tuple[Any, ...]) -> None:
    """A write of numbers as a plain INSERT first, the upsert only when a sample is there
    already (a rewrite, a replay): PostgreSQL spent 6.1 ms of CPU on 1000 rows upserted and
    2.7 ms on 1000 inserted, and new samples are the common case. Inside a transaction the try
    is a savepoint."""
    import asyncpg

    plain = upsert.replace(_UPSERT_CLAUSE, "", 1)
    try:
        if conn.is_in_transaction():
            async with conn.transaction():
                await conn.execute(plain, *args)
        else:
            await conn.execute(plain, *args)
        return
    except asyncpg.UniqueViolationError:
        pass
    await conn.execute(upsert, *args)


def _dedupe_one(stamps: list[int], values: list[float]) -> tuple[list[int], list[float]]:
    """``_dedupe`` of one series' columns."""
    if len(set(stamps)) == len(stamps):
        return stamps, values
    last = dict(zip(stamps, values, strict=True))
    return list(last), list(last.values())


def _dedupe_rows(rows: Sequence[tuple[int, int, Any]]) -> tuple[Sequence[Any], ...]:
    if not rows:
        return [], [], []
    return _dedupe(*(list(c) for c in zip(*rows, strict=True)))


# PostgreSQL writes run beside the rollup pass: updating an existing mark locks it until the
# write commits, so the pass (which takes marks FOR UPDATE SKIP LOCKED) leaves it for the next
# pass instead of clearing the mark without the write's samples.
_MARK_LOCKING = (
    "INSERT INTO rollup_dirty (series_id, level, bucket) VALUES ($1, $2, $3) "
    "ON CONFLICT (series_id, level, bucket) DO UPDATE SET bucket = EXCLUDED.bucket"
)
# Clean rows and dirty marks of a range in one statement, so that one snapshot decides both.
_ROLLUP_READ = (
    "SELECT bucket, n, total, lo, hi, first, last, 0 AS dirty FROM rollups r "
    "WHERE series_id = :sid AND level = :lv AND bucket >= :a AND bucket < :z AND NOT EXISTS "
    "(SELECT 1 FROM rollup_dirty d WHERE d.series_id = r.series_id AND d.level = r.level "
    "AND d.bucket = r.bucket) UNION ALL SELECT bucket, 0, 0, 0, 0, 0, 0, 1 FROM rollup_dirty "
    "WHERE series_id = :sid AND level = :lv AND bucket >= :a AND bucket < :z ORDER BY 1"
)


_CHUNKS_OVER = (
    "SELECT start_ts, end_ts, data FROM sample_chunks WHERE series_id = {sid} AND start_ts < {z} "
    "AND end_ts > {a} ORDER BY start_ts"
)
_CHUNKS_SIZED = (
    "SELECT start_ts, end_ts, n FROM sample_chunks WHERE series_id = {sid} AND start_ts < {z} "
    "AND end_ts > {a} ORDER BY start_ts"
)
_CHUNK_DELETE_PG = "DELETE FROM sample_chunks WHERE series_id = $1 AND start_ts = $2"
_CHUNK_INSERT_PG = (
    "INSERT INTO sample_chunks (series_id, start_ts, end_ts, first_ts, last_ts, n, data) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
_DIRTY_MINUTE_PG = (
    "SELECT EXISTS (SELECT 1 FROM rollup_dirty WHERE series_id = $1 AND level = 0 "
    "AND bucket >= $2 AND bucket < $3)"
)
_CHUNK_LOCK = 0x74626368  # with a series id: packing it (alone), writes into its cold stretch


async def _lock_series(conn: Any, series: Iterable[int], *, shared: bool) -> None:
    """PostgreSQL: the chunk locks of these series until the transaction ends (in one order
    everywhere, so two transactions never wait for each other)."""
    fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    for sid in sorted(set(series)):
        await conn.execute(f"SELECT {fn}($1, $2)", _CHUNK_LOCK, sid)


class _ColdAware:
    """Reads of the sample tables with the cold chunks of their range mixed in (``points.chunks``:
    no timestamp is in both). The backends give the plain table reads and the chunks."""

    _DECODED = 8  # chunks kept decoded: a stream reads a chunk in several pages

    def __init__(self, cold_after_days: int = 7) -> None:
        self._cold_after_days = cold_after_days
        self._decoded: dict[bytes, tuple[list[int], list[float]]] = {}

    async def _hot_read(
        self,
        session: AsyncSession,
        table: str,
        series_id: int,
        start: int,
        end: int,
        limit: int,
        descending: bool,
    ) -> list[tuple[int, Any]]:
        raise NotImplementedError

    async def _hot_read_epoch(
        self,
        session: AsyncSession,
        table: str,
        series_id: int,
        start: int,
        end: int,
        limit: int,
        descending: bool,
        factor: int,
    ) -> tuple[list[tuple[int | float, Any]], int | None]:
        raise NotImplementedError

    async def _hot_aggregate(
        self, session: AsyncSession, series_id: int, start: int, end: int, grid: Grid
    ) -> list[tuple[Any, ...]]:
        """``AggRow`` and then the first and last timestamp of each bucket."""
        raise NotImplementedError

    async def _chunk_rows(
        self, session: AsyncSession, series_id: int, start: int, end: int
    ) -> list[tuple[int, int, bytes]]:
        """(start_ts, end_ts, data) of the series' chunks that overlap [start, end)."""
        raise NotImplementedError

    async def _cold(
        self, session: AsyncSession, table: str, series_id: int, start: int, end: int
    ) -> list[tuple[list[int], list[float]]]:
        """The samples in [start, end) of the chunks there, a (stamps, values) pair per chunk
        in ascending order; nothing without a lookup where no chunk can be."""
        if table != "samples_num" or start >= cold_before(now_us(), self._cold_after_days):
            return []
        out = []
        for _start, _end, data in await self._chunk_rows(session, series_id, start, end):
            stamps, values = self._decode(data)
            lo = bisect.bisect_left(stamps, start)
            hi = bisect.bisect_left(stamps, end)
            if lo < hi:
                out.append(
                    (stamps[lo:hi], values[lo:hi]) if lo or hi < len(stamps) else (stamps, values)
                )
        return out

    def _decode(self, data: bytes) -> tuple[list[int], list[float]]:
        found = self._decoded.pop(data, None)
        if found is None:
            found = codec.decode(data)
            while len(self._decoded) >= self._DECODED:
                self._decoded.pop(next(iter(self._decoded)))
        self._decoded[data] = found  # the most recent last
        return found

    async def read(
        self,
        session: AsyncSession,
        table: str,
        series_id: int,
        start: int,
        end: int,
        limit: int,
        descending: bool,
    ) -> list[tuple[int, Any]]:
        hot = await self._hot_read(session, table, series_id, start, end, limit, descending)
        cold = await self._cold(session, table, series_id, start, end)
        if not cold:
            return hot
        # Ascending runs (no timestamp twice): merged in C; the first ``limit`` are the page.
        runs: list[Iterable[tuple[int, float]]] = [zip(s, v, strict=True) for s, v in cold]
        if descending:
            runs = [reversed(list(run)) for run in runs]
        rows = heapq.merge(hot, *runs, reverse=descending)
        return list(islice(rows, limit))

    async def read_epoch(
        self,
        session: AsyncSession,
        table: str,
        series_id: int,
        start: int,
        end: int,
        limit: int,
        descending: bool,
        factor: int,
    ) -> tuple[list[tuple[int | float, Any]], int | None]:
        """``read`` with timestamps already in epoch units of ``factor`` microseconds (an int
        when exact); and, for a full page, the stored key of its last row, where the next page
        starts."""
        cold = await self._cold(session, table, series_id, start, end)
        if not cold:
            return await self._hot_read_epoch(
                session, table, series_id, start, end, limit, descending, factor
            )
        rows = await self.read(session, table, series_id, start, end, limit, descending)
        return _in_units(rows, factor), rows[-1][0] if len(rows) == limit else None

    async def aggregate(
        self, session: AsyncSession, series_id: int, start: int, end: int, grid: Grid
    ) -> list[AggRow]:
        """count, sum, min, max, first and last of a number series per non-empty bucket."""
        hot = await self._hot_aggregate(session, series_id, start, end, grid)
        cold = await self._cold(session, "samples_num", series_id, start, end)
        if not cold:
            return [r[:7] for r in hot]
        # Per bucket: n, sum, min, max, first ts, first, last ts, last.
        parts: dict[int, list[Any]] = {
            r[0]: [r[1], r[2], r[3], r[4], r[7], r[5], r[8], r[6]] for r in hot
        }
        for stamps, values in cold:
            for b, part in _bucket_parts(stamps, values, grid):
                _combine(parts, b, part)
        return [(b, p[0], p[1], p[2], p[3], p[5], p[7]) for b, p in sorted(parts.items())]


def _in_units(rows: Iterable[Sequence[Any]], factor: int) -> list[tuple[int | float, Any]]:
    """(ts, value) rows with timestamps in epoch units of ``factor`` microseconds (an int when
    exact), as tuples."""
    if factor == 1:
        return [(r[0], r[1]) for r in rows]
    return [(r[0] // factor if r[0] % factor == 0 else r[0] / factor, r[1]) for r in rows]


def _bucket_parts(
    stamps: list[int], values: list[float], grid: Grid
) -> Iterator[tuple[int, list[Any]]]:
    """count, sum, min, max, first and last per bucket of ascending samples (slices in C)."""
    i, n = 0, len(stamps)
    while i < n:
        b = grid.bucket_of(stamps[i])
        j = bisect.bisect_left(stamps, grid.edges[b + 1], i)
        vals = values[i:j]
        yield (
            grid.edges[b],
            [j - i, sum(vals), min(vals), max(vals), stamps[i], vals[0], stamps[j - 1], vals[-1]],
        )
        i = j


def _combine(parts: dict[int, list[Any]], b: int, part: list[Any]) -> None:
    have = parts.get(b)
    if have is None:
        parts[b] = part
        return
    have[0] += part[0]
    have[1] += part[1]
    have[2] = min(have[2], part[2])
    have[3] = max(have[3], part[3])
    if part[4] < have[4]:
        have[4], have[5] = part[4], part[5]
    if part[6] > have[6]:
        have[6], have[7] = part[6], part[7]


class SqliteSamples(_ColdAware):
    """Reads on the session's connection (writes: ``points.sqlite_store``, in the writer)."""

    async def _hot_read(
        self,
        session: AsyncSession,
        table: str,
        series_id: int,
        start: int,
        end: int,
        limit: int,
        descending: bool,
    ) -> list[tuple[int, Any]]:
        conn = await _driver_connection(session)
        page, _ = _page_sql(table, "ts", descending, ["?", "?", "?", "?"])
        return list(await conn.execute_fetchall(page, (series_id, start, end, limit)))

    async def _hot_read_epoch(
        self,
        session: AsyncSession,
        table: str,
        series_id: int,
        start: int,
        end: int,
        limit: int,
        descending: bool,
        factor: int,
    ) -> tuple[list[tuple[int | float, Any]], int | None]:
        conn = await _driver_connection(session)
        page, last = _page_sql(table, _epoch_sql(factor), descending, ["?", "?", "?", "?"])
        args = (series_id, start, end, limit)
        rows = await conn.execute_fetchall(page, args)
        if len(rows) < limit:
            return list(rows), None
        key = await conn.execute_fetchall(last, args)
        return list(rows), key[0][0]

    async def _hot_aggregate(
        self, session: AsyncSession, series_id: int, start: int, end: int, grid: Grid
    ) -> list[tuple[Any, ...]]:
        conn = await _driver_connection(session)
        if grid.width is not None:
            inner = (
                "SELECT (s.ts - ((s.ts % :w) + :w) % :w) AS b, " + _AGG_COLUMNS + " "
                "FROM samples_num s WHERE s.series_id = :sid AND s.ts >= :a AND s.ts < :z "
                "GROUP BY b"
            )
            params: dict[str, Any] = {"w": grid.width}
        else:
            # CROSS JOIN keeps the edges outside: one index range scan per bucket.
            inner = (
                "SELECT e.lo AS b, " + _AGG_COLUMNS + " FROM ("
                "SELECT value AS lo, lead(value) OVER (ORDER BY key) AS hi FROM json_each(:e)"
                ") AS e CROSS JOIN samples_num s ON s.series_id = :sid "
                "AND s.ts >= e.lo AND s.ts < e.hi AND s.ts >= :a AND s.ts < :z GROUP BY e.lo"
            )
            params = {"e": "[" + ",".join(map(str, grid.edges)) + "]"}
        params.update(sid=series_id, a=start, z=end)
        rows = await conn.execute_fetchall(_AGG_OUTER.format(inner=inner, sid=":sid"), params)
        return [tuple(r) for r in rows]

    async def _chunk_rows(
        self, session: AsyncSession, series_id: int, start: int, end: int
    ) -> list[tuple[int, int, bytes]]:
        conn = await _driver_connection(session)
        rows = await conn.execute_fetchall(
            _CHUNKS_OVER.format(a="?", z="?", sid="?"), (series_id, end, start)
        )
        return [(r[0], r[1], r[2]) for r in rows]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _month_index(ts: int) -> int:
    dt = _EPOCH + timedelta(microseconds=ts)
    return dt.year * 12 + dt.month - 1


def _month_bounds(index: int) -> tuple[int, int]:
    """[start, end) in microseconds of the calendar month with this index (year * 12 + month0)."""

    def first_of(i: int) -> int:
        year, month0 = divmod(i, 12)
        delta = datetime(year, month0 + 1, 1, tzinfo=UTC) - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000

    return first_of(index), first_of(index + 1)


class PostgresSamples(_ColdAware):
    """Monthly range partitions made on demand; upserts through ``unnest`` of typed arrays."""

    _UPSERT = (
        "INSERT INTO {table} (series_id, ts, value) "
        "SELECT * FROM unnest($1::integer[], $2::bigint[], $3::{vtype}[]) "
        "ON CONFLICT (series_id, ts) DO UPDATE SET value = EXCLUDED.value"
    )
    _LOCK_ID = 0x7462706172746E  # serialises partition creation across processes

    def __init__(self, cold_after_days: int = 7) -> None:
        super().__init__(cold_after_days)
        self._known: set[tuple[str, int]] = set()

    def forget_partitions(self) -> None:
        """After retention dropped a partition (here or in another process)."""
        self._known.clear()

    async def ensure_partitions(self, conn: Any, table: str, timestamps: Iterable[int]) -> None:
        await self._ensure_months(conn, table, {_month_index(ts) for ts in timestamps})

    async def _ensure_months(self, conn: Any, table: str, months: Iterable[int]) -> None:
        missing = [m for m in months if (table, m) not in self._known]
        if not missing:
            return
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self._LOCK_ID)
            for month in sorted(missing):
                start, end = _month_bounds(month)
                year, month0 = divmod(month, 12)
                name = f"{table}_p{year:04d}{month0 + 1:02d}"
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} "
                    f"FOR VALUES FROM ({start}) TO ({end})"
                )
        self._known.update((table, m) for m in missing)

    async def prepare(
        self, conn: Any, batch: SampleBatch, ranges: dict[int, tuple[int, int]]
    ) -> None:
        """Make the partitions a batch needs, outside the batch's own transaction."""
        months: set[int] | None = None
        spans = num_ranges(batch, ranges)
        if spans is not None:
            # Each series' months from its first to its last sample: two date conversions per
            # series instead of one per sample (a span of a few months at most; wider, exact).
            months = set()
            for lo, hi in spans.values():
                first, last = _month_index(lo), _month_index(hi)
                if last - first > 2:
                    months = None
                    break
                months.update(range(first, last + 1))
        if months is not None:
            await self._ensure_months(conn, "samples_num", months)
        elif batch.sids:
            await self.ensure_partitions(conn, "samples_num", batch.stamps)
        if batch.text:
            await self.ensure_partitions(conn, TEXT_TABLE, (r[1] for r in batch.text))

    # Numbers and their dirty marks in one statement: atomic on its own, so a batch of numbers
    # costs one round trip instead of BEGIN, upsert, marks, COMMIT. The marks arrive sorted
    # (rows locked in one order across writers: no deadlock).
    _UPSERT_NUM = _UPSERT.format(table="samples_num", vtype="float8")
    _NUM_WITH_MARKS = (
        "WITH s AS (" + _UPSERT_NUM + ") "
        "INSERT INTO rollup_dirty (series_id, level, bucket) "
        "SELECT * FROM unnest($4::integer[], $5::smallint[], $6::bigint[]) "
        "ON CONFLICT (series_id, level, bucket) DO UPDATE SET bucket = EXCLUDED.bucket"
    )
    # The common batch, one series: its id once rather than an array of it. asyncpg checks
    # every array element in Python (an ABC isinstance each): a third less of that, and of
    # PostgreSQL's decoding.
    _ONE_SERIES_WITH_MARKS = (
        "WITH s AS (INSERT INTO samples_num (series_id, ts, value) "
        "SELECT $1::integer, t, v FROM unnest($2::bigint[], $3::float8[]) AS u(t, v) "
        "ON CONFLICT (series_id, ts) DO UPDATE SET value = EXCLUDED.value) "
        "INSERT INTO rollup_dirty (series_id, level, bucket) "
        "SELECT $1::integer, l, b FROM unnest($4::smallint[], $5::bigint[]) AS m(l, b) "
        "ON CONFLICT (series_id, level, bucket) DO UPDATE SET bucket = EXCLUDED.bucket"
    )

    async def write(
        self, conn: Any, batch: SampleBatch, ranges: dict[int, tuple[int, int]]
    ) -> None:
        """The batch, atomically (the caller holds no transaction). A write older than
        ``cold.after_days`` first thaws the chunks it reaches into, under the series' chunk
        lock (shared: only packing takes it alone), so no pack can slip in between."""
        edge = cold_before(now_us(), self._cold_after_days)
        old = {sid: lo_hi for sid, lo_hi in ranges.items() if lo_hi[0] < edge}
        if not old:
            await self._write(conn, batch, ranges)
            return
        async with conn.transaction():
            await _lock_series(conn, old, shared=True)
            for sid, (lo, hi) in old.items():
                await self._thaw(conn, sid, lo, hi + 1)
            await self._write(conn, batch, ranges)

    async def _thaw(self, conn: Any, sid: int, lo: int, hi: int) -> None:
        """The chunks of ``sid`` overlapping [lo, hi) back into the sample table (inside the
        caller's transaction, which holds the series' chunk lock)."""
        sql = _CHUNKS_OVER.format(sid="$1", z="$2", a="$3")
        for start, end, data in await conn.fetch(sql, sid, hi, lo):
            stamps, values = codec.decode(bytes(data))
            await self._ensure_months(
                conn, "samples_num", range(_month_index(start), _month_index(end - 1) + 1)
            )
            await conn.execute(self._UPSERT_NUM, [sid] * len(stamps), stamps, values)
            await conn.execute(_CHUNK_DELETE_PG, sid, start)

    async def pack(self, conn: Any, sid: int, start: int, end: int, cap: int) -> int:
        """The samples of ``sid`` in [start, end) (a UTC day) into chunks of at most ``cap``,
        in one transaction under the series' chunk lock; how many went. Nothing while a minute
        of the day waits for the rollup pass."""
        async with conn.transaction():
            await _lock_series(conn, [sid], shared=False)
            hot = (
                "SELECT EXISTS (SELECT 1 FROM samples_num WHERE series_id = $1 AND ts >= $2 "
                "AND ts < $3)"
            )
            if not await conn.fetchval(hot, sid, start, end):
                return 0  # nothing new: packed already, or empty
            if await conn.fetchval(_DIRTY_MINUTE_PG, sid, start, end):
                return 0
            await self._thaw(conn, sid, start, end)
            rows = await conn.fetch(
                "SELECT ts, value FROM samples_num WHERE series_id = $1 AND ts >= $2 AND ts < $3 "
                "ORDER BY ts",
                sid,
                start,
                end,
            )
            if not rows:
                return 0
            stamps = [r[0] for r in rows]
            values = [r[1] for r in rows]
            # Encoding is CPU work of a background job: off the event loop.
            chunks = await asyncio.to_thread(chunk_rows, sid, stamps, values, start, end, cap)
            await conn.executemany(_CHUNK_INSERT_PG, chunks)
            await conn.execute(
                "DELETE FROM samples_num WHERE series_id = $1 AND ts >= $2 AND ts < $3",
                sid,
                start,
                end,
            )
            return len(stamps)

    async def _write(
        self, conn: Any, batch: SampleBatch, ranges: dict[int, tuple[int, int]]
    ) -> None:
        sids = batch.sids
        marks = sorted(marks_for(sids, batch.stamps, num_ranges(batch, ranges)))
        if not batch.text and sids and sids.count(sids[0]) == len(sids):
            stamps, values = _dedupe_one(batch.stamps, batch.values)
            levels = [m[1] for m in marks]
            buckets = [m[2] for m in marks]
            args = (sids[0], stamps, values, levels, buckets)
            await _insert_first(conn, self._ONE_SERIES_WITH_MARKS, args)
            return
        num = _dedupe(sids, batch.stamps, batch.values)
        if not batch.text:
            columns = [list(c) for c in zip(*marks, strict=True)] if marks else [[], [], []]
            await _insert_first(conn, self._NUM_WITH_MARKS, (*num, *columns))
            return
        async with conn.transaction():
            if batch.sids:
                await conn.execute(self._UPSERT_NUM, *num)
                await conn.executemany(_MARK_LOCKING, marks)
            await conn.execute(
                self._UPSERT.format(table=TEXT_TABLE, vtype="text"), *_dedupe_rows(batch.text)
            )

    async def delete(self, conn: Any, spec: RangeDelete) -> int:
        """Inside the caller's transaction."""
        deleted = 0
        numbers = [sid for sid, kind in spec.series if kind == "number"]
        await _lock_series(conn, numbers, shared=True)
        for sid, kind in spec.series:
            start, end = spec.start, spec.end
            if kind == "number":
                sql = _CHUNKS_SIZED.format(sid="$1", z="$2", a="$3")
                chunks = await conn.fetch(sql, sid, end, start)
                plan = plan_delete([(c[0], c[1]) for c in chunks], start, end, spec.whole_chunks)
                sizes = {c[0]: c[2] for c in chunks}
                for chunk_start in plan.drop:
                    await conn.execute(_CHUNK_DELETE_PG, sid, chunk_start)
                    deleted += sizes[chunk_start]
                if plan.thaw:
                    await self._thaw(conn, sid, start, end)
                start, end = plan.start, plan.end
            if start >= end:
                continue
            status = await conn.execute(
                f"DELETE FROM {table_for(kind)} WHERE series_id = $1 AND ts >= $2 AND ts < $3",
                sid,
                start,
                end,
            )
            deleted += int(status.split()[-1])
            if kind == "number":
                whole, cut = delete_marks(sid, start, end)
                if whole:
                    await conn.executemany(pg(DROP_WHOLE), whole)
                if cut:
                    await conn.executemany(_MARK_LOCKING, sorted(cut))
        return deleted

    async def recompute(self, conn: Any, limit: int) -> int:
        """Up to ``limit`` dirty buckets, finest level first, a batch per level in its own short
        transaction (see PG_TAKE for how it stays exact beside writes and other replicas)."""
        done = 0
        for level, width in enumerate(LEVELS):
            if done >= limit:
                break
            ends = (width - 1, TS_MAX_US - (width - 1), TS_MAX_US)
            take = PG_TAKE.format(finer=PG_CLEAN_FINER if level else "")
            async with conn.transaction():
                rows = await conn.fetch(take, level, limit - done, *(ends if level else ()))
                if not rows:
                    continue
                sids = [r[0] for r in rows]
                buckets = [r[1] for r in rows]
                await conn.execute("DELETE FROM rollup_dirty " + PG_IN_BATCH, level, sids, buckets)
                await conn.execute("DELETE FROM rollups " + PG_IN_BATCH, level, sids, buckets)
                rebuild = PG_FROM_FINER if level else PG_FROM_SAMPLES
                await conn.execute(rebuild, level, sids, buckets, *ends)
            done += len(rows)
        return done

    async def _hot_read(
        self,
        session: AsyncSession,
        table: str,
        series_id: int,
        start: int,
        end: int,
        limit: int,
        descending: bool,
    ) -> list[tuple[int, Any]]:
        conn = await _driver_connection(session)
        page, _ = _page_sql(table, "ts", descending, ["$1", "$2", "$3", "$4"])
        records = await conn.fetch(page, series_id, start, end, limit)
        return [(r[0], r[1]) for r in records]

    async def _hot_read_epoch(
        self,
        session: AsyncSession,
        table: str,
        series_id: int,
        start: int,
        end: int,
        limit: int,
        descending: bool,
        factor: int,
    ) -> tuple[list[tuple[int | float, Any]], int | None]:
        conn = await _driver_connection(session)
        # A CASE of bigint and float8 would be all float8 here, so the units are made in Python
        # (records are converted to tuples anyway).
        page, _ = _page_sql(table, "ts", descending, ["$1", "$2", "$3", "$4"])
        records = await conn.fetch(page, series_id, start, end, limit)
        return _in_units(records, factor), records[-1][0] if len(records) == limit else None

    async def _hot_aggregate(
        self, session: AsyncSession, series_id: int, start: int, end: int, grid: Grid
    ) -> list[tuple[Any, ...]]:
        conn = await _driver_connection(session)
        where = "s.series_id = $1 AND s.ts >= $2 AND s.ts < $3"
        if grid.width is not None:
            inner = (
                "SELECT (s.ts - ((s.ts % $4) + $4) % $4) AS b, " + _AGG_COLUMNS + " "
                f"FROM samples_num s WHERE {where} GROUP BY 1"
            )
            arg: Any = grid.width
        else:
            # width_bucket: a binary search of the edges per row, within one index range scan.
            inner = (
                "SELECT ($4::bigint[])[width_bucket(s.ts, $4::bigint[])] AS b, "
                + _AGG_COLUMNS
                + f" FROM samples_num s WHERE {where} GROUP BY 1"
            )
            arg = list(grid.edges)
        records = await conn.fetch(
            _AGG_OUTER.format(inner=inner, sid="$1"), series_id, start, end, arg
        )
        return [tuple(r) for r in records]

    async def _chunk_rows(
        self, session: AsyncSession, series_id: int, start: int, end: int
    ) -> list[tuple[int, int, bytes]]:
        conn = await _driver_connection(session)
        sql = _CHUNKS_OVER.format(sid="$1", z="$2", a="$3")
        return [(r[0], r[1], bytes(r[2])) for r in await conn.fetch(sql, series_id, end, start)]


# --- retention ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expiring:
    """A property whose samples expire: its own retention, else its bucket's."""

    property_id: str
    organization_id: str
    bucket_id: str
    days: int
    series: tuple[tuple[int, str], ...]  # (series id, kind)


async def expiring(session: AsyncSession) -> list[Expiring]:
    days = sa.func.coalesce(Property.retention_days, Bucket.retention_days)
    stmt = (
        sa.select(
            Property.id, Property.organization_id, Property.bucket_id, days, Series.id, Series.kind
        )
        .join(Bucket, Bucket.id == Property.bucket_id)
        .join(Series, Series.property_id == Property.id)
        .where(days.is_not(None))
        .order_by(Property.id, Series.id)
    )
    out: dict[str, Expiring] = {}
    for pid, org_id, bucket_id, n_days, sid, kind in (await session.execute(stmt)).all():
        found = out.get(pid)
        series = ((sid, kind),) if found is None else (*found.series, (sid, kind))
        out[pid] = Expiring(pid, org_id, bucket_id, int(n_days), series)
    return list(out.values())


async def nth_oldest_before(
    session: AsyncSession, table: str, series_id: int, before: int, n: int
) -> int | None:
    """The timestamp of the ``n``-th oldest sample before ``before`` (1-based), if there is one."""
    sql = (
        f"SELECT ts FROM {table} WHERE series_id = :sid AND ts < :before "
        "ORDER BY ts LIMIT 1 OFFSET :skip"
    )
    row = await session.execute(sa.text(sql), {"sid": series_id, "before": before, "skip": n - 1})
    return row.scalar()


async def count_before(session: AsyncSession, table: str, series_id: int, before: int) -> int:
    """Samples before ``before`` that retention deletes: in the table, and in the cold chunks
    that end by then (a chunk goes whole)."""
    sql = f"SELECT count(*) FROM {table} WHERE series_id = :sid AND ts < :before"
    row = await session.execute(sa.text(sql), {"sid": series_id, "before": before})
    n = int(row.scalar() or 0)
    if table == "samples_num":
        cold = "SELECT sum(n) FROM sample_chunks WHERE series_id = :sid AND end_ts <= :before"
        row = await session.execute(sa.text(cold), {"sid": series_id, "before": before})
        n += int(row.scalar() or 0)
    return n


async def first_in(session: AsyncSession, series_id: int, start: int, end: int) -> int | None:
    """The first timestamp of the number series' table samples in [start, end)."""
    sql = (
        "SELECT ts FROM samples_num WHERE series_id = :sid AND ts >= :a AND ts < :z "
        "ORDER BY ts LIMIT 1"
    )
    row = await session.execute(sa.text(sql), {"sid": series_id, "a": start, "z": end})
    value = row.scalar()
    return int(value) if value is not None else None


async def count_in(session: AsyncSession, series_id: int, start: int, end: int) -> int:
    sql = "SELECT count(*) FROM samples_num WHERE series_id = :sid AND ts >= :a AND ts < :z"
    row = await session.execute(sa.text(sql), {"sid": series_id, "a": start, "z": end})
    return int(row.scalar() or 0)


async def chunk_stats(session: AsyncSession) -> tuple[int, int, int]:
    """Chunks, the samples they hold, and their bytes of encoded data."""
    sql = "SELECT count(*), coalesce(sum(n), 0), coalesce(sum(length(data)), 0) FROM sample_chunks"
    row = (await session.execute(sa.text(sql))).one()
    return int(row[0]), int(row[1]), int(row[2])


async def oldest_in_bucket(session: AsyncSession, bucket_id: str) -> int | None:
    """The oldest sample's timestamp across the bucket (cold chunks included): one index
    probe per series and place."""
    places = [
        (table, "ts", "ts", "=" if table == "samples_num" else "<>")
        for table in ("samples_num", TEXT_TABLE)
    ]
    places.append(("sample_chunks", "first_ts", "start_ts", "="))
    probes = " UNION ALL ".join(
        f"SELECT (SELECT {col} FROM {table} t WHERE t.series_id = s.id ORDER BY {key} LIMIT 1) "
        "AS ts FROM series s JOIN properties p ON p.id = s.property_id "
        f"WHERE p.bucket_id = :bucket AND s.kind {op} 'number'"
        for table, col, key, op in places
    )
    row = await session.execute(
        sa.text(f"SELECT min(ts) FROM ({probes}) AS o"), {"bucket": bucket_id}
    )
    value = row.scalar()
    return int(value) if value is not None else None


_PARTITION = re.compile(r"^(samples_num|samples_text)_p(\d{4})(\d{2})$")


async def partitions(session: AsyncSession) -> list[tuple[str, str, int, int]]:
    """PostgreSQL: (table, partition, start, end) of every monthly sample partition."""
    rows = await session.execute(
        sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname IN ('samples_num', "
            "'samples_text')"
        )
    )
    out = []
    for (name,) in rows.all():
        m = _PARTITION.match(name)
        if m:
            start, end = _month_bounds(int(m.group(2)) * 12 + int(m.group(3)) - 1)
            out.append((m.group(1), name, start, end))
    return sorted(out, key=lambda p: (p[2], p[0]))


async def drop_partition_unless_held(
    session: AsyncSession, partition: str, span: tuple[int, int], keep_series: Sequence[int]
) -> dict[int, int] | None:
    """PostgreSQL: drop ``partition`` unless one of ``keep_series`` has a sample in it, and
    return how many samples of each series went (None: kept). The partition is locked first, so
    no write can slip in between the check and the drop."""
    if not _PARTITION.match(partition):
        raise ValueError(partition)
    await session.execute(sa.text(f"LOCK TABLE {partition} IN ACCESS EXCLUSIVE MODE"))
    held = await session.execute(
        sa.text(
            "SELECT EXISTS (SELECT 1 FROM unnest(CAST(:ids AS integer[])) AS k(id) "
            f"WHERE EXISTS (SELECT 1 FROM {partition} x WHERE x.series_id = k.id))"
        ),
        {"ids": list(keep_series)},
    )
    if held.scalar():
        return None
    counts = await session.execute(
        sa.text(f"SELECT series_id, count(*) FROM {partition} GROUP BY series_id")
    )
    gone = {int(sid): int(n) for sid, n in counts.all()}
    await session.execute(sa.text(f"DROP TABLE {partition}"))
    if partition.startswith("samples_num") and gone:  # months are whole days: every level
        for table in ("rollups", "rollup_dirty"):
            await session.execute(
                sa.text(
                    f"DELETE FROM {table} WHERE series_id = ANY(CAST(:ids AS integer[])) "
                    "AND bucket >= :a AND bucket < :z"
                ),
                {"ids": list(gone), "a": span[0], "z": span[1]},
            )
    return gone


async def series_ids(
    session: AsyncSession, table: str, property_id: str | None = None
) -> list[int]:
    """Every series whose samples live in ``table`` (of one property, if given)."""
    op = "=" if table == "samples_num" else "<>"
    sql = f"SELECT id FROM series WHERE kind {op} 'number'"
    if property_id is None:
        rows = await session.execute(sa.text(sql))
    else:
        rows = await session.execute(sa.text(sql + " AND property_id = :p"), {"p": property_id})
    return [r[0] for r in rows.all()]


async def _fetch_range(
    session: AsyncSession, sql: str, series_id: int, level: int, start: int, end: int
) -> Sequence[Sequence[Any]]:
    """A rollup statement with ``:sid :lv :a :z`` run by the driver (tens of thousands of rows
    for a month of minutes): tuples on SQLite, records on PostgreSQL."""
    conn = await _driver_connection(session)
    if session.get_bind().dialect.name == "sqlite":
        params = {"sid": series_id, "lv": level, "a": start, "z": end}
        rows: Sequence[Sequence[Any]] = await conn.execute_fetchall(sql, params)
        return rows
    for i, name in enumerate((":sid", ":lv", ":a", ":z"), start=1):
        sql = sql.replace(name, f"${i}")
    return await conn.fetch(sql, series_id, level, start, end)  # type: ignore[no-any-return]


async def rollup_rows(
    session: AsyncSession, series_id: int, level: int, start: int, end: int
) -> Sequence[Sequence[Any]]:
    """(bucket, n, sum, min, max, first, last, dirty) of the level's buckets in [start, end):
    clean rollups and dirty marks (their other fields 0), read in one snapshot."""
    return await _fetch_range(session, _ROLLUP_READ, series_id, level, start, end)


# What each aggregate function is over one rollup row (the same IEEE operations as in Python).
_ROLLUP_EXPR = {
    "count": "n",
    "sum": "total",
    "min": "lo",
    "max": "hi",
    "first": "first",
    "last": "last",
    "avg": "total / n",
    "spread": "hi - lo",
    "diff": "last - first",
}


async def clean_rollup_answer(
    session: AsyncSession,
    series_id: int,
    level: int,
    start: int,
    end: int,
    functions: Sequence[str],
    factor: int,
) -> Sequence[Sequence[Any]]:
    """Rows ``(bucket / factor, f1, f2, ...)`` of the level's buckets in [start, end), computed
    by the database (any function but median and stddev), or none at all when a bucket of the
    range is dirty (one statement, one snapshot): Python touches none of the rows."""
    exprs = ", ".join(_ROLLUP_EXPR[f] for f in functions)
    sql = (
        f"SELECT bucket / {int(factor)}, {exprs} FROM rollups WHERE series_id = :sid "
        "AND level = :lv AND bucket >= :a AND bucket < :z AND NOT EXISTS (SELECT 1 FROM "
        "rollup_dirty WHERE series_id = :sid AND level = :lv AND bucket >= :a AND bucket < :z) "
        "ORDER BY bucket"
    )
    rows = await _fetch_range(session, sql, series_id, level, start, end)
    if rows and not isinstance(rows[0], tuple):  # orjson writes tuples, not asyncpg's records
        return [tuple(r) for r in rows]
    return rows
