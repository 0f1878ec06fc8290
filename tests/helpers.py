"""Factories: plain typed functions with keyword overrides. Set-up goes through the services or
the API; what a test asserts goes through the API."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx

from thingbucket.access.principal import SYSTEM
from thingbucket.accounts import service as accounts
from thingbucket.runtime import Runtime

PASSWORD = "correct horse battery staple"
# Headers that differ between any two answers: left out when two answers must be identical.
# (The X-RateLimit-* values count the caller's requests; they say nothing about the resource.)
PER_ANSWER_HEADERS = frozenset(
    {"date", "x-request-id", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"}
)


@dataclass
class Account:
    id: str
    email: str
    org_id: str
    token: str
    refresh_token: str = ""
    headers: dict[str, str] = field(default_factory=dict)


def unique(prefix: str = "x") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def make_person(
    client: httpx.AsyncClient,
    rt: Runtime,
    *,
    email: str | None = None,
    password: str = PASSWORD,
    admin: bool = False,
) -> Account:
    email = email or f"{unique('p')}@example.com"
    async with rt.db.session() as session:
        person = await accounts.create_person(
            session, rt, email=email, password=password, instance_admin=admin, actor=SYSTEM
        )
        person_id, org_id = person.id, person.personal_org_id
    answer = await client.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": email, "password": password},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return Account(
        person_id,
        email,
        org_id,
        body["access_token"],
        body["refresh_token"],
        bearer(body["access_token"]),
    )


async def post(
    client: httpx.AsyncClient, who: Account | dict[str, str], path: str, body: Any
) -> Any:
    headers = who.headers if isinstance(who, Account) else who
    answer = await client.post(path, json=body, headers=headers)
    assert answer.status_code == 201, f"{path}: {answer.status_code} {answer.text}"
    return answer.json()


async def make_bucket(client: httpx.AsyncClient, who: Account, **body: Any) -> dict[str, Any]:
    body.setdefault("name", unique("bucket"))
    result: dict[str, Any] = await post(client, who, "/api/v1/buckets", body)
    return result


async def make_thing(
    client: httpx.AsyncClient, who: Account, bucket_id: str | None = None, **body: Any
) -> dict[str, Any]:
    body.setdefault("name", unique("thing"))
    if bucket_id is not None:
        body["bucket_id"] = bucket_id
    result: dict[str, Any] = await post(client, who, "/api/v1/things", body)
    return result


async def make_property(
    client: httpx.AsyncClient, who: Account | dict[str, str], thing_id: str, **body: Any
) -> dict[str, Any]:
    body.setdefault("name", unique("prop"))
    if "dimensions" not in body:
        body.setdefault("type", "ACCELEROMETER")
    result: dict[str, Any] = await post(client, who, f"/api/v1/things/{thing_id}/properties", body)
    return result


@dataclass
class Setup:
    """A person with a bucket, a thing in it and a 3-D property."""

    owner: Account
    bucket: dict[str, Any]
    thing: dict[str, Any]
    prop: dict[str, Any]

    @property
    def points_url(self) -> str:
        return f"/api/v1/things/{self.thing['id']}/properties/{self.prop['id']}/points"


async def make_setup(client: httpx.AsyncClient, rt: Runtime, **prop: Any) -> Setup:
    owner = await make_person(client, rt)
    bucket = await make_bucket(client, owner)
    thing = await make_thing(client, owner, bucket["id"])
    made = await make_property(client, owner, thing["id"], **prop)
    return Setup(owner, bucket, thing, made)


async def pack_property(
    rt: Runtime, property_id: str, start_us: int, end_us: int, cap: int = 100
) -> int:
    """Pack the property's number series into cold chunks, every UTC day of [start, end) (the
    days the writer finds clean; ``cap`` samples a chunk, small to make several a day); how
    many samples went."""
    import sqlalchemy as sa

    async with rt.db.session() as session:
        rows = await session.execute(
            sa.text("SELECT id FROM series WHERE property_id = :p AND kind = 'number'"),
            {"p": property_id},
        )
        series = [r[0] for r in rows.all()]
    day = 86_400_000_000
    packed = 0
    for sid in series:
        for start in range(start_us - start_us % day, end_us, day):
            packed += await rt.writer.pack(sid, start, start + day, cap)
    return packed
