"""Raw reads and range deletes of samples (aggregates come in a later increment)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from thingbucket.access import service as access
from thingbucket.access.principal import Principal
from thingbucket.ingest.decoders import decode_value
from thingbucket.kit.pagination import decode_cursor, encode_cursor
from thingbucket.kit.time import Precision, us_to_epoch
from thingbucket.points.errors import InvalidRange
from thingbucket.points.repository import RangeDelete, table_for
from thingbucket.properties import service as properties
from thingbucket.properties.schemas import DimensionOut
from thingbucket.runtime import Runtime


@dataclass(frozen=True, slots=True)
class RawQuery:
    start: int  # microseconds, inclusive
    end: int  # microseconds, exclusive
    limit: int
    descending: bool = False
    cursor: str | None = None
    precision: Precision = "ms"


@dataclass(frozen=True, slots=True)
class RawAnswer:
    property_id: str
    dimensions: list[DimensionOut]
    columns: list[str]
    rows: list[list[Any]]
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
    per_series = []
    for s in target.series:
        rows = await rt.samples.read(
            session, table_for(s.kind), s.id, start, end, query.limit + 1, query.descending
        )
        per_series.append((s.kind, rows))
    stamps: set[int] = set()
    for _, rows in per_series:
        stamps.update(ts for ts, _ in rows)
    ordered = sorted(stamps, reverse=query.descending)
    next_cursor = None
    if len(ordered) > query.limit:
        ordered = ordered[: query.limit]
        next_cursor = encode_cursor(ordered[-1], int(query.descending))
    width = len(target.series)
    position = {ts: i for i, ts in enumerate(ordered)}
    prec = query.precision
    table = [[us_to_epoch(ts, prec)] + [None] * width for ts in ordered]
    for column, (kind, rows) in enumerate(per_series, start=1):
        plain = kind in ("number", "text", "media")
        for ts, value in rows:
            i = position.get(ts)
            if i is not None:
                table[i][column] = value if plain else decode_value(kind, value)
    return RawAnswer(
        property_id=target.property_id,
        dimensions=list(target.dimensions),
        columns=["ts", *(s.dimension_id for s in target.series)],
        rows=table,
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
