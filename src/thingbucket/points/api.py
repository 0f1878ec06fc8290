"""Native point routes: writes (one property or many), raw reads, range deletes.

Write bodies are parsed with orjson into lists (no model per point); the handler hands them to the
one ingest service and answers 204 only after the commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request, Response
from starlette.responses import StreamingResponse

from thingbucket.errors import InvalidJson, UnsupportedMedia
from thingbucket.ingest import service as ingest
from thingbucket.ingest.decoders import body_error, points_of
from thingbucket.ingest.formats import CSV_TYPES, NDJSON_TYPES, csv_records, ndjson_rows
from thingbucket.ingest.service import CsvWrite, PropertyWrite
from thingbucket.kit.time import Precision, TimestampError, now_us, parse_timestamp
from thingbucket.kit.timebuckets import BucketError, parse_interval
from thingbucket.points import service
from thingbucket.points.aggregate import FUNCTIONS, Function
from thingbucket.points.errors import InvalidAggregate, InvalidQuery, InvalidRange
from thingbucket.points.formats import csv_line, csv_lines, ndjson_lines
from thingbucket.points.service import AggQuery, RawQuery
from thingbucket.web.deps import MaybePrincipalDep, PrincipalDep, RuntimeDep, SessionDep
from thingbucket.web.responses import ORJSONResponse, error_responses
from thingbucket.web.routing import StrictRoute, policy

router = APIRouter(prefix="/api/v1", route_class=StrictRoute, tags=["points"])
DAY_US = 86_400_000_000
PrecisionQ = Annotated[Literal["s", "ms", "us"], Query()]

_ROW = {"type": "array", "items": {}, "minItems": 1}
_POINTS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {
                            "type": "object",
                            "properties": {"points": {"type": "array", "items": _ROW}},
                            "required": ["points"],
                        },
                        {
                            "type": "object",
                            "properties": {"ts": {"type": "array"}, "values": {"type": "array"}},
                            "required": ["ts", "values"],
                        },
                    ]
                }
            },
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}
_MULTI_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "writes": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "property_id": {"type": "string"},
                                    "points": {"type": "array", "items": _ROW},
                                },
                                "required": ["property_id"],
                            },
                        }
                    },
                    "required": ["writes"],
                }
            }
        },
    }
}


def _media_type(request: Request) -> str:
    raw = request.headers.get("content-type", "application/json")
    return raw.split(";")[0].strip().lower() or "application/json"


async def _json_body(request: Request, media: str) -> Any:
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMedia(
            "Point bodies are application/json, application/x-ndjson or text/csv."
        )
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"The body is not valid JSON: {exc.msg}.") from None


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise body_error("the body is not valid UTF-8", code="INVALID_JSON") from None


async def _property_write(
    request: Request, thing_id: str, property_id: str
) -> PropertyWrite | CsvWrite:
    """The body of a one-property write in any of its media types."""
    media = _media_type(request)
    if media in NDJSON_TYPES:
        lines = (await request.body()).splitlines()
        return PropertyWrite(property_id, ndjson_rows(lines), thing_id)
    if media in CSV_TYPES:
        records = list(csv_records(_text(await request.body()).splitlines(keepends=True)))
        if not records:
            raise body_error("a CSV body starts with a header row 'ts,<dimension id>,...'")
        return CsvWrite(property_id, records[0], records[1:], thing_id)
    return PropertyWrite(property_id, points_of(await _json_body(request, media)), thing_id)


def _time(value: str | None, precision: Precision, default: int, name: str) -> int:
    if value is None:
        return default
    try:
        return parse_timestamp(value, precision)
    except TimestampError as exc:
        raise InvalidRange(f"'{name}': {exc}.") from None


@router.post(
    "/things/{thing_id}/properties/{property_id}/points",
    status_code=204,
    openapi_extra=policy("write", "property") | _POINTS_BODY,
    responses=error_responses(400, 401, 403, 404, 413, 415, 503),
)
async def write_points(
    thing_id: str,
    property_id: str,
    request: Request,
    rt: RuntimeDep,
    who: PrincipalDep,
    precision: PrecisionQ = "ms",
) -> Response:
    item = await _property_write(request, thing_id, property_id)
    await ingest.write(rt, who, [item], precision=precision)
    return Response(status_code=204)


@router.post(
    "/points",
    status_code=204,
    openapi_extra=policy("write", "property") | _MULTI_BODY,
    responses=error_responses(400, 401, 403, 404, 413, 415, 503),
)
async def write_many(
    request: Request,
    rt: RuntimeDep,
    who: PrincipalDep,
    precision: PrecisionQ = "ms",
) -> Response:
    media = _media_type(request)
    if media in NDJSON_TYPES:  # one {"property_id", "points"} write per line
        writes: Any = ndjson_rows((await request.body()).splitlines())
    else:
        doc = await _json_body(request, media)
        writes = doc.get("writes") if isinstance(doc, dict) else None
    if not isinstance(writes, list) or len(writes) > 100:
        raise body_error("'writes' must be a list of at most 100 writes")
    items = []
    for index, item in enumerate(writes):
        if not isinstance(item, dict) or not isinstance(item.get("property_id"), str):
            raise body_error("each write names its 'property_id'", write=index)
        rest = {k: v for k, v in item.items() if k != "property_id"}
        items.append(PropertyWrite(item["property_id"], points_of(rest, write=index)))
    await ingest.write(rt, who, items, precision=precision)
    return Response(status_code=204)


_STREAM_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}
_POINTS_ANSWERS: dict[str, Any] = {
    "content": {
        "application/json": {},
        "text/csv": {"schema": {"type": "string"}},
        "application/x-ndjson": {"schema": {"type": "string"}},
    }
}


def _format(given: str | None, accept: str | None) -> str:
    if given:
        return given
    for part in (accept or "").split(","):
        media = part.split(";")[0].strip().lower()
        if media in CSV_TYPES:
            return "csv"
        if media in NDJSON_TYPES:
            return "ndjson"
    return "json"


def _functions(agg: str) -> tuple[Function, ...]:
    names = [a.strip() for a in agg.split(",") if a.strip()]
    unknown = [n for n in names if n not in FUNCTIONS]
    if unknown or not names:
        raise InvalidAggregate(
            f"'agg' takes a comma-separated list of {', '.join(FUNCTIONS)}; "
            f"not {', '.join(unknown)[:80] or 'empty'}."
        )
    if len(set(names)) != len(names):
        raise InvalidAggregate("'agg' names a function twice.")
    return tuple(names)  # type: ignore[arg-type]


def _fill(fill: str) -> str:
    if fill in ("none", "null", "previous", "linear"):
        return fill
    try:
        number = float(fill)
    except ValueError:
        number = float("nan")
    if number != number or number in (float("inf"), float("-inf")):
        raise InvalidAggregate("'fill' is none, null, previous, linear or a finite number.")
    return fill


async def _csv_stream(
    header: list[str], chunks: AsyncIterator[Sequence[Sequence[Any]]], kinds: list[str]
) -> AsyncIterator[bytes]:
    yield csv_line(header)
    async for rows in chunks:
        yield csv_lines(rows, kinds)


async def _ndjson_stream(chunks: AsyncIterator[Sequence[Sequence[Any]]]) -> AsyncIterator[bytes]:
    async for rows in chunks:
        yield ndjson_lines(rows)


@router.get(
    "/things/{thing_id}/properties/{property_id}/points",
    openapi_extra=policy("read", "property"),
    responses={200: _POINTS_ANSWERS, **error_responses(400, 401, 403, 404)},
)
async def read_points(
    thing_id: str,
    property_id: str,
    request: Request,
    session: SessionDep,
    rt: RuntimeDep,
    who: MaybePrincipalDep,
    from_: Annotated[str | None, Query(alias="from", max_length=64)] = None,
    to: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 100_000,
    order: Annotated[Literal["asc", "desc"], Query()] = "asc",
    cursor: Annotated[str | None, Query(max_length=256)] = None,
    precision: PrecisionQ = "ms",
    interval: Annotated[str | None, Query(max_length=16)] = None,
    agg: Annotated[str, Query(max_length=128)] = "avg",
    fill: Annotated[str, Query(max_length=32)] = "none",
    tz: Annotated[str, Query(max_length=64)] = "UTC",
    format: Annotated[Literal["json", "csv", "ndjson"] | None, Query()] = None,
    max_points: Annotated[int | None, Query(ge=3, le=100_000)] = None,
) -> Response:
    """Raw samples as rows ``[ts, v1, ...]`` in dimension order, or aggregates per time bucket
    with ``interval``; ``to`` is exclusive. CSV and NDJSON raw reads stream the whole range."""
    now = now_us()
    end = _time(to, precision, now + 1, "to")
    start = _time(from_, precision, end - DAY_US, "from")
    fmt = _format(format, request.headers.get("accept"))
    if interval is not None:
        try:
            step = parse_interval(interval)
        except BucketError as exc:
            raise InvalidAggregate(f"'interval': {exc}.") from None
        query = AggQuery(start, end, step, _functions(agg), _fill(fill), tz, precision, max_points)
        agg_answer = await service.read_aggregate(session, rt, who, thing_id, property_id, query)
        applied = agg_answer.query
        if fmt == "csv":
            body = csv_line(agg_answer.columns) + csv_lines(agg_answer.rows, agg_answer.kinds)
            return Response(body, media_type=_STREAM_TYPES["csv"])
        if fmt == "ndjson":
            return Response(ndjson_lines(agg_answer.rows), media_type=_STREAM_TYPES["ndjson"])
        return ORJSONResponse(
            {
                "property_id": agg_answer.property_id,
                "dimensions": [d.model_dump() for d in agg_answer.dimensions],
                "columns": agg_answer.columns,
                "rows": agg_answer.rows,
                "next_cursor": None,
                "downsampled": agg_answer.downsampled,
                "interval": str(applied.interval),
                "agg": list(applied.functions),
                "fill": applied.fill,
                "tz": applied.tz,
            }
        )
    if fmt != "json":
        if end <= start:
            raise InvalidRange("'to' must be after 'from'.")
        if max_points is not None:
            raise InvalidQuery("'max_points' downsamples JSON answers and aggregates only.")
        target = await service.open_stream(rt, who, thing_id, property_id)
        chunks = service.stream_rows(rt, target, start, end, precision)
        if fmt == "csv":
            header = ["ts", *(s.dimension_id for s in target.series)]
            kinds = [s.kind for s in target.series]
            return StreamingResponse(
                _csv_stream(header, chunks, kinds), media_type=_STREAM_TYPES["csv"]
            )
        return StreamingResponse(_ndjson_stream(chunks), media_type=_STREAM_TYPES["ndjson"])
    answer = await service.read_raw(
        session,
        rt,
        who,
        thing_id,
        property_id,
        RawQuery(start, end, limit, order == "desc", cursor, precision, max_points),
    )
    return ORJSONResponse(
        {
            "property_id": answer.property_id,
            "dimensions": [d.model_dump() for d in answer.dimensions],
            "columns": answer.columns,
            "rows": answer.rows,
            "next_cursor": answer.next_cursor,
            "downsampled": answer.downsampled,
        }
    )


@router.delete(
    "/things/{thing_id}/properties/{property_id}/points",
    openapi_extra=policy("write", "property"),
    responses=error_responses(400, 401, 403, 404, 503),
)
async def delete_points(
    thing_id: str,
    property_id: str,
    session: SessionDep,
    rt: RuntimeDep,
    who: PrincipalDep,
    from_: Annotated[str, Query(alias="from", max_length=64)],
    to: Annotated[str, Query(max_length=64)],
    precision: PrecisionQ = "ms",
) -> Response:
    """Delete the samples of every dimension in [from, to)."""
    start = _time(from_, precision, 0, "from")
    end = _time(to, precision, 0, "to")
    deleted = await service.delete_range(session, rt, who, thing_id, property_id, start, end)
    return ORJSONResponse({"deleted": deleted})
