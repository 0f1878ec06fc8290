"""Logins, tokens, organizations, persons and the audit rows of authentication (native API)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from helpers import PASSWORD, Account, bearer, make_person, unique
from thingbucket.access.models import AuditEvent
from thingbucket.runtime import Runtime

pytestmark = pytest.mark.asyncio(loop_scope="session")

ABSENT = "00000000-0000-4000-8000-000000000000"
TOKEN_URL = "/api/v1/auth/token"


def password_form(username: str, password: str) -> dict[str, str]:
    return {"grant_type": "password", "username": username, "password": password}


@asynccontextmanager
async def client_at(
    started: tuple[FastAPI, Runtime], address: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A client from another source address, so the per-address login throttle of the shared
    client (127.0.0.1) is not used up by the failures a test provokes on purpose."""
    transport = httpx.ASGITransport(app=started[0], client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
        yield c


async def me(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.get("/api/v1/me", headers=headers)


async def create_org(client: httpx.AsyncClient, who: Account, name: str | None = None) -> Any:
    answer = await client.post(
        "/api/v1/orgs", json={"name": name or unique("org")}, headers=who.headers
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


async def add_member(
    client: httpx.AsyncClient, owner: Account, org_id: str, person: Account, role: str
) -> None:
    answer = await client.post(
        f"/api/v1/orgs/{org_id}/members",
        json={"person_id": person.id, "role": role},
        headers=owner.headers,
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["role"] == role


# --- the token endpoint -------------------------------------------------------------------------


async def test_password_grant_answers_only_the_oauth2_fields_and_is_not_cached(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    person = await make_person(client, rt)
    answer = await client.post(TOKEN_URL, data=password_form(person.email.upper(), PASSWORD))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"].startswith("tb_at_")
    assert body["refresh_token"].startswith("tb_rt_")
    assert answer.headers["cache-control"] == "no-store"
    # The new access token works; a made-up one of the same shape does not.
    assert (await me(client, bearer(body["access_token"]))).status_code == 200
    assert (await me(client, bearer("tb_at_" + "A" * 43))).status_code == 401


async def test_me_answers_the_person_with_email_and_the_personal_org_as_owner(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    person = await make_person(client, rt)
    answer = await me(client, person.headers)
    assert answer.status_code == 200
    body = answer.json()
    assert body["kind"] == "person"
    assert body["id"] == person.id
    assert body["email"] == person.email
    assert body["personal_org_id"] == person.org_id
    assert body["orgs"] == [
        {
            "id": person.org_id,
            "name": f"{person.email} (personal)",
            "role": "owner",
            "personal": True,
        }
    ]
    assert (await me(client, {})).status_code == 401


async def test_wrong_password_and_unknown_account_get_byte_identical_answers(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    person = await make_person(client, rt)
    wrong = await client.post(TOKEN_URL, data=password_form(person.email, "not the password"))
    unknown = await client.post(
        TOKEN_URL, data=password_form(f"{unique('nobody')}@example.com", "not the password")
    )
    assert wrong.status_code == unknown.status_code == 400
    assert wrong.json()["error"]["code"] == "INVALID_GRANT"
    assert wrong.content == unknown.content
    drop = {"date", "x-request-id"}
    assert {k: v for k, v in wrong.headers.items() if k not in drop} == {
        k: v for k, v in unknown.headers.items() if k not in drop
    }
    # Positive control: the right password still works (one failure does not lock the account).
    right = await client.post(TOKEN_URL, data=password_form(person.email, PASSWORD))
    assert right.status_code == 200


async def test_after_five_failures_the_account_is_throttled_even_with_the_right_password(
    client: httpx.AsyncClient, rt: Runtime, started: tuple[FastAPI, Runtime]
) -> None:
    victim = await make_person(client, rt)
    bystander = await make_person(client, rt)
    async with client_at(started, "127.0.0.66") as other:
        for _ in range(5):
            answer = await other.post(TOKEN_URL, data=password_form(victim.email, "wrong-pass"))
            assert answer.status_code == 400
            assert answer.json()["error"]["code"] == "INVALID_GRANT"
        sixth = await other.post(TOKEN_URL, data=password_form(victim.email, PASSWORD))
        assert sixth.status_code == 429, sixth.text
        assert sixth.json()["error"]["code"] == "LOGIN_THROTTLED"
        assert 1 <= int(sixth.headers["retry-after"]) <= 900
        assert "access_token" not in sixth.text
        # The throttle is per account: another account logs in from the same address.
        assert (
            await other.post(TOKEN_URL, data=password_form(bystander.email, PASSWORD))
        ).status_code == 200
    # ... and per account, not per address: the victim is throttled from anywhere.
    assert (
        await client.post(TOKEN_URL, data=password_form(victim.email, PASSWORD))
    ).status_code == 429
    # Tokens issued before the throttle keep working.
    assert (await me(client, victim.headers)).status_code == 200


async def test_unsupported_grant_type_and_missing_fields_are_refused(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    person = await make_person(client, rt)
    answer = await client.post(
        TOKEN_URL, data={"grant_type": "client_credentials", "username": person.email}
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "UNSUPPORTED_GRANT_TYPE"
    answer = await client.post(TOKEN_URL, data={"grant_type": "refresh_token"})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "INVALID_GRANT"


# --- refresh tokens -----------------------------------------------------------------------------


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(
        TOKEN_URL, data={"grant_type": "refresh_token", "refresh_token": token}
    )


async def test_refresh_grant_returns_a_new_pair_and_the_old_refresh_token_is_refused(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    person = await make_person(client, rt)
    answer = await refresh(client, person.refresh_token)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["access_token"] != person.token
    assert body["refresh_token"] != person.refresh_token
    assert body["refresh_token"].startswith("tb_rt_")
    mine = await me(client, bearer(body["access_token"]))
    assert mine.status_code == 200
    assert mine.json()["id"] == person.id
    again = await refresh(client, person.refresh_token)
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "INVALID_GRANT"
    # A refresh token is no access token.
    assert (await me(client, bearer(body["refresh_token"]))).status_code == 401


async def test_reusing_a_spent_refresh_token_revokes_the_whole_chain(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    person = await make_person(client, rt)
    other = await make_person(client, rt)
    newer = (await refresh(client, person.refresh_token)).json()
    assert (await me(client, bearer(newer["access_token"]))).status_code == 200
    assert (await refresh(client, person.refresh_token)).status_code == 400  # reuse
    answer = await me(client, bearer(newer["access_token"]))
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="thingbucket"'
    assert (await me(client, person.headers)).status_code == 401
    assert (await refresh(client, newer["refresh_token"])).status_code == 400
    # Only that chain: another person's tokens and a new login are unaffected.
    assert (await me(client, other.headers)).status_code == 200
    assert (
        await client.post(TOKEN_URL, data=password_form(person.email, PASSWORD))
    ).status_code == 200


# --- personal access tokens ---------------------------------------------------------------------


async def test_personal_token_secret_is_shown_once_listed_by_prefix_and_revocable(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    person = await make_person(client, rt)
    answer = await client.post(
        "/api/v1/tokens", json={"name": "ci", "scopes": ["read", "write"]}, headers=person.headers
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["cache-control"] == "no-store"
    created = answer.json()
    secret = created["secret"]
    assert secret.startswith("tb_p_")
    assert len(secret) == len("tb_p_") + 43
    assert created["prefix"] == secret[:12]
    assert created["name"] == "ci"
    assert created["scopes"] == ["read", "write"]

    listing = await client.get("/api/v1/tokens", headers=person.headers)
    assert listing.status_code == 200
    items = listing.json()["items"]
    assert [t["id"] for t in items] == [created["id"]]
    assert "secret" not in items[0]
    assert items[0]["prefix"] == secret[:12]
    assert "last_used_at" in items[0]
    assert secret not in listing.text

    mine = await me(client, bearer(secret))
    assert mine.status_code == 200
    assert mine.json()["kind"] == "person"
    assert mine.json()["id"] == person.id
    assert mine.json()["scopes"] == ["read", "write"]

    deleted = await client.delete(f"/api/v1/tokens/{created['id']}", headers=person.headers)
    assert deleted.status_code == 204
    assert (await me(client, bearer(secret))).status_code == 401
    assert (await client.get("/api/v1/tokens", headers=person.headers)).json()["items"] == []
    again = await client.delete(f"/api/v1/tokens/{created['id']}", headers=person.headers)
    assert again.status_code == 404


async def test_another_person_cannot_revoke_my_personal_token(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    person = await make_person(client, rt)
    stranger = await make_person(client, rt)
    created = (
        await client.post("/api/v1/tokens", json={"name": "mine"}, headers=person.headers)
    ).json()
    answer = await client.delete(f"/api/v1/tokens/{created['id']}", headers=stranger.headers)
    absent = await client.delete(f"/api/v1/tokens/{ABSENT}", headers=stranger.headers)
    assert answer.status_code == absent.status_code == 404
    assert answer.content == absent.content
    assert (await me(client, bearer(created["secret"]))).status_code == 200


async def test_a_read_scoped_token_reads_buckets_but_cannot_create_one(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    person = await make_person(client, rt)
    secret = (
        await client.post(
            "/api/v1/tokens", json={"name": "reader", "scopes": ["read"]}, headers=person.headers
        )
    ).json()["secret"]
    listing = await client.get("/api/v1/buckets", headers=bearer(secret))
    assert listing.status_code == 200
    refused = await client.post(
        "/api/v1/buckets", json={"name": unique("b")}, headers=bearer(secret)
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "FORBIDDEN"
    # Positive control: the person's own access token creates it.
    allowed = await client.post(
        "/api/v1/buckets", json={"name": unique("b")}, headers=person.headers
    )
    assert allowed.status_code == 201
    # A read token cannot mint itself a wider one either.
    wider = await client.post(
        "/api/v1/tokens", json={"name": "w", "scopes": ["write"]}, headers=bearer(secret)
    )
    assert wider.status_code == 403


# --- organizations ------------------------------------------------------------------------------


async def test_creating_an_org_makes_the_creator_its_owner(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    person = await make_person(client, rt)
    name = unique("org")
    org = await create_org(client, person, name)
    assert org["name"] == name
    assert org["personal"] is False
    assert {"id", "created_at", "updated_at", "attributes"} <= set(org)
    orgs = (await me(client, person.headers)).json()["orgs"]
    assert {"id": org["id"], "name": name, "role": "owner", "personal": False} in orgs
    got = await client.get(f"/api/v1/orgs/{org['id']}", headers=person.headers)
    assert got.status_code == 200
    assert got.json()["id"] == org["id"]


async def test_org_list_shows_only_my_orgs(client: httpx.AsyncClient, rt: Runtime) -> None:
    person = await make_person(client, rt)
    stranger = await make_person(client, rt)
    mine = await create_org(client, person)
    theirs = await create_org(client, stranger)
    answer = await client.get("/api/v1/orgs", params={"limit": 1000}, headers=person.headers)
    assert answer.status_code == 200
    body = answer.json()
    assert body["next_cursor"] is None
    assert [o["id"] for o in body["items"]] == [person.org_id, mine["id"]]
    assert theirs["id"] not in answer.text
    assert stranger.org_id not in answer.text


async def test_a_stranger_gets_the_same_404_for_my_org_as_for_an_absent_one(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    stranger = await make_person(client, rt)
    org = await create_org(client, owner)
    url, absent = f"/api/v1/orgs/{org['id']}", f"/api/v1/orgs/{ABSENT}"
    for method, body in (("GET", None), ("PATCH", {"name": "taken over"}), ("DELETE", None)):
        a = await client.request(method, url, json=body, headers=stranger.headers)
        b = await client.request(method, absent, json=body, headers=stranger.headers)
        assert a.status_code == b.status_code == 404, method
        assert a.json()["error"]["code"] == "ORG_NOT_FOUND"
        assert a.content == b.content
    # The org is untouched, as the owner sees.
    got = await client.get(url, headers=owner.headers)
    assert got.status_code == 200
    assert got.json()["name"] == org["name"]


async def test_a_member_reads_the_org_but_cannot_change_it(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    member = await make_person(client, rt)
    org = await create_org(client, owner)
    url = f"/api/v1/orgs/{org['id']}"
    assert (await client.get(url, headers=member.headers)).status_code == 404
    await add_member(client, owner, org["id"], member, "member")
    got = await client.get(url, headers=member.headers)
    assert got.status_code == 200
    assert got.json()["name"] == org["name"]
    patched = await client.patch(url, json={"name": "renamed"}, headers=member.headers)
    assert patched.status_code == 403
    assert patched.json()["error"]["code"] == "FORBIDDEN"
    assert (await client.delete(url, headers=member.headers)).status_code == 403
    # Positive control: the owner may rename it.
    renamed = await client.patch(url, json={"name": "renamed"}, headers=owner.headers)
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "renamed"
    roles = {o["id"]: o["role"] for o in (await me(client, member.headers)).json()["orgs"]}
    assert roles[org["id"]] == "member"


async def test_the_owner_deletes_an_org_but_not_a_personal_one(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    org = await create_org(client, owner)
    deleted = await client.delete(f"/api/v1/orgs/{org['id']}", headers=owner.headers)
    assert deleted.status_code == 204
    assert (await client.get(f"/api/v1/orgs/{org['id']}", headers=owner.headers)).status_code == 404
    personal = await client.delete(f"/api/v1/orgs/{owner.org_id}", headers=owner.headers)
    assert personal.status_code == 403
    assert personal.json()["error"]["code"] == "FORBIDDEN"
    assert (
        await client.get(f"/api/v1/orgs/{owner.org_id}", headers=owner.headers)
    ).status_code == 200


# --- persons ------------------------------------------------------------------------------------


async def test_persons_lists_me_and_for_an_org_admin_its_members_but_no_strangers(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    admin = await make_person(client, rt)
    member = await make_person(client, rt)
    stranger = await make_person(client, rt)

    async def visible(who: Account) -> set[str]:
        answer = await client.get("/api/v1/persons", params={"limit": 1000}, headers=who.headers)
        assert answer.status_code == 200
        assert answer.json()["next_cursor"] is None
        return {p["id"] for p in answer.json()["items"]}

    assert await visible(admin) == {admin.id}
    org = await create_org(client, admin)
    await add_member(client, admin, org["id"], member, "member")
    assert await visible(admin) == {admin.id, member.id}
    assert await visible(member) == {member.id}
    assert stranger.id not in await visible(admin)
    by_email = await client.get(
        "/api/v1/persons", params={"email": member.email.upper()}, headers=admin.headers
    )
    assert [p["email"] for p in by_email.json()["items"]] == [member.email]
    hidden = await client.get(
        "/api/v1/persons", params={"email": stranger.email}, headers=admin.headers
    )
    assert hidden.json()["items"] == []


# --- audit --------------------------------------------------------------------------------------


async def test_login_and_token_creation_are_audited_without_the_secret(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    person = await make_person(client, rt)
    created = (
        await client.post("/api/v1/tokens", json={"name": "audited"}, headers=person.headers)
    ).json()
    secret = created["secret"]
    async with rt.db.session() as session:
        rows = (await session.scalars(select(AuditEvent).where(AuditEvent.ts >= since))).all()
    mine = [r for r in rows if r.actor_id == person.id]
    events = {r.event for r in mine}
    assert {"auth.login", "auth.token_issued"} <= events
    issued = [r for r in mine if r.event == "auth.token_issued" and r.target_id == created["id"]]
    assert len(issued) == 1
    assert issued[0].outcome == "success"
    assert issued[0].details == {"kind": "personal"}
    login = next(r for r in mine if r.event == "auth.login")
    assert login.source_ip == "127.0.0.1"
    assert login.organization_id == person.org_id
    for row in rows:
        text = repr(
            [getattr(row, c.key) for c in AuditEvent.__table__.columns]  # every column
        )
        for value in (secret, person.token, person.refresh_token, PASSWORD):
            assert value not in text, row.event
