"""Every SQL statement about grants, groups and audit listings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from thingbucket.access import repository as access_repo
from thingbucket.access.models import AuditEvent, Grant
from thingbucket.access.principal import Principal
from thingbucket.accounts.models import Group, GroupMember, Organization
from thingbucket.buckets.models import ApiKey, Bucket
from thingbucket.db.base import utcnow
from thingbucket.db.paging import page
from thingbucket.db.upsert import insert_if_absent
from thingbucket.kit.pagination import decode_cursor, encode_cursor
from thingbucket.properties.models import Property
from thingbucket.things.models import Thing

# The kinds whose rows carry their organization, for the audit log's denials.
_OWNED: dict[str, tuple[Any, Any]] = {
    "org": (Organization.id, Organization.id),
    "bucket": (Bucket.id, Bucket.organization_id),
    "thing": (Thing.id, Thing.organization_id),
    "property": (Property.id, Property.organization_id),
    "grant": (Grant.id, Grant.organization_id),
    "group": (Group.id, Group.organization_id),
}
_IN_CHUNK = 500  # ids per IN list, under SQLite's bound-parameter limit


class SharingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def orgs_of(self, kind: str, ids: Sequence[str]) -> dict[str, str]:
        """The organization of each existing resource of ``kind`` among ``ids``."""
        columns = _OWNED.get(kind)
        if columns is None:
            return {}
        key, org = columns
        out: dict[str, str] = {}
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            rows = await self._session.execute(sa.select(key, org).where(key.in_(chunk)))
            out.update((str(i), str(o)) for i, o in rows)
        return out

    # --- grants ---
    async def grant(self, grant_id: str) -> Grant | None:
        return await self._session.get(Grant, grant_id)

    async def grants_on(
        self, kind: str, resource_id: str, cursor: str | None, limit: int
    ) -> tuple[Sequence[Grant], str | None]:
        stmt = sa.select(Grant).where(Grant.resource_kind == kind, Grant.resource_id == resource_id)
        return await page(self._session, stmt, Grant, cursor=cursor, limit=limit)

    async def grants_to(
        self, who: Principal, cursor: str | None, limit: int
    ) -> tuple[Sequence[Grant], str | None]:
        stmt = sa.select(Grant).where(
            Grant.subject_kind == who.kind, Grant.subject_id == (who.id or "")
        )
        return await page(self._session, stmt, Grant, cursor=cursor, limit=limit)

    async def delete_grant(self, grant: Grant) -> None:
        await self._session.delete(grant)

    async def api_key_org(self, key_id: str) -> str | None:
        return await self._session.scalar(
            sa.select(ApiKey.organization_id).where(ApiKey.id == key_id)
        )

    # --- groups ---
    async def group(self, group_id: str) -> Group | None:
        return await self._session.get(Group, group_id)

    async def group_named(self, org_id: str, name: str) -> Group | None:
        return await self._session.scalar(
            sa.select(Group).where(Group.organization_id == org_id, Group.name == name)
        )

    async def groups_visible(
        self, who: Principal, cursor: str | None, limit: int
    ) -> tuple[Sequence[Group], str | None]:
        stmt = sa.select(Group)
        if not who.instance_admin:
            if who.kind != "person" or who.id is None:
                return [], None
            stmt = stmt.where(Group.organization_id.in_(access_repo.orgs_of_person(who.id)))
        return await page(self._session, stmt, Group, cursor=cursor, limit=limit)

    async def members(self, group_ids: Sequence[str]) -> dict[str, list[GroupMember]]:
        out: dict[str, list[GroupMember]] = {g: [] for g in group_ids}
        if group_ids:
            stmt = (
                sa.select(GroupMember)
                .where(GroupMember.group_id.in_(group_ids))
                .order_by(GroupMember.created_at, GroupMember.member_id)
            )
            for m in (await self._session.scalars(stmt)).all():
                out[m.group_id].append(m)
        return out

    async def member(self, group_id: str, kind: str, member_id: str) -> GroupMember | None:
        return await self._session.get(GroupMember, (group_id, kind, member_id))

    async def add_member(self, group_id: str, kind: str, member_id: str) -> bool:
        """True when added; False when it was a member already (maybe just now)."""
        values = {"group_id": group_id, "member_kind": kind, "member_id": member_id}
        return await insert_if_absent(
            self._session, GroupMember, {**values, "created_at": utcnow()}
        )

    def add(self, *rows: object) -> None:
        self._session.add_all(rows)

    async def delete(self, row: object) -> None:
        await self._session.delete(row)

    # --- audit ---
    async def audit(
        self,
        org_id: str | None,
        start: datetime,
        end: datetime,
        cursor: str | None,
        limit: int,
    ) -> tuple[Sequence[AuditEvent], str | None]:
        stmt = sa.select(AuditEvent).where(AuditEvent.ts >= start, AuditEvent.ts < end)
        if org_id is not None:
            stmt = stmt.where(AuditEvent.organization_id == org_id)
        if cursor:
            (last_id,) = decode_cursor(cursor, (int,))
            stmt = stmt.where(AuditEvent.id > last_id)
        rows = (await self._session.scalars(stmt.order_by(AuditEvent.id).limit(limit + 1))).all()
        if len(rows) <= limit:
            return rows, None
        return rows[:limit], encode_cursor(rows[limit - 1].id)
