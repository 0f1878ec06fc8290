"""Property types and properties through the native API, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from helpers import Account, make_bucket, make_person, make_property, make_setup, make_thing, unique
from thingbucket.runtime import Runtime

pytestmark = pytest.mark.asyncio(loop_scope="session")

ABSENT = "00000000-0000-4000-8000-000000000000"
BUILTIN_TYPES = 31


def dimension(dim_id: str, kind: str = "number", unit: str = "", **extra: Any) -> dict[str, Any]:
    return {"id": dim_id, "name": dim_id.upper(), "unit": unit, "kind": kind, **extra}


def dimension_out(
    dim_id: str, kind: str = "number", unit: str = "", **extra: Any
) -> dict[str, Any]:
    return {
        "description": None,
        "media_types": [],
        "labels": [],
        **dimension(dim_id, kind, unit),
        **extra,
    }


async def all_types(client: httpx.AsyncClient, who: Account) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params: dict[str, str | int] = {"limit": 1000}
    while True:
        answer = await client.get("/api/v1/property-types", params=params, headers=who.headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        items.extend(body["items"])
        if body["next_cursor"] is None:
            return items
        params = {"limit": 1000, "cursor": body["next_cursor"]}


async def create_org(client: httpx.AsyncClient, owner: Account) -> str:
    answer = await client.post("/api/v1/orgs", json={"name": unique("org")}, headers=owner.headers)
    assert answer.status_code == 201, answer.text
    org_id: str = answer.json()["id"]
    return org_id


def type_body(org_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": unique("T"),
        "name": "Soil",
        "description": "moisture and salinity",
        "dimensions": [
            dimension("moisture", unit="%"),
            dimension("salinity", unit="dS/m", labels=["top", "bottom"]),
            dimension("wet", kind="bool"),
        ],
    }
    if org_id is not None:
        body["org_id"] = org_id
    body.update(overrides)
    return body


def prop_url(thing_id: str, prop_id: str = "") -> str:
    return f"/api/v1/things/{thing_id}/properties" + (f"/{prop_id}" if prop_id else "")


# --- property types -----------------------------------------------------------------------------


async def test_the_31_builtin_types_are_listed_with_their_dimensions(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    person = await make_person(client, rt)
    types = await all_types(client, person)
    assert len(types) == BUILTIN_TYPES
    assert all(t["builtin"] and t["organization_id"] is None for t in types)
    by_id = {t["id"]: t for t in types}
    assert len(by_id) == BUILTIN_TYPES
    accelerometer = by_id["ACCELEROMETER"]
    assert [(d["id"], d["unit"], d["kind"]) for d in accelerometer["dimensions"]] == [
        ("acceleration-x", "m/s2", "number"),
        ("acceleration-y", "m/s2", "number"),
        ("acceleration-z", "m/s2", "number"),
    ]
    assert [d["kind"] for d in by_id["BINARY"]["dimensions"]] == ["bool"]
    assert by_id["BINARY"]["dimensions"][0]["id"] == "state"
    image = by_id["PICTURE"]["dimensions"][-1]
    assert (image["id"], image["kind"], image["media_types"]) == (
        "image-jpg",
        "media",
        ["image/jpeg"],
    )
    assert [d["id"] for d in by_id["MAGNETIC_FIELD"]["dimensions"]] == [
        "magnetic-x",
        "megnetic-y",
        "magnetic-z",
    ]
    assert [d["kind"] for d in by_id["TEXT"]["dimensions"]] == ["text"]
    # Paging one at a time yields the same list, in the same order.
    one_by_one: list[str] = []
    params: dict[str, str | int] = {"limit": 1}
    for _ in range(BUILTIN_TYPES + 1):
        body = (
            await client.get("/api/v1/property-types", params=params, headers=person.headers)
        ).json()
        one_by_one.extend(t["id"] for t in body["items"])
        if body["next_cursor"] is None:
            break
        params = {"limit": 1, "cursor": body["next_cursor"]}
    assert one_by_one == [t["id"] for t in types]


async def test_an_org_owner_defines_a_type_and_uses_it_for_a_property(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    outsider = await make_person(client, rt)
    org_id = await create_org(client, owner)
    body = type_body(org_id)
    answer = await client.post("/api/v1/property-types", json=body, headers=owner.headers)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["id"] == body["id"]
    assert created["organization_id"] == org_id
    assert created["builtin"] is False
    expected_dims = [
        dimension_out("moisture", unit="%"),
        dimension_out("salinity", unit="dS/m", labels=["top", "bottom"]),
        dimension_out("wet", kind="bool"),
    ]
    assert created["dimensions"] == expected_dims
    listed = {t["id"]: t for t in await all_types(client, owner)}
    assert listed[body["id"]] == created
    assert len(listed) == BUILTIN_TYPES + 1
    # Other organizations neither see nor use it.
    assert body["id"] not in {t["id"] for t in await all_types(client, outsider)}
    foreign_thing = await make_thing(client, outsider)
    foreign = await client.post(
        prop_url(foreign_thing["id"]),
        json={"name": "s", "type": body["id"]},
        headers=outsider.headers,
    )
    assert foreign.status_code == 404
    assert foreign.json()["error"]["code"] == "PROPERTY_TYPE_NOT_FOUND"

    bucket = await make_bucket(client, owner, org_id=org_id)
    thing = await make_thing(client, owner, bucket["id"])
    prop = await client.post(
        prop_url(thing["id"]), json={"name": "soil", "type": body["id"]}, headers=owner.headers
    )
    assert prop.status_code == 201, prop.text
    assert prop.json()["type"] == body["id"]
    assert prop.json()["dimensions"] == expected_dims
    assert prop.json()["organization_id"] == org_id


async def test_a_member_cannot_define_types_and_ids_are_unique(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    member = await make_person(client, rt)
    org_id = await create_org(client, owner)
    added = await client.post(
        f"/api/v1/orgs/{org_id}/members",
        json={"person_id": member.id, "role": "member"},
        headers=owner.headers,
    )
    assert added.status_code == 201
    refused = await client.post(
        "/api/v1/property-types", json=type_body(org_id), headers=member.headers
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "FORBIDDEN"
    # ... though a member may define types in their own personal organization.
    own = await client.post("/api/v1/property-types", json=type_body(), headers=member.headers)
    assert own.status_code == 201
    assert own.json()["organization_id"] == member.org_id

    body = type_body(org_id)
    assert (
        await client.post("/api/v1/property-types", json=body, headers=owner.headers)
    ).status_code == 201
    for duplicate in (body, type_body(org_id, id="ACCELEROMETER")):
        answer = await client.post("/api/v1/property-types", json=duplicate, headers=owner.headers)
        assert answer.status_code == 409
        assert answer.json()["error"]["code"] == "PROPERTY_TYPE_EXISTS"
    # A stranger naming the org gets the same answer as for an absent one.
    stranger = await make_person(client, rt)
    a = await client.post(
        "/api/v1/property-types", json=type_body(org_id), headers=stranger.headers
    )
    b = await client.post(
        "/api/v1/property-types", json=type_body(ABSENT), headers=stranger.headers
    )
    assert a.status_code == b.status_code == 404
    assert a.json() == b.json()


async def test_two_organizations_may_use_the_same_type_id_each_for_its_own_type(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    # Ids are per organization: org B's answer for an id org A uses is the one for a fresh id.
    alice = await make_person(client, rt)
    bob = await make_person(client, rt)
    type_id = unique("SHARED")
    mine = type_body(id=type_id)
    theirs = type_body(id=type_id, name="Wind", dimensions=[dimension("speed", unit="m/s")])
    first = await client.post("/api/v1/property-types", json=mine, headers=alice.headers)
    second = await client.post("/api/v1/property-types", json=theirs, headers=bob.headers)
    assert first.status_code == second.status_code == 201, second.text
    assert first.json()["organization_id"] == alice.org_id
    assert second.json()["organization_id"] == bob.org_id
    assert {t["name"] for t in await all_types(client, bob) if t["id"] == type_id} == {"Wind"}
    for who, dims in ((alice, ["moisture", "salinity", "wet"]), (bob, ["speed"])):
        thing = await make_thing(client, who)
        prop = await client.post(
            prop_url(thing["id"]), json={"name": "p", "type": type_id}, headers=who.headers
        )
        assert prop.status_code == 201, prop.text
        assert [d["id"] for d in prop.json()["dimensions"]] == dims
    again = await client.post("/api/v1/property-types", json=theirs, headers=bob.headers)
    assert again.status_code == 409


async def test_invalid_type_definitions_are_refused(client: httpx.AsyncClient, rt: Runtime) -> None:
    owner = await make_person(client, rt)
    for dims in (
        [],
        [dimension("a"), dimension("a")],
        [dimension("pic", kind="media")],  # a media dimension lists its media types
        [dimension("x", kind="colour")],
    ):
        answer = await client.post(
            "/api/v1/property-types", json=type_body(dimensions=dims), headers=owner.headers
        )
        assert answer.status_code == 400, dims
        assert answer.json()["error"]["code"] == "VALIDATION_FAILED"
    media = [dimension("pic", kind="media", media_types=["image/png"])]
    answer = await client.post(
        "/api/v1/property-types", json=type_body(dimensions=media), headers=owner.headers
    )
    assert answer.status_code == 201
    assert answer.json()["dimensions"][0]["media_types"] == ["image/png"]


# --- properties ---------------------------------------------------------------------------------


async def test_a_property_from_a_type_copies_its_dimensions(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt, type="PICTURE")
    types = {t["id"]: t for t in await all_types(client, s.owner)}
    assert s.prop["type"] == "PICTURE"
    assert s.prop["dimensions"] == types["PICTURE"]["dimensions"]
    assert [d["id"] for d in s.prop["dimensions"]] == ["res-x", "res-y", "image-jpg"]
    assert (s.prop["thing_id"], s.prop["bucket_id"]) == (s.thing["id"], s.bucket["id"])
    got = await client.get(prop_url(s.thing["id"], s.prop["id"]), headers=s.owner.headers)
    assert got.status_code == 200
    assert got.json() == s.prop
    unknown = await client.post(
        prop_url(s.thing["id"]), json={"name": "x", "type": "NO_SUCH_TYPE"}, headers=s.owner.headers
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "PROPERTY_TYPE_NOT_FOUND"


async def test_a_property_with_inline_dimensions(client: httpx.AsyncClient, rt: Runtime) -> None:
    owner = await make_person(client, rt)
    thing = await make_thing(client, owner)
    dims = [dimension("level", unit="cm"), dimension("note", kind="text")]
    prop = await make_property(client, owner, thing["id"], name="tank", dimensions=dims)
    assert prop["type"] is None
    assert prop["dimensions"] == [dimension_out("level", unit="cm"), dimension_out("note", "text")]
    t = int(time.time() * 1000) - 1000
    url = prop_url(thing["id"], prop["id"]) + "/points"
    written = await client.post(url, json={"points": [[t, 12.5, "ok"]]}, headers=owner.headers)
    assert written.status_code == 204, written.text
    rows = (await client.get(url, params={"from": t - 1}, headers=owner.headers)).json()["rows"]
    assert rows == [[t, 12.5, "ok"]]


async def test_a_property_needs_exactly_one_of_type_and_dimensions(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    thing = await make_thing(client, owner)
    url = prop_url(thing["id"])
    for body in (
        {"name": "neither"},
        {"name": "both", "type": "TEMPERATURE", "dimensions": [dimension("t")]},
        {"name": "empty", "dimensions": []},
    ):
        answer = await client.post(url, json=body, headers=owner.headers)
        assert answer.status_code == 400, body
        assert answer.json()["error"]["code"] == "VALIDATION_FAILED"
    listing = await client.get(url, headers=owner.headers)
    assert listing.json()["items"] == []
    ok = await client.post(url, json={"name": "one", "type": "TEMPERATURE"}, headers=owner.headers)
    assert ok.status_code == 201


async def test_property_names_are_unique_per_thing(client: httpx.AsyncClient, rt: Runtime) -> None:
    owner = await make_person(client, rt)
    thing = await make_thing(client, owner)
    other = await make_thing(client, owner)
    await make_property(client, owner, thing["id"], name="temp", type="TEMPERATURE")
    again = await client.post(
        prop_url(thing["id"]), json={"name": "temp", "type": "COUNT"}, headers=owner.headers
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "PROPERTY_NAME_TAKEN"
    elsewhere = await client.post(
        prop_url(other["id"]), json={"name": "temp", "type": "COUNT"}, headers=owner.headers
    )
    assert elsewhere.status_code == 201
    second = await make_property(client, owner, thing["id"], name="second", type="COUNT")
    rename = await client.patch(
        prop_url(thing["id"], second["id"]), json={"name": "temp"}, headers=owner.headers
    )
    assert rename.status_code == 409


async def test_appending_a_dimension_works_and_the_new_dimension_takes_values(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)  # ACCELEROMETER: x, y, z
    url = prop_url(s.thing["id"], s.prop["id"])
    t = int(time.time() * 1000) - 10_000
    assert (
        await client.post(f"{url}/points", json={"points": [[t, 1, 2, 3]]}, headers=s.owner.headers)
    ).status_code == 204
    four = [*s.prop["dimensions"], dimension("magnitude", unit="m/s2")]
    answer = await client.patch(url, json={"dimensions": four}, headers=s.owner.headers)
    assert answer.status_code == 200, answer.text
    assert [d["id"] for d in answer.json()["dimensions"]] == [
        "acceleration-x",
        "acceleration-y",
        "acceleration-z",
        "magnitude",
    ]
    got = (await client.get(url, headers=s.owner.headers)).json()
    assert got["dimensions"][-1] == dimension_out("magnitude", unit="m/s2")
    written = await client.post(
        f"{url}/points", json={"points": [[t + 1, 4, 5, 6, 8.8]]}, headers=s.owner.headers
    )
    assert written.status_code == 204, written.text
    rows = (
        await client.get(f"{url}/points", params={"from": t - 1}, headers=s.owner.headers)
    ).json()
    assert rows["columns"] == [
        "ts",
        "acceleration-x",
        "acceleration-y",
        "acceleration-z",
        "magnitude",
    ]
    assert rows["rows"] == [[t, 1.0, 2.0, 3.0, None], [t + 1, 4.0, 5.0, 6.0, 8.8]]


async def test_dimensions_are_never_removed_reordered_or_changed_in_kind(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    url = prop_url(s.thing["id"], s.prop["id"])
    x, y, z = s.prop["dimensions"]
    for dims in (
        [x, y],  # removed
        [y, x, z],  # reordered
        [x, z, y, dimension("extra")],  # reordered while appending
        [x, y, {**z, "kind": "text"}],  # kind changed
        [dimension("extra"), x, y, z],  # prepended
    ):
        answer = await client.patch(url, json={"dimensions": dims}, headers=s.owner.headers)
        assert answer.status_code == 400, [d["id"] for d in dims]
        assert answer.json()["error"]["code"] == "VALIDATION_FAILED"
    got = (await client.get(url, headers=s.owner.headers)).json()
    assert got["dimensions"] == s.prop["dimensions"]
    # The same list unchanged is accepted.
    same = await client.patch(url, json={"dimensions": [x, y, z]}, headers=s.owner.headers)
    assert same.status_code == 200


async def test_a_deleted_property_is_not_found(client: httpx.AsyncClient, rt: Runtime) -> None:
    s = await make_setup(client, rt)
    url = prop_url(s.thing["id"], s.prop["id"])
    assert (await client.get(url, headers=s.owner.headers)).status_code == 200
    assert (await client.delete(url, headers=s.owner.headers)).status_code == 204
    answer = await client.get(url, headers=s.owner.headers)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "PROPERTY_NOT_FOUND"
    written = await client.post(
        s.points_url, json={"points": [[None, 1, 2, 3]]}, headers=s.owner.headers
    )
    assert written.status_code == 404
    listing = await client.get(prop_url(s.thing["id"]), headers=s.owner.headers)
    assert listing.json()["items"] == []


async def test_a_stranger_gets_the_same_404_for_a_property_as_for_an_absent_one(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    stranger = await make_person(client, rt)
    tid, pid = s.thing["id"], s.prop["id"]
    for method, body in (("GET", None), ("PATCH", {"name": "mine"}), ("DELETE", None)):
        a = await client.request(method, prop_url(tid, pid), json=body, headers=stranger.headers)
        b = await client.request(method, prop_url(tid, ABSENT), json=body, headers=stranger.headers)
        assert a.status_code == b.status_code == 404, method
        assert a.json()["error"]["code"] == "PROPERTY_NOT_FOUND"
        assert a.content == b.content
    created = await client.post(
        prop_url(tid), json={"name": "intruder", "type": "COUNT"}, headers=stranger.headers
    )
    absent = await client.post(
        prop_url(ABSENT), json={"name": "intruder", "type": "COUNT"}, headers=stranger.headers
    )
    assert created.status_code == absent.status_code == 404
    assert created.content == absent.content
    listing = await client.get(prop_url(tid), headers=stranger.headers)
    assert listing.status_code == 200
    assert listing.json()["items"] == []
    # The owner still has it, unchanged.
    got = await client.get(prop_url(tid, pid), headers=s.owner.headers)
    assert got.status_code == 200
    assert got.json()["name"] == s.prop["name"]
