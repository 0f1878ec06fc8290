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
    Columns,
    Function,
    Stats,
    combine,
    fill_column,
    stats_of,
)
from thingbucket.points.batch import RangeDelete, table_for
from thingbucket.points.downsample import Lttb, fitting, lttb_grid
from thingbucket.points.errors import InvalidAggregate, InvalidRange, TooManyBuckets
from thingbucket.points.repository import Grid, scan
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
    target = await properties.cached_point_target(rt, who, thing_id, property_id, "read")
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
    rt: Runtime, who: Principal, thing_id: str | None, property_id: str
) -> PointTarget:
    """Decide access before a stream starts, so that a refusal is still an ordinary answer."""
    return await properties.cached_point_target(rt, who, thing_id, property_id, "read")


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
    rows: Sequence[Sequence[Any]]
    query: AggQuery  # as applied: its interval is the coarser one when downsampled
    kinds: list[str]  # of each value column: number, or the dimension's kind for first/last
    downsampled: bool = False


def _positions(grid: Grid, buckets: Sequence[int]) -> list[int]:
    """Each bucket start's position in the grid."""
    if grid.width is not None:
        e0, w = grid.edges[0], grid.width
        return [(b - e0) // w for b in buckets]
    return [grid.bucket_of(b) for b in buckets]


def _whole_span(q: AggQuery, width: int) -> tuple[int, int]:
    """[a, z): the part of the range that buckets of ``width`` cover whole."""
    return -(-q.start // width) * width, (q.end // width) * width


async def _sample_columns(
    session: AsyncSession, rt: Runtime, sid: int, start: int, end: int, grid: Grid
) -> Columns:
    """A number series' buckets in [start, end) aggregated from its samples by SQL."""
    agg = await rt.samples.aggregate(session, sid, start, end, grid)
    return Columns.of_rows(_positions(grid, [r[0] for r in agg]), agg)


async def _series_columns(
    session: AsyncSession,
    rt: Runtime,
    s: SeriesInfo,
    q: AggQuery,
    grid: Grid,
    need_values: bool,
) -> Columns:
    numeric = s.kind == "number"
    if numeric and not need_values:
        level = fitting_level(grid.edges, q.start, q.end, grid.width)
        if level is not None:
            return await _columns_from_rollups(session, rt, s.id, q, grid, level)
        return await _sample_columns(session, rt, s.id, q.start, q.end, grid)
    # From the raw samples, one bucket at a time (they arrive in time order).
    out: list[tuple[int, Stats]] = []
    current, bucket = -1, list[tuple[int, Any]]()
    plain = s.kind in ("number", "text", "media")
    async for rows in scan(rt.samples, session, table_for(s.kind), s.id, q.start, q.end):
        for ts, value in rows:
            i = grid.bucket_of(ts)
            if i != current:
                if bucket:
                    out.append((current, stats_of(bucket, numeric, need_values)))
                current, bucket = i, []
            bucket.append((ts, value if plain else decode_value(s.kind, value)))
    if bucket:
        out.append((current, stats_of(bucket, numeric, need_values)))
    return Columns.of_stats(out, numeric, need_values)


async def _rollup_pieces(
    session: AsyncSession,
    rt: Runtime,
    sid: int,
    level: int,
    start: int,
    end: int,
    grid: Grid,
    rows: Sequence[Sequence[Any]] | None = None,
) -> list[Sequence[Any]]:
    """Rows ``(bucket, n, sum, min, max, first, last)`` covering [start, end) in time order,
    which the level's buckets tile: clean rollups as they are, dirty ones one level finer, down
    to the samples. ``rows`` are the level's rollup rows of the range when already read."""
    if rows is None:
        rows = await repository.rollup_rows(session, sid, level, start, end)
    out: list[Sequence[Any]] = []
    width = LEVELS[level]
    z_max = TS_MAX_US  # a bucket's end past int64: the samples end there anyway
    for row in rows:
        bucket, dirty = row[0], row[7]
        if not dirty:
            out.append(row)
        elif level:
            out.extend(
                await _rollup_pieces(
                    session, rt, sid, level - 1, bucket, min(bucket + width, z_max), grid
                )
            )
        else:
            out.extend(
                await rt.samples.aggregate(session, sid, bucket, min(bucket + width, z_max), grid)
            )
    return out


async def _columns_from_rollups(
    session: AsyncSession, rt: Runtime, sid: int, q: AggQuery, grid: Grid, level: int
) -> Columns:
    """Per query bucket, its rollups combined with the samples of the edges that no rollup
    bucket fills; exactly what the samples alone give (sums up to rounding)."""
    a, z = _whole_span(q, LEVELS[level])
    rows = await repository.rollup_rows(session, sid, level, a, z)
    if any(row[7] for row in rows):
        rows = await _rollup_pieces(session, rt, sid, level, a, z, grid, rows)
    head = await rt.samples.aggregate(session, sid, q.start, a, grid) if q.start < a else []
    tail = await rt.samples.aggregate(session, sid, z, q.end, grid) if z < q.end else []
    pieces = [*head, *rows, *tail] if head or tail else rows
    return combine(_positions(grid, [p[0] for p in pieces]), pieces)


def _spread(
    values: list[Any],
    index: Sequence[int],
    keep: Sequence[int],
    fn: Function,
    fill: str,
    stamps: Sequence[int],
) -> Sequence[Any]:
    """One series' values (one per bucket in ``index``) at the answer's buckets ``keep``: a
    bucket the series has no sample in gets 0 for count, else the fill (or None)."""
    if keep is index:
        return values
    full: list[Any] = [0 if fn == "count" else None] * len(stamps)
    for i, v in zip(index, values, strict=True):
        full[i] = v
    if fill != "none" and fn != "count":
        present = [False] * len(stamps)
        for i in index:
            present[i] = True
        full = fill_column(full, present, fill, stamps)
    return full if isinstance(keep, range) else [full[i] for i in keep]


def _rows(
    series: Sequence[SeriesInfo], per_series: Sequence[Columns], q: AggQuery, grid: Grid
) -> list[tuple[Any, ...]]:
    """The answer's rows ``(ts, s1_f1, s1_f2, ..., s2_f1, ...)``: for the buckets that hold a
    sample of any series, or for every bucket when filled."""
    stamps = grid.edges[:-1]
    keep: Sequence[int]
    if q.fill != "none":
        keep = range(len(stamps))
    elif all(c.index == per_series[0].index for c in per_series):
        keep = per_series[0].index
    else:
        keep = sorted(set().union(*(c.index for c in per_series)))
    columns: list[Sequence[Any]] = []
    for s, cols in zip(series, per_series, strict=True):
        for fn in q.functions:
            usable = s.kind == "number" or fn in ANY_KIND
            values = cols.get(fn) if usable else [None] * len(cols.index)
            columns.append(_spread(values, cols.index, keep, fn, q.fill, stamps))
    factor = US_PER[q.precision]
    if grid.width is not None and stamps[0] % factor == 0 and grid.width % factor == 0:
        epochs: list[int | float] = [stamps[i] // factor for i in keep]  # all exact
    else:
        epochs = [us_to_epoch(stamps[i], q.precision) for i in keep]
    return list(zip(epochs, *columns, strict=True))


async def _rows_from_clean_rollups(
    session: AsyncSession, rt: Runtime, target: PointTarget, q: AggQuery, grid: Grid
) -> Sequence[Sequence[Any]] | None:
    """The answer's rows with the database doing the work, where one rollup level has exactly
    the query's buckets and none of them is dirty (a month of minutes: 43,200 rows that
    Python only passes on); None where that does not hold. The edges come from the samples."""
    if len(target.series) != 1 or q.fill != "none" or grid.width is None:
        return None
    s = target.series[0]
    level = fitting_level(grid.edges, q.start, q.end, grid.width) if s.kind == "number" else None
    if level is None or LEVELS[level] != grid.width:
        return None
    a, z = _whole_span(q, grid.width)
    factor = US_PER[q.precision]
    middle = await repository.clean_rollup_answer(session, s.id, level, a, z, q.functions, factor)
    if not middle:  # dirty somewhere, or nothing there: the general path tells which
        return None
    head = await _edge_rows(session, rt, s, q, grid, q.start, a)
    tail = await _edge_rows(session, rt, s, q, grid, z, q.end)
    return [*head, *middle, *tail] if head or tail else middle


async def _edge_rows(
    session: AsyncSession, rt: Runtime, s: SeriesInfo, q: AggQuery, grid: Grid, lo: int, hi: int
) -> list[tuple[Any, ...]]:
    """Rows for the part of [lo, hi) of the range that no rollup bucket covers whole."""
    if lo >= hi:
        return []
    return _rows([s], [await _sample_columns(session, rt, s.id, lo, hi, grid)], q, grid)


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
    target = await properties.cached_point_target(rt, who, thing_id, property_id, "read")
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
    names = [f"{s.dimension_id}_{fn}" for s in target.series for fn in q.functions]
    kinds = [
        s.kind if fn in ("first", "last") else "number" for s in target.series for fn in q.functions
    ]
    rows = None if need_values else await _rows_from_clean_rollups(session, rt, target, q, grid)
    if rows is None:
        per_series = [
            await _series_columns(session, rt, s, q, grid, need_values) for s in target.series
        ]
        rows = _rows(target.series, per_series, q, grid)
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
