"""The one ingest path: every transport (HTTP, MQTT, CLI, adapters) ends in ``write()``.

Validation runs before anything is queued; the writer resolves the caller only after the commit
that holds its rows. A batch is all or nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from thingbucket.access.principal import Principal
from thingbucket.errors import TooLarge
from thingbucket.ingest.decoders import Dim, Limits, decode_rows
from thingbucket.ingest.formats import csv_header, csv_rows
from thingbucket.kit.time import Precision, now_us
from thingbucket.points.batch import SampleBatch
from thingbucket.points.writer import WriteResult
from thingbucket.properties import service as properties
from thingbucket.properties.service import PointTarget
from thingbucket.runtime import Runtime

DAY_US = 86_400_000_000


class TooManyPoints(TooLarge):
    code = "TOO_MANY_POINTS"
    message = "Too many points in one request."


@dataclass(frozen=True, slots=True)
class PropertyWrite:
    """Rows for one property, as decoded from a body: ``[ts, v1, ...]`` lists or objects."""

    property_id: str
    rows: Sequence[Any]
    thing_id: str | None = None


@dataclass(frozen=True, slots=True)
class CsvWrite:
    """CSV records for one property: the header ``ts,<dimension id>,...`` and data records.

    The header is read against the property's dimensions, so it is decoded here rather than
    by the transport; ``first_index`` numbers the records in error details (for chunked files).
    """

    property_id: str
    header: Sequence[str]
    records: Sequence[Sequence[str]]
    thing_id: str | None = None
    first_index: int = 0

    @property
    def rows(self) -> Sequence[Sequence[str]]:
        return self.records


def dims_of(target: PointTarget) -> list[Dim]:
    return [Dim(s.id, s.dimension_id, s.kind) for s in target.series]


def limits_for(rt: Runtime, target: PointTarget, now: int) -> Limits:
    lim = rt.settings.limits
    oldest = now - target.retention_days * DAY_US if target.retention_days else None
    return Limits(
        text_value_bytes=lim.text_value_bytes,
        json_depth=lim.json_depth,
        future_skew_us=lim.future_skew_s * 1_000_000,
        min_ts_us=oldest,
    )


async def write(
    rt: Runtime,
    who: Principal,
    writes: Sequence[PropertyWrite | CsvWrite],
    *,
    precision: Precision = "ms",
) -> WriteResult:
    """Validate every write, then commit them in one transaction (atomic across properties)."""
    total = sum(len(w.rows) for w in writes)
    if total > rt.settings.limits.points_per_request:
        raise TooManyPoints(f"At most {rt.settings.limits.points_per_request} points per request.")
    now = now_us()
    batch = SampleBatch()
    for index, item in enumerate(writes):
        target = await properties.cached_point_target(
            rt, who, item.thing_id, item.property_id, "write"
        )
        rows: Sequence[Any] = item.rows
        if isinstance(item, CsvWrite):
            dims = dims_of(target)
            columns = csv_header(item.header, dims, write=index)
            rows = csv_rows(item.records, columns, dims, write=index, first_index=item.first_index)
        batch.extend(
            decode_rows(
                rows,
                dims_of(target),
                now_us=now,
                precision=precision,
                limits=limits_for(rt, target, now),
                write=index,
            )
        )
    if not batch:
        return WriteResult(ranges={})
    return await rt.writer.write(batch)
