"""Property types and properties: the rules. Flushes, never commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from thingbucket.access import quotas
from thingbucket.access import repository as access_repo
from thingbucket.access import service as access
from thingbucket.access.principal import Principal, Ref
from thingbucket.accounts import service as accounts
from thingbucket.buckets import service as buckets
from thingbucket.errors import Forbidden, Invalid
from thingbucket.kit.ids import new_id
from thingbucket.points.models import Series
from thingbucket.points.purge import purge_after_commit
from thingbucket.properties.errors import (
    PropertyNameTaken,
    PropertyNotFound,
    PropertyTypeExists,
    PropertyTypeNotFound,
)
from thingbucket.properties.models import Property, PropertyType, TypeDimension
from thingbucket.properties.repository import PropertyRepository
from thingbucket.properties.schemas import (
    DimensionIn,
    DimensionOut,
    PropertyCreate,
    PropertyOut,
    PropertyTypeCreate,
    PropertyTypeOut,
    PropertyUpdate,
)
from thingbucket.runtime import Runtime
from thingbucket.things import service as things


def property_ref(prop: Property) -> Ref:
    return Ref(
        kind="property",
        id=prop.id,
        org_id=prop.organization_id,
        bucket_id=prop.bucket_id,
        thing_id=prop.thing_id,
    )


def _dimension_out(d: Series | TypeDimension) -> DimensionOut:
    return DimensionOut(
        id=d.dimension_id,
        name=d.name,
        description=d.description,
        unit=d.unit,
        kind=d.kind,
        media_types=list(d.media_types or []),
        labels=list(d.labels or []),
    )


def _property_out(prop: Property, series: Sequence[Series]) -> PropertyOut:
    return PropertyOut(
        id=prop.id,
        created_at=prop.created_at,
        updated_at=prop.updated_at,
        organization_id=prop.organization_id,
        bucket_id=prop.bucket_id,
        thing_id=prop.thing_id,
        name=prop.name,
        description=prop.description,
        type=prop.type_id,
        retention_days=prop.retention_days,
        dimensions=[_dimension_out(s) for s in series],
    )


# --- property types -----------------------------------------------------------------------------


async def list_types(
    session: AsyncSession, who: Principal, cursor: str | None, limit: int
) -> tuple[list[PropertyTypeOut], str | None]:
    repo = PropertyRepository(session)
    org_ids: sa.Select[str] | list[str] | None
    if who.instance_admin:
        org_ids = None
    elif who.kind == "person" and who.id is not None:
        org_ids = access_repo.orgs_of_person(who.id)
    elif who.organization_id is not None:
        org_ids = [who.organization_id]
    else:
        org_ids = []
    types, next_cursor = await repo.types(org_ids, cursor, limit)
    dims = await repo.type_dimensions([t.pk for t in types])
    return [_type_out(t, dims.get(t.pk, [])) for t in types], next_cursor


def _type_out(ptype: PropertyType, dims: Sequence[TypeDimension]) -> PropertyTypeOut:
    return PropertyTypeOut(
        id=ptype.id,
        name=ptype.name,
        description=ptype.description,
        organization_id=ptype.organization_id,
        builtin=ptype.organization_id is None,
        dimensions=[_dimension_out(d) for d in dims],
    )


async def create_type(
    session: AsyncSession, who: Principal, body: PropertyTypeCreate
) -> PropertyTypeOut:
    """Organization admins define types for their organization; built-in ones are read-only."""
    if body.org_id is not None:
        org_id = body.org_id
    elif who.kind == "person" and who.id is not None:
        org_id = await accounts.personal_org_id(session, who.id)
    elif who.organization_id is not None:
        org_id = who.organization_id
    else:
        raise Forbidden()
    await accounts.require_org(session, who, org_id, "admin")
    repo = PropertyRepository(session)
    if await repo.type_(body.id, org_id) is not None:  # the org's own, or a built-in id
        raise PropertyTypeExists()
    ptype = PropertyType(
        id=body.id, organization_id=org_id, name=body.name, description=body.description
    )
    repo.add(ptype)
    await session.flush()
    dims = [
        TypeDimension(
            type_pk=ptype.pk,
            position=i,
            dimension_id=d.id,
            name=d.name,
            description=d.description,
            unit=d.unit,
            kind=d.kind,
            media_types=d.media_types,
            labels=d.labels,
        )
        for i, d in enumerate(body.dimensions)
    ]
    repo.add(*dims)
    await session.flush()
    return _type_out(ptype, dims)


async def _usable_type(
    session: AsyncSession, type_id: str, org_id: str
) -> tuple[PropertyType, list[TypeDimension]]:
    repo = PropertyRepository(session)
    ptype = await repo.type_(type_id, org_id)
    if ptype is None:
        raise PropertyTypeNotFound()
    return ptype, (await repo.type_dimensions([ptype.pk]))[ptype.pk]


# --- properties ---------------------------------------------------------------------------------


def _series(prop: Property, position: int, d: DimensionIn | TypeDimension) -> Series:
    dim_id = d.id if isinstance(d, DimensionIn) else d.dimension_id
    return Series(
        property_id=prop.id,
        organization_id=prop.organization_id,
        position=position,
        dimension_id=dim_id,
        name=d.name,
        description=d.description,
        unit=d.unit,
        kind=d.kind,
        media_types=list(d.media_types),
        labels=list(d.labels),
    )


async def create(
    session: AsyncSession, who: Principal, thing_id: str, body: PropertyCreate
) -> PropertyOut:
    thing = await things.require(session, who, thing_id, "write")
    repo = PropertyRepository(session)
    quotas.check(
        await repo.count(thing_id=thing.id), quotas.PROPERTIES_PER_THING, "properties per thing"
    )
    quotas.check(
        await repo.count(org_id=thing.organization_id),
        quotas.PROPERTIES_PER_ORG,
        "properties per organization",
    )
    if await repo.by_name(thing.id, body.name) is not None:
        raise PropertyNameTaken()
    dims: list[DimensionIn | TypeDimension] = []
    type_id: str | None = None
    if body.type is not None:
        ptype, type_dims = await _usable_type(session, body.type, thing.organization_id)
        dims.extend(type_dims)
        type_id = ptype.id
    else:
        assert body.dimensions is not None
        dims.extend(body.dimensions)
    prop = Property(
        id=new_id(),
        organization_id=thing.organization_id,
        bucket_id=thing.bucket_id,
        thing_id=thing.id,
        name=body.name,
        description=body.description,
        type_id=type_id,
        retention_days=body.retention_days,
        attributes={},
    )
    repo.add(prop)
    await session.flush()
    series = [_series(prop, i, d) for i, d in enumerate(dims)]
    repo.add(*series)
    await session.flush()
    return _property_out(prop, series)


async def get_visible(
    session: AsyncSession, who: Principal, thing_id: str, property_id: str
) -> tuple[Property, list[Series]]:
    """A property of this thing visible to ``who``, with its series in value order."""
    repo = PropertyRepository(session)
    prop = await repo.visible(who, property_id)
    if prop is None or prop.thing_id != thing_id:
        raise PropertyNotFound(target=("property", property_id))
    return prop, (await repo.series([prop.id]))[prop.id]


async def require(
    session: AsyncSession, who: Principal, thing_id: str, property_id: str, action: access.Action
) -> tuple[Property, list[Series]]:
    prop, series = await get_visible(session, who, thing_id, property_id)
    await access.require(session, who, action, property_ref(prop))
    return prop, series


async def get(
    session: AsyncSession, who: Principal, thing_id: str, property_id: str
) -> PropertyOut:
    prop, series = await require(session, who, thing_id, property_id, "read")
    return _property_out(prop, series)


async def list_visible(
    session: AsyncSession, who: Principal, thing_id: str, cursor: str | None, limit: int
) -> tuple[list[PropertyOut], str | None]:
    thing = await things.lookup(session, thing_id)
    if thing is None:
        return [], None
    repo = PropertyRepository(session)
    props, next_cursor = await repo.list_visible(who, thing.id, cursor, limit)
    series = await repo.series([p.id for p in props])
    return [_property_out(p, series.get(p.id, [])) for p in props], next_cursor


async def update(
    session: AsyncSession, who: Principal, thing_id: str, property_id: str, body: PropertyUpdate
) -> PropertyOut:
    prop, series = await require(session, who, thing_id, property_id, "write")
    repo = PropertyRepository(session)
    if body.name is not None and body.name != prop.name:
        if await repo.by_name(prop.thing_id, body.name) is not None:
            raise PropertyNameTaken()
        prop.name = body.name
    if "description" in body.model_fields_set:
        prop.description = body.description
    if "retention_days" in body.model_fields_set:
        prop.retention_days = body.retention_days
    if body.dimensions is not None:
        series = _append_dimensions(prop, series, body.dimensions)
        repo.add(*series)
    await session.flush()
    return _property_out(prop, series)


def _append_dimensions(
    prop: Property, series: list[Series], dims: list[DimensionIn]
) -> list[Series]:
    if len(dims) < len(series):
        raise Invalid("Dimensions may be appended, never removed.", code="VALIDATION_FAILED")
    for current, given in zip(series, dims, strict=False):
        if current.dimension_id != given.id or current.kind != given.kind:
            raise Invalid(
                "The current dimensions come first, in order and with their kinds; "
                "new ones are appended after them.",
                code="VALIDATION_FAILED",
            )
        current.name, current.description, current.unit = given.name, given.description, given.unit
        current.labels = list(given.labels)
    added = [_series(prop, i, d) for i, d in enumerate(dims) if i >= len(series)]
    return [*series, *added]


async def delete(
    session: AsyncSession, rt: Runtime, who: Principal, thing_id: str, property_id: str
) -> None:
    prop, _ = await require(session, who, thing_id, property_id, "delete")
    await purge_after_commit(session, rt, "property", prop.id)
    await access.forget(session, [("property", prop.id)])
    await PropertyRepository(session).delete(prop)
    access.record(
        session,
        "property.deleted",
        who,
        org_id=prop.organization_id,
        target=("property", prop.id),
    )
    await session.flush()


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    id: int
    dimension_id: str
    kind: str


@dataclass(frozen=True, slots=True)
class PointTarget:
    """What the point paths need of a property, as plain values (it is cached across sessions)."""

    ref: Ref
    series: tuple[SeriesInfo, ...]
    dimensions: tuple[DimensionOut, ...]
    retention_days: int | None

    @property
    def property_id(self) -> str:
        return self.ref.id


async def point_target(
    session: AsyncSession,
    who: Principal,
    thing_id: str,
    property_id: str,
    action: access.Action,
) -> PointTarget:
    prop, series = await require(session, who, thing_id, property_id, action)
    return PointTarget(
        property_ref(prop),
        tuple(SeriesInfo(s.id, s.dimension_id, s.kind) for s in series),
        tuple(_dimension_out(s) for s in series),
        prop.retention_days
        if prop.retention_days is not None
        else await buckets.retention_days(session, prop.bucket_id),
    )


async def cached_point_target(
    rt: Runtime,
    who: Principal,
    thing_id: str | None,
    property_id: str,
    action: access.Action,
) -> PointTarget:
    """``point_target`` with the decision reused for at most 1 s (and one generation)."""
    if not _storable(property_id) or (thing_id is not None and not _storable(thing_id)):
        # An id from a body that no database could hold (NUL, a lone surrogate) names nothing;
        # PostgreSQL would refuse the lookup, and the audit's check of the target too.
        raise PropertyNotFound()
    key = (who, thing_id, property_id, action)
    generation = rt.db.generation
    target: PointTarget | None = rt.target_cache.get(key, generation)
    if target is None:

        async def load() -> PointTarget:
            async with rt.db.session() as own:
                if thing_id is None:
                    return await point_target_by_id(own, who, property_id, action)
                return await point_target(own, who, thing_id, property_id, action)

        target = await rt.flights.run(("target", key, generation), load)
        rt.target_cache.put(key, target, generation)
    return target


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


async def point_target_by_id(
    session: AsyncSession, who: Principal, property_id: str, action: access.Action
) -> PointTarget:
    prop = await PropertyRepository(session).visible(who, property_id)
    if prop is None:
        raise PropertyNotFound(target=("property", property_id))
    return await point_target(session, who, prop.thing_id, prop.id, action)


async def id_by_name(
    session: AsyncSession, who: Principal, thing_id: str, name: str, type_id: str | None
) -> str:
    """The id of a thing's property by name; made from ``type_id`` on first use when given
    (MQTT ``by-name`` topics). Unknown without a type, or not visible: PropertyNotFound."""
    prop = await PropertyRepository(session).by_name(thing_id, name)
    if prop is not None:
        return prop.id
    if type_id is None:
        raise PropertyNotFound()
    made = await create(session, who, thing_id, PropertyCreate(name=name, type=type_id))
    return made.id


async def ref_visible(session: AsyncSession, who: Principal, property_id: str) -> Ref:
    """The place in the tree of a property visible to ``who`` (whatever its thing)."""
    prop = await PropertyRepository(session).visible(who, property_id)
    if prop is None:
        raise PropertyNotFound(target=("property", property_id))
    return property_ref(prop)
