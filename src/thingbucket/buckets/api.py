"""Native routes: buckets, and API keys of buckets and organizations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from thingbucket.buckets import service
from thingbucket.buckets.schemas import (
    BucketCreate,
    BucketOut,
    BucketUpdate,
    KeyCreate,
    KeyCreated,
    KeyOut,
)
from thingbucket.kit.schemas import Page
from thingbucket.points import service as points
from thingbucket.web.deps import (
    CursorDep,
    LimitDep,
    PrincipalDep,
    RuntimeDep,
    SessionDep,
)
from thingbucket.web.responses import error_responses
from thingbucket.web.routing import StrictRoute, policy

router = APIRouter(prefix="/api/v1", route_class=StrictRoute)
NO_STORE = {"Cache-Control": "no-store"}


@router.post(
    "/buckets",
    status_code=201,
    response_model=BucketOut,
    openapi_extra=policy("create", "org"),
    responses=error_responses(400, 401, 403, 404, 409),
    tags=["buckets"],
)
async def create_bucket(body: BucketCreate, session: SessionDep, who: PrincipalDep) -> BucketOut:
    return BucketOut.model_validate(await service.create(session, who, body))


@router.get(
    "/buckets",
    response_model=Page[BucketOut],
    openapi_extra=policy("read", "bucket"),
    responses=error_responses(400, 401),
    tags=["buckets"],
)
async def list_buckets(
    session: SessionDep,
    who: PrincipalDep,
    limit: LimitDep,
    cursor: CursorDep = None,
    org_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[BucketOut]:
    items, next_cursor = await service.list_visible(session, who, org_id, cursor, limit)
    return Page(items=[BucketOut.model_validate(b) for b in items], next_cursor=next_cursor)


@router.get(
    "/buckets/{bucket_id}",
    response_model=BucketOut,
    openapi_extra=policy("read", "bucket"),
    responses=error_responses(401, 404),
    tags=["buckets"],
)
async def get_bucket(bucket_id: str, session: SessionDep, who: PrincipalDep) -> BucketOut:
    return await points.describe_bucket(session, who, bucket_id)


@router.patch(
    "/buckets/{bucket_id}",
    response_model=BucketOut,
    openapi_extra=policy("admin", "bucket"),
    responses=error_responses(400, 401, 403, 404, 409),
    tags=["buckets"],
)
async def update_bucket(
    bucket_id: str, body: BucketUpdate, session: SessionDep, who: PrincipalDep
) -> BucketOut:
    return BucketOut.model_validate(await service.update(session, who, bucket_id, body))


@router.delete(
    "/buckets/{bucket_id}",
    status_code=204,
    openapi_extra=policy("delete", "bucket"),
    responses=error_responses(401, 403, 404),
    tags=["buckets"],
)
async def delete_bucket(
    bucket_id: str, session: SessionDep, rt: RuntimeDep, who: PrincipalDep
) -> None:
    await service.delete(session, rt, who, bucket_id)


def _created(key: object, secret: str) -> KeyCreated:
    return KeyCreated(**KeyOut.model_validate(key).model_dump(), secret=secret)


@router.post(
    "/buckets/{bucket_id}/keys",
    status_code=201,
    response_model=KeyCreated,
    openapi_extra=policy("manage_credentials", "bucket"),
    responses=error_responses(400, 401, 403, 404),
    tags=["keys"],
)
async def create_bucket_key(
    bucket_id: str,
    body: KeyCreate,
    session: SessionDep,
    rt: RuntimeDep,
    who: PrincipalDep,
    response: Response,
) -> KeyCreated:
    response.headers.update(NO_STORE)
    key, secret = await service.create_key(session, rt, who, body, bucket_id=bucket_id)
    return _created(key, secret)


@router.get(
    "/buckets/{bucket_id}/keys",
    response_model=Page[KeyOut],
    openapi_extra=policy("manage_credentials", "bucket"),
    responses=error_responses(400, 401, 403, 404),
    tags=["keys"],
)
async def list_bucket_keys(
    bucket_id: str,
    session: SessionDep,
    who: PrincipalDep,
    limit: LimitDep,
    cursor: CursorDep = None,
) -> Page[KeyOut]:
    items, next_cursor = await service.list_keys(session, who, cursor, limit, bucket_id=bucket_id)
    return Page(items=[KeyOut.model_validate(k) for k in items], next_cursor=next_cursor)


@router.delete(
    "/buckets/{bucket_id}/keys/{key_id}",
    status_code=204,
    openapi_extra=policy("manage_credentials", "bucket"),
    responses=error_responses(401, 403, 404),
    tags=["keys"],
)
async def delete_bucket_key(
    bucket_id: str, key_id: str, session: SessionDep, who: PrincipalDep
) -> None:
    await service.delete_key(session, who, key_id, bucket_id=bucket_id)


@router.post(
    "/orgs/{org_id}/keys",
    status_code=201,
    response_model=KeyCreated,
    openapi_extra=policy("manage_credentials", "org"),
    responses=error_responses(400, 401, 403, 404),
    tags=["keys"],
)
async def create_org_key(
    org_id: str,
    body: KeyCreate,
    session: SessionDep,
    rt: RuntimeDep,
    who: PrincipalDep,
    response: Response,
) -> KeyCreated:
    response.headers.update(NO_STORE)
    key, secret = await service.create_key(session, rt, who, body, org_id=org_id)
    return _created(key, secret)


@router.get(
    "/orgs/{org_id}/keys",
    response_model=Page[KeyOut],
    openapi_extra=policy("manage_credentials", "org"),
    responses=error_responses(400, 401, 403, 404),
    tags=["keys"],
)
async def list_org_keys(
    org_id: str, session: SessionDep, who: PrincipalDep, limit: LimitDep, cursor: CursorDep = None
) -> Page[KeyOut]:
    items, next_cursor = await service.list_keys(session, who, cursor, limit, org_id=org_id)
    return Page(items=[KeyOut.model_validate(k) for k in items], next_cursor=next_cursor)


@router.delete(
    "/orgs/{org_id}/keys/{key_id}",
    status_code=204,
    openapi_extra=policy("manage_credentials", "org"),
    responses=error_responses(401, 403, 404),
    tags=["keys"],
)
async def delete_org_key(org_id: str, key_id: str, session: SessionDep, who: PrincipalDep) -> None:
    await service.delete_key(session, who, key_id, org_id=org_id)
