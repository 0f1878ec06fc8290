"""Every SQL statement about things, their keys and tokens, and aliases."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from thingbucket.access.policy import visible_filter
from thingbucket.access.principal import Principal
from thingbucket.db.base import utcnow
from thingbucket.db.paging import page
from thingbucket.things.models import Thing, ThingKey, ThingToken


class ThingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, row: object) -> None:
        self._session.add(row)

    async def visible(self, who: Principal, thing_id: str) -> Thing | None:
        stmt = sa.select(Thing).where(Thing.id == thing_id, visible_filter(who, Thing, "thing"))
        return await self._session.scalar(stmt)

    async def get(self, thing_id: str) -> Thing | None:
        return await self._session.get(Thing, thing_id)

    async def list_visible(
        self, who: Principal, bucket_id: str | None, cursor: str | None, limit: int
    ) -> tuple[Sequence[Thing], str | None]:
        stmt = sa.select(Thing).where(visible_filter(who, Thing, "thing"))
        if bucket_id is not None:
            stmt = stmt.where(Thing.bucket_id == bucket_id)
        return await page(self._session, stmt, Thing, cursor=cursor, limit=limit)

    async def count_in_org(self, org_id: str) -> int:
        stmt = sa.select(sa.func.count()).where(Thing.organization_id == org_id)
        return int(await self._session.scalar(stmt) or 0)

    async def delete(self, thing: Thing) -> None:
        await self._session.delete(thing)

    # keys

    async def active_keys(self, thing_id: str) -> Sequence[ThingKey]:
        now = utcnow()
        stmt = (
            sa.select(ThingKey)
            .where(
                ThingKey.thing_id == thing_id,
                sa.or_(ThingKey.expires_at.is_(None), ThingKey.expires_at > now),
            )
            .order_by(ThingKey.created_at, ThingKey.id)
        )
        return (await self._session.scalars(stmt)).all()

    async def keys(
        self, thing_id: str, cursor: str | None, limit: int
    ) -> tuple[Sequence[ThingKey], str | None]:
        stmt = sa.select(ThingKey).where(ThingKey.thing_id == thing_id)
        return await page(self._session, stmt, ThingKey, cursor=cursor, limit=limit)

    async def key(self, thing_id: str, key_id: str) -> ThingKey | None:
        return await self._session.scalar(
            sa.select(ThingKey).where(ThingKey.thing_id == thing_id, ThingKey.id == key_id)
        )

    async def delete_key(self, key: ThingKey) -> None:
        await self._session.delete(key)

    # tokens

    async def token_by_digests(self, digests: Sequence[bytes]) -> ThingToken | None:
        return await self._session.scalar(
            sa.select(ThingToken).where(ThingToken.digest.in_(digests))
        )

    async def tokens(
        self, thing_id: str, cursor: str | None, limit: int
    ) -> tuple[Sequence[ThingToken], str | None]:
        stmt = sa.select(ThingToken).where(ThingToken.thing_id == thing_id)
        return await page(self._session, stmt, ThingToken, cursor=cursor, limit=limit)

    async def token(self, thing_id: str, token_id: str) -> ThingToken | None:
        return await self._session.scalar(
            sa.select(ThingToken).where(ThingToken.thing_id == thing_id, ThingToken.id == token_id)
        )

    async def delete_token(self, token: ThingToken) -> None:
        await self._session.delete(token)

    async def touch_tokens(self, stamps: dict[str, datetime]) -> None:
        for token_id, when in stamps.items():
            await self._session.execute(
                sa.update(ThingToken)
                .where(ThingToken.id == token_id)
                .values(last_used_at=when, updated_at=ThingToken.updated_at)
            )
