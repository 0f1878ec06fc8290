"""The HTTP hooks for brokers that delegate device checks (EMQX's HTTP authn/authz format)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from helpers import make_person, make_setup
from thingbucket.runtime import Runtime

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def token_for(client: httpx.AsyncClient, headers: dict[str, str], thing_id: str) -> str:
    answer = await client.post(f"/api/v1/things/{thing_id}/tokens", json={}, headers=headers)
    assert answer.status_code == 201, answer.text
    secret: str = answer.json()["secret"]
    return secret


async def result(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> str:
    answer = await client.post(f"/api/v1/mqtt/{path}", json=body)
    assert answer.status_code == 200, answer.text
    value: str = answer.json()["result"]
    return value


async def test_the_auth_hook_allows_a_thing_with_its_token_and_nothing_else(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    tid = s.thing["id"]
    secret = await token_for(client, s.owner.headers, tid)
    assert await result(client, "auth", {"username": tid, "password": secret}) == "allow"
    assert await result(client, "auth", {"username": tid, "password": "tb_d_" + "z" * 43}) == "deny"
    other = await make_setup(client, rt)
    # Another thing's name with this token, or no password at all.
    assert await result(client, "auth", {"username": other.thing["id"], "password": secret}) == (
        "deny"
    )
    assert await result(client, "auth", {"username": tid}) == "deny"
    # An owner's access token is no MQTT credential; a personal access token is (to subscribe).
    assert await result(client, "auth", {"username": s.owner.id, "password": s.owner.token}) == (
        "deny"
    )


async def test_the_acl_hook_keeps_each_thing_to_its_own_topics(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    other = await make_setup(client, rt)
    tid, pid = s.thing["id"], s.prop["id"]
    mine = f"tb/things/{tid}/properties/{pid}"
    theirs = f"tb/things/{other.thing['id']}/properties/{other.prop['id']}"

    async def acl(username: str, topic: str, action: str) -> str:
        return await result(client, "acl", {"username": username, "topic": topic, "action": action})

    assert await acl(tid, mine, "publish") == "allow"
    assert await acl(tid, f"tb/things/{tid}/properties/by-name/room", "publish") == "allow"
    assert await acl(tid, theirs, "publish") == "deny"
    assert await acl(tid, "anything/else", "publish") == "deny"
    assert await acl(tid, f"tb/things/{tid}/errors", "subscribe") == "allow"
    assert await acl(tid, f"tb/things/{other.thing['id']}/errors", "subscribe") == "deny"
    assert await acl(tid, "#", "subscribe") == "deny"
    # A person reads what they may read; a stranger does not.
    assert await acl(s.owner.id, f"{mine}/live", "subscribe") == "allow"
    assert await acl(s.owner.id, f"tb/things/{tid}/properties/+/live", "subscribe") == "allow"
    assert await acl(s.owner.id, mine, "publish") == "deny"
    stranger = await make_person(client, rt)
    assert await acl(stranger.id, f"{mine}/live", "subscribe") == "deny"
    assert await acl("nobody", mine, "publish") == "deny"


@pytest.fixture
async def remote(started: tuple[FastAPI, Runtime]) -> AsyncIterator[httpx.AsyncClient]:
    """A client that the app sees coming from another host (no traffic leaves the process)."""
    transport = httpx.ASGITransport(app=started[0], client=("192.0.2.10", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
        yield c


async def test_the_hooks_answer_only_loopback_or_the_hook_secret(
    remote: httpx.AsyncClient, client: httpx.AsyncClient, rt: Runtime
) -> None:
    body = {"username": "x", "password": "y"}
    answer = await remote.post("/api/v1/mqtt/auth", json=body)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "FORBIDDEN"
    mqtt = rt.settings.mqtt
    original = mqtt.hook_secret
    from pydantic import SecretStr

    object.__setattr__(mqtt, "hook_secret", SecretStr("s" * 40))
    try:
        wrong = await remote.post(
            "/api/v1/mqtt/auth", json=body, headers={"Authorization": "Bearer " + "t" * 40}
        )
        assert wrong.status_code == 403
        # With a secret set, even loopback must present it.
        assert (await client.post("/api/v1/mqtt/auth", json=body)).status_code == 403
        right = await remote.post(
            "/api/v1/mqtt/auth", json=body, headers={"Authorization": "Bearer " + "s" * 40}
        )
        assert right.status_code == 200
        assert right.json() == {"result": "deny", "is_superuser": False}
    finally:
        object.__setattr__(mqtt, "hook_secret", original)
