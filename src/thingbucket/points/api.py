"""Native point routes: writes (one property or many), raw reads, range deletes.

Write bodies are parsed with orjson into lists (no model per point); the handler hands them to the
one ingest service and answers 204 only after the commit.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request, Response

from thingbucket.errors import InvalidJson, UnsupportedMedia
from thingbucket.ingest import service as ingest
from thingbucket.ingest.decoders import body_error, points_of
from thingbucket.ingest.service import PropertyWrite
from thingbucket.kit.time import Precision, TimestampError, now_us, parse_timestamp
from thingbucket.points import service
from thingbucket.points.errors import InvalidRange
from thingbucket.points.service import RawQuery
from thingbucket.web.deps import PrincipalDep, RuntimeDep, SessionDep
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
            }
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


async def _json_body(request: Request) -> Any:
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if content_type.lower() not in ("application/json", "") and not content_type.lower().endswith(
        "+json"
    ):
        raise UnsupportedMedia("Point bodies are application/json.")
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"The body is not valid JSON: {exc.msg}.") from None


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
    session: SessionDep,
    rt: RuntimeDep,
    who: PrincipalDep,
    precision: PrecisionQ = "ms",
) -> Response:
    rows = points_of(await _json_body(request))
    await ingest.write(
        session, rt, who, [PropertyWrite(property_id, rows, thing_id)], precision=precision
    )
    return Response(status_code=204)


@router.post(
    "/points",
    status_code=204,
    openapi_extra=policy("write", "property") | _MULTI_BODY,
    responses=error_responses(400, 401, 403, 404, 413, 415, 503),
)
async def write_many(
    request: Request,
    session: SessionDep,
    rt: RuntimeDep,
    who: PrincipalDep,
    precision: PrecisionQ = "ms",
) -> Response:
    doc = await _json_body(request)
    writes = doc.get("writes") if isinstance(doc, dict) else None
    if not isinstance(writes, list) or len(writes) > 100:
        raise body_error("'writes' must be a list of at most 100 writes")
    items = []
    for index, item in enumerate(writes):
        if not isinstance(item, dict) or not isinstance(item.get("property_id"), str):
            raise body_error("each write names its 'property_id'", write=index)
        rest = {k: v for k, v in item.items() if k != "property_id"}
        items.append(PropertyWrite(item["property_id"], points_of(rest, write=index)))
    await ingest.write(session, rt, who, items, precision=precision)
    return Response(status_code=204)


@router.get(
    "/things/{thing_id}/properties/{property_id}/points",
    openapi_extra=policy("read", "property"),
    responses=error_responses(400, 401, 403, 404),
)
async def read_points(
    thing_id: str,
    property_id: str,
    session: SessionDep,
    rt: RuntimeDep,
    who: PrincipalDep,
    from_: Annotated[str | None, Query(alias="from", max_length=64)] = None,
    to: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 100_000,
    order: Annotated[Literal["asc", "desc"], Query()] = "asc",
    cursor: Annotated[str | None, Query(max_length=256)] = None,
    precision: PrecisionQ = "ms",
    format: Annotated[Literal["json"], Query()] = "json",
) -> Response:
    """Raw samples as rows ``[ts, v1, ...]`` in dimension order; ``to`` is exclusive."""
    now = now_us()
    end = _time(to, precision, now + 1, "to")
    start = _time(from_, precision, end - DAY_US, "from")
    answer = await service.read_raw(
        session,
        rt,
        who,
        thing_id,
        property_id,
        RawQuery(start, end, limit, order == "desc", cursor, precision),
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
