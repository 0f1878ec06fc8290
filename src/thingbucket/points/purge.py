"""Deleting the samples of whatever is being deleted (property, thing, bucket, organization).

Kept apart from ``points.service`` so that the control-plane services can call it without
depending on the read path. Sample tables have no foreign keys: the caller's unit of work deletes
the control-plane rows, and once it has committed the writer deletes the samples. Series ids are
never reused, so samples left behind by a crash in between are unreachable.
"""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from thingbucket.db.engine import after_commit
from thingbucket.kit.time import TS_MAX_US, TS_MIN_US
from thingbucket.points.batch import RangeDelete
from thingbucket.points.models import Series
from thingbucket.properties.models import Property
from thingbucket.runtime import Runtime

Scope = Literal["org", "bucket", "thing", "property"]
_COLUMN = {
    "org": Property.organization_id,
    "bucket": Property.bucket_id,
    "thing": Property.thing_id,
    "property": Property.id,
}


async def purge_after_commit(
    session: AsyncSession, rt: Runtime, scope: Scope, scope_id: str
) -> None:
    """Delete every sample under the scope once the caller's unit of work has committed."""
    stmt = (
        sa.select(Series.id, Series.kind)
        .join(Property, Property.id == Series.property_id)
        .where(_COLUMN[scope] == scope_id)
    )
    series = tuple((sid, kind) for sid, kind in (await session.execute(stmt)).all())
    if series:
        spec = RangeDelete(series, TS_MIN_US, TS_MAX_US)
        after_commit(session, lambda: rt.writer.delete(spec))
