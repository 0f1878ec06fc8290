"""Point writes and raw reads through the native API, on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import random
import time

import httpx
import pytest

from helpers import PER_ANSWER_HEADERS, Setup, bearer, make_person, make_setup
from thingbucket.runtime import Runtime

pytestmark = pytest.mark.asyncio(loop_scope="session")


def now_ms() -> int:
    return int(time.time() * 1000)


async def read_all(client: httpx.AsyncClient, s: Setup, **params: str | int) -> list[list[object]]:
    rows: list[list[object]] = []
    cursor = None
    while True:
        query: dict[str, str | int] = {
            "from": params.get("from", 0),
            "to": params.get("to", now_ms() + 1),
            **params,
        }
        if cursor:
            query["cursor"] = cursor
        answer = await client.get(s.points_url, params=query, headers=s.owner.headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        rows.extend(body["rows"])
        cursor = body["next_cursor"]
        if cursor is None:
            return rows


async def test_ten_thousand_points_round_trip_with_their_timestamps_and_values(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    rng = random.Random(7)
    start = now_ms() - 20_000_000
    sent = [
        [
            start + i * 1000 + rng.randrange(1000),
            rng.uniform(-50, 50),
            rng.randrange(-9, 9),
            rng.random(),
        ]
        for i in range(10_000)
    ]
    for i in range(0, len(sent), 1000):
        answer = await client.post(
            s.points_url, json={"points": sent[i : i + 1000]}, headers=s.owner.headers
        )
        assert answer.status_code == 204, answer.text
    rows = await read_all(client, s, limit=3000)
    assert len(rows) == 10_000
    expected = sorted(sent)
    assert [r[0] for r in rows] == [e[0] for e in expected]
    assert rows == [[e[0], float(e[1]), float(e[2]), float(e[3])] for e in expected]

    # Rewriting 100 of them keeps the last values and adds nothing.
    rewritten = {e[0]: [e[0], 1000.0 + j, None, -1.0] for j, e in enumerate(expected[:100])}
    answer = await client.post(
        s.points_url, json={"points": list(rewritten.values())}, headers=s.owner.headers
    )
    assert answer.status_code == 204
    rows = await read_all(client, s)
    assert len(rows) == 10_000
    by_ts = {r[0]: r for r in rows}
    for e in expected[:100]:
        ts = e[0]
        assert by_ts[ts] == [ts, rewritten[ts][1], float(e[2]), -1.0]  # null kept y


async def test_one_bad_row_rejects_the_whole_batch_and_names_row_and_dimension(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    t = now_ms() - 10_000
    points: list[list[object]] = [[t + i, 1.0, 2.0, 3.0] for i in range(50)]
    points[17] = [t + 17, 1.0, "high", 3.0]
    answer = await client.post(s.points_url, json={"points": points}, headers=s.owner.headers)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "VALIDATION_FAILED"
    assert error["details"][0]["index"] == 17
    assert error["details"][0]["dimension"] == "acceleration-y"
    assert error["details"][0]["write"] == 0
    assert await read_all(client, s, **{"from": t - 1}) == []


async def test_object_and_column_forms_and_rfc3339_timestamps(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    base = now_ms() - 60_000
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base // 1000)) + ".250Z"
    iso_ms = (base // 1000) * 1000 + 250
    answer = await client.post(
        s.points_url,
        json={"points": [{"ts": iso, "values": [1, 2, 3]}, {"ts": base + 500, "values": [4]}]},
        headers=s.owner.headers,
    )
    assert answer.status_code == 204, answer.text
    answer = await client.post(
        s.points_url,
        json={"ts": [base + 600, base + 700], "values": [[7, 8], [9, 10], [11, 12]]},
        headers=s.owner.headers,
    )
    assert answer.status_code == 204, answer.text
    rows = await read_all(client, s, **{"from": base - 2000})
    assert [iso_ms, 1.0, 2.0, 3.0] in rows
    assert [base + 500, 4.0, None, None] in rows
    assert [base + 600, 7.0, 9.0, 11.0] in rows
    assert [base + 700, 8.0, 10.0, 12.0] in rows


async def test_paging_in_descending_order_and_precision(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    base = now_ms() - 100_000
    points = [[base + i * 10, i, i, i] for i in range(25)]
    assert (
        await client.post(s.points_url, json={"points": points}, headers=s.owner.headers)
    ).status_code == 204
    rows = await read_all(client, s, order="desc", limit=7, **{"from": base})
    assert [r[0] for r in rows] == [base + i * 10 for i in reversed(range(25))]
    answer = await client.get(
        s.points_url,
        params={"from": base // 1000, "to": base // 1000 + 10, "precision": "s", "limit": 1},
        headers=s.owner.headers,
    )
    assert answer.status_code == 200
    assert answer.json()["rows"] == [[base / 1000, 0.0, 0.0, 0.0]]


async def test_multi_property_write_is_atomic(client: httpx.AsyncClient, rt: Runtime) -> None:
    s = await make_setup(client, rt)
    other = (
        await client.post(
            f"/api/v1/things/{s.thing['id']}/properties",
            json={"name": "temp", "type": "TEMPERATURE"},
            headers=s.owner.headers,
        )
    ).json()
    t = now_ms() - 5000
    bad = {
        "writes": [
            {"property_id": s.prop["id"], "points": [[t, 1, 2, 3]]},
            {"property_id": other["id"], "points": [[t, "warm"]]},
        ]
    }
    answer = await client.post("/api/v1/points", json=bad, headers=s.owner.headers)
    assert answer.status_code == 400
    assert answer.json()["error"]["details"][0]["write"] == 1
    assert await read_all(client, s, **{"from": t - 1}) == []
    good = {
        "writes": [
            {"property_id": s.prop["id"], "points": [[t, 1, 2, 3]]},
            {"property_id": other["id"], "ts": [t], "values": [[21.5]]},
        ]
    }
    assert (
        await client.post("/api/v1/points", json=good, headers=s.owner.headers)
    ).status_code == 204
    assert await read_all(client, s, **{"from": t - 1}) == [[t, 1.0, 2.0, 3.0]]


async def test_delete_by_range_removes_only_that_range(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    base = now_ms() - 50_000
    points = [[base + i, 1, 2, 3] for i in range(10)]
    assert (
        await client.post(s.points_url, json={"points": points}, headers=s.owner.headers)
    ).status_code == 204
    answer = await client.delete(
        s.points_url, params={"from": base + 2, "to": base + 5}, headers=s.owner.headers
    )
    assert answer.status_code == 200
    assert answer.json()["deleted"] == 9
    rows = await read_all(client, s, **{"from": base})
    assert [r[0] for r in rows] == [base + i for i in (0, 1, 5, 6, 7, 8, 9)]


async def test_limits_and_malformed_bodies(client: httpx.AsyncClient, rt: Runtime) -> None:
    s = await make_setup(client, rt)
    t = now_ms() - 10**7
    headers = s.owner.headers
    too_many = {"points": [[t + i, 1] for i in range(10_001)]}
    answer = await client.post(s.points_url, json=too_many, headers=headers)
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] in ("TOO_MANY_POINTS", "PAYLOAD_TOO_LARGE")
    big = (
        b'{"points": ['
        + b",".join(
            [b"[%d, 1.123456789, 2.123456789, 3.123456789]" % (t + i) for i in range(40_000)]
        )
        + b"]}"
    )
    answer = await client.post(
        s.points_url, content=big, headers={**headers, "content-type": "application/json"}
    )
    assert answer.status_code == 413
    answer = await client.post(
        s.points_url, content=b"{not json", headers={**headers, "content-type": "application/json"}
    )
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "INVALID_JSON")
    answer = await client.post(
        s.points_url, content=b"ts,x\n1,2\n", headers={**headers, "content-type": "application/xml"}
    )
    assert answer.status_code == 415
    future = {"points": [[now_ms() + 3_600_000, 1, 2, 3]]}
    answer = await client.post(s.points_url, json=future, headers=headers)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "TIMESTAMP_OUT_OF_RANGE")


async def test_gzip_bodies_are_accepted_and_a_gzip_bomb_is_refused(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    t = now_ms() - 30_000
    body = b'{"points": [[%d, 1, 2, 3], [%d, 4, 5, 6]]}' % (t, t + 1)
    headers = {**s.owner.headers, "content-type": "application/json", "content-encoding": "gzip"}
    answer = await client.post(s.points_url, content=gzip.compress(body), headers=headers)
    assert answer.status_code == 204, answer.text
    assert len(await read_all(client, s, **{"from": t - 1})) == 2
    bomb = gzip.compress(b" " * (64 * 1024 * 1024))
    assert len(bomb) < 1024 * 1024
    started = time.monotonic()
    answer = await client.post(s.points_url, content=bomb, headers=headers)
    assert answer.status_code == 413
    assert time.monotonic() - started < 5
    answer = await client.post(
        s.points_url, content=body, headers={**headers, "content-encoding": "br"}
    )
    assert (answer.status_code, answer.json()["error"]["code"]) == (415, "UNSUPPORTED_ENCODING")


async def test_a_property_id_no_database_can_hold_is_an_absent_one(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    """Found by the schemathesis run on PostgreSQL: a NUL in a body's property id answered 500
    (PostgreSQL refuses NUL in text); a lone surrogate would too. Both name nothing: 404."""
    s = await make_setup(client, rt)
    absent = await client.post(
        "/api/v1/points",
        json={"writes": [{"property_id": "00000000-0000-4000-8000-000000000000", "points": []}]},
        headers=s.owner.headers,
    )
    assert absent.status_code == 404
    pid = s.prop["id"]
    for escaped in ("\\u0000\\u0087h\\u00d7", pid + "\\u0000", "\\ud9d9" + pid):
        body = '{"writes": [{"property_id": "' + escaped + '", "points": [[1, 2, 3, 4]]}]}'
        answer = await client.post(
            "/api/v1/points",
            content=body,
            headers=s.owner.headers | {"content-type": "application/json"},
        )
        assert answer.status_code in (400, 404), (escaped, answer.text)
        if answer.status_code == 404:
            assert answer.json()["error"]["code"] == absent.json()["error"]["code"]


async def test_another_person_gets_the_same_404_as_for_an_absent_id(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    stranger = await make_person(client, rt)
    absent = "00000000-0000-4000-8000-000000000000"
    tid, pid = s.thing["id"], s.prop["id"]
    pairs = [
        (f"/api/v1/things/{tid}", f"/api/v1/things/{absent}"),
        (f"/api/v1/things/{tid}/properties/{pid}", f"/api/v1/things/{tid}/properties/{absent}"),
        (s.points_url, f"/api/v1/things/{tid}/properties/{absent}/points"),
        (f"/api/v1/buckets/{s.bucket['id']}", f"/api/v1/buckets/{absent}"),
    ]
    for mine, missing in pairs:
        a = await client.get(mine, headers=stranger.headers)
        b = await client.get(missing, headers=stranger.headers)
        assert a.status_code == b.status_code == 404
        assert a.content == b.content
        drop = PER_ANSWER_HEADERS
        assert {k: v for k, v in a.headers.items() if k not in drop} == {
            k: v for k, v in b.headers.items() if k not in drop
        }
        # The owner, as a positive control, sees the object.
        assert (await client.get(mine, headers=s.owner.headers)).status_code == 200
    answer = await client.post(
        s.points_url, json={"points": [[now_ms(), 1, 2, 3]]}, headers=stranger.headers
    )
    assert answer.status_code == 404
    assert (await client.get(s.points_url)).status_code == 401


async def test_a_read_key_reads_and_cannot_write(client: httpx.AsyncClient, rt: Runtime) -> None:
    s = await make_setup(client, rt)
    t = now_ms() - 1000
    assert (
        await client.post(s.points_url, json={"points": [[t, 1, 2, 3]]}, headers=s.owner.headers)
    ).status_code == 204
    created = await client.post(
        f"/api/v1/buckets/{s.bucket['id']}/keys",
        json={"name": "reader", "role": "read"},
        headers=s.owner.headers,
    )
    assert created.status_code == 201
    key = created.json()["secret"]
    reading = await client.get(s.points_url, params={"from": t - 1}, headers={"X-API-Key": key})
    assert reading.status_code == 200
    assert reading.json()["rows"] == [[t, 1.0, 2.0, 3.0]]
    writing = await client.post(s.points_url, json={"points": [[t, 9, 9, 9]]}, headers=bearer(key))
    assert writing.status_code == 403
    assert writing.json()["error"]["code"] == "FORBIDDEN"
