"""Grants, groups and the audit log through the native API, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from helpers import Account, make_bucket, make_person, make_property, make_setup, make_thing, post
from thingbucket.runtime import Runtime
from thingbucket.sharing import service as sharing

pytestmark = pytest.mark.asyncio(loop_scope="session")


def now_ms() -> int:
    return int(time.time() * 1000)


async def grant(
    client: httpx.AsyncClient,
    who: Account,
    subject: dict[str, Any],
    action: str,
    kind: str,
    resource_id: str,
) -> httpx.Response:
    return await client.post(
        "/api/v1/grants",
        json={"subject": subject, "action": action, "resource": {"kind": kind, "id": resource_id}},
        headers=who.headers,
    )


def points_url(thing_id: str, property_id: str) -> str:
    return f"/api/v1/things/{thing_id}/properties/{property_id}/points"


async def test_a_grant_on_one_property_opens_that_property_only_until_revoked(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    other_prop = await make_property(client, s.owner, s.thing["id"])
    reader = await make_person(client, rt)
    t = now_ms() - 1000
    written = await client.post(
        s.points_url, json={"points": [[t, 1, 2, 3]]}, headers=s.owner.headers
    )
    assert written.status_code == 204
    assert (await client.get(s.points_url, headers=reader.headers)).status_code == 404

    made = await grant(
        client, s.owner, {"kind": "person", "id": reader.id}, "read", "property", s.prop["id"]
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["subject"] == {"kind": "person", "id": reader.id}
    assert body["resource"] == {"kind": "property", "id": s.prop["id"]}

    answer = await client.get(s.points_url, params={"from": t - 1}, headers=reader.headers)
    assert answer.status_code == 200
    assert answer.json()["rows"] == [[t, 1.0, 2.0, 3.0]]
    # Read only, and nothing else of the thing.
    again = await client.post(s.points_url, json={"points": [[t, 9, 9, 9]]}, headers=reader.headers)
    assert again.status_code in (403, 404)
    other = points_url(s.thing["id"], other_prop["id"])
    assert (await client.get(other, headers=reader.headers)).status_code == 404
    assert (
        await client.get(f"/api/v1/things/{s.thing['id']}", headers=reader.headers)
    ).status_code == 404
    # The reader cannot pass it on: granting takes admin.
    third = await make_person(client, rt)
    passed = await grant(
        client, reader, {"kind": "person", "id": third.id}, "read", "property", s.prop["id"]
    )
    assert passed.status_code in (403, 404)

    revoked = await client.delete(f"/api/v1/grants/{body['id']}", headers=s.owner.headers)
    assert revoked.status_code == 204
    deadline = time.monotonic() + 1.0
    status = 200
    while time.monotonic() < deadline:
        status = (await client.get(s.points_url, headers=reader.headers)).status_code
        if status == 404:
            break
    assert status == 404
    # The grant is gone for good; a stranger cannot even tell it existed.
    assert (
        await client.delete(f"/api/v1/grants/{body['id']}", headers=s.owner.headers)
    ).status_code == 404

    audit = await client.get(
        "/api/v1/audit", params={"org_id": s.owner.org_id}, headers=s.owner.headers
    )
    assert audit.status_code == 200
    events = [e["event"] for e in audit.json()["items"]]
    assert "grant.created" in events
    assert "grant.revoked" in events
    # The reader's refused write, pass-on and reads after the revocation, counted per reason.
    await rt.audit.flush()
    audit = await client.get(
        "/api/v1/audit", params={"org_id": s.owner.org_id}, headers=s.owner.headers
    )
    # Rows are per 10 s window: one kind of refusal may span two rows.
    denials: dict[tuple[str, str, str], int] = {}
    for e in audit.json()["items"]:
        if e["event"] == "authz.denied" and e["actor_id"] == reader.id:
            assert e["outcome"] == "denied"
            key = (e["reason"], e["target_kind"], e["target_id"])
            denials[key] = denials.get(key, 0) + e["count"]
    prop, other_prop_id = s.prop["id"], other_prop["id"]
    assert set(denials) >= {
        ("FORBIDDEN POST", "property", prop),  # the write, and passing the grant on
        ("PROPERTY_NOT_FOUND GET", "property", prop),  # before the grant and after revoking
        ("PROPERTY_NOT_FOUND GET", "property", other_prop_id),
        ("THING_NOT_FOUND GET", "thing", s.thing["id"]),
    }, sorted(denials)
    assert denials[("PROPERTY_NOT_FOUND GET", "property", prop)] >= 2
    assert (
        await client.get("/api/v1/audit", params={"org_id": s.owner.org_id}, headers=reader.headers)
    ).status_code in (403, 404)


async def test_a_group_grant_follows_its_members(client: httpx.AsyncClient, rt: Runtime) -> None:
    s = await make_setup(client, rt)
    member = await make_person(client, rt)
    group = await post(client, s.owner, "/api/v1/groups", {"name": "field team"})
    assert group["organization_id"] == s.owner.org_id
    made = await grant(
        client, s.owner, {"kind": "group", "id": group["id"]}, "read", "bucket", s.bucket["id"]
    )
    assert made.status_code == 201, made.text
    thing_url = f"/api/v1/things/{s.thing['id']}"
    assert (await client.get(thing_url, headers=member.headers)).status_code == 404

    added = await client.post(
        f"/api/v1/groups/{group['id']}/members",
        json={"kind": "person", "id": member.id},
        headers=s.owner.headers,
    )
    assert added.status_code == 200, added.text
    assert added.json()["members"] == [{"kind": "person", "id": member.id}]
    assert (await client.get(thing_url, headers=member.headers)).status_code == 200
    assert (await client.get(s.points_url, headers=member.headers)).status_code == 200
    listing = await client.get("/api/v1/things", headers=member.headers)
    assert [t["id"] for t in listing.json()["items"]] == [s.thing["id"]]

    removed = await client.delete(
        f"/api/v1/groups/{group['id']}/members/person/{member.id}", headers=s.owner.headers
    )
    assert removed.status_code == 204
    assert (await client.get(thing_url, headers=member.headers)).status_code == 404
    listing = await client.get("/api/v1/things", headers=member.headers)
    assert listing.json()["items"] == []


async def test_a_group_of_another_organization_cannot_be_granted_or_managed(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    stranger = await make_person(client, rt)
    theirs = await post(client, stranger, "/api/v1/groups", {"name": "theirs"})
    made = await grant(
        client, s.owner, {"kind": "group", "id": theirs["id"]}, "read", "bucket", s.bucket["id"]
    )
    assert made.status_code == 400
    assert made.json()["error"]["code"] == "SUBJECT_NOT_FOUND"
    # Someone else's group is invisible: the same 404 as an absent one.
    absent = await client.get(
        "/api/v1/groups/00000000-0000-4000-8000-000000000000", headers=s.owner.headers
    )
    foreign = await client.get(f"/api/v1/groups/{theirs['id']}", headers=s.owner.headers)
    assert (absent.status_code, foreign.status_code) == (404, 404)
    assert absent.json()["error"]["code"] == foreign.json()["error"]["code"] == "GROUP_NOT_FOUND"


async def test_keys_keep_to_their_bucket_and_role(client: httpx.AsyncClient, rt: Runtime) -> None:
    s = await make_setup(client, rt)
    other_bucket = await make_bucket(client, s.owner)
    other_thing = await make_thing(client, s.owner, other_bucket["id"])
    other_prop = await make_property(client, s.owner, other_thing["id"])

    async def key(role: str) -> dict[str, str]:
        made = await post(
            client, s.owner, f"/api/v1/buckets/{s.bucket['id']}/keys", {"name": role, "role": role}
        )
        return {"X-API-Key": made["secret"]}

    read, write = await key("read"), await key("write")
    t = now_ms() - 1000
    body = {"points": [[t, 1, 2, 3]]}
    assert (await client.post(s.points_url, json=body, headers=write)).status_code == 204
    assert (await client.get(s.points_url, headers=read)).status_code == 200
    assert (await client.post(s.points_url, json=body, headers=read)).status_code in (403, 404)
    other = points_url(other_thing["id"], other_prop["id"])
    assert (await client.get(other, headers=write)).status_code == 404
    assert (await client.post(other, json=body, headers=write)).status_code == 404
    for headers in (read, write):
        things = await client.get("/api/v1/things", headers=headers)
        assert [x["id"] for x in things.json()["items"]] == [s.thing["id"]]
        buckets = await client.get("/api/v1/buckets", headers=headers)
        assert [b["id"] for b in buckets.json()["items"]] == [s.bucket["id"]]


async def test_public_grants_open_a_property_without_credentials(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    assert (await client.get(s.points_url)).status_code == 401
    made = await grant(client, s.owner, {"kind": "public"}, "read", "property", s.prop["id"])
    assert made.status_code == 201, made.text
    assert (await client.get(s.points_url)).status_code == 200
    assert (
        await client.post(s.points_url, json={"points": [[now_ms(), 1, 1, 1]]})
    ).status_code == 401


async def test_grants_are_listed_for_the_resource_admins_and_for_their_subjects(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    reader = await make_person(client, rt)
    made = await grant(
        client, s.owner, {"kind": "person", "id": reader.id}, "read", "thing", s.thing["id"]
    )
    assert made.status_code == 201
    on = await client.get(
        "/api/v1/grants", params={"resource": f"thing:{s.thing['id']}"}, headers=s.owner.headers
    )
    # The creator's own admin grant comes first, then the one just made.
    assert [(g["subject"]["id"], g["action"]) for g in on.json()["items"]] == [
        (s.owner.id, "admin"),
        (reader.id, "read"),
    ]
    mine = await client.get("/api/v1/grants", headers=reader.headers)
    assert [g["id"] for g in mine.json()["items"]] == [made.json()["id"]]
    # The reader may not list the thing's grants (that takes admin).
    denied = await client.get(
        "/api/v1/grants", params={"resource": f"thing:{s.thing['id']}"}, headers=reader.headers
    )
    assert denied.status_code == 403
    bad = await grant(
        client, s.owner, {"kind": "person", "id": "nobody"}, "read", "thing", s.thing["id"]
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "SUBJECT_NOT_FOUND"


async def test_a_not_found_is_a_denial_only_when_the_thing_exists(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    stranger = await make_person(client, rt)
    operator = await make_person(client, rt, admin=True)
    started = datetime.now(UTC).isoformat()  # the operator sees every org's events since
    absent = str(uuid.uuid4())
    hidden = await client.get(f"/api/v1/things/{s.thing['id']}", headers=stranger.headers)
    missing = await client.get(f"/api/v1/things/{absent}", headers=stranger.headers)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()
    await rt.audit.flush()
    assert rt.audit.dropped == 0
    answer = await client.get(
        "/api/v1/audit", params={"from": started, "limit": 1000}, headers=operator.headers
    )
    mine = [
        e
        for e in answer.json()["items"]
        if e["actor_id"] == stranger.id and e["event"] == "authz.denied"
    ]
    assert [(e["event"], e["target_id"], e["organization_id"]) for e in mine] == [
        ("authz.denied", s.thing["id"], s.owner.org_id)
    ]


async def test_denial_targets_resolve_to_their_org_in_one_batch(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    """The audit flush resolves thousands of denial targets at once (one query per kind)."""
    s = await make_setup(client, rt)
    group = await client.post(
        "/api/v1/groups", json={"name": "g", "org_id": s.owner.org_id}, headers=s.owner.headers
    )
    reader = await make_person(client, rt)
    made = await grant(
        client, s.owner, {"kind": "person", "id": reader.id}, "read", "thing", s.thing["id"]
    )
    org = s.owner.org_id
    present = {
        ("org", org): org,
        ("bucket", s.bucket["id"]): org,
        ("thing", s.thing["id"]): org,
        ("property", s.prop["id"]): org,
        ("group", group.json()["id"]): org,
        ("grant", made.json()["id"]): org,
    }
    # Absent ids of every kind, more than one IN list holds; kinds without an org resolve to None.
    absent = [(kind, str(uuid.uuid4())) for kind, _ in present for _ in range(600)]
    unowned = [("person", reader.id), ("token", "t"), ("api_key", "k")]
    async with rt.db.session() as session:
        orgs = await sharing.target_orgs(session, [*present, *absent, *unowned])
    assert {t: orgs[t] for t in present} == present
    assert {orgs[t] for t in [*absent, *unowned]} == {None}
    assert len(orgs) == len(present) + len(absent) + len(unowned)
