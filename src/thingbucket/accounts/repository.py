"""Every SQL statement about persons, organizations, memberships, groups and person tokens."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from thingbucket.access.policy import visible_filter
from thingbucket.access.principal import Principal
from thingbucket.accounts.models import GroupMember, Membership, Organization, Person, PersonToken
from thingbucket.db.base import utcnow
from thingbucket.db.paging import page
from thingbucket.db.upsert import insert_if_absent


class AccountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, *rows: object) -> None:
        self._session.add_all(rows)

    async def person_by_email(self, email: str) -> Person | None:
        return await self._session.scalar(sa.select(Person).where(Person.email == email))

    async def person(self, person_id: str) -> Person | None:
        return await self._session.get(Person, person_id)

    async def count_persons(self) -> int:
        return int(await self._session.scalar(sa.select(sa.func.count()).select_from(Person)) or 0)

    async def visible_persons(
        self, who: Principal, email: str | None, cursor: str | None, limit: int
    ) -> tuple[Sequence[Person], str | None]:
        stmt = sa.select(Person)
        if not who.instance_admin:
            assert who.id is not None
            admin_orgs = sa.select(Membership.organization_id).where(
                Membership.person_id == who.id, Membership.role.in_(("owner", "admin"))
            )
            members = sa.select(Membership.person_id).where(
                Membership.organization_id.in_(admin_orgs)
            )
            stmt = stmt.where(sa.or_(Person.id == who.id, Person.id.in_(members)))
        if email:
            stmt = stmt.where(Person.email == email)
        return await page(self._session, stmt, Person, cursor=cursor, limit=limit)

    # organizations and memberships

    async def visible_org(self, who: Principal, org_id: str) -> Organization | None:
        stmt = sa.select(Organization).where(
            Organization.id == org_id, visible_filter(who, Organization, "org")
        )
        return await self._session.scalar(stmt)

    async def visible_orgs(
        self, who: Principal, cursor: str | None, limit: int
    ) -> tuple[Sequence[Organization], str | None]:
        stmt = sa.select(Organization).where(visible_filter(who, Organization, "org"))
        return await page(self._session, stmt, Organization, cursor=cursor, limit=limit)

    async def membership(self, org_id: str, person_id: str) -> Membership | None:
        return await self._session.get(Membership, (org_id, person_id))

    async def add_membership(self, org_id: str, person_id: str, role: str) -> bool:
        """True when added; False when the person was a member already (maybe just now)."""
        now = utcnow()
        return await insert_if_absent(
            self._session,
            Membership,
            {
                "organization_id": org_id,
                "person_id": person_id,
                "role": role,
                "created_at": now,
                "updated_at": now,
            },
        )

    async def count_owners(self, org_id: str) -> int:
        stmt = sa.select(sa.func.count()).where(
            Membership.organization_id == org_id, Membership.role == "owner"
        )
        return int(await self._session.scalar(stmt) or 0)

    async def orgs_with_roles(self, person_id: str) -> list[tuple[Organization, str]]:
        stmt = (
            sa.select(Organization, Membership.role)
            .join(Membership, Membership.organization_id == Organization.id)
            .where(Membership.person_id == person_id)
            .order_by(Organization.created_at, Organization.id)
        )
        return [(org, role) for org, role in (await self._session.execute(stmt)).all()]

    async def group_ids_of(self, kind: str, member_id: str) -> list[str]:
        stmt = sa.select(GroupMember.group_id).where(
            GroupMember.member_kind == kind, GroupMember.member_id == member_id
        )
        return list((await self._session.scalars(stmt)).all())

    async def delete_org(self, org: Organization) -> None:
        await self._session.delete(org)

    # person tokens

    async def token_by_digests(self, digests: Sequence[bytes]) -> PersonToken | None:
        return await self._session.scalar(
            sa.select(PersonToken).where(PersonToken.digest.in_(digests))
        )

    async def personal_tokens(
        self, person_id: str, cursor: str | None, limit: int
    ) -> tuple[Sequence[PersonToken], str | None]:
        stmt = sa.select(PersonToken).where(
            PersonToken.person_id == person_id,
            PersonToken.kind == "personal",
            PersonToken.revoked_at.is_(None),
        )
        return await page(self._session, stmt, PersonToken, cursor=cursor, limit=limit)

    async def personal_token(self, person_id: str, token_id: str) -> PersonToken | None:
        return await self._session.scalar(
            sa.select(PersonToken).where(
                PersonToken.id == token_id,
                PersonToken.person_id == person_id,
                PersonToken.kind == "personal",
                PersonToken.revoked_at.is_(None),
            )
        )

    async def revoke_chain(self, chain_id: str, now: datetime) -> None:
        await self._session.execute(
            sa.update(PersonToken)
            .where(PersonToken.chain_id == chain_id, PersonToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    async def touch_tokens(self, stamps: dict[str, datetime]) -> None:
        for token_id, when in stamps.items():
            await self._session.execute(
                sa.update(PersonToken)
                .where(PersonToken.id == token_id)
                .values(last_used_at=when, updated_at=PersonToken.updated_at)
            )
