"""Grants, groups and the audit listing: the rules. Flushes, never commits.

A grant is made and revoked by whoever holds ``admin`` on its resource (owners and admins of the
organization, the creator of a bucket or thing, or a holder of an admin grant). A resource the
caller cannot see answers the same 404 as an absent one. Every change is audited in its own unit
of work, and bumps the process's generation, so cached decisions end at once here and within
1 s elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from thingbucket.access import service as access
from thingbucket.access.models import AuditEvent, Grant
from thingbucket.access.principal import Principal, Ref
from thingbucket.accounts import service as accounts
from thingbucket.accounts.models import Group, GroupMember
from thingbucket.buckets import service as buckets
from thingbucket.db.base import utcnow
from thingbucket.errors import Conflict, Forbidden, Invalid, NotFound
from thingbucket.kit.ids import new_id
from thingbucket.properties import service as properties
from thingbucket.sharing.errors import (
    GrantNotFound,
    GroupNotFound,
    SubjectNotFound,
    UnsupportedResource,
)
from thingbucket.sharing.repository import SharingRepository
from thingbucket.sharing.schemas import GrantCreate, GroupCreate, MemberIn, SubjectIn
from thingbucket.things import service as things


class GroupNameTaken(Conflict):
    code = "GROUP_NAME_TAKEN"
    message = "The organization has a group of that name already."


async def resource_ref(session: AsyncSession, who: Principal, kind: str, resource_id: str) -> Ref:
    """A resource visible to ``who``, as a Ref; its kind's own 404 otherwise."""
    if kind == "org":
        return accounts.org_ref(await accounts.get_org(session, who, resource_id))
    if kind == "bucket":
        return buckets.bucket_ref(await buckets.get(session, who, resource_id))
    if kind == "thing":
        return things.thing_ref(await things.get(session, who, resource_id))
    if kind == "property":
        return await properties.ref_visible(session, who, resource_id)
    raise UnsupportedResource(f"Grants on {kind} resources come with collections and objects.")


async def target_orgs(
    session: AsyncSession, targets: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], str | None]:
    """The organization of each (kind, id), None where it does not exist (for the audit log).

    One query per kind, not per target: a flush may carry thousands of denials."""
    by_kind: dict[str, list[str]] = {}
    for kind, target_id in targets:
        by_kind.setdefault(kind, []).append(target_id)
    repo = SharingRepository(session)
    found: dict[tuple[str, str], str] = {}
    for kind, ids in by_kind.items():
        found.update(((kind, i), org) for i, org in (await repo.orgs_of(kind, ids)).items())
    return {target: found.get(target) for target in targets}


# --- grants ---------------------------------------------------------------------------------------


async def _check_subject(session: AsyncSession, subject: SubjectIn, org_id: str) -> None:
    repo = SharingRepository(session)
    found = True
    if subject.kind == "person":
        found = await accounts.lookup_person(session, subject.id or "") is not None
    elif subject.kind == "thing":
        found = await things.lookup(session, subject.id or "") is not None
    elif subject.kind == "group":
        group = await repo.group(subject.id or "")
        # A group shares within its own organization only.
        found = group is not None and group.organization_id == org_id
    elif subject.kind == "api_key":
        found = await repo.api_key_org(subject.id or "") is not None
    if not found:
        raise SubjectNotFound(f"No {subject.kind} {subject.id!r} to grant to.")


async def create_grant(session: AsyncSession, who: Principal, body: GrantCreate) -> Grant:
    ref = await resource_ref(session, who, body.resource.kind, body.resource.id)
    await access.require(session, who, "admin", ref)
    if body.expires_at is not None and _aware(body.expires_at) <= datetime.now(UTC):
        raise Invalid("'expires_at' lies in the past.")
    await _check_subject(session, body.subject, ref.org_id)
    grant = Grant(
        id=new_id(),
        organization_id=ref.org_id,
        subject_kind=body.subject.kind,
        subject_id=body.subject.id,
        action=body.action,
        resource_kind=ref.kind,
        resource_id=ref.id,
        valid_until=_aware(body.expires_at) if body.expires_at else None,
        created_by=who.label,
    )
    session.add(grant)
    access.record(
        session,
        "grant.created",
        who,
        org_id=ref.org_id,
        target=(ref.kind, ref.id),
        details={
            "grant": grant.id,
            "subject": f"{body.subject.kind}:{body.subject.id or ''}",
            "action": body.action,
        },
    )
    await session.flush()
    return grant


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


async def list_grants(
    session: AsyncSession,
    who: Principal,
    resource: tuple[str, str] | None,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[Grant], str | None]:
    """The grants on a resource (its admins), or without one the grants made to the caller."""
    repo = SharingRepository(session)
    if resource is None:
        return await repo.grants_to(who, cursor, limit)
    ref = await resource_ref(session, who, *resource)
    await access.require(session, who, "admin", ref)
    return await repo.grants_on(ref.kind, ref.id, cursor, limit)


async def revoke_grant(session: AsyncSession, who: Principal, grant_id: str) -> None:
    repo = SharingRepository(session)
    grant = await repo.grant(grant_id)
    if grant is None:
        raise GrantNotFound()
    try:
        ref = await resource_ref(session, who, grant.resource_kind, grant.resource_id)
    except (NotFound, UnsupportedResource):
        # As unknown as the resource it is on.
        raise GrantNotFound(target=("grant", grant.id), org_id=grant.organization_id) from None
    if not await access.can(session, who, "admin", ref):
        raise GrantNotFound(target=("grant", grant.id), org_id=grant.organization_id)
    await repo.delete_grant(grant)
    access.record(
        session,
        "grant.revoked",
        who,
        org_id=grant.organization_id,
        target=(grant.resource_kind, grant.resource_id),
        details={"grant": grant.id, "subject": f"{grant.subject_kind}:{grant.subject_id or ''}"},
    )
    await session.flush()


# --- groups ---------------------------------------------------------------------------------------


async def _group(session: AsyncSession, who: Principal, group_id: str, action: str) -> Group:
    """A group whose organization ``who`` may read (any member), or manage (owners, admins,
    organization admin keys)."""
    group = await SharingRepository(session).group(group_id)
    if group is None:
        raise GroupNotFound()
    org = Ref("org", group.organization_id, group.organization_id)
    if not await access.can(session, who, "read", org):
        raise GroupNotFound(target=("group", group.id), org_id=group.organization_id)
    if action == "admin" and not await access.can(session, who, "manage_groups", org):
        raise Forbidden("Only the organization's owners and admins manage its groups.")
    return group


async def create_group(session: AsyncSession, who: Principal, body: GroupCreate) -> Group:
    if who.kind == "person" and who.id is not None:
        org_id = body.org_id or await accounts.personal_org_id(session, who.id)
    elif who.kind == "api_key" and who.bucket_id is None and who.role == "admin":
        org_id = body.org_id or who.organization_id or ""
    else:  # things and every other key (§4.4); told before any lookup
        raise Forbidden("Groups are made by persons and organization admin keys.")
    org = await accounts.require_org(session, who, org_id, "manage_groups")
    repo = SharingRepository(session)
    if await repo.group_named(org.id, body.name) is not None:
        raise GroupNameTaken()
    group = Group(
        id=new_id(),
        organization_id=org.id,
        name=body.name,
        owner_id=who.id if who.kind == "person" else None,
    )
    repo.add(group)
    access.record(session, "group.created", who, org_id=org.id, target=("group", group.id))
    await session.flush()
    return group


async def get_group(
    session: AsyncSession, who: Principal, group_id: str
) -> tuple[Group, list[GroupMember]]:
    group = await _group(session, who, group_id, "read")
    return group, (await SharingRepository(session).members([group.id]))[group.id]


async def list_groups(
    session: AsyncSession, who: Principal, cursor: str | None, limit: int
) -> tuple[list[tuple[Group, list[GroupMember]]], str | None]:
    repo = SharingRepository(session)
    groups, next_cursor = await repo.groups_visible(who, cursor, limit)
    members = await repo.members([g.id for g in groups])
    return [(g, members[g.id]) for g in groups], next_cursor


async def add_member(session: AsyncSession, who: Principal, group_id: str, body: MemberIn) -> None:
    group = await _group(session, who, group_id, "admin")
    if body.kind == "person":
        exists = await accounts.lookup_person(session, body.id) is not None
    else:
        thing = await things.lookup(session, body.id)
        exists = thing is not None and thing.organization_id == group.organization_id
    if not exists:
        raise SubjectNotFound(f"No {body.kind} {body.id!r} to add to this group.")
    repo = SharingRepository(session)
    if await repo.add_member(group.id, body.kind, body.id):
        access.record(
            session,
            "group.member_added",
            who,
            org_id=group.organization_id,
            target=("group", group.id),
            details={"member": f"{body.kind}:{body.id}"},
        )
    await session.flush()


async def remove_member(
    session: AsyncSession, who: Principal, group_id: str, kind: str, member_id: str
) -> None:
    group = await _group(session, who, group_id, "admin")
    repo = SharingRepository(session)
    member = await repo.member(group.id, kind, member_id)
    if member is None:
        raise SubjectNotFound(f"No {kind} {member_id!r} in this group.")
    await repo.delete(member)
    access.record(
        session,
        "group.member_removed",
        who,
        org_id=group.organization_id,
        target=("group", group.id),
        details={"member": f"{kind}:{member_id}"},
    )
    await session.flush()


async def delete_group(session: AsyncSession, who: Principal, group_id: str) -> None:
    group = await _group(session, who, group_id, "admin")
    await access.forget_subject(session, "group", group.id)
    await SharingRepository(session).delete(group)
    access.record(
        session, "group.deleted", who, org_id=group.organization_id, target=("group", group.id)
    )
    await session.flush()


# --- audit ----------------------------------------------------------------------------------------


async def audit_events(
    session: AsyncSession,
    who: Principal,
    org_id: str | None,
    start: datetime | None,
    end: datetime | None,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[AuditEvent], str | None]:
    """Events of an organization for its owners and admins; of every org for instance admins."""
    if org_id is None and not who.instance_admin:
        if who.kind != "person" or who.id is None:
            raise Forbidden("Name the organization ('org_id').")
        org_id = await accounts.personal_org_id(session, who.id)
    if org_id is not None:
        await accounts.require_org(session, who, org_id, "admin")
    now = utcnow()
    return await SharingRepository(session).audit(
        org_id,
        _aware(start) if start else datetime(1970, 1, 1, tzinfo=UTC),
        _aware(end) if end else now,
        cursor,
        limit,
    )
