"""Every SQL statement about buckets and API keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from thingbucket.access.policy import visible_filter
from thingbucket.access.principal import Principal
from thingbucket.buckets.models import ApiKey, Bucket
from thingbucket.db.paging import page


class BucketRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, row: object) -> None:
        self._session.add(row)

    async def visible(self, who: Principal, bucket_id: str) -> Bucket | None:
        stmt = sa.select(Bucket).where(
            Bucket.id == bucket_id, visible_filter(who, Bucket, "bucket")
        )
        return await self._session.scalar(stmt)

    async def list_visible(
        self, who: Principal, org_id: str | None, cursor: str | None, limit: int
    ) -> tuple[Sequence[Bucket], str | None]:
        stmt = sa.select(Bucket).where(visible_filter(who, Bucket, "bucket"))
        if org_id is not None:
            stmt = stmt.where(Bucket.organization_id == org_id)
        return await page(self._session, stmt, Bucket, cursor=cursor, limit=limit)

    async def by_name(self, org_id: str, name: str) -> Bucket | None:
        return await self._session.scalar(
            sa.select(Bucket).where(Bucket.organization_id == org_id, Bucket.name == name)
        )

    async def count_in_org(self, org_id: str) -> int:
        stmt = sa.select(sa.func.count()).where(Bucket.organization_id == org_id)
        return int(await self._session.scalar(stmt) or 0)

    async def retention_days(self, bucket_id: str) -> int | None:
        return await self._session.scalar(
            sa.select(Bucket.retention_days).where(Bucket.id == bucket_id)
        )

    async def delete(self, bucket: Bucket) -> None:
        await self._session.delete(bucket)

    # keys

    async def key_by_digests(self, digests: Sequence[bytes]) -> ApiKey | None:
        return await self._session.scalar(sa.select(ApiKey).where(ApiKey.digest.in_(digests)))

    async def keys(
        self, org_id: str, bucket_id: str | None, cursor: str | None, limit: int
    ) -> tuple[Sequence[ApiKey], str | None]:
        stmt = sa.select(ApiKey).where(ApiKey.organization_id == org_id)
        stmt = stmt.where(
            ApiKey.bucket_id.is_(None) if bucket_id is None else ApiKey.bucket_id == bucket_id
        )
        return await page(self._session, stmt, ApiKey, cursor=cursor, limit=limit)

    async def key(self, org_id: str, bucket_id: str | None, key_id: str) -> ApiKey | None:
        stmt = sa.select(ApiKey).where(ApiKey.id == key_id, ApiKey.organization_id == org_id)
        stmt = stmt.where(
            ApiKey.bucket_id.is_(None) if bucket_id is None else ApiKey.bucket_id == bucket_id
        )
        return await self._session.scalar(stmt)

    async def count_keys(self, org_id: str, bucket_id: str | None) -> int:
        stmt = sa.select(sa.func.count()).where(ApiKey.organization_id == org_id)
        stmt = stmt.where(
            ApiKey.bucket_id.is_(None) if bucket_id is None else ApiKey.bucket_id == bucket_id
        )
        return int(await self._session.scalar(stmt) or 0)

    async def delete_key(self, key: ApiKey) -> None:
        await self._session.delete(key)

    async def touch_keys(self, stamps: dict[str, datetime]) -> None:
        for key_id, when in stamps.items():
            await self._session.execute(
                sa.update(ApiKey)
                .where(ApiKey.id == key_id)
                .values(last_used_at=when, updated_at=ApiKey.updated_at)
            )
