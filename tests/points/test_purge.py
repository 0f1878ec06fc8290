"""Deleting a property, thing or bucket deletes its samples, after the control plane commits."""

from __future__ import annotations

import time

import httpx
import pytest
import sqlalchemy as sa

from helpers import make_property, make_setup
from thingbucket.points.models import Series
from thingbucket.runtime import Runtime

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _series_ids(rt: Runtime, property_id: str) -> list[int]:
    async with rt.db.session() as session:
        rows = await session.scalars(sa.select(Series.id).where(Series.property_id == property_id))
        return list(rows)


async def _samples(rt: Runtime, series: list[int]) -> int:
    async with rt.db.engine.connect() as conn:
        count = await conn.execute(
            sa.text("SELECT count(*) FROM samples_num WHERE series_id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"ids": series},
        )
        return int(count.scalar_one())


@pytest.mark.parametrize("what", ["property", "thing", "bucket"])
async def test_deleting_removes_the_samples_under_it(
    client: httpx.AsyncClient, rt: Runtime, what: str
) -> None:
    s = await make_setup(client, rt)
    sibling = await make_property(client, s.owner, s.thing["id"], type="TEMPERATURE")
    sibling_url = f"/api/v1/things/{s.thing['id']}/properties/{sibling['id']}/points"
    t = int(time.time() * 1000) - 10_000
    body = {"points": [[t + i, 1, 2, 3] for i in range(20)]}
    assert (await client.post(s.points_url, json=body, headers=s.owner.headers)).status_code == 204
    sibling_body = {"points": [[t + i, 1] for i in range(5)]}
    answer = await client.post(sibling_url, json=sibling_body, headers=s.owner.headers)
    assert answer.status_code == 204
    series = await _series_ids(rt, s.prop["id"])
    sibling_series = await _series_ids(rt, sibling["id"])
    assert await _samples(rt, series) == 60

    url = {
        "property": f"/api/v1/things/{s.thing['id']}/properties/{s.prop['id']}",
        "thing": f"/api/v1/things/{s.thing['id']}",
        "bucket": f"/api/v1/buckets/{s.bucket['id']}",
    }[what]
    assert (await client.delete(url, headers=s.owner.headers)).status_code == 204
    assert (await client.get(url, headers=s.owner.headers)).status_code == 404
    assert await _samples(rt, series) == 0
    # Deleting one property leaves its sibling's samples; a thing or bucket takes them along.
    assert await _samples(rt, sibling_series) == (5 if what == "property" else 0)
