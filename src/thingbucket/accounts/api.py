"""Native routes: the token endpoint, me, persons, organizations, members, personal tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Response

from thingbucket.accounts import service
from thingbucket.accounts.errors import InvalidGrant, UnsupportedGrantType
from thingbucket.accounts.schemas import (
    MemberCreate,
    MembershipOut,
    MeOut,
    OrgCreate,
    OrgOut,
    OrgUpdate,
    PersonalTokenCreate,
    PersonalTokenCreated,
    PersonalTokenOut,
    PersonOut,
    TokenAnswer,
)
from thingbucket.kit.schemas import Page
from thingbucket.web.deps import (
    CursorDep,
    LimitDep,
    PrincipalDep,
    RuntimeDep,
    SessionDep,
)
from thingbucket.web.responses import error_responses
from thingbucket.web.routing import OPEN, SELF, StrictRoute, policy

router = APIRouter(prefix="/api/v1", route_class=StrictRoute)
NO_STORE = {"Cache-Control": "no-store"}


@router.post(
    "/auth/token",
    response_model=TokenAnswer,
    openapi_extra=policy(OPEN, "-"),
    responses=error_responses(400, 429, 503),
    tags=["auth"],
)
async def token(
    session: SessionDep,
    rt: RuntimeDep,
    response: Response,
    grant_type: Annotated[str, Form(max_length=32)],
    username: Annotated[str | None, Form(max_length=320)] = None,
    password: Annotated[str | None, Form(max_length=1024)] = None,
    refresh_token: Annotated[str | None, Form(max_length=256)] = None,
) -> TokenAnswer:
    """OAuth2 password and refresh_token grants."""
    response.headers.update(NO_STORE)
    if grant_type == "password":
        if not username or password is None:
            raise InvalidGrant()
        pair = await service.login(session, rt, username, password)
    elif grant_type == "refresh_token":
        if not refresh_token:
            raise InvalidGrant()
        pair = await service.refresh(session, rt, refresh_token)
    else:
        raise UnsupportedGrantType()
    return TokenAnswer(
        access_token=pair.access_token, expires_in=pair.expires_in, refresh_token=pair.refresh_token
    )


@router.get(
    "/me",
    response_model=MeOut,
    response_model_exclude_none=True,
    openapi_extra=policy(SELF, "principal"),
    responses=error_responses(401),
    tags=["auth"],
)
async def me(session: SessionDep, who: PrincipalDep) -> MeOut:
    return await service.me(session, who)


@router.get(
    "/persons",
    response_model=Page[PersonOut],
    openapi_extra=policy("read", "person"),
    responses=error_responses(400, 401, 403),
    tags=["persons"],
)
async def list_persons(
    session: SessionDep,
    who: PrincipalDep,
    limit: LimitDep,
    cursor: CursorDep = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
) -> Page[PersonOut]:
    items, next_cursor = await service.list_persons(session, who, email, cursor, limit)
    return Page(items=[PersonOut.model_validate(p) for p in items], next_cursor=next_cursor)


@router.post(
    "/tokens",
    status_code=201,
    response_model=PersonalTokenCreated,
    openapi_extra=policy(SELF, "person"),
    responses=error_responses(400, 401, 403),
    tags=["auth"],
)
async def create_token(
    body: PersonalTokenCreate,
    session: SessionDep,
    rt: RuntimeDep,
    who: PrincipalDep,
    response: Response,
) -> PersonalTokenCreated:
    response.headers.update(NO_STORE)
    row, secret = await service.create_personal_token(
        session, rt, who, name=body.name, scopes=body.scopes, expires_at=body.expires_at
    )
    return PersonalTokenCreated(**PersonalTokenOut.model_validate(row).model_dump(), secret=secret)


@router.get(
    "/tokens",
    response_model=Page[PersonalTokenOut],
    openapi_extra=policy(SELF, "person"),
    responses=error_responses(400, 401, 403),
    tags=["auth"],
)
async def list_tokens(
    session: SessionDep, who: PrincipalDep, limit: LimitDep, cursor: CursorDep = None
) -> Page[PersonalTokenOut]:
    items, next_cursor = await service.list_personal_tokens(session, who, cursor, limit)
    return Page(items=[PersonalTokenOut.model_validate(t) for t in items], next_cursor=next_cursor)


@router.delete(
    "/tokens/{token_id}",
    status_code=204,
    openapi_extra=policy(SELF, "person"),
    responses=error_responses(401, 403, 404),
    tags=["auth"],
)
async def revoke_token(token_id: str, session: SessionDep, who: PrincipalDep) -> None:
    await service.revoke_personal_token(session, who, token_id)


@router.post(
    "/orgs",
    status_code=201,
    response_model=OrgOut,
    openapi_extra=policy(SELF, "org"),
    responses=error_responses(400, 401, 403),
    tags=["orgs"],
)
async def create_org(body: OrgCreate, session: SessionDep, who: PrincipalDep) -> OrgOut:
    return OrgOut.model_validate(await service.create_org(session, who, body))


@router.get(
    "/orgs",
    response_model=Page[OrgOut],
    openapi_extra=policy("read", "org"),
    responses=error_responses(400, 401),
    tags=["orgs"],
)
async def list_orgs(
    session: SessionDep, who: PrincipalDep, limit: LimitDep, cursor: CursorDep = None
) -> Page[OrgOut]:
    items, next_cursor = await service.list_orgs(session, who, cursor, limit)
    return Page(items=[OrgOut.model_validate(o) for o in items], next_cursor=next_cursor)


@router.get(
    "/orgs/{org_id}",
    response_model=OrgOut,
    openapi_extra=policy("read", "org"),
    responses=error_responses(401, 404),
    tags=["orgs"],
)
async def get_org(org_id: str, session: SessionDep, who: PrincipalDep) -> OrgOut:
    return OrgOut.model_validate(await service.get_org(session, who, org_id))


@router.patch(
    "/orgs/{org_id}",
    response_model=OrgOut,
    openapi_extra=policy("admin", "org"),
    responses=error_responses(400, 401, 403, 404),
    tags=["orgs"],
)
async def update_org(
    org_id: str, body: OrgUpdate, session: SessionDep, who: PrincipalDep
) -> OrgOut:
    return OrgOut.model_validate(await service.update_org(session, who, org_id, body))


@router.delete(
    "/orgs/{org_id}",
    status_code=204,
    openapi_extra=policy("delete", "org"),
    responses=error_responses(401, 403, 404),
    tags=["orgs"],
)
async def delete_org(org_id: str, session: SessionDep, rt: RuntimeDep, who: PrincipalDep) -> None:
    await service.delete_org(session, rt, who, org_id)


@router.post(
    "/orgs/{org_id}/members",
    status_code=201,
    response_model=MembershipOut,
    openapi_extra=policy("admin", "org"),
    responses=error_responses(400, 401, 403, 404, 409),
    tags=["orgs"],
)
async def add_member(
    org_id: str, body: MemberCreate, session: SessionDep, who: PrincipalDep
) -> MembershipOut:
    membership = await service.add_member(session, who, org_id, body.person_id, body.role)
    return MembershipOut.model_validate(membership)
