"""Raw reads (paged or streamed), aggregates per time bucket, and range deletes of samples."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from thingbucket.access import service as access
from thingbucket.access.principal import Principal
from thingbucket.buckets import service as buckets
from thingbucket.buckets.schemas import BucketOut
from thingbucket.ingest.decoders import decode_value
from thingbucket.kit.pagination import decode_cursor, encode_cursor
from thingbucket.kit.time import TS_MAX_US, US_PER, Precision, us_to_datetime, us_to_epoch
from thingbucket.kit.timebuckets import BucketError, Interval, edges, zone
from thingbucket.kit.timebuckets import TooManyBuckets as _TooManyBuckets
from thingbucket.points import repository
from thingbucket.points.aggregate import (
    ANY_KIND,
    NEEDS_VALUES,
    Function,
    Stats,
    fill_column,
    stats_of,
)
from thingbucket.points.downsample import Lttb, fitting, lttb_grid
from thingbucket.points.errors import InvalidAggregate, InvalidRange, TooManyBuckets
from thingbucket.points.repository import AggRow, Grid, RangeDelete, scan, table_for
from thingbucket.points.rollups import LEVELS, fitting_level
from thingbucket.properties import service as properties
from thingbucket.properties.schemas import DimensionOut
from thingbucket.properties.service import PointTarget, SeriesInfo
from thingbucket.runtime import Runtime


@dataclass(frozen=True, slots=True)
class RawQuery:
    start: int  # microseconds, inclusive
    end: int  # microseconds, exclusive
    limit: int
    descending: bool = False
    cursor: str | None = None
    precision: Precision = "ms"
    max_points: int | None = None  # LTTB over the whole range when it holds more


@dataclass(frozen=True, slots=True)
class RawAnswer:
    property_id: str
    dimensions: list[DimensionOut]
    columns: list[str]
    rows: Sequence[Sequence[Any]]
    next_cursor: str | None
    downsampled: bool = False


def _window(query: RawQuery) -> tuple[int, int]:
    start, end = query.start, query.end
    if query.cursor:
        last, descending = decode_cursor(query.cursor, (int, int))
        if bool(descending) != query.descending:
            raise InvalidRange("The cursor belongs to a query of the other order.")
        if query.descending:
            end = min(end, last)
        else:
            start = max(start, last + 1)
    return start, end


async def read_raw(
    session: AsyncSession,
    rt: Runtime,
    who: Principal,
    thing_id: str,
    property_id: str,
    query: RawQuery,
) -> RawAnswer:
    if query.end <= query.start:
        raise InvalidRange("'to' must be after 'from'.")
    target = await properties.cached_point_target(session, rt, who, thing_id, property_id, "read")
    start, end = _window(query)
    if query.max_points is not None:
        downsampled = await _read_lttb(session, rt, target, start, end, query)
        if downsampled is not None:
            return downsampled
    if len(target.series) == 1 and target.series[0].kind in _PLAIN:
        return await _read_one(session, rt, target, start, end, query)
    per_series = [
        await rt.samples.read(
            session, table_for(s.kind), s.id, start, end, query.limit + 1, query.descending
        )
        for s in target.series
    ]
    ordered = sorted({ts for rows in per_series for ts, _ in rows}, reverse=query.descending)
    next_cursor = None
    if len(ordered) > query.limit:
        ordered = ordered[: query.limit]
        next_cursor = encode_cursor(ordered[-1], int(query.descending))
    table = _table(target.series, per_series, ordered, US_PER[query.precision])
    return RawAnswer(
        property_id=target.property_id,
        dimensions=list(target.dimensions),
        columns=["ts", *(s.dimension_id for s in target.series)],
        rows=table,
        next_cursor=next_cursor,
    )


async def _read_lttb(
    session: AsyncSession, rt: Runtime, target: PointTarget, start: int, end: int, q: RawQuery
) -> RawAnswer | None:
    """The range downsampled by LTTB on its first number dimension, whole rows at the kept
    timestamps; None when the range holds no more than ``max_points`` samples of it (or the
    property has no number dimension), so that the caller reads it as it is."""
    assert q.max_points is not None
    key = next((s for s in target.series if s.kind == "number"), None)
    if key is None:
        return None
    edges, width = lttb_grid(start, end, q.max_points)
    grid = Grid(edges, width)
    targets: list[tuple[float, float] | None] = [None] * (len(edges) - 1)
    total = 0
    for b, n, s_sum, *_ in await rt.samples.aggregate(session, key.id, start, end, grid):
        total += n
        targets[grid.bucket_of(b)] = (b + width / 2, s_sum / n)
    if total <= q.max_points:
        return None
    picker = Lttb(edges, targets)
    async for rows in scan(rt.samples, session, table_for(key.kind), key.id, start, end):
        for ts, value in rows:
            picker.feed(ts, value)
    kept = picker.kept()
    stamps = [ts for ts, _ in kept]
    wanted = set(stamps)
    per_series: list[list[tuple[int, Any]]] = []
    for s in target.series:
        found: list[tuple[int, Any]] = []
        if s is key:  # the picker kept its values
            found = list(kept)
        else:
            async for rows in scan(
                rt.samples, session, table_for(s.kind), s.id, stamps[0], stamps[-1] + 1
            ):
                found.extend(row for row in rows if row[0] in wanted)
        per_series.append(found)
    table = _table(target.series, per_series, stamps, US_PER[q.precision])
    if q.descending:
        table.reverse()
    return RawAnswer(
        property_id=target.property_id,
        dimensions=list(target.dimensions),
        columns=["ts", *(s.dimension_id for s in target.series)],
        rows=table,
        next_cursor=None,
        downsampled=True,
    )


async def _read_one(
    session: AsyncSession, rt: Runtime, target: PointTarget, start: int, end: int, q: RawQuery
) -> RawAnswer:
    """One series: rows come from the database in their final form, untouched per row."""
    s = target.series[0]
    rows, key = await rt.samples.read_epoch(
        session, table_for(s.kind), s.id, start, end, q.limit + 1, q.descending, US_PER[q.precision]
    )
    next_cursor = None
    if key is not None:
        # The first row of the next page is the one past the limit: a cursor just before it.
        rows = rows[: q.limit]
        next_cursor = encode_cursor(key + 1 if q.descending else key - 1, int(q.descending))
    return RawAnswer(
        property_id=target.property_id,
        dimensions=list(target.dimensions),
        columns=["ts", s.dimension_id],
        rows=rows,
        next_cursor=next_cursor,
    )


async def delete_range(
    session: AsyncSession,
    rt: Runtime,
    who: Principal,
    thing_id: str,
    property_id: str,
    start: int,
    end: int,
) -> int:
    if end <= start:
        raise InvalidRange("'to' must be after 'from'.")
    target = await properties.point_target(session, who, thing_id, property_id, "write")
    spec = RangeDelete(tuple((s.id, s.kind) for s in target.series), start, end)
    result = await rt.writer.delete(spec)
    access.record(
        session,
        "samples.deleted",
        who,
        org_id=target.ref.org_id,
        target=("property", target.property_id),
        details={"from": start, "to": end, "count": result.deleted},
    )
    await session.flush()
    return result.deleted


# --- streamed raw reads ---------------------------------------------------------------------------

STREAM_CHUNK = 20_000
# Kinds whose stored value is the answer's value (booleans and JSON are decoded).
_PLAIN = frozenset({"number", "text", "media"})


async def open_stream(
    session: AsyncSession, rt: Runtime, who: Principal, thing_id: str | None, property_id: str
) -> PointTarget:
    """Decide access before a stream starts, so that a refusal is still an ordinary answer."""
    return await properties.cached_point_target(session, rt, who, thing_id, property_id, "read")


async def time_span(
    session: AsyncSession, rt: Runtime, target: PointTarget, start: int, end: int
) -> tuple[int, int] | None:
    """The first and last sample time of the property within [start, end), if any."""
    firsts, lasts = [], []
    for s in target.series:
        table = table_for(s.kind)
        first = await rt.samples.read(session, table, s.id, start, end, 1, False)
        last = await rt.samples.read(session, table, s.id, start, end, 1, True)
        firsts += [ts for ts, _ in first]
        lasts += [ts for ts, _ in last]
    return (min(firsts), max(lasts)) if firsts else None


def _epoch(factor: int) -> Any:
    """A converter of microseconds to epoch units (an int when exact), cheap enough per row."""
    if factor == 1:
        return lambda ts: ts
    return lambda ts: ts // factor if ts % factor == 0 else ts / factor


async def stream_rows(
    rt: Runtime, target: PointTarget, start: int, end: int, precision: Precision = "ms"
) -> AsyncIterator[Sequence[Sequence[Any]]]:
    """Rows ``[ts, v1, ...]`` in ascending order, in chunks, on a session of their own (a stream
    outlives its request). Memory stays bounded by the chunk size whatever the range."""
    factor = US_PER[precision]
    async with rt.db.session() as session:
        series = target.series
        if len(series) == 1 and series[0].kind in _PLAIN:
            s = series[0]
            cursor = start
            while cursor < end:
                rows, key = await rt.samples.read_epoch(
                    session, table_for(s.kind), s.id, cursor, end, STREAM_CHUNK, False, factor
                )
                if rows:
                    yield rows
                if key is None:
                    return
                cursor = key + 1
            return
        cursor = start
        while cursor < end:
            per_series = [
                await rt.samples.read(
                    session, table_for(s.kind), s.id, cursor, end, STREAM_CHUNK, False
                )
                for s in series
            ]
            # Complete up to the earliest last timestamp among the full chunks: past it, a full
            # chunk may have more rows that were not read yet. The rest is read again next time.
            full = [rows[-1][0] for rows in per_series if len(rows) == STREAM_CHUNK]
            horizon = min(full) if full else end - 1
            table = _merge(series, per_series, horizon, factor)
            if table:
                yield table
            cursor = horizon + 1


def _merge(
    series: Sequence[SeriesInfo],
    per_series: Sequence[Sequence[tuple[int, Any]]],
    horizon: int,
    factor: int,
) -> list[list[Any]]:
    stamps = sorted({ts for rows in per_series for ts, _ in rows if ts <= horizon})
    return _table(series, per_series, stamps, factor)


def _table(
    series: Sequence[SeriesInfo],
    per_series: Sequence[Sequence[tuple[int, Any]]],
    stamps: Sequence[int],
    factor: int,
) -> list[list[Any]]:
    """Rows ``[ts, v1, ...]`` at these timestamps from each series' ``(ts, value)`` samples."""
    position = {ts: i for i, ts in enumerate(stamps)}
    epoch = _epoch(factor)
    table: list[list[Any]] = [[epoch(ts)] + [None] * len(series) for ts in stamps]
    for column, (s, rows) in enumerate(zip(series, per_series, strict=True), start=1):
        plain = s.kind in _PLAIN
        for ts, value in rows:
            i = position.get(ts)
            if i is not None:
                table[i][column] = value if plain else decode_value(s.kind, value)
    return table


# --- aggregates -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AggQuery:
    start: int
    end: int
    interval: Interval
    functions: tuple[Function, ...]
    fill: str = "none"  # none | null | previous | linear | a number
    tz: str = "UTC"
    precision: Precision = "ms"
    max_points: int | None = None  # a coarser interval (a multiple of this one) beyond it


@dataclass(frozen=True, slots=True)
class AggAnswer:
    property_id: str
    dimensions: list[DimensionOut]
    columns: list[str]
    rows: list[list[Any]]
    query: AggQuery  # as applied: its interval is the coarser one when downsampled
    kinds: list[str]  # of each value column: number, or the dimension's kind for first/last
    downsampled: bool = False


async def _series_stats(
    session: AsyncSession,
    rt: Runtime,
    s: SeriesInfo,
    q: AggQuery,
    grid: Grid,
    need_values: bool,
) -> list[Stats | None]:
    out: list[Stats | None] = [None] * (len(grid.edges) - 1)
    numeric = s.kind == "number"
    if numeric and not need_values:
        level = fitting_level(grid.edges, q.start, q.end)
        if level is not None:
            return await _stats_from_rollups(session, rt, s.id, q, grid, level)
        for b, n, total, lo, hi, first, last in await rt.samples.aggregate(
            session, s.id, q.start, q.end, grid
        ):
            out[grid.bucket_of(b)] = Stats(n, total, lo, hi, first, last)
        return out
    # From the raw samples, one bucket at a time (they arrive in time order).
    current, bucket = -1, list[tuple[int, Any]]()
    plain = s.kind in ("number", "text", "media")
    async for rows in scan(rt.samples, session, table_for(s.kind), s.id, q.start, q.end):
        for ts, value in rows:
            i = grid.bucket_of(ts)
            if i != current:
                if bucket:
                    out[current] = stats_of(bucket, numeric, need_values)
                current, bucket = i, []
            bucket.append((ts, value if plain else decode_value(s.kind, value)))
    if bucket:
        out[current] = stats_of(bucket, numeric, need_values)
    return out


async def _rollup_pieces(
    session: AsyncSession, rt: Runtime, sid: int, level: int, start: int, end: int, grid: Grid
) -> list[AggRow]:
    """Rows ``(position, n, sum, min, max, first, last)`` covering [start, end), which the
    level's buckets tile: clean rollups as they are, dirty ones one level finer, down to the
    samples. ``position`` lies in the query bucket the row belongs to."""
    out: list[AggRow] = []
    width = LEVELS[level]
    z_max = TS_MAX_US  # a bucket's end past int64: the samples end there anyway
    for bucket, *stats, dirty in await repository.rollup_rows(session, sid, level, start, end):
        if not dirty:
            out.append((bucket, *stats))
        elif level:
            out.extend(
                await _rollup_pieces(
                    session, rt, sid, level - 1, bucket, min(bucket + width, z_max), grid
                )
            )
        else:
            rows = await rt.samples.aggregate(
                session, sid, bucket, min(bucket + width, z_max), grid
            )
            out.extend((bucket, *row[1:]) for row in rows)
    return out


async def _stats_from_rollups(
    session: AsyncSession, rt: Runtime, sid: int, q: AggQuery, grid: Grid, level: int
) -> list[Stats | None]:
    """Per query bucket, its rollups combined with the samples of the edges that no rollup
    bucket fills; exactly what the samples alone give (sums up to rounding)."""
    width = LEVELS[level]
    a = -(-q.start // width) * width
    z = (q.end // width) * width
    pieces = await _rollup_pieces(session, rt, sid, level, a, z, grid)
    for lo, hi in ((q.start, a), (z, q.end)):
        if lo < hi:
            pieces.extend(
                (lo, *r[1:]) for r in await rt.samples.aggregate(session, sid, lo, hi, grid)
            )
    pieces.sort(key=lambda p: p[0])
    out: list[Stats | None] = [None] * (len(grid.edges) - 1)
    for position, n, total, lo_v, hi_v, first, last in pieces:
        i = grid.bucket_of(position)
        cur = out[i]
        if cur is None:
            out[i] = Stats(n, total, lo_v, hi_v, first, last)
        else:
            out[i] = Stats(
                cur.count + n,
                (cur.sum or 0.0) + total,
                min(cur.min, lo_v),
                max(cur.max, hi_v),
                cur.first,
                last,
            )
    return out


async def read_aggregate(
    session: AsyncSession,
    rt: Runtime,
    who: Principal,
    thing_id: str | None,
    property_id: str,
    q: AggQuery,
) -> AggAnswer:
    if q.end <= q.start:
        raise InvalidRange("'to' must be after 'from'.")
    target = await properties.cached_point_target(session, rt, who, thing_id, property_id, "read")
    limit = rt.settings.limits.buckets_per_query
    asked = q
    if q.max_points is not None:
        q = replace(q, interval=fitting(q.interval, q.start, q.end, q.max_points))
    try:
        zone(q.tz)  # refused even where the interval does not use it (s, m, h)
        bucket_edges = edges(q.interval, q.tz, q.start, q.end, limit)
        while q.max_points is not None and len(bucket_edges) - 1 > q.max_points:
            # Calendar units vary in length: one more step where the estimate fell short.
            q = replace(q, interval=Interval(q.interval.n + asked.interval.n, q.interval.unit))
            bucket_edges = edges(q.interval, q.tz, q.start, q.end, limit)
    except _TooManyBuckets:
        raise TooManyBuckets(
            f"The query spans more than {limit} buckets of {q.interval}: use a longer interval "
            "or a shorter range."
        ) from None
    except BucketError as exc:
        raise InvalidAggregate(f"{exc}.") from None
    grid = Grid(bucket_edges, q.interval.fixed_us)
    need_values = bool(NEEDS_VALUES.intersection(q.functions))
    stamps = bucket_edges[:-1]
    present: list[bool] = [False] * len(stamps)
    columns: list[list[Any]] = []
    names: list[str] = []
    kinds: list[str] = []
    for s in target.series:
        stats = await _series_stats(session, rt, s, q, grid, need_values)
        filled = [st is not None for st in stats]
        present = [a or b for a, b in zip(present, filled, strict=True)]
        for fn in q.functions:
            names.append(f"{s.dimension_id}_{fn}")
            kinds.append(s.kind if fn in ("first", "last") else "number")
            if fn == "count":
                columns.append([st.count if st is not None else 0 for st in stats])
                continue
            usable = s.kind == "number" or fn in ANY_KIND
            column = [st.get(fn) if st is not None and usable else None for st in stats]
            columns.append(
                fill_column(column, filled, q.fill, stamps) if q.fill != "none" else column
            )
    keep = range(len(stamps)) if q.fill != "none" else [i for i, p in enumerate(present) if p]
    prec = q.precision
    rows = [[us_to_epoch(stamps[i], prec), *(column[i] for column in columns)] for i in keep]
    return AggAnswer(
        property_id=target.property_id,
        dimensions=list(target.dimensions),
        columns=["ts", *names],
        rows=rows,
        query=q,
        kinds=kinds,
        downsampled=q.interval != asked.interval,
    )


async def describe_bucket(session: AsyncSession, who: Principal, bucket_id: str) -> BucketOut:
    """A bucket with the time of its oldest sample (what retention has left)."""
    bucket = await buckets.get(session, who, bucket_id)
    oldest = await repository.oldest_in_bucket(session, bucket.id)
    out = BucketOut.model_validate(bucket)
    out.oldest_sample_at = us_to_datetime(oldest) if oldest is not None else None
    return out
