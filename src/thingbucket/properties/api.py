"""Native routes: property types and properties."""

from __future__ import annotations

from fastapi import APIRouter

from thingbucket.kit.schemas import Page
from thingbucket.properties import service
from thingbucket.properties.schemas import (
    PropertyCreate,
    PropertyOut,
    PropertyTypeCreate,
    PropertyTypeOut,
    PropertyUpdate,
)
from thingbucket.web.deps import (
    CursorDep,
    LimitDep,
    MaybePrincipalDep,
    PrincipalDep,
    RuntimeDep,
    SessionDep,
)
from thingbucket.web.responses import error_responses
from thingbucket.web.routing import StrictRoute, policy

router = APIRouter(prefix="/api/v1", route_class=StrictRoute, tags=["properties"])


@router.get(
    "/property-types",
    response_model=Page[PropertyTypeOut],
    openapi_extra=policy("read", "property_type"),
    responses=error_responses(400, 401),
)
async def list_types(
    session: SessionDep, who: PrincipalDep, limit: LimitDep, cursor: CursorDep = None
) -> Page[PropertyTypeOut]:
    items, next_cursor = await service.list_types(session, who, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.post(
    "/property-types",
    status_code=201,
    response_model=PropertyTypeOut,
    openapi_extra=policy("admin", "org"),
    responses=error_responses(400, 401, 403, 404, 409),
)
async def create_type(
    body: PropertyTypeCreate, session: SessionDep, who: PrincipalDep
) -> PropertyTypeOut:
    return await service.create_type(session, who, body)


@router.post(
    "/things/{thing_id}/properties",
    status_code=201,
    response_model=PropertyOut,
    openapi_extra=policy("write", "thing"),
    responses=error_responses(400, 401, 403, 404, 409),
)
async def create_property(
    thing_id: str, body: PropertyCreate, session: SessionDep, who: PrincipalDep
) -> PropertyOut:
    return await service.create(session, who, thing_id, body)


@router.get(
    "/things/{thing_id}/properties",
    response_model=Page[PropertyOut],
    openapi_extra=policy("read", "property"),
    responses=error_responses(400, 401),
)
async def list_properties(
    thing_id: str, session: SessionDep, who: PrincipalDep, limit: LimitDep, cursor: CursorDep = None
) -> Page[PropertyOut]:
    items, next_cursor = await service.list_visible(session, who, thing_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.get(
    "/things/{thing_id}/properties/{property_id}",
    response_model=PropertyOut,
    openapi_extra=policy("read", "property"),
    responses=error_responses(401, 404),
)
async def get_property(
    thing_id: str, property_id: str, session: SessionDep, who: MaybePrincipalDep
) -> PropertyOut:
    """Also for anonymous callers where a ``public`` grant allows (else 401, as everywhere)."""
    return await service.get(session, who, thing_id, property_id)


@router.patch(
    "/things/{thing_id}/properties/{property_id}",
    response_model=PropertyOut,
    openapi_extra=policy("write", "property"),
    responses=error_responses(400, 401, 403, 404, 409),
)
async def update_property(
    thing_id: str,
    property_id: str,
    body: PropertyUpdate,
    session: SessionDep,
    who: PrincipalDep,
) -> PropertyOut:
    return await service.update(session, who, thing_id, property_id, body)


@router.delete(
    "/things/{thing_id}/properties/{property_id}",
    status_code=204,
    openapi_extra=policy("delete", "property"),
    responses=error_responses(401, 403, 404),
)
async def delete_property(
    thing_id: str, property_id: str, session: SessionDep, rt: RuntimeDep, who: PrincipalDep
) -> None:
    await service.delete(session, rt, who, thing_id, property_id)
