"""Pure decoders for point bodies: lists and tuples in, sample columns out, no objects per point.

``points_of`` accepts the three JSON forms of native-api.md; ``decode_rows`` validates them against
a property's dimensions and returns the rows for the sample tables, or raises ``RowErrors`` naming
every bad row (up to a cap) by write, index and dimension.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import orjson

from thingbucket.errors import Invalid
from thingbucket.kit.jsonstrict import depth
from thingbucket.kit.time import (
    US_PER,
    Precision,
    TimestampError,
    TimestampOutOfRange,
    parse_timestamp,
)
from thingbucket.points.batch import SampleBatch

INT_LIMIT = 2**63 - 1
MAX_REPORTED = 20
# 0001-01-01T00:00:00Z: the earliest sample time (calendar arithmetic and partitions need a year).
EARLIEST_US = -62_135_596_800_000_000
ROW_SHAPE = 'a point is [ts, values...] or {"ts", "values"}'
ONE_SERVER_TIME = "only one point per request may omit its timestamp"
OUT_OF_RANGE = "timestamp outside the accepted range"
TOO_FAR_AHEAD = "timestamp more than the allowed clock skew ahead of the server's clock"
PAST_RETENTION = "timestamp older than the retention period: it would be deleted at once"


def _range_reason(ts: int, latest: int, oldest: int | None) -> str:
    if ts > latest:
        return TOO_FAR_AHEAD
    if oldest is not None and ts < oldest:
        return PAST_RETENTION
    return OUT_OF_RANGE


@dataclass(frozen=True, slots=True)
class Dim:
    series_id: int
    id: str
    kind: str  # number | text | bool | json | media


@dataclass(frozen=True, slots=True)
class Limits:
    text_value_bytes: int = 1024
    json_depth: int = 32
    future_skew_us: int = 600_000_000
    min_ts_us: int | None = None  # oldest accepted (retention); None = no lower bound


class RowErrors(Invalid):
    """One or more bad rows; the batch is refused as a whole."""


@dataclass(slots=True)
class _Errors:
    write: int
    items: list[dict[str, Any]]

    def add(self, index: int, dimension: str, reason: str, code: str) -> None:
        if len(self.items) < MAX_REPORTED:
            self.items.append(
                {
                    "write": self.write,
                    "index": index,
                    "dimension": dimension,
                    "reason": reason,
                    "code": code,
                }
            )

    def raise_if_any(self) -> None:
        if self.items:
            raise_row_errors(self.items)


def raise_row_errors(items: list[dict[str, Any]]) -> None:
    first = items[0]
    raise RowErrors(
        f"Row {first['index']} of write {first['write']}, dimension {first['dimension']!r}: "
        f"{first['reason']}.",
        code=first["code"],
        details=items,
    )


def body_error(reason: str, *, write: int = 0, code: str = "VALIDATION_FAILED") -> RowErrors:
    return RowErrors(
        f"{reason}.",
        code=code,
        details=[
            {"write": write, "index": None, "dimension": None, "reason": reason, "code": code}
        ],
    )


def points_of(doc: Any, *, write: int = 0) -> list[Any]:
    """The rows of a body in any of the three JSON forms, as ``[ts, v1, v2, ...]`` or objects."""
    if not isinstance(doc, dict):
        raise body_error("the body must be a JSON object", write=write)
    if "points" in doc:
        points = doc["points"]
        if not isinstance(points, list):
            raise body_error("'points' must be a list", write=write)
        return points
    if "ts" in doc and "values" in doc:
        ts, columns = doc["ts"], doc["values"]
        if not isinstance(ts, list) or not isinstance(columns, list):
            raise body_error("'ts' and 'values' must be lists", write=write)
        for i, column in enumerate(columns):
            if not isinstance(column, list) or len(column) != len(ts):
                raise body_error(
                    f"column {i} of 'values' must be a list as long as 'ts'", write=write
                )
        return (
            [[t, *vals] for t, *vals in zip(ts, *columns, strict=True)]
            if columns
            else [[t] for t in ts]
        )
    raise body_error("expected 'points', or 'ts' with 'values'", write=write)


def _split(row: Any) -> tuple[Any, Sequence[Any]] | None:
    if isinstance(row, list):
        if not row:
            return None
        return row[0], row[1:]
    if isinstance(row, dict):
        values = row.get("values", [])
        if not isinstance(values, list):
            return None
        return row.get("ts"), values
    return None


_FLOAT = {float}
_NUMBER = {int, float}


def _plain_numbers(
    rows: list[Any], dims: Sequence[Dim], factor: int, earliest: int, latest: int
) -> SampleBatch | None:
    """The samples of the common case, checked a column at a time (C loops, not a Python step
    per value): every row ``[int ts, number, ...]`` with one finite number per dimension, all
    of kind number, every timestamp in range. None otherwise: the row-by-row loop then decides,
    and names whatever is wrong."""
    width = len(dims) + 1
    if set(map(type, rows)) != {list} or set(map(len, rows)) != {width}:
        return None
    columns = list(zip(*rows, strict=True))
    ts = columns[0]
    if set(map(type, ts)) != {int} or min(ts) * factor < earliest or max(ts) * factor > latest:
        return None
    stamps = list(map(factor.__mul__, ts)) if factor != 1 else list(ts)
    out = SampleBatch()
    for dim, values in zip(dims, columns[1:], strict=True):
        types = set(map(type, values))
        if types != _FLOAT:
            if not types <= _NUMBER or min(values) < -INT_LIMIT or max(values) > INT_LIMIT:
                return None
            values = tuple(map(float, values))
        if not math.isfinite(sum(values)):  # NaN or ±inf somewhere (or a sum past 1e308)
            return None
        out.sids.extend(repeat(dim.series_id, len(stamps)))
        out.stamps.extend(stamps)
        out.values.extend(values)
    return out


def decode_rows(
    rows: Iterable[Any],
    dims: Sequence[Dim],
    *,
    now_us: int,
    precision: Precision = "ms",
    limits: Limits = Limits(),
    write: int = 0,
) -> SampleBatch:
    """Validate rows against the dimensions and return their samples; nulls are left out."""
    batch = SampleBatch()
    add_number = batch.add_number
    text = batch.text
    errors = _Errors(write, [])
    ndims = len(dims)
    latest = now_us + limits.future_skew_us
    oldest = limits.min_ts_us
    server_time_rows = 0
    factor = US_PER[precision]
    earliest = EARLIEST_US if oldest is None else max(oldest, EARLIEST_US)
    if isinstance(rows, list) and rows and dims and all(d.kind == "number" for d in dims):
        plain = _plain_numbers(rows, dims, factor, earliest, latest)
        if plain is not None:
            return plain
    values: Sequence[Any]
    for index, row in enumerate(rows):
        if type(row) is list and row and type(row[0]) is int:
            # Fast path for the common row form: [epoch int, values...].
            ts = row[0] * factor
            values = row[1:]
        else:
            parts = _split(row)
            if parts is None:
                errors.add(index, "ts", ROW_SHAPE, "VALIDATION_FAILED")
                continue
            raw_ts, values = parts
            if raw_ts is None:
                server_time_rows += 1
                if server_time_rows > 1:
                    errors.add(index, "ts", ONE_SERVER_TIME, "VALIDATION_FAILED")
                    continue
                ts = now_us
            else:
                try:
                    ts = parse_timestamp(raw_ts, precision)
                except TimestampOutOfRange:
                    errors.add(index, "ts", OUT_OF_RANGE, "TIMESTAMP_OUT_OF_RANGE")
                    continue
                except TimestampError as exc:
                    errors.add(index, "ts", str(exc), "VALIDATION_FAILED")
                    continue
        if ts > latest or ts < earliest:
            errors.add(index, "ts", _range_reason(ts, latest, oldest), "TIMESTAMP_OUT_OF_RANGE")
            continue
        if len(values) > ndims:
            errors.add(
                index,
                dims[-1].id if dims else "ts",
                f"{len(values)} values for {ndims} dimensions",
                "VALIDATION_FAILED",
            )
            continue
        for dim, value in zip(dims, values, strict=False):
            if value is None:
                continue
            kind = dim.kind
            if kind == "number":
                if type(value) is float:
                    # x - x is 0.0 only for finite x; NaN and ±inf are not storable numbers.
                    if value - value == 0.0:
                        add_number(dim.series_id, ts, value)
                    else:
                        errors.add(index, dim.id, "number is not finite", "INVALID_VALUE")
                elif type(value) is int:
                    if -INT_LIMIT <= value <= INT_LIMIT:
                        add_number(dim.series_id, ts, float(value))
                    else:
                        errors.add(index, dim.id, "integer outside 64 bits", "INVALID_VALUE")
                else:
                    errors.add(
                        index,
                        dim.id,
                        f"expected a number, got {_type_name(value)}",
                        "VALIDATION_FAILED",
                    )
            elif kind == "bool":
                if type(value) is bool:
                    text.append((dim.series_id, ts, "true" if value else "false"))
                else:
                    errors.add(
                        index,
                        dim.id,
                        f"expected a boolean, got {_type_name(value)}",
                        "VALIDATION_FAILED",
                    )
            elif kind == "json":
                if depth(value, limits.json_depth) > limits.json_depth:
                    errors.add(index, dim.id, "JSON value nested too deeply", "VALIDATION_FAILED")
                    continue
                encoded = orjson.dumps(value).decode()
                if len(encoded.encode()) > limits.text_value_bytes:
                    errors.add(
                        index,
                        dim.id,
                        f"value longer than {limits.text_value_bytes} bytes",
                        "VALUE_TOO_LONG",
                    )
                else:
                    text.append((dim.series_id, ts, encoded))
            elif isinstance(value, str):  # text, and media references (file names)
                if (
                    len(value) * 4 > limits.text_value_bytes
                    and len(value.encode()) > limits.text_value_bytes
                ):
                    errors.add(
                        index,
                        dim.id,
                        f"value longer than {limits.text_value_bytes} bytes",
                        "VALUE_TOO_LONG",
                    )
                elif "\x00" in value:  # PostgreSQL text cannot hold it; refused on both
                    errors.add(index, dim.id, "text holds a NUL character", "INVALID_VALUE")
                else:
                    text.append((dim.series_id, ts, value))
            else:
                errors.add(
                    index,
                    dim.id,
                    f"expected a string, got {_type_name(value)}",
                    "VALIDATION_FAILED",
                )
    errors.raise_if_any()
    return batch


def _type_name(value: Any) -> str:
    if value is True or value is False:
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def decode_value(kind: str, stored: Any) -> Any:
    """A stored sample value back to its JSON value."""
    if kind == "number" or kind in ("text", "media"):
        return stored
    if kind == "bool":
        return stored == "true"
    return orjson.loads(stored)
