"""Retention on SQLite and PostgreSQL: what expires goes in bounded batches, nothing else does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from helpers import Setup, make_bucket, make_property, make_setup, make_thing
from thingbucket.kit.time import datetime_to_us, now_us
from thingbucket.points import retention
from thingbucket.runtime import Runtime

pytestmark = pytest.mark.asyncio(loop_scope="session")
DAY_MS = 86_400_000


async def write(client: httpx.AsyncClient, s: Setup, url: str, rows: list[list[Any]]) -> None:
    answer = await client.post(url, json={"points": rows}, headers=s.owner.headers)
    assert answer.status_code == 204, answer.text


async def timestamps(client: httpx.AsyncClient, s: Setup, url: str) -> list[int]:
    answer = await client.get(
        url, params={"from": 0, "to": now_us() // 1000 + 1000, "limit": 100_000},
        headers=s.owner.headers,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    return [row[0] for row in answer.json()["rows"]]


def expired_of(report: retention.Report, property_id: str) -> retention.Expired:
    (found,) = [e for e in report.properties if e.property_id == property_id]
    return found


async def test_a_bucket_retention_deletes_what_is_older_in_batches_and_nothing_else(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    now = now_us() // 1000
    old = [now - 40 * DAY_MS + i * 60_000 for i in range(25)]  # 25 rows, 3 dimensions each
    recent = [now - 29 * DAY_MS, now - DAY_MS, now - 1000]
    await write(client, s, s.points_url, [[t, 1, 2, 3] for t in old + recent])
    bucket_url = f"/api/v1/buckets/{s.bucket['id']}"
    before = (await client.get(bucket_url, headers=s.owner.headers)).json()
    assert datetime_to_us(datetime.fromisoformat(before["oldest_sample_at"])) == old[0] * 1000

    patched = await client.patch(bucket_url, json={"retention_days": 30}, headers=s.owner.headers)
    assert patched.status_code == 200
    dry = await retention.run(rt, dry_run=True)
    assert expired_of(dry, s.prop["id"]).samples == 25 * 3
    assert await timestamps(client, s, s.points_url) == old + recent  # a dry run deletes nothing

    writes: list[int] = []
    rt.writer.hooks.append(lambda result: writes.append(result.deleted))
    try:
        done = await retention.run(rt, batch=10)
    finally:
        rt.writer.hooks.pop()
    assert expired_of(done, s.prop["id"]).samples == 25 * 3
    assert max(writes) <= 10  # bounded batches, each its own transaction
    assert await timestamps(client, s, s.points_url) == recent
    after = (await client.get(bucket_url, headers=s.owner.headers)).json()
    assert datetime_to_us(datetime.fromisoformat(after["oldest_sample_at"])) == recent[0] * 1000
    again = await retention.run(rt)
    assert expired_of(again, s.prop["id"]).samples == 0

    audit = await client.get(
        "/api/v1/audit", params={"org_id": s.owner.org_id}, headers=s.owner.headers
    )
    (event,) = [e for e in audit.json()["items"] if e["event"] == "samples.deleted"]
    assert (event["reason"], event["target_id"]) == ("retention", s.prop["id"])


async def test_a_property_retention_overrides_its_buckets(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)  # the bucket keeps everything
    bucket = await make_bucket(client, s.owner, retention_days=30)
    thing = await make_thing(client, s.owner, bucket["id"])
    longer = await make_property(client, s.owner, thing["id"])
    now = now_us() // 1000
    short_url = s.points_url
    long_url = f"/api/v1/things/{thing['id']}/properties/{longer['id']}/points"
    await write(client, s, short_url, [[now - 10 * DAY_MS, 1, 1, 1], [now - DAY_MS, 2, 2, 2]])
    await write(client, s, long_url, [[now - 20 * DAY_MS, 1, 1, 1]])
    for url, days in ((short_url, 7), (long_url, 60)):
        answer = await client.patch(
            url.removesuffix("/points"), json={"retention_days": days}, headers=s.owner.headers
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["retention_days"] == days
    report = await retention.run(rt)
    assert expired_of(report, s.prop["id"]).days == 7
    assert expired_of(report, longer["id"]).days == 60
    assert await timestamps(client, s, short_url) == [now - DAY_MS]
    assert await timestamps(client, s, long_url) == [now - 20 * DAY_MS]
    # A write older than the property's retention is refused, as for a bucket's.
    late = await client.post(
        short_url, json={"points": [[now - 8 * DAY_MS, 1, 1, 1]]}, headers=s.owner.headers
    )
    assert late.status_code == 400


@pytest.mark.postgresql_only
async def test_postgresql_drops_a_month_once_all_of_it_has_expired(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    assert not rt.db.is_sqlite

    def month_ms(year: int, month: int, day: int) -> int:
        return int(datetime(year, month, day, tzinfo=UTC).timestamp() * 1000)

    async def exists(name: str) -> bool:
        async with rt.db.session() as session:
            found = await session.scalar(
                sa.text("SELECT count(*) FROM pg_class WHERE relname = :n"), {"n": name}
            )
        return bool(found)

    expiring = await make_setup(client, rt)
    keeper = await make_setup(client, rt)
    await write(client, expiring, expiring.points_url, [[month_ms(1987, 3, 10), 1, 2, 3]])
    assert await exists("samples_num_p198703")
    props_url = expiring.points_url.removesuffix("/points")
    await client.patch(props_url, json={"retention_days": 1}, headers=expiring.owner.headers)
    report = await retention.run(rt)
    assert "samples_num_p198703" in report.partitions_dropped
    assert not await exists("samples_num_p198703")
    # A property that keeps everything can write into that month again ...
    await write(client, keeper, keeper.points_url, [[month_ms(1987, 3, 11), 4, 5, 6]])
    # ... and then the month stays, with its sample.
    await write(client, expiring, expiring.points_url, [[now_us() // 1000 - 1000, 7, 8, 9]])
    report = await retention.run(rt)
    assert "samples_num_p198703" not in report.partitions_dropped
    assert await timestamps(client, keeper, keeper.points_url) == [month_ms(1987, 3, 11)]
    # A partition dropped behind this process's back (another replica) is made again on write.
    async with rt.db.session() as session:
        await session.execute(sa.text("DROP TABLE samples_num_p198703"))
    await write(client, keeper, keeper.points_url, [[month_ms(1987, 3, 12), 1, 1, 1]])
    assert await timestamps(client, keeper, keeper.points_url) == [month_ms(1987, 3, 12)]
