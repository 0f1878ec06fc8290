"""Things, their public keys (thing JWTs) and device tokens through the native API."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from helpers import (
    Account,
    bearer,
    make_bucket,
    make_person,
    make_property,
    make_setup,
    make_thing,
)
from thingbucket.runtime import Runtime

pytestmark = pytest.mark.asyncio(loop_scope="session")

ABSENT = "00000000-0000-4000-8000-000000000000"
AUDIENCE = "http://127.0.0.1:8000"
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@functools.cache
def rsa_key(bits: int = 2048, n: int = 0) -> rsa.RSAPrivateKey:
    """An RSA key pair; ``n`` tells apart keys of the same size (cached: generation is slow)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def ec_key(n: int = 0) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def spki_pem(key: PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def claims(thing_id: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": thing_id,
        "sub": thing_id,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
    }
    body.update(overrides)
    return body


def sign(key: PrivateKey, payload: dict[str, Any], **headers: Any) -> str:
    algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers or None)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(payload: dict[str, Any], alg: str) -> str:
    """A token with header ``alg`` and an empty signature (``alg: none``)."""
    header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(payload).encode())}."


def hs256(payload: dict[str, Any], secret: bytes) -> str:
    """HS256 by hand: PyJWT refuses a PEM as an HMAC secret, an attacker does not."""
    signing_input = (
        b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        + "."
        + b64(json.dumps(payload).encode())
    )
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


async def me(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.get("/api/v1/me", headers=headers)


async def add_key(
    client: httpx.AsyncClient, owner: Account, thing_id: str, pem: str
) -> httpx.Response:
    return await client.post(
        f"/api/v1/things/{thing_id}/keys", json={"public_key": pem}, headers=owner.headers
    )


async def device_token(client: httpx.AsyncClient, owner: Account, thing_id: str) -> dict[str, Any]:
    answer = await client.post(
        f"/api/v1/things/{thing_id}/tokens", json={"name": "firmware"}, headers=owner.headers
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def now_ms() -> int:
    return int(time.time() * 1000)


# --- things -------------------------------------------------------------------------------------


async def test_a_thing_without_bucket_goes_to_the_default_bucket(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    first = await make_thing(client, owner, name="first", description="d", type="sensor")
    assert first["name"] == "first"
    assert (first["description"], first["type"], first["enabled"]) == ("d", "sensor", True)
    assert first["organization_id"] == owner.org_id
    buckets = (await client.get("/api/v1/buckets", headers=owner.headers)).json()["items"]
    assert [(b["id"], b["name"]) for b in buckets] == [(first["bucket_id"], "default")]
    second = await make_thing(client, owner)
    assert second["bucket_id"] == first["bucket_id"]
    buckets = (await client.get("/api/v1/buckets", headers=owner.headers)).json()["items"]
    assert len(buckets) == 1


async def test_thing_crud_and_listing_by_bucket(client: httpx.AsyncClient, rt: Runtime) -> None:
    owner = await make_person(client, rt)
    a = await make_bucket(client, owner)
    b = await make_bucket(client, owner)
    in_a = [await make_thing(client, owner, a["id"]) for _ in range(2)]
    in_b = await make_thing(client, owner, b["id"])
    listing = await client.get(
        "/api/v1/things", params={"bucket_id": a["id"]}, headers=owner.headers
    )
    assert listing.status_code == 200
    assert [t["id"] for t in listing.json()["items"]] == [t["id"] for t in in_a]
    everything = await client.get("/api/v1/things", headers=owner.headers)
    assert [t["id"] for t in everything.json()["items"]] == [*(t["id"] for t in in_a), in_b["id"]]

    url = f"/api/v1/things/{in_b['id']}"
    got = await client.get(url, headers=owner.headers)
    assert got.status_code == 200
    assert got.json() == in_b
    patched = await client.patch(
        url, json={"name": "renamed", "attributes": {"floor": 2}}, headers=owner.headers
    )
    assert patched.status_code == 200
    assert (patched.json()["name"], patched.json()["attributes"]) == ("renamed", {"floor": 2})
    assert (await client.get(url, headers=owner.headers)).json()["name"] == "renamed"
    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    gone = await client.get(url, headers=owner.headers)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "THING_NOT_FOUND"


async def test_a_stranger_gets_the_same_404_for_a_thing_as_for_an_absent_one(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    stranger = await make_person(client, rt)
    thing = await make_thing(client, owner)
    for method, suffix, body in (
        ("GET", "", None),
        ("PATCH", "", {"name": "x"}),
        ("DELETE", "", None),
        ("POST", "/tokens", {}),
        ("POST", "/keys", {"public_key": spki_pem(ec_key())}),
    ):
        a = await client.request(
            method, f"/api/v1/things/{thing['id']}{suffix}", json=body, headers=stranger.headers
        )
        b = await client.request(
            method, f"/api/v1/things/{ABSENT}{suffix}", json=body, headers=stranger.headers
        )
        assert a.status_code == b.status_code == 404, (method, suffix)
        assert a.content == b.content
    assert (
        await client.get(f"/api/v1/things/{thing['id']}", headers=owner.headers)
    ).status_code == 200


# --- thing keys and JWTs ------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
async def test_a_thing_jwt_signed_by_a_registered_key_authenticates_the_thing(
    client: httpx.AsyncClient, rt: Runtime, algorithm: str
) -> None:
    owner = await make_person(client, rt)
    thing = await make_thing(client, owner)
    key: PrivateKey = rsa_key() if algorithm == "RS256" else ec_key()
    token = sign(key, claims(thing["id"]))
    assert (await me(client, bearer(token))).status_code == 401  # no key registered yet
    answer = await add_key(client, owner, thing["id"], spki_pem(key))
    assert answer.status_code == 201, answer.text
    registered = answer.json()
    assert registered["algorithm"] == algorithm
    assert registered["thing_id"] == thing["id"]
    assert len(registered["fingerprint"]) == 64
    answer = await me(client, bearer(token))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["kind"], body["id"]) == ("thing", thing["id"])
    assert body["bucket_id"] == thing["bucket_id"]
    # The scheme is case-insensitive, and a kid naming the key is accepted.
    with_kid = sign(key, claims(thing["id"]), kid=registered["id"])
    assert (await me(client, {"Authorization": f"bearer {with_kid}"})).status_code == 200
    keys = await client.get(f"/api/v1/things/{thing['id']}/keys", headers=owner.headers)
    assert [k["id"] for k in keys.json()["items"]] == [registered["id"]]


async def test_a_public_key_given_at_creation_is_registered(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    key = ec_key()
    thing = await make_thing(client, owner, public_key=spki_pem(key))
    keys = (await client.get(f"/api/v1/things/{thing['id']}/keys", headers=owner.headers)).json()
    assert [k["algorithm"] for k in keys["items"]] == ["ES256"]
    answer = await me(client, bearer(sign(key, claims(thing["id"]))))
    assert answer.status_code == 200
    assert answer.json()["id"] == thing["id"]
    bad = await client.post(
        "/api/v1/things",
        json={"name": "x", "public_key": spki_pem(rsa_key(1024))},
        headers=owner.headers,
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "INVALID_KEY"


async def test_bad_thing_jwts_are_all_refused_with_the_same_401(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    thing = await make_thing(client, owner)
    tid = thing["id"]
    key = rsa_key()
    pem = spki_pem(key)
    assert (await add_key(client, owner, tid, pem)).status_code == 201
    good = await me(client, bearer(sign(key, claims(tid))))
    assert good.status_code == 200  # positive control

    now = int(time.time())
    bad_tokens = {
        "expired": sign(key, claims(tid, iat=now - 1000, exp=now - 400)),
        "wrong aud": sign(key, claims(tid, aud="http://evil.example:8000")),
        "alg none": unsigned(claims(tid), "none"),
        "alg NONE": unsigned(claims(tid), "NONE"),
        "HS256 with the PEM": hs256(claims(tid), pem.encode()),
        "another key": sign(rsa_key(2048, 1), claims(tid)),
        "other algorithm's key": sign(ec_key(), claims(tid)),
        "too long a lifetime": sign(key, claims(tid, exp=now + 2 * 86_400)),
        "sub of another thing": sign(key, claims(tid, sub=ABSENT)),
        "no exp": sign(key, {k: v for k, v in claims(tid).items() if k != "exp"}),
        "jku header": sign(key, claims(tid), jku="http://evil.example/jwks"),
    }
    answers = {name: await me(client, bearer(token)) for name, token in bad_tokens.items()}
    reference = answers["expired"]
    assert reference.status_code == 401
    assert reference.json()["error"]["code"] == "INVALID_CREDENTIALS"
    assert reference.headers["www-authenticate"] == 'Bearer realm="thingbucket"'
    drop = {"date", "x-request-id"}
    for name, answer in answers.items():
        assert answer.status_code == 401, name
        assert answer.content == reference.content, name
        assert {k: v for k, v in answer.headers.items() if k not in drop} == {
            k: v for k, v in reference.headers.items() if k not in drop
        }, name


async def test_unusable_public_keys_are_refused(client: httpx.AsyncClient, rt: Runtime) -> None:
    owner = await make_person(client, rt)
    thing = await make_thing(client, owner)
    private_pem = (
        ec_key()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    p384 = spki_pem(ec.generate_private_key(ec.SECP384R1()))
    for name, pem in (
        ("RSA-1024", spki_pem(rsa_key(1024))),
        ("private key", private_pem),
        ("EC P-384", p384),
        ("garbage", "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n"),
    ):
        answer = await add_key(client, owner, thing["id"], pem)
        assert answer.status_code == 400, name
        assert answer.json()["error"]["code"] == "INVALID_KEY", name
        assert "PRIVATE" not in answer.text
    keys = (await client.get(f"/api/v1/things/{thing['id']}/keys", headers=owner.headers)).json()
    assert keys["items"] == []
    assert (await add_key(client, owner, thing["id"], spki_pem(ec_key()))).status_code == 201


async def test_at_most_three_active_keys_per_thing(client: httpx.AsyncClient, rt: Runtime) -> None:
    owner = await make_person(client, rt)
    thing = await make_thing(client, owner, public_key=spki_pem(ec_key(0)))
    for n in (1, 2):
        assert (await add_key(client, owner, thing["id"], spki_pem(ec_key(n)))).status_code == 201
    fourth = await add_key(client, owner, thing["id"], spki_pem(ec_key(3)))
    assert fourth.status_code == 403
    assert fourth.json()["error"]["code"] == "QUOTA_EXCEEDED"
    keys = (await client.get(f"/api/v1/things/{thing['id']}/keys", headers=owner.headers)).json()
    assert len(keys["items"]) == 3
    # Removing one makes room again.
    removed = await client.delete(
        f"/api/v1/things/{thing['id']}/keys/{keys['items'][0]['id']}", headers=owner.headers
    )
    assert removed.status_code == 204
    assert (await add_key(client, owner, thing["id"], spki_pem(ec_key(3)))).status_code == 201


async def test_deleting_a_key_makes_its_jwts_fail(client: httpx.AsyncClient, rt: Runtime) -> None:
    owner = await make_person(client, rt)
    thing = await make_thing(client, owner)
    old, new = ec_key(10), rsa_key()
    old_id = (await add_key(client, owner, thing["id"], spki_pem(old))).json()["id"]
    assert (await add_key(client, owner, thing["id"], spki_pem(new))).status_code == 201
    old_token = sign(old, claims(thing["id"]))
    new_token = sign(new, claims(thing["id"]))
    assert (await me(client, bearer(old_token))).status_code == 200
    deleted = await client.delete(
        f"/api/v1/things/{thing['id']}/keys/{old_id}", headers=owner.headers
    )
    assert deleted.status_code == 204
    assert (await me(client, bearer(old_token))).status_code == 401
    # The thing's other key still works.
    assert (await me(client, bearer(new_token))).status_code == 200
    again = await client.delete(
        f"/api/v1/things/{thing['id']}/keys/{old_id}", headers=owner.headers
    )
    assert again.status_code == 404


# --- device tokens ------------------------------------------------------------------------------


async def test_a_device_token_is_shown_once_and_authenticates_the_thing(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    thing = await make_thing(client, owner)
    answer = await client.post(f"/api/v1/things/{thing['id']}/tokens", headers=owner.headers)
    assert answer.status_code == 201, answer.text
    assert answer.headers["cache-control"] == "no-store"
    token = answer.json()
    secret = token["secret"]
    assert secret.startswith("tb_d_")
    assert len(secret) <= 127
    assert token["prefix"] == secret[:12]
    assert token["thing_id"] == thing["id"]
    mine = await me(client, bearer(secret))
    assert mine.status_code == 200
    assert (mine.json()["kind"], mine.json()["id"]) == ("thing", thing["id"])
    listing = await client.get(f"/api/v1/things/{thing['id']}/tokens", headers=owner.headers)
    assert [t["id"] for t in listing.json()["items"]] == [token["id"]]
    assert "secret" not in listing.json()["items"][0]
    assert secret not in listing.text


async def test_a_thing_writes_its_own_property_and_not_another_things(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    other = await make_thing(client, s.owner, s.bucket["id"])
    other_prop = await make_property(client, s.owner, other["id"])
    headers = bearer((await device_token(client, s.owner, s.thing["id"]))["secret"])
    t = now_ms() - 1000
    own = await client.post(s.points_url, json={"points": [[t, 1, 2, 3]]}, headers=headers)
    assert own.status_code == 204, own.text
    read = await client.get(s.points_url, params={"from": t - 1}, headers=s.owner.headers)
    assert read.json()["rows"] == [[t, 1.0, 2.0, 3.0]]
    for url in (
        f"/api/v1/things/{other['id']}/properties/{other_prop['id']}/points",
        f"/api/v1/things/{s.thing['id']}/properties/{other_prop['id']}/points",
    ):
        answer = await client.post(url, json={"points": [[t, 1, 2, 3]]}, headers=headers)
        assert answer.status_code == 404, url
    assert (await client.get(f"/api/v1/things/{other['id']}", headers=headers)).status_code == 404
    assert (await client.get(f"/api/v1/things/{s.thing['id']}", headers=headers)).status_code == 200
    # It also creates properties on itself.
    made = await client.post(
        f"/api/v1/things/{s.thing['id']}/properties",
        json={"name": "temp", "type": "TEMPERATURE"},
        headers=headers,
    )
    assert made.status_code == 201


async def test_a_deleted_device_token_gets_401(client: httpx.AsyncClient, rt: Runtime) -> None:
    owner = await make_person(client, rt)
    thing = await make_thing(client, owner)
    token = await device_token(client, owner, thing["id"])
    kept = await device_token(client, owner, thing["id"])
    assert (await me(client, bearer(token["secret"]))).status_code == 200
    deleted = await client.delete(
        f"/api/v1/things/{thing['id']}/tokens/{token['id']}", headers=owner.headers
    )
    assert deleted.status_code == 204
    answer = await me(client, bearer(token["secret"]))
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "INVALID_CREDENTIALS"
    assert (await me(client, bearer(kept["secret"]))).status_code == 200


async def test_disabling_a_thing_cuts_its_credentials(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    key = ec_key(20)
    thing = await make_thing(client, owner, public_key=spki_pem(key))
    token = await device_token(client, owner, thing["id"])
    jwt_token = sign(key, claims(thing["id"]))
    assert (await me(client, bearer(token["secret"]))).status_code == 200
    assert (await me(client, bearer(jwt_token))).status_code == 200
    url = f"/api/v1/things/{thing['id']}"
    # A thing cannot disable itself.
    refused = await client.patch(url, json={"enabled": False}, headers=bearer(token["secret"]))
    assert refused.status_code == 403
    answer = await client.patch(url, json={"enabled": False}, headers=owner.headers)
    assert answer.status_code == 200
    assert answer.json()["enabled"] is False
    assert (await me(client, bearer(token["secret"]))).status_code == 401
    assert (await me(client, bearer(jwt_token))).status_code == 401
    # Enabling it again restores them.
    assert (
        await client.patch(url, json={"enabled": True}, headers=owner.headers)
    ).status_code == 200
    assert (await me(client, bearer(token["secret"]))).status_code == 200


async def test_a_thing_cannot_delete_itself(client: httpx.AsyncClient, rt: Runtime) -> None:
    owner = await make_person(client, rt)
    thing = await make_thing(client, owner)
    headers = bearer((await device_token(client, owner, thing["id"]))["secret"])
    url = f"/api/v1/things/{thing['id']}"
    refused = await client.delete(url, headers=headers)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "FORBIDDEN"
    # Nor mint itself more credentials.
    assert (await client.post(f"{url}/tokens", headers=headers)).status_code == 403
    # It may rename itself.
    renamed = await client.patch(url, json={"name": "self-named"}, headers=headers)
    assert renamed.status_code == 200
    assert (await client.get(url, headers=owner.headers)).json()["name"] == "self-named"
    assert (await client.delete(url, headers=owner.headers)).status_code == 204
