"""All sample SQL, one implementation per backend, talking to the driver directly with tuples.

Writes are one bulk upsert per table and batch (PostgreSQL ``unnest`` here; SQLite multi-row
statements in ``points.sqlite_store``, which the writer process loads without this module), never
one statement per sample. Reads page per series on the ``(series_id, ts)`` key.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from thingbucket.buckets.models import Bucket
from thingbucket.kit.time import TS_MAX_US
from thingbucket.points.batch import (
    TEXT_TABLE,
    RangeDelete,
    SampleBatch,
    delete_marks,
    num_ranges,
    table_for,
)
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
    "SELECT g.b, g.n, g.s, g.lo, g.hi, f.value, l.value FROM ({inner}) AS g "
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


class SqliteSamples:
    """Reads on the session's connection (writes: ``points.sqlite_store``, in the writer)."""

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
        conn = await _driver_connection(session)
        page, _ = _page_sql(table, "ts", descending, ["?", "?", "?", "?"])
        return list(await conn.execute_fetchall(page, (series_id, start, end, limit)))

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
        conn = await _driver_connection(session)
        page, last = _page_sql(table, _epoch_sql(factor), descending, ["?", "?", "?", "?"])
        args = (series_id, start, end, limit)
        rows = await conn.execute_fetchall(page, args)
        if len(rows) < limit:
            return list(rows), None
        key = await conn.execute_fetchall(last, args)
        return list(rows), key[0][0]

    async def aggregate(
        self, session: AsyncSession, series_id: int, start: int, end: int, grid: Grid
    ) -> list[AggRow]:
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


class PostgresSamples:
    """Monthly range partitions made on demand; upserts through ``unnest`` of typed arrays."""

    _UPSERT = (
        "INSERT INTO {table} (series_id, ts, value) "
        "SELECT * FROM unnest($1::integer[], $2::bigint[], $3::{vtype}[]) "
        "ON CONFLICT (series_id, ts) DO UPDATE SET value = EXCLUDED.value"
    )
    _LOCK_ID = 0x7462706172746E  # serialises partition creation across processes

    def __init__(self) -> None:
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

    async def write(
        self, conn: Any, batch: SampleBatch, ranges: dict[int, tuple[int, int]]
    ) -> None:
        """The batch, atomically (the caller holds no transaction)."""
        num = _dedupe(batch.sids, batch.stamps, batch.values)
        marks = sorted(marks_for(batch.sids, batch.stamps, num_ranges(batch, ranges)))
        if not batch.text:
            columns = [list(c) for c in zip(*marks, strict=True)] if marks else [[], [], []]
            await conn.execute(self._NUM_WITH_MARKS, *num, *columns)
            return
        async with conn.transaction():
            if batch.sids:
                await conn.execute(self._UPSERT_NUM, *num)
                await conn.executemany(_MARK_LOCKING, marks)
            await conn.execute(
                self._UPSERT.format(table=TEXT_TABLE, vtype="text"), *_dedupe_rows(batch.text)
            )

    async def delete(self, conn: Any, spec: RangeDelete) -> int:
        deleted = 0
        for sid, kind in spec.series:
            status = await conn.execute(
                f"DELETE FROM {table_for(kind)} WHERE series_id = $1 AND ts >= $2 AND ts < $3",
                sid,
                spec.start,
                spec.end,
            )
            deleted += int(status.split()[-1])
        whole, cut = delete_marks(spec)
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
        conn = await _driver_connection(session)
        page, _ = _page_sql(table, "ts", descending, ["$1", "$2", "$3", "$4"])
        records = await conn.fetch(page, series_id, start, end, limit)
        return [(r[0], r[1]) for r in records]

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
        conn = await _driver_connection(session)
        # A CASE of bigint and float8 would be all float8 here, so the units are made in Python
        # (records are converted to tuples anyway).
        page, _ = _page_sql(table, "ts", descending, ["$1", "$2", "$3", "$4"])
        records = await conn.fetch(page, series_id, start, end, limit)
        if factor == 1:
            rows: list[tuple[int | float, Any]] = [(r[0], r[1]) for r in records]
        else:
            rows = [
                (r[0] // factor if r[0] % factor == 0 else r[0] / factor, r[1]) for r in records
            ]
        return rows, records[-1][0] if len(records) == limit else None

    async def aggregate(
        self, session: AsyncSession, series_id: int, start: int, end: int, grid: Grid
    ) -> list[AggRow]:
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
    sql = f"SELECT count(*) FROM {table} WHERE series_id = :sid AND ts < :before"
    row = await session.execute(sa.text(sql), {"sid": series_id, "before": before})
    return int(row.scalar() or 0)


async def oldest_in_bucket(session: AsyncSession, bucket_id: str) -> int | None:
    """The oldest sample's timestamp across the bucket: one index probe per series."""
    probes = " UNION ALL ".join(
        f"SELECT (SELECT ts FROM {table} t WHERE t.series_id = s.id ORDER BY ts LIMIT 1) AS ts "
        f"FROM series s JOIN properties p ON p.id = s.property_id "
        f"WHERE p.bucket_id = :bucket AND s.kind {'=' if table == 'samples_num' else '<>'} "
        "'number'"
        for table in ("samples_num", TEXT_TABLE)
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


async def series_ids(session: AsyncSession, table: str) -> list[int]:
    """Every series whose samples live in ``table``."""
    op = "=" if table == "samples_num" else "<>"
    rows = await session.execute(sa.text(f"SELECT id FROM series WHERE kind {op} 'number'"))
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
