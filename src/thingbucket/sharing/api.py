"""Native routes for grants, groups and the audit log: parse, depend, one service call, return."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from thingbucket.access.models import Grant
from thingbucket.accounts.models import Group, GroupMember
from thingbucket.errors import Invalid
from thingbucket.kit.schemas import Out, Page
from thingbucket.sharing import service
from thingbucket.sharing.schemas import (
    GrantCreate,
    GrantOut,
    GroupCreate,
    GroupOut,
    MemberIn,
    MemberOut,
    ResourceOut,
    SubjectOut,
)
from thingbucket.web.deps import CursorDep, LimitDep, PrincipalDep, SessionDep
from thingbucket.web.responses import error_responses
from thingbucket.web.routing import SELF, StrictRoute, policy

router = APIRouter(prefix="/api/v1", route_class=StrictRoute)
_KINDS = ("org", "bucket", "thing", "property", "collection", "object")


def _grant_out(g: Grant) -> GrantOut:
    return GrantOut(
        id=g.id,
        created_at=g.created_at,
        updated_at=g.updated_at,
        organization_id=g.organization_id,
        subject=SubjectOut(kind=g.subject_kind, id=g.subject_id),
        action=g.action,
        resource=ResourceOut(kind=g.resource_kind, id=g.resource_id),
        expires_at=g.valid_until,
        created_by=g.created_by,
    )


def _group_out(group: Group, members: list[GroupMember]) -> GroupOut:
    return GroupOut(
        id=group.id,
        created_at=group.created_at,
        updated_at=group.updated_at,
        organization_id=group.organization_id,
        name=group.name,
        members=[MemberOut(kind=m.member_kind, id=m.member_id) for m in members],
    )


@router.post(
    "/grants",
    status_code=201,
    response_model=GrantOut,
    openapi_extra=policy("admin", "grant-resource"),
    responses=error_responses(400, 401, 403, 404),
    tags=["grants"],
)
async def create_grant(body: GrantCreate, session: SessionDep, who: PrincipalDep) -> GrantOut:
    """Give a subject read, write or admin on a resource (and everything below it)."""
    return _grant_out(await service.create_grant(session, who, body))


@router.get(
    "/grants",
    response_model=Page[GrantOut],
    openapi_extra=policy("admin", "grant-resource"),
    responses=error_responses(400, 401, 403, 404),
    tags=["grants"],
)
async def list_grants(
    session: SessionDep,
    who: PrincipalDep,
    limit: LimitDep,
    cursor: CursorDep = None,
    resource: Annotated[str | None, Query(max_length=100, pattern=r"^[a-z]+:.+$")] = None,
) -> Page[GrantOut]:
    """``?resource=<kind>:<id>``: the grants on it (for its admins); without: grants to you."""
    target = None
    if resource is not None:
        kind, _, resource_id = resource.partition(":")
        if kind not in _KINDS:
            raise Invalid(f"'resource' is <kind>:<id> with a kind among {', '.join(_KINDS)}.")
        target = (kind, resource_id)
    items, next_cursor = await service.list_grants(session, who, target, cursor, limit)
    return Page(items=[_grant_out(g) for g in items], next_cursor=next_cursor)


@router.delete(
    "/grants/{grant_id}",
    status_code=204,
    openapi_extra=policy("admin", "grant-resource"),
    responses=error_responses(401, 403, 404),
    tags=["grants"],
)
async def revoke_grant(grant_id: str, session: SessionDep, who: PrincipalDep) -> Response:
    await service.revoke_grant(session, who, grant_id)
    return Response(status_code=204)


@router.post(
    "/groups",
    status_code=201,
    response_model=GroupOut,
    openapi_extra=policy("admin", "org"),
    responses=error_responses(400, 401, 403, 404, 409),
    tags=["groups"],
)
async def create_group(body: GroupCreate, session: SessionDep, who: PrincipalDep) -> GroupOut:
    return _group_out(await service.create_group(session, who, body), [])


@router.get(
    "/groups",
    response_model=Page[GroupOut],
    openapi_extra=policy(SELF, "group"),
    responses=error_responses(400, 401),
    tags=["groups"],
)
async def list_groups(
    session: SessionDep, who: PrincipalDep, limit: LimitDep, cursor: CursorDep = None
) -> Page[GroupOut]:
    items, next_cursor = await service.list_groups(session, who, cursor, limit)
    return Page(items=[_group_out(g, m) for g, m in items], next_cursor=next_cursor)


@router.get(
    "/groups/{group_id}",
    response_model=GroupOut,
    openapi_extra=policy("read", "org"),
    responses=error_responses(401, 404),
    tags=["groups"],
)
async def get_group(group_id: str, session: SessionDep, who: PrincipalDep) -> GroupOut:
    return _group_out(*await service.get_group(session, who, group_id))


@router.delete(
    "/groups/{group_id}",
    status_code=204,
    openapi_extra=policy("admin", "org"),
    responses=error_responses(401, 403, 404),
    tags=["groups"],
)
async def delete_group(group_id: str, session: SessionDep, who: PrincipalDep) -> Response:
    await service.delete_group(session, who, group_id)
    return Response(status_code=204)


@router.post(
    "/groups/{group_id}/members",
    response_model=GroupOut,
    openapi_extra=policy("admin", "org"),
    responses=error_responses(400, 401, 403, 404),
    tags=["groups"],
)
async def add_member(
    group_id: str, body: MemberIn, session: SessionDep, who: PrincipalDep
) -> GroupOut:
    await service.add_member(session, who, group_id, body)
    return _group_out(*await service.get_group(session, who, group_id))


@router.delete(
    "/groups/{group_id}/members/{kind}/{member_id}",
    status_code=204,
    openapi_extra=policy("admin", "org"),
    responses=error_responses(400, 401, 403, 404),
    tags=["groups"],
)
async def remove_member(
    group_id: str, kind: str, member_id: str, session: SessionDep, who: PrincipalDep
) -> Response:
    await service.remove_member(session, who, group_id, kind, member_id)
    return Response(status_code=204)


class AuditOut(Out):
    id: int
    ts: datetime
    event: str
    outcome: str
    actor_kind: str | None
    actor_id: str | None
    credential_prefix: str | None
    organization_id: str | None
    target_kind: str | None
    target_id: str | None
    surface: str
    source_ip: str | None
    request_id: str | None
    reason: str | None
    count: int
    details: dict[str, Any] | None


@router.get(
    "/audit",
    response_model=Page[AuditOut],
    openapi_extra=policy("admin", "org"),
    responses=error_responses(400, 401, 403, 404),
    tags=["audit"],
)
async def audit(
    session: SessionDep,
    who: PrincipalDep,
    limit: LimitDep,
    cursor: CursorDep = None,
    org_id: Annotated[str | None, Query(max_length=64)] = None,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: Annotated[datetime | None, Query()] = None,
) -> Page[AuditOut]:
    """Security events (logins, credentials, grants, deletions, refusals), oldest first."""
    rows, next_cursor = await service.audit_events(session, who, org_id, from_, to, cursor, limit)
    return Page(items=[AuditOut.model_validate(e) for e in rows], next_cursor=next_cursor)
