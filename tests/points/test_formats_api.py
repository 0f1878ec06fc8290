"""CSV and NDJSON: point writes, streamed reads and round trips, on both backends."""

from __future__ import annotations

import gzip
import random
import time

import httpx
import orjson
import pytest

from helpers import Setup, make_setup
from thingbucket.points import service as points_service
from thingbucket.runtime import Runtime

pytestmark = pytest.mark.asyncio(loop_scope="session")

CSV = {"Content-Type": "text/csv"}
NDJSON = {"Content-Type": "application/x-ndjson"}
JSON = {"Content-Type": "application/json"}
MIXED = [
    {"id": "temp", "name": "Temperature", "unit": "°C", "kind": "number"},
    {"id": "note", "name": "Note", "unit": "", "kind": "text"},
    {"id": "on", "name": "On", "unit": "", "kind": "bool"},
    {"id": "meta", "name": "Meta", "unit": "", "kind": "json"},
]


def now_ms() -> int:
    return int(time.time() * 1000)


async def rows_of(client: httpx.AsyncClient, s: Setup, start: int) -> list[list[object]]:
    rows: list[list[object]] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"from": start, "limit": 7000}
        if cursor:
            params["cursor"] = cursor
        answer = await client.get(s.points_url, params=params, headers=s.owner.headers)
        assert answer.status_code == 200, answer.text
        rows += answer.json()["rows"]
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            return rows


async def send(
    client: httpx.AsyncClient, s: Setup, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    return await client.post(s.points_url, content=body, headers={**s.owner.headers, **headers})


async def test_a_csv_body_maps_its_header_to_the_dimensions_and_empty_cells_keep_values(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    t = now_ms() - 60_000
    first = f"ts,acceleration-x,acceleration-y,acceleration-z\n{t},1,2,3\n{t + 1},4,5,6\n"
    assert (await send(client, s, first.encode(), CSV)).status_code == 204
    # Another order, a subset, an empty cell: only what is given changes.
    second = f"ts,acceleration-z,acceleration-x\n{t},30,\n{t + 2},9.5,7\n"
    assert (await send(client, s, second.encode(), CSV)).status_code == 204
    assert await rows_of(client, s, t - 1) == [
        [t, 1.0, 2.0, 30.0],
        [t + 1, 4.0, 5.0, 6.0],
        [t + 2, 7.0, None, 9.5],
    ]


async def test_a_bad_csv_cell_rejects_the_batch_naming_row_and_dimension(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    t = now_ms() - 60_000
    body = f"ts,acceleration-x\n{t},1\n{t + 1},warm\n".encode()
    answer = await send(client, s, body, CSV)
    assert answer.status_code == 400
    detail = answer.json()["error"]["details"][0]
    assert (detail["index"], detail["dimension"]) == (1, "acceleration-x")
    assert await rows_of(client, s, t - 1) == []
    for bad, needle in (
        (b"time,acceleration-x\n1,2\n", "header"),
        (b"ts,nope\n1,2\n", "nope"),
        (b"ts,acceleration-x,acceleration-x\n1,2,3\n", "twice"),
        (b'ts,acceleration-x\n1,"2\n', "CSV"),
    ):
        answer = await send(client, s, bad, CSV)
        assert answer.status_code == 400, bad
        assert needle in answer.json()["error"]["message"], answer.text


async def test_ndjson_bodies_take_both_row_forms_and_gzip(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    t = now_ms() - 60_000
    lines = [orjson.dumps([t, 1, 2, 3]), b"", orjson.dumps({"ts": t + 1, "values": [4, None, 6]})]
    body = gzip.compress(b"\n".join(lines) + b"\n")
    answer = await send(client, s, body, {**NDJSON, "Content-Encoding": "gzip"})
    assert answer.status_code == 204, answer.text
    assert await rows_of(client, s, t - 1) == [[t, 1.0, 2.0, 3.0], [t + 1, 4.0, None, 6.0]]
    bad = await send(client, s, orjson.dumps([t, 1]) + b"\n{oops\n", NDJSON)
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "INVALID_JSON"
    assert "line 2" in bad.json()["error"]["message"]


async def test_ndjson_on_the_multi_property_route_is_one_write_per_line(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    t = now_ms() - 60_000
    body = b"\n".join(
        orjson.dumps({"property_id": s.prop["id"], "points": [[t + i, i, i, i]]}) for i in range(3)
    )
    answer = await client.post(
        "/api/v1/points", content=body, headers={**s.owner.headers, **NDJSON}
    )
    assert answer.status_code == 204, answer.text
    assert [r[0] for r in await rows_of(client, s, t - 1)] == [t, t + 1, t + 2]
    csv = await client.post("/api/v1/points", content=b"ts\n", headers={**s.owner.headers, **CSV})
    assert csv.status_code == 415


async def test_csv_and_ndjson_reads_stream_every_row_of_a_long_range(
    client: httpx.AsyncClient, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small chunks, so that the merge of several series crosses many chunk boundaries.
    monkeypatch.setattr(points_service, "STREAM_CHUNK", 700)
    s = await make_setup(client, rt)
    rng = random.Random(5)
    t = now_ms() - 10_000_000
    sent = []
    for i in range(5000):
        x = rng.uniform(-1, 1) if i % 4 else None
        y = None if i % 7 == 0 else rng.uniform(-5, 5)
        sent.append([t + i * 3 + rng.randrange(3), x, y, float(i)])
    for i in range(0, len(sent), 2500):
        answer = await client.post(
            s.points_url, json={"points": sent[i : i + 2500]}, headers=s.owner.headers
        )
        assert answer.status_code == 204
    expected = await rows_of(client, s, t - 1)
    assert len(expected) == 5000

    answer = await client.get(
        s.points_url, params={"from": t - 1, "format": "csv"}, headers=s.owner.headers
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    lines = answer.text.splitlines()
    assert lines[0] == "ts,acceleration-x,acceleration-y,acceleration-z"
    parsed = [
        [int(cells[0]), *(float(c) if c else None for c in cells[1:])]
        for cells in (line.split(",") for line in lines[1:])
    ]
    assert parsed == expected

    answer = await client.get(
        s.points_url,
        params={"from": t - 1},
        headers={**s.owner.headers, "Accept": "application/x-ndjson"},
    )
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    records = [orjson.loads(line) for line in answer.content.splitlines()]
    assert [[r["ts"], *r["values"]] for r in records] == expected


async def test_text_booleans_and_json_survive_a_csv_round_trip(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt, dimensions=MIXED)
    t = now_ms() - 60_000
    points = [
        [t, 21.5, 'a "quoted", comma', True, {"k": [1, 2]}],
        [t + 1, None, "line\nbreak", False, "just text"],
        [t + 2, -0.25, " padded ", None, None],
    ]
    answer = await client.post(s.points_url, json={"points": points}, headers=s.owner.headers)
    assert answer.status_code == 204
    exported = await client.get(
        s.points_url, params={"from": t - 1, "format": "csv"}, headers=s.owner.headers
    )
    other = await make_setup(client, rt, dimensions=MIXED)
    assert (await send(client, other, exported.content, CSV)).status_code == 204
    assert await rows_of(client, other, t - 1) == points
    again = await client.get(
        other.points_url, params={"from": t - 1, "format": "csv"}, headers=other.owner.headers
    )
    assert again.content == exported.content


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
async def test_an_export_imported_into_another_property_exports_byte_identical(
    client: httpx.AsyncClient, rt: Runtime, fmt: str
) -> None:
    s = await make_setup(client, rt)
    rng = random.Random(11)
    t = now_ms() - 5_000_000
    points = [
        [
            t + i * 250,
            rng.uniform(-1e6, 1e6),
            rng.random() * 1e-9,
            -(10.0 ** rng.randrange(-30, 30)),
        ]
        for i in range(3000)
    ]
    answer = await client.post(s.points_url, json={"points": points}, headers=s.owner.headers)
    assert answer.status_code == 204
    params: dict[str, str | int] = {"from": t - 1, "format": fmt, "precision": "us"}
    first = await client.get(s.points_url, params=params, headers=s.owner.headers)
    other = await make_setup(client, rt)
    headers = CSV if fmt == "csv" else NDJSON
    url = other.points_url + "?precision=us"
    answer = await client.post(
        url, content=first.content, headers={**other.owner.headers, **headers}
    )
    assert answer.status_code == 204, answer.text
    second = await client.get(other.points_url, params=params, headers=other.owner.headers)
    assert second.content == first.content
    assert len(second.content.splitlines()) == 3000 + (fmt == "csv")


async def test_a_stream_refused_for_a_stranger_is_an_ordinary_404(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    stranger = await make_setup(client, rt)
    answer = await client.get(
        s.points_url, params={"format": "csv"}, headers=stranger.owner.headers
    )
    assert answer.status_code == 404
    assert answer.json()["error"]["code"].endswith("_NOT_FOUND")


async def test_a_text_value_holding_nul_is_a_row_error_in_every_body_form(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt, dimensions=MIXED)
    t = now_ms() - 60_000
    bodies = [
        (orjson.dumps({"points": [[t, 1.0, "ok"], [t + 1, 2.0, "a\x00b"]]}), JSON),
        (f"ts,temp,note\n{t},1,ok\n{t + 1},2,a\x00b\n".encode(), CSV),
    ]
    for body, headers in bodies:
        answer = await send(client, s, body, headers)
        assert answer.status_code == 400, answer.text
        (detail,) = answer.json()["error"]["details"]
        assert (detail["index"], detail["dimension"], detail["code"]) == (
            1,
            "note",
            "INVALID_VALUE",
        )
    assert await rows_of(client, s, t - 1) == []  # nothing of either batch
