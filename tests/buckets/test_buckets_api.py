"""Buckets and API keys through the native API, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from helpers import (
    PER_ANSWER_HEADERS,
    Account,
    bearer,
    make_bucket,
    make_person,
    make_thing,
    unique,
)
from thingbucket.runtime import Runtime

pytestmark = pytest.mark.asyncio(loop_scope="session")

ABSENT = "00000000-0000-4000-8000-000000000000"
WWW_AUTHENTICATE = 'Bearer realm="thingbucket"'


def rfc3339_utc(value: str) -> datetime:
    assert value.endswith("Z"), value
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None
    assert parsed.utcoffset() == UTC.utcoffset(None)
    return parsed


async def create_key(
    client: httpx.AsyncClient,
    who: Account | dict[str, str],
    url: str,
    role: str,
    **extra: Any,
) -> dict[str, Any]:
    headers = who.headers if isinstance(who, Account) else who
    answer = await client.post(
        url, json={"name": unique("key"), "role": role, **extra}, headers=headers
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def bucket_key(
    client: httpx.AsyncClient, owner: Account, bucket_id: str, role: str, **extra: Any
) -> dict[str, Any]:
    return await create_key(client, owner, f"/api/v1/buckets/{bucket_id}/keys", role, **extra)


async def me(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.get("/api/v1/me", headers=headers)


# --- buckets ------------------------------------------------------------------------------------


async def test_create_answers_201_with_id_and_rfc3339_utc_timestamps(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    before = datetime.now(UTC)
    answer = await client.post(
        "/api/v1/buckets",
        json={"name": "weather", "description": "roof", "retention_days": 30},
        headers=owner.headers,
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert isinstance(body["id"], str)
    assert body["id"]
    assert body["name"] == "weather"
    assert body["description"] == "roof"
    assert body["retention_days"] == 30
    assert body["organization_id"] == owner.org_id
    created = rfc3339_utc(body["created_at"])
    rfc3339_utc(body["updated_at"])
    assert abs((created - before).total_seconds()) < 60
    got = await client.get(f"/api/v1/buckets/{body['id']}", headers=owner.headers)
    assert got.status_code == 200
    assert got.json() == body


async def test_bucket_names_are_unique_per_org(client: httpx.AsyncClient, rt: Runtime) -> None:
    owner = await make_person(client, rt)
    other = await make_person(client, rt)
    await make_bucket(client, owner, name="shared-name")
    again = await client.post(
        "/api/v1/buckets", json={"name": "shared-name"}, headers=owner.headers
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "BUCKET_NAME_TAKEN"
    # Another organization may use the same name.
    elsewhere = await client.post(
        "/api/v1/buckets", json={"name": "shared-name"}, headers=other.headers
    )
    assert elsewhere.status_code == 201
    # Renaming onto a taken name conflicts too.
    second = await make_bucket(client, owner)
    rename = await client.patch(
        f"/api/v1/buckets/{second['id']}", json={"name": "shared-name"}, headers=owner.headers
    )
    assert rename.status_code == 409


async def test_list_is_oldest_first_and_pages_with_a_cursor(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    made = [await make_bucket(client, owner) for _ in range(3)]
    whole = await client.get("/api/v1/buckets", headers=owner.headers)
    assert whole.status_code == 200
    assert set(whole.json()) == {"items", "next_cursor"}
    assert [b["id"] for b in whole.json()["items"]] == [b["id"] for b in made]
    assert whole.json()["next_cursor"] is None

    seen: list[str] = []
    cursors: list[str | None] = []
    params: dict[str, str | int] = {"limit": 1}
    while True:
        page = await client.get("/api/v1/buckets", params=params, headers=owner.headers)
        assert page.status_code == 200
        body = page.json()
        assert len(body["items"]) == 1
        seen.append(body["items"][0]["id"])
        cursors.append(body["next_cursor"])
        if body["next_cursor"] is None:
            break
        params = {"limit": 1, "cursor": body["next_cursor"]}
    assert seen == [b["id"] for b in made]
    assert cursors[-1] is None
    assert all(isinstance(c, str) for c in cursors[:-1])


async def test_limit_out_of_range_is_refused(client: httpx.AsyncClient, rt: Runtime) -> None:
    owner = await make_person(client, rt)
    for limit in (1001, 0):
        answer = await client.get("/api/v1/buckets", params={"limit": limit}, headers=owner.headers)
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "INVALID_LIMIT"
    answer = await client.get("/api/v1/buckets", params={"limit": 1000}, headers=owner.headers)
    assert answer.status_code == 200
    bad_cursor = await client.get(
        "/api/v1/buckets", params={"cursor": "not-a-cursor"}, headers=owner.headers
    )
    assert bad_cursor.status_code == 400
    assert bad_cursor.json()["error"]["code"] == "INVALID_CURSOR"


async def test_patch_changes_the_given_fields_only(client: httpx.AsyncClient, rt: Runtime) -> None:
    owner = await make_person(client, rt)
    bucket = await make_bucket(client, owner, description="before", retention_days=7)
    url = f"/api/v1/buckets/{bucket['id']}"
    answer = await client.patch(
        url, json={"description": "after", "retention_days": 90}, headers=owner.headers
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["description"] == "after"
    assert body["retention_days"] == 90
    assert body["name"] == bucket["name"]
    assert body["created_at"] == bucket["created_at"]
    got = (await client.get(url, headers=owner.headers)).json()
    assert got["description"] == "after"
    assert got["retention_days"] == 90
    bad = await client.patch(url, json={"retention_days": 0}, headers=owner.headers)
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "VALIDATION_FAILED"


async def test_deleted_bucket_is_not_found(client: httpx.AsyncClient, rt: Runtime) -> None:
    owner = await make_person(client, rt)
    bucket = await make_bucket(client, owner)
    url = f"/api/v1/buckets/{bucket['id']}"
    assert (await client.get(url, headers=owner.headers)).status_code == 200
    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    answer = await client.get(url, headers=owner.headers)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "BUCKET_NOT_FOUND"
    assert (await client.delete(url, headers=owner.headers)).status_code == 404
    listing = await client.get("/api/v1/buckets", headers=owner.headers)
    assert bucket["id"] not in listing.text


async def test_a_stranger_gets_the_same_404_as_for_an_absent_bucket(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    stranger = await make_person(client, rt)
    bucket = await make_bucket(client, owner)
    drop = PER_ANSWER_HEADERS
    for method, body in (
        ("GET", None),
        ("PATCH", {"name": "mine now"}),
        ("DELETE", None),
        ("GET", "keys"),
    ):
        suffix = "/keys" if body == "keys" else ""
        payload = body if isinstance(body, dict) else None
        a = await client.request(
            method,
            f"/api/v1/buckets/{bucket['id']}{suffix}",
            json=payload,
            headers=stranger.headers,
        )
        b = await client.request(
            method, f"/api/v1/buckets/{ABSENT}{suffix}", json=payload, headers=stranger.headers
        )
        assert a.status_code == b.status_code == 404, (method, suffix)
        assert a.json()["error"]["code"] == "BUCKET_NOT_FOUND"
        assert a.content == b.content
        assert {k: v for k, v in a.headers.items() if k not in drop} == {
            k: v for k, v in b.headers.items() if k not in drop
        }
    listing = await client.get("/api/v1/buckets", headers=stranger.headers)
    assert bucket["id"] not in listing.text
    got = await client.get(f"/api/v1/buckets/{bucket['id']}", headers=owner.headers)
    assert got.status_code == 200
    assert got.json()["name"] == bucket["name"]


@pytest.mark.parametrize(
    ("field", "value"), [("id", ABSENT), ("organization_id", ABSENT), ("created_at", "2020-01-01")]
)
async def test_a_read_only_field_in_the_body_is_refused(
    client: httpx.AsyncClient, rt: Runtime, field: str, value: str
) -> None:
    owner = await make_person(client, rt)
    name = unique("b")
    answer = await client.post(
        "/api/v1/buckets", json={"name": name, field: value}, headers=owner.headers
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "READ_ONLY_FIELD"
    bucket = await make_bucket(client, owner, name=name)  # the same body without it is fine
    patched = await client.patch(
        f"/api/v1/buckets/{bucket['id']}", json={field: value}, headers=owner.headers
    )
    assert patched.status_code == 400
    assert patched.json()["error"]["code"] == "READ_ONLY_FIELD"
    got = await client.get(f"/api/v1/buckets/{bucket['id']}", headers=owner.headers)
    assert got.json()["id"] == bucket["id"]
    assert got.json()["organization_id"] == owner.org_id


async def test_an_unknown_field_is_refused(client: httpx.AsyncClient, rt: Runtime) -> None:
    owner = await make_person(client, rt)
    answer = await client.post(
        "/api/v1/buckets", json={"name": unique("b"), "colour": "red"}, headers=owner.headers
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "VALIDATION_FAILED"
    assert any(d["field"] == "colour" for d in error["details"])


async def test_duplicate_json_keys_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    headers = {**owner.headers, "Content-Type": "application/json"}
    answer = await client.post(
        "/api/v1/buckets", content=b'{"name": "a-1", "name": "a-2"}', headers=headers
    )
    assert answer.status_code == 400
    assert "error" in answer.json()
    listing = await client.get("/api/v1/buckets", headers=owner.headers)
    assert listing.json()["items"] == []
    single = await client.post("/api/v1/buckets", content=b'{"name": "a-2"}', headers=headers)
    assert single.status_code == 201
    assert single.json()["name"] == "a-2"


async def test_duplicate_json_keys_answer_invalid_json(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    headers = {**owner.headers, "Content-Type": "application/json"}
    single = await client.post("/api/v1/buckets", content=b'{"name": "b-1"}', headers=headers)
    assert single.status_code == 201
    for body in (b'{"name": "b-2", "name": "b-3"}', b'{"name": "b-4",'):
        answer = await client.post("/api/v1/buckets", content=body, headers=headers)
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "INVALID_JSON"


async def test_a_form_body_on_a_json_route_is_415(client: httpx.AsyncClient, rt: Runtime) -> None:
    owner = await make_person(client, rt)
    answer = await client.post("/api/v1/buckets", data={"name": unique("b")}, headers=owner.headers)
    assert answer.status_code == 415
    assert answer.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    listing = await client.get("/api/v1/buckets", headers=owner.headers)
    assert listing.json()["items"] == []


# --- API keys -----------------------------------------------------------------------------------


async def test_a_bucket_key_secret_is_shown_once_and_listed_by_prefix(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    bucket = await make_bucket(client, owner)
    answer = await client.post(
        f"/api/v1/buckets/{bucket['id']}/keys",
        json={"name": "uploader", "role": "write"},
        headers=owner.headers,
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["cache-control"] == "no-store"
    key = answer.json()
    secret = key["secret"]
    assert re.fullmatch(r"tb_k_[A-Za-z0-9_-]{43}", secret)
    assert key["prefix"] == secret[:12]
    assert (key["name"], key["role"], key["bucket_id"]) == ("uploader", "write", bucket["id"])
    assert key["format"] == "native"

    listing = await client.get(f"/api/v1/buckets/{bucket['id']}/keys", headers=owner.headers)
    assert listing.status_code == 200
    items = listing.json()["items"]
    assert [k["id"] for k in items] == [key["id"]]
    assert items[0]["prefix"] == secret[:12]
    assert "last_used_at" in items[0]
    assert "secret" not in items[0]
    assert secret not in listing.text
    assert secret[12:] not in listing.text


async def test_a_dakkio_key_authenticates_in_its_own_form(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    bucket = await make_bucket(client, owner)
    dakkio = await bucket_key(client, owner, bucket["id"], "read", format="dakkio")
    assert re.fullmatch(r"dakkio_r_[0-9a-f]{40}", dakkio["secret"])
    assert dakkio["prefix"] == dakkio["secret"][:13] + "..."
    assert dakkio["format"] == "dakkio"
    answer = await me(client, {"X-API-Key": dakkio["secret"]})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "kind": "api_key",
        "id": dakkio["id"],
        "instance_admin": False,
        "orgs": [],
        "groups": [],
        "organization_id": owner.org_id,
        "bucket_id": bucket["id"],
        "role": "read",
    }
    writer = await bucket_key(client, owner, bucket["id"], "write", format="dakkio")
    assert re.fullmatch(r"dakkio_w_[0-9a-f]{40}", writer["secret"])
    answer = await me(client, bearer(writer["secret"]))
    assert (answer.status_code, answer.json()["id"]) == (200, writer["id"])
    # The same shape with other hex digits is no key.
    stray = await me(client, {"X-API-Key": "dakkio_r_" + "0" * 40})
    assert stray.status_code == 401


async def test_a_bitpool_key_authenticates_as_bitpool2_uuid_in_upper_case(
    client: httpx.AsyncClient, rt: Runtime, backend: str, request: pytest.FixtureRequest
) -> None:
    owner = await make_person(client, rt)
    bucket = await make_bucket(client, owner)
    bitpool = await bucket_key(client, owner, bucket["id"], "write", format="bitpool")
    value = bitpool["secret"]
    assert str(uuid.UUID(value)) == value
    assert uuid.UUID(value).version == 4
    assert bitpool["prefix"] == f"Bitpool2 {value[:8]}-****-****-****-************"
    answer = await me(client, {"Authorization": f"Bitpool2 {value.upper()}"})
    assert answer.status_code == 200, answer.text
    assert (answer.json()["kind"], answer.json()["id"]) == ("api_key", bitpool["id"])
    assert answer.json()["role"] == "write"
    # A UUID that is no key does not authenticate.
    stray = await me(client, {"Authorization": f"Bitpool2 {str(uuid.uuid4()).upper()}"})
    assert stray.status_code == 401


async def test_x_api_key_and_bearer_both_carry_a_key_but_not_two_different_ones(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    bucket = await make_bucket(client, owner)
    key = await bucket_key(client, owner, bucket["id"], "read")
    other = await bucket_key(client, owner, bucket["id"], "read")
    secret = key["secret"]
    for headers in (
        {"X-API-Key": secret},
        bearer(secret),
        {"Authorization": f"bEaReR   {secret}  "},
        {"X-API-Key": secret, "Authorization": f"Bearer {secret}"},
    ):
        answer = await me(client, headers)
        assert answer.status_code == 200, headers
        assert answer.json()["id"] == key["id"]
    both = await me(client, {"X-API-Key": secret, "Authorization": f"Bearer {other['secret']}"})
    assert both.status_code == 400
    assert both.json()["error"]["code"] == "AMBIGUOUS_CREDENTIALS"
    # One of the two being a person's token is still two credentials.
    mixed = await me(client, {"X-API-Key": secret, **owner.headers})
    assert mixed.status_code == 400
    assert mixed.json()["error"]["code"] == "AMBIGUOUS_CREDENTIALS"


async def test_a_deleted_key_gets_401(client: httpx.AsyncClient, rt: Runtime) -> None:
    owner = await make_person(client, rt)
    bucket = await make_bucket(client, owner)
    key = await bucket_key(client, owner, bucket["id"], "write")
    headers = {"X-API-Key": key["secret"]}
    assert (await me(client, headers)).status_code == 200
    deleted = await client.delete(
        f"/api/v1/buckets/{bucket['id']}/keys/{key['id']}", headers=owner.headers
    )
    assert deleted.status_code == 204
    answer = await me(client, headers)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "INVALID_CREDENTIALS"
    assert answer.headers["www-authenticate"] == WWW_AUTHENTICATE
    listing = await client.get(f"/api/v1/buckets/{bucket['id']}/keys", headers=owner.headers)
    assert listing.json()["items"] == []


async def test_an_org_key_works_across_the_buckets_of_its_org_only(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    stranger = await make_person(client, rt)
    a = await make_bucket(client, owner)
    b = await make_bucket(client, owner)
    foreign = await make_bucket(client, stranger)
    key = await create_key(client, owner, f"/api/v1/orgs/{owner.org_id}/keys", "write")
    assert key["bucket_id"] is None
    headers = {"X-API-Key": key["secret"]}
    for bucket in (a, b):
        got = await client.get(f"/api/v1/buckets/{bucket['id']}", headers=headers)
        assert got.status_code == 200
        thing = await client.post(
            "/api/v1/things", json={"name": "t", "bucket_id": bucket["id"]}, headers=headers
        )
        assert thing.status_code == 201, thing.text
    listing = await client.get("/api/v1/buckets", headers=headers)
    assert [x["id"] for x in listing.json()["items"]] == [a["id"], b["id"]]
    answer = await client.get(f"/api/v1/buckets/{foreign['id']}", headers=headers)
    assert answer.status_code == 404
    org_keys = await client.get(f"/api/v1/orgs/{owner.org_id}/keys", headers=owner.headers)
    assert [k["id"] for k in org_keys.json()["items"]] == [key["id"]]
    assert "secret" not in org_keys.json()["items"][0]


async def test_a_bucket_key_gets_404_on_another_buckets_things(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    a = await make_bucket(client, owner)
    b = await make_bucket(client, owner)
    thing_a = await make_thing(client, owner, a["id"])
    thing_b = await make_thing(client, owner, b["id"])
    key = await bucket_key(client, owner, a["id"], "write")
    headers = {"X-API-Key": key["secret"]}
    assert (await client.get(f"/api/v1/things/{thing_a['id']}", headers=headers)).status_code == 200
    for method, url, body in (
        ("GET", f"/api/v1/things/{thing_b['id']}", None),
        ("PATCH", f"/api/v1/things/{thing_b['id']}", {"name": "x"}),
        ("POST", f"/api/v1/things/{thing_b['id']}/properties", {"name": "p", "type": "COUNT"}),
        ("GET", f"/api/v1/buckets/{b['id']}", None),
    ):
        answer = await client.request(method, url, json=body, headers=headers)
        assert answer.status_code == 404, (method, url)
    created = await client.post(
        "/api/v1/things", json={"name": "t", "bucket_id": b["id"]}, headers=headers
    )
    assert created.status_code == 404
    listing = await client.get("/api/v1/things", headers=headers)
    assert [t["id"] for t in listing.json()["items"]] == [thing_a["id"]]


async def test_a_read_key_cannot_create_a_thing_and_a_write_key_can(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    bucket = await make_bucket(client, owner)
    reader = await bucket_key(client, owner, bucket["id"], "read")
    writer = await bucket_key(client, owner, bucket["id"], "write")
    body = {"name": "sensor", "bucket_id": bucket["id"]}
    refused = await client.post(
        "/api/v1/things", json=body, headers={"X-API-Key": reader["secret"]}
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "FORBIDDEN"
    made = await client.post("/api/v1/things", json=body, headers={"X-API-Key": writer["secret"]})
    assert made.status_code == 201
    assert made.json()["bucket_id"] == bucket["id"]
    # Without bucket_id a bucket key puts the thing in its own bucket.
    implicit = await client.post(
        "/api/v1/things", json={"name": "n"}, headers={"X-API-Key": writer["secret"]}
    )
    assert implicit.status_code == 201
    assert implicit.json()["bucket_id"] == bucket["id"]
    listing = await client.get(
        "/api/v1/things",
        params={"bucket_id": bucket["id"]},
        headers={"X-API-Key": reader["secret"]},
    )
    assert [t["id"] for t in listing.json()["items"]] == [made.json()["id"], implicit.json()["id"]]


async def test_a_bucket_admin_key_creates_lower_keys_only(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    bucket = await make_bucket(client, owner)
    admin = await bucket_key(client, owner, bucket["id"], "admin")
    headers = {"X-API-Key": admin["secret"]}
    url = f"/api/v1/buckets/{bucket['id']}/keys"
    refused = await client.post(url, json={"name": "peer", "role": "admin"}, headers=headers)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "FORBIDDEN"
    read = await create_key(client, headers, url, "read")
    assert read["role"] == "read"
    assert read["secret"].startswith("tb_k_")
    assert (await me(client, {"X-API-Key": read["secret"]})).json()["role"] == "read"
    # The admin key cannot delete its own bucket (nor itself).
    deleted = await client.delete(f"/api/v1/buckets/{bucket['id']}", headers=headers)
    assert deleted.status_code == 403
    itself = await client.delete(f"{url}/{admin['id']}", headers=headers)
    assert itself.status_code == 403
    # ... but revokes the lower key it made.
    assert (await client.delete(f"{url}/{read['id']}", headers=headers)).status_code == 204


async def test_credentials_in_the_query_string_are_refused(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    for name in ("access_token", "API_KEY", "token"):
        answer = await client.get("/api/v1/buckets", params={name: owner.token})
        assert answer.status_code == 400, name
        assert answer.json()["error"]["code"] == "CREDENTIALS_IN_URL"
        assert owner.token not in answer.text
    # Even with a valid header, and before authentication.
    answer = await client.get(
        "/api/v1/buckets", params={"access_token": "x"}, headers=owner.headers
    )
    assert answer.status_code == 400
    ok = await client.get("/api/v1/buckets", params={"limit": 5}, headers=owner.headers)
    assert ok.status_code == 200


async def test_401_answers_carry_www_authenticate(client: httpx.AsyncClient, rt: Runtime) -> None:
    missing = await client.get("/api/v1/buckets")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "AUTHENTICATION_REQUIRED"
    assert missing.headers["www-authenticate"] == WWW_AUTHENTICATE
    for headers in (
        bearer("tb_k_" + "x" * 43),
        {"X-API-Key": "dakkio_r_" + "0" * 40},
        bearer("tb_at_nope"),
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ):
        bad = await client.get("/api/v1/buckets", headers=headers)
        assert bad.status_code == 401, headers
        assert bad.json()["error"]["code"] == "INVALID_CREDENTIALS"
        assert bad.headers["www-authenticate"] == WWW_AUTHENTICATE
    owner = await make_person(client, rt)
    good = await client.get("/api/v1/buckets", headers=owner.headers)
    assert good.status_code == 200
    assert "www-authenticate" not in good.headers


async def test_a_nul_in_the_url_is_refused_before_any_lookup(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    for url in ("/api/v1/buckets/abc%00def", "/api/v1/persons?email=a%00b@example.com"):
        answer = await client.get(url, headers=owner.headers)
        assert answer.status_code == 400, url
        assert answer.json()["error"]["code"] == "INVALID_URL"
    named = await client.post("/api/v1/buckets", json={"name": "a\u0000b"}, headers=owner.headers)
    assert named.status_code == 400
    assert named.json()["error"]["code"] == "INVALID_JSON"
