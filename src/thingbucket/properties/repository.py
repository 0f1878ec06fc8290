"""Every SQL statement about property types, properties and their series (one per dimension)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from thingbucket.access.policy import visible_filter
from thingbucket.access.principal import Principal
from thingbucket.db.paging import page
from thingbucket.points.models import Series
from thingbucket.properties.models import Property, PropertyType, TypeDimension


class PropertyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, *rows: object) -> None:
        self._session.add_all(rows)

    # types

    async def type_(self, type_id: str, org_id: str) -> PropertyType | None:
        """The type ``type_id`` as ``org_id`` sees it: its own, or a built-in one."""
        stmt = sa.select(PropertyType).where(
            PropertyType.id == type_id,
            sa.or_(PropertyType.organization_id.is_(None), PropertyType.organization_id == org_id),
        )
        return (await self._session.scalars(stmt)).first()

    async def type_dimensions(self, type_pks: Sequence[str]) -> dict[str, list[TypeDimension]]:
        """Dimensions in value order, by the types' row keys."""
        stmt = (
            sa.select(TypeDimension)
            .where(TypeDimension.type_pk.in_(type_pks))
            .order_by(TypeDimension.type_pk, TypeDimension.position)
        )
        out: dict[str, list[TypeDimension]] = defaultdict(list)
        for dim in (await self._session.scalars(stmt)).all():
            out[dim.type_pk].append(dim)
        return out

    async def types(
        self, org_ids: sa.Select[str] | list[str] | None, cursor: str | None, limit: int
    ) -> tuple[Sequence[PropertyType], str | None]:
        """Built-in types and those of the given organizations (None: every organization)."""
        stmt = sa.select(PropertyType)
        if org_ids is not None:
            stmt = stmt.where(
                sa.or_(
                    PropertyType.organization_id.is_(None),
                    PropertyType.organization_id.in_(org_ids),
                )
            )
        return await page(self._session, stmt, PropertyType, cursor=cursor, limit=limit)

    # properties

    async def visible(self, who: Principal, property_id: str) -> Property | None:
        stmt = sa.select(Property).where(
            Property.id == property_id, visible_filter(who, Property, "property")
        )
        return await self._session.scalar(stmt)

    async def list_visible(
        self, who: Principal, thing_id: str, cursor: str | None, limit: int
    ) -> tuple[Sequence[Property], str | None]:
        stmt = sa.select(Property).where(
            Property.thing_id == thing_id, visible_filter(who, Property, "property")
        )
        return await page(self._session, stmt, Property, cursor=cursor, limit=limit)

    async def by_name(self, thing_id: str, name: str) -> Property | None:
        return await self._session.scalar(
            sa.select(Property).where(Property.thing_id == thing_id, Property.name == name)
        )

    async def count(self, *, thing_id: str | None = None, org_id: str | None = None) -> int:
        stmt = sa.select(sa.func.count()).select_from(Property)
        if thing_id is not None:
            stmt = stmt.where(Property.thing_id == thing_id)
        if org_id is not None:
            stmt = stmt.where(Property.organization_id == org_id)
        return int(await self._session.scalar(stmt) or 0)

    async def series(self, property_ids: Sequence[str]) -> dict[str, list[Series]]:
        stmt = (
            sa.select(Series)
            .where(Series.property_id.in_(property_ids))
            .order_by(Series.property_id, Series.position)
        )
        out: dict[str, list[Series]] = defaultdict(list)
        for row in (await self._session.scalars(stmt)).all():
            out[row.property_id].append(row)
        return out

    async def delete(self, prop: Property) -> None:
        await self._session.delete(prop)
