"""Native routes: things, their public keys and device tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from thingbucket.kit.schemas import Page
from thingbucket.things import service
from thingbucket.things.schemas import (
    ThingCreate,
    ThingKeyCreate,
    ThingKeyOut,
    ThingOut,
    ThingTokenCreate,
    ThingTokenCreated,
    ThingTokenOut,
    ThingUpdate,
)
from thingbucket.web.deps import (
    CursorDep,
    LimitDep,
    PrincipalDep,
    RuntimeDep,
    SessionDep,
)
from thingbucket.web.responses import error_responses
from thingbucket.web.routing import StrictRoute, policy

router = APIRouter(prefix="/api/v1", route_class=StrictRoute, tags=["things"])


@router.post(
    "/things",
    status_code=201,
    response_model=ThingOut,
    openapi_extra=policy("write", "bucket"),
    responses=error_responses(400, 401, 403, 404),
)
async def create_thing(body: ThingCreate, session: SessionDep, who: PrincipalDep) -> ThingOut:
    return ThingOut.model_validate(await service.create(session, who, body))


@router.get(
    "/things",
    response_model=Page[ThingOut],
    openapi_extra=policy("read", "thing"),
    responses=error_responses(400, 401),
)
async def list_things(
    session: SessionDep,
    who: PrincipalDep,
    limit: LimitDep,
    cursor: CursorDep = None,
    bucket_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[ThingOut]:
    items, next_cursor = await service.list_visible(session, who, bucket_id, cursor, limit)
    return Page(items=[ThingOut.model_validate(t) for t in items], next_cursor=next_cursor)


@router.get(
    "/things/{thing_id}",
    response_model=ThingOut,
    openapi_extra=policy("read", "thing"),
    responses=error_responses(401, 404),
)
async def get_thing(thing_id: str, session: SessionDep, who: PrincipalDep) -> ThingOut:
    return ThingOut.model_validate(await service.get(session, who, thing_id))


@router.patch(
    "/things/{thing_id}",
    response_model=ThingOut,
    openapi_extra=policy("write", "thing"),
    responses=error_responses(400, 401, 403, 404),
)
async def update_thing(
    thing_id: str, body: ThingUpdate, session: SessionDep, rt: RuntimeDep, who: PrincipalDep
) -> ThingOut:
    return ThingOut.model_validate(await service.update(session, rt, who, thing_id, body))


@router.delete(
    "/things/{thing_id}",
    status_code=204,
    openapi_extra=policy("delete", "thing"),
    responses=error_responses(401, 403, 404),
)
async def delete_thing(
    thing_id: str, session: SessionDep, rt: RuntimeDep, who: PrincipalDep
) -> None:
    await service.delete(session, rt, who, thing_id)


@router.post(
    "/things/{thing_id}/keys",
    status_code=201,
    response_model=ThingKeyOut,
    openapi_extra=policy("manage_credentials", "thing"),
    responses=error_responses(400, 401, 403, 404),
)
async def add_key(
    thing_id: str, body: ThingKeyCreate, session: SessionDep, who: PrincipalDep
) -> ThingKeyOut:
    key = await service.add_key(session, who, thing_id, body.public_key, body.expires_at)
    return ThingKeyOut.model_validate(key)


@router.get(
    "/things/{thing_id}/keys",
    response_model=Page[ThingKeyOut],
    openapi_extra=policy("manage_credentials", "thing"),
    responses=error_responses(400, 401, 403, 404),
)
async def list_keys(
    thing_id: str, session: SessionDep, who: PrincipalDep, limit: LimitDep, cursor: CursorDep = None
) -> Page[ThingKeyOut]:
    items, next_cursor = await service.list_keys(session, who, thing_id, cursor, limit)
    return Page(items=[ThingKeyOut.model_validate(k) for k in items], next_cursor=next_cursor)


@router.delete(
    "/things/{thing_id}/keys/{key_id}",
    status_code=204,
    openapi_extra=policy("manage_credentials", "thing"),
    responses=error_responses(401, 403, 404),
)
async def delete_key(thing_id: str, key_id: str, session: SessionDep, who: PrincipalDep) -> None:
    await service.delete_key(session, who, thing_id, key_id)


@router.post(
    "/things/{thing_id}/tokens",
    status_code=201,
    response_model=ThingTokenCreated,
    openapi_extra=policy("manage_credentials", "thing"),
    responses=error_responses(400, 401, 403, 404),
)
async def create_token(
    thing_id: str,
    session: SessionDep,
    rt: RuntimeDep,
    who: PrincipalDep,
    response: Response,
    body: ThingTokenCreate | None = None,
) -> ThingTokenCreated:
    response.headers["Cache-Control"] = "no-store"
    body = body or ThingTokenCreate()
    token, secret = await service.create_token(
        session, rt, who, thing_id, body.name, body.expires_at
    )
    return ThingTokenCreated(**ThingTokenOut.model_validate(token).model_dump(), secret=secret)


@router.get(
    "/things/{thing_id}/tokens",
    response_model=Page[ThingTokenOut],
    openapi_extra=policy("manage_credentials", "thing"),
    responses=error_responses(400, 401, 403, 404),
)
async def list_tokens(
    thing_id: str, session: SessionDep, who: PrincipalDep, limit: LimitDep, cursor: CursorDep = None
) -> Page[ThingTokenOut]:
    items, next_cursor = await service.list_tokens(session, who, thing_id, cursor, limit)
    return Page(items=[ThingTokenOut.model_validate(t) for t in items], next_cursor=next_cursor)


@router.delete(
    "/things/{thing_id}/tokens/{token_id}",
    status_code=204,
    openapi_extra=policy("manage_credentials", "thing"),
    responses=error_responses(401, 403, 404),
)
async def delete_token(
    thing_id: str, token_id: str, session: SessionDep, rt: RuntimeDep, who: PrincipalDep
) -> None:
    await service.delete_token(session, rt, who, thing_id, token_id)
