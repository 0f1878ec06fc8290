"""The one policy: ``can()`` decides, ``visible_filter()`` filters listings, from the same rules.

Default rights follow security.md §4.4; grants (§4.5) add to them, inherited downwards
(org > bucket > thing > property). Nothing else in the code base decides access.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from thingbucket.access import repository as repo
from thingbucket.access.errors import AccessDenied
from thingbucket.access.models import Grant
from thingbucket.access.principal import Action, Principal, Ref
from thingbucket.db.base import utcnow

LEVELS = {"read": 1, "write": 2, "admin": 3}
ROLE_LEVELS = {"read": 1, "write": 2, "admin": 3}
_ACTION_LEVEL: dict[str, int] = {
    "read": 1,
    "write": 2,
    "admin": 3,
    "delete": 3,
    "manage_credentials": 3,
    "manage_groups": 3,
    "create": 2,
}


def _scope_ceiling(who: Principal) -> int:
    """A personal access token's scopes cap the person's rights."""
    if who.scopes is None:
        return 3
    return max((LEVELS[s] for s in who.scopes if s in LEVELS), default=0)


def _key_level(who: Principal, action: Action, ref: Ref) -> int:
    """Rights an API key has by its scope and role, before grants."""
    if who.public_only:
        return 0
    level = ROLE_LEVELS.get(who.role or "", 0)
    if who.bucket_id is None:  # organization key
        if ref.org_id != who.organization_id:
            return 0
        if ref.kind == "org":
            if action == "create":
                return 2 if level >= 2 else 0
            if action in ("manage_credentials", "manage_groups"):  # security.md §4.4
                return 3 if level >= 3 else 0
            return 1
        return level
    if ref.kind == "bucket" and ref.id == who.bucket_id:
        if action == "delete":  # a key never deletes the bucket it belongs to
            return 0
        return level
    if ref.bucket_id is not None and ref.bucket_id == who.bucket_id:
        return level
    return 0


def _thing_level(who: Principal, action: Action, ref: Ref) -> int:
    """A thing reads and updates itself and its properties; it never deletes or manages them."""
    if action in ("delete", "manage_credentials", "admin", "create"):
        return 0
    if (ref.kind == "thing" and ref.id == who.id) or ref.thing_id == who.id:
        return 2
    return 0


async def _person_level(session: AsyncSession, who: Principal, action: Action, ref: Ref) -> int:
    assert who.id is not None
    role = await repo.membership_role(session, ref.org_id, who.id)
    if role == "owner":
        return 3
    if role == "admin":
        return 0 if (ref.kind == "org" and action == "delete") else 3
    if role == "member" and ref.kind == "org" and action in ("read", "create"):
        return 2
    return 0


async def level_for(session: AsyncSession, who: Principal, action: Action, ref: Ref) -> int:
    """The highest level the principal holds for this action on this resource."""
    if who.instance_admin:
        return 3
    base = 0
    if who.kind == "person":
        base = await _person_level(session, who, action, ref)
    elif who.kind == "api_key":
        base = _key_level(who, action, ref)
    elif who.kind == "thing":
        base = _thing_level(who, action, ref)
    if base >= _ACTION_LEVEL[action]:
        return base
    granted = await repo.granted_level(
        session, subject_condition(who), ref.ancestors(), now=utcnow()
    )
    if ref.kind == "org" and action == "delete":
        granted = 0  # only owners delete organizations
    return max(base, granted)


async def can(session: AsyncSession, who: Principal, action: Action, ref: Ref) -> bool:
    needed = _ACTION_LEVEL[action]
    if needed > _scope_ceiling(who):
        return False
    if who.kind == "anonymous" and needed > 1:
        return False
    return await level_for(session, who, action, ref) >= needed


async def require(session: AsyncSession, who: Principal, action: Action, ref: Ref) -> None:
    """Raise AccessDenied (403) unless ``can``; call only on resources already visible."""
    if not await can(session, who, action, ref):
        raise AccessDenied(target=(ref.kind, ref.id), org_id=ref.org_id)


def _valid_now(now: datetime) -> ColumnElement[bool]:
    return sa.and_(
        sa.or_(Grant.valid_from.is_(None), Grant.valid_from <= now),
        sa.or_(Grant.valid_until.is_(None), Grant.valid_until > now),
    )


def subject_condition(who: Principal) -> ColumnElement[bool]:
    """Grants whose subject covers this principal."""
    public = Grant.subject_kind == "public"
    if who.kind == "anonymous" or (who.kind == "api_key" and who.public_only):
        return public
    assert who.id is not None
    clauses: list[ColumnElement[bool]] = [public]
    if who.kind == "person":
        clauses.append(sa.and_(Grant.subject_kind == "person", Grant.subject_id == who.id))
        clauses.append(
            sa.and_(
                Grant.subject_kind == "group",
                Grant.subject_id.in_(repo.groups_of("person", who.id)),
            )
        )
        clauses.append(
            sa.and_(
                Grant.subject_kind == "authenticated",
                Grant.organization_id.in_(repo.orgs_of_person(who.id)),
            )
        )
    elif who.kind == "thing":
        clauses.append(sa.and_(Grant.subject_kind == "thing", Grant.subject_id == who.id))
        clauses.append(
            sa.and_(
                Grant.subject_kind == "group", Grant.subject_id.in_(repo.groups_of("thing", who.id))
            )
        )
        clauses.append(
            sa.and_(
                Grant.subject_kind == "authenticated", Grant.organization_id == who.organization_id
            )
        )
    elif who.kind == "api_key":
        clauses.append(sa.and_(Grant.subject_kind == "api_key", Grant.subject_id == who.id))
        clauses.append(
            sa.and_(
                Grant.subject_kind == "authenticated", Grant.organization_id == who.organization_id
            )
        )
    return sa.or_(*clauses)


def _grant_on(model: Any, kind: str) -> ColumnElement[bool]:
    """A valid grant on a row of ``model`` (resource kind ``kind``) or on one of its ancestors."""
    targets = [sa.and_(Grant.resource_kind == kind, Grant.resource_id == model.id)]
    if kind != "org":
        targets.append(
            sa.and_(Grant.resource_kind == "org", Grant.resource_id == model.organization_id)
        )
    if kind in ("thing", "property"):
        targets.append(
            sa.and_(Grant.resource_kind == "bucket", Grant.resource_id == model.bucket_id)
        )
    if kind == "property":
        targets.append(sa.and_(Grant.resource_kind == "thing", Grant.resource_id == model.thing_id))
    return sa.or_(*targets)


def visible_filter(who: Principal, model: Any, kind: str) -> ColumnElement[bool]:
    """SQL condition: the principal holds some right on the row (security.md §4.3 "visible")."""
    if who.instance_admin:
        return sa.true()
    org_col = model.id if kind == "org" else model.organization_id
    clauses: list[ColumnElement[bool]] = []
    if who.kind == "person":
        assert who.id is not None
        if kind == "org":
            clauses.append(org_col.in_(repo.orgs_of_person(who.id)))
        else:
            clauses.append(org_col.in_(repo.orgs_of_person(who.id, roles=("owner", "admin"))))
    elif who.kind == "api_key" and not who.public_only:
        if who.bucket_id is None:
            clauses.append(org_col == who.organization_id)
        elif kind == "bucket":
            clauses.append(model.id == who.bucket_id)
        elif kind in ("thing", "property"):
            clauses.append(model.bucket_id == who.bucket_id)
    elif who.kind == "thing":
        if kind == "thing":
            clauses.append(model.id == who.id)
        elif kind == "property":
            clauses.append(model.thing_id == who.id)
    grant = (
        sa.select(Grant.id)
        .where(subject_condition(who), _valid_now(utcnow()), _grant_on(model, kind))
        .exists()
    )
    clauses.append(grant)
    return sa.or_(*clauses)
