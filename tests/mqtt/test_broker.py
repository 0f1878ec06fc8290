"""The embedded broker with real paho-mqtt clients: CONNECT, ack after commit, topics, errors,
live relay and revocation, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest
from asgi_lifespan import LifespanManager
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from conftest import base_settings
from helpers import Account, Setup, make_person, make_property, make_setup, make_thing
from mqttclient import Device
from thingbucket.app import create_app
from thingbucket.db.engine import Database
from thingbucket.db.migrate import upgrade_head
from thingbucket.runtime import Runtime, build_runtime

pytestmark = pytest.mark.asyncio(loop_scope="session")
AUDIENCE = "http://127.0.0.1:8000"
NOT_AUTHORIZED = 135  # paho 2's reason code for CONNACK 5


def now_ms() -> int:
    return int(time.time() * 1000)


async def token_for(client: httpx.AsyncClient, owner: Account, thing_id: str) -> dict[str, Any]:
    answer = await client.post(
        f"/api/v1/things/{thing_id}/tokens", json={"name": "fw"}, headers=owner.headers
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def device(rt: Runtime, username: str | None, password: str | None) -> Device:
    return Device(rt.broker.port, username, password)


async def connected(rt: Runtime, username: str, password: str) -> Device:
    d = await device(rt, username, password)
    assert await asyncio.to_thread(d.connect) == 0
    return d


async def rows(client: httpx.AsyncClient, s: Setup, start: int) -> list[list[Any]]:
    answer = await client.get(s.points_url, params={"from": start}, headers=s.owner.headers)
    assert answer.status_code == 200
    result: list[list[Any]] = answer.json()["rows"]
    return result


def topic_of(s: Setup) -> str:
    return f"tb/things/{s.thing['id']}/properties/{s.prop['id']}"


async def test_a_thousand_qos1_messages_are_all_stored_when_the_device_leaves_at_once(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    secret = (await token_for(client, s.owner, s.thing["id"]))["secret"]
    d = await connected(rt, s.thing["id"], secret)
    start = now_ms() - 3_600_000
    payloads = [
        orjson.dumps({"points": [[start + m * 10 + i, m, i, -1.5] for i in range(10)]})
        for m in range(1000)
    ]
    await asyncio.to_thread(d.publish_all, topic_of(s), payloads)
    await asyncio.to_thread(d.close)  # right after the last PUBACK
    got = await rows(client, s, start)
    assert len(got) == 10_000
    assert got[0] == [start, 0.0, 0.0, -1.5]
    assert got[-1] == [start + 9999, 999.0, 9.0, -1.5]


@pytest.mark.parametrize("case", ["wrong token", "unknown thing", "expired jwt", "no password"])
async def test_bad_credentials_are_refused_at_connect(
    client: httpx.AsyncClient, rt: Runtime, case: str
) -> None:
    owner = await make_person(client, rt)
    thing = await make_thing(client, owner)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    answer = await client.post(
        f"/api/v1/things/{thing['id']}/keys",
        json={"public_key": pem.decode()},
        headers=owner.headers,
    )
    assert answer.status_code == 201
    now = int(time.time())
    claims = {"iss": thing["id"], "sub": thing["id"], "aud": AUDIENCE, "iat": now, "exp": now + 60}
    good = jwt.encode(claims, key, algorithm="ES256")
    # The positive control: the same thing with a valid JWT is accepted.
    ok = await connected(rt, thing["id"], good)
    await asyncio.to_thread(ok.close)
    expired = jwt.encode({**claims, "iat": now - 900, "exp": now - 600}, key, algorithm="ES256")
    username, password = {
        "wrong token": (thing["id"], "tb_d_" + "x" * 43),
        "unknown thing": ("00000000-0000-4000-8000-000000000000", good),
        "expired jwt": (thing["id"], expired),
        "no password": (thing["id"], None),
    }[case]
    d = await device(rt, username, password)
    assert await asyncio.to_thread(d.connect) == NOT_AUTHORIZED
    await asyncio.to_thread(d.close)


async def test_an_rs256_jwt_connects_and_publishes(client: httpx.AsyncClient, rt: Runtime) -> None:
    s = await make_setup(client, rt)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    answer = await client.post(
        f"/api/v1/things/{s.thing['id']}/keys",
        json={"public_key": pem.decode()},
        headers=s.owner.headers,
    )
    assert answer.status_code == 201
    now = int(time.time())
    tid = s.thing["id"]
    token = jwt.encode(
        {"iss": tid, "sub": tid, "aud": AUDIENCE, "iat": now, "exp": now + 60}, key, "RS256"
    )
    d = await connected(rt, tid, token)
    t = now_ms() - 1000
    await asyncio.to_thread(d.publish_all, topic_of(s), [orjson.dumps({"points": [[t, 1, 2, 3]]})])
    await asyncio.to_thread(d.close)
    assert await rows(client, s, t - 1) == [[t, 1.0, 2.0, 3.0]]


async def test_a_publish_to_another_things_topic_stores_nothing_and_reports_an_error(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    mine = await make_setup(client, rt)
    theirs = await make_setup(client, rt)
    secret = (await token_for(client, mine.owner, mine.thing["id"]))["secret"]
    d = await connected(rt, mine.thing["id"], secret)
    errors = f"tb/things/{mine.thing['id']}/errors"
    assert await asyncio.to_thread(d.subscribe, errors) == [0]
    # Not even a subscription to another thing's topics.
    assert await asyncio.to_thread(d.subscribe, f"tb/things/{theirs.thing['id']}/errors") == [128]
    t = now_ms() - 1000
    body = orjson.dumps({"points": [[t, 1, 2, 3]]})
    await asyncio.to_thread(d.publish_all, topic_of(theirs), [body])
    # A bad payload on its own topic is refused with a reason, and the session goes on.
    await asyncio.to_thread(d.publish_all, topic_of(mine), [b'{"points": [[1, "x"]]}', b"{nope"])
    got = await asyncio.to_thread(d.wait_for, 3, errors)
    await asyncio.to_thread(d.close)
    codes = [orjson.loads(m.payload)["code"] for m in got]
    assert codes == ["TOPIC_NOT_PERMITTED", "VALIDATION_FAILED", "INVALID_JSON"]
    assert orjson.loads(got[0].payload)["topic"] == topic_of(theirs)
    assert await rows(client, theirs, t - 1) == []
    assert await rows(client, mine, 0) == []
    metrics = (await client.get("/metrics")).text
    assert (
        'thingbucket_ingest_rejected_total{reason="TOPIC_NOT_PERMITTED",surface="mqtt"}' in metrics
    )


async def test_a_property_is_made_on_first_use_by_name_and_committed_batches_go_live(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    thing = await make_thing(client, owner)
    tid = thing["id"]
    secret = (await token_for(client, owner, tid))["secret"]
    d = await connected(rt, tid, secret)
    t = now_ms() - 1000
    first = orjson.dumps({"type": "TEMPERATURE", "points": [[t, 21.5]]})
    await asyncio.to_thread(d.publish_all, f"tb/things/{tid}/properties/by-name/room", [first])
    listing = await client.get(f"/api/v1/things/{tid}/properties", headers=owner.headers)
    props = [p for p in listing.json()["items"] if p["name"] == "room"]
    assert len(props) == 1
    pid = props[0]["id"]
    # A person with a personal access token subscribes to the live topic.
    pat = await client.post(
        "/api/v1/tokens", json={"name": "live", "scopes": ["read"]}, headers=owner.headers
    )
    assert pat.status_code == 201, pat.text
    viewer = await connected(rt, owner.id, pat.json()["secret"])
    live = f"tb/things/{tid}/properties/{pid}/live"
    assert await asyncio.to_thread(viewer.subscribe, live) == [0]
    second = orjson.dumps({"points": [[t + 1, 22.0]]})
    await asyncio.to_thread(d.publish_all, f"tb/things/{tid}/properties/{pid}", [second])
    got = await asyncio.to_thread(viewer.wait_for, 1, live)
    await asyncio.to_thread(viewer.close)
    await asyncio.to_thread(d.close)
    assert len(got) == 1
    message = orjson.loads(got[0].payload)
    assert message["property_id"] == pid
    assert message["rows"] == [[t + 1, 22.0]]
    answer = await client.get(
        f"/api/v1/things/{tid}/properties/{pid}/points",
        params={"from": t - 1},
        headers=owner.headers,
    )
    assert answer.json()["rows"] == [[t, 21.5], [t + 1, 22.0]]


async def test_a_stranger_cannot_subscribe_to_a_live_topic(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    s = await make_setup(client, rt)
    stranger = await make_person(client, rt)
    pat = await client.post(
        "/api/v1/tokens", json={"name": "live", "scopes": ["read"]}, headers=stranger.headers
    )
    viewer = await connected(rt, stranger.id, pat.json()["secret"])
    live = f"{topic_of(s)}/live"
    assert await asyncio.to_thread(viewer.subscribe, live) == [128]
    assert await asyncio.to_thread(viewer.subscribe, "#") == [128]
    await asyncio.to_thread(viewer.close)


async def test_a_revoked_token_cuts_its_live_session_within_5_s(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    owner = await make_person(client, rt)
    thing = await make_thing(client, owner)
    await make_property(client, owner, thing["id"])
    token = await token_for(client, owner, thing["id"])
    d = await connected(rt, thing["id"], token["secret"])
    answer = await client.delete(
        f"/api/v1/things/{thing['id']}/tokens/{token['id']}", headers=owner.headers
    )
    assert answer.status_code == 204
    started = time.monotonic()
    assert await asyncio.to_thread(d.wait_disconnected, 5.0)
    assert time.monotonic() - started <= 5.0
    await asyncio.to_thread(d.close)
    again = await device(rt, thing["id"], token["secret"])
    assert await asyncio.to_thread(again.connect) == NOT_AUTHORIZED
    await asyncio.to_thread(again.close)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made here (no network, no openssl binary)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


async def test_tls_and_websocket_listeners_take_the_same_devices(tmp_path: Path) -> None:
    certfile, keyfile = _self_signed(tmp_path)
    settings = base_settings(
        tmp_path / "data",
        mqtt={"port": 0, "certfile": certfile, "keyfile": keyfile, "tls_port": 0, "ws_port": 0},
    )
    (tmp_path / "data").mkdir()
    db = Database(settings)
    await upgrade_head(db)
    await db.dispose()
    rt = build_runtime(settings)
    app = create_app(runtime=rt)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
            s = await make_setup(c, rt)
            secret = (await token_for(c, s.owner, s.thing["id"]))["secret"]
            t = now_ms() - 1000
            for i, d in enumerate(
                [
                    Device(rt.broker.tls_port, s.thing["id"], secret, ca_file=str(certfile)),
                    Device(rt.broker.ws_port, s.thing["id"], secret, transport="websockets"),
                ]
            ):
                assert await asyncio.to_thread(d.connect) == 0
                body = orjson.dumps({"points": [[t + i, i, i, i]]})
                await asyncio.to_thread(d.publish_all, topic_of(s), [body])
                await asyncio.to_thread(d.close)
            assert await rows(c, s, t - 1) == [[t, 0.0, 0.0, 0.0], [t + 1, 1.0, 1.0, 1.0]]


async def test_a_thing_over_its_rate_limit_gets_no_ack_and_loses_its_connection(
    tmp_path: Path,
) -> None:
    settings = base_settings(
        tmp_path / "data",
        mqtt={"port": 0},
        ratelimit={"thing_per_s": 0.01, "thing_burst": 3, "address_per_s": 1000},
    )
    (tmp_path / "data").mkdir()
    db = Database(settings)
    await upgrade_head(db)
    await db.dispose()
    rt = build_runtime(settings)
    app = create_app(runtime=rt)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
            s = await make_setup(c, rt)
            secret = (await token_for(c, s.owner, s.thing["id"]))["secret"]
            d = await connected(rt, s.thing["id"], secret)
            t = now_ms() - 1000
            bodies = [orjson.dumps({"points": [[t + i, i, i, i]]}) for i in range(3)]
            await asyncio.to_thread(d.publish_all, topic_of(s), bodies)
            # The fourth message finds the bucket empty: no PUBACK, and the connection ends.
            extra = orjson.dumps({"points": [[t + 3, 3, 3, 3]]})
            with pytest.raises(AssertionError, match="not acknowledged"):
                await asyncio.to_thread(d.publish_all, topic_of(s), [extra], 1, 3.0)
            assert await asyncio.to_thread(d.wait_disconnected, 5.0)
            await asyncio.to_thread(d.close)
        assert len(await rows_direct(rt, s, t - 1)) == 3


async def rows_direct(rt: Runtime, s: Setup, start: int) -> list[list[Any]]:
    """Rows read without HTTP (the HTTP bucket of this thing's owner is not the question)."""
    from thingbucket.access.principal import SYSTEM
    from thingbucket.points import service as points

    async with rt.db.session() as session:
        answer = await points.read_raw(
            session,
            rt,
            SYSTEM,
            s.thing["id"],
            s.prop["id"],
            points.RawQuery(start * 1000, now_ms() * 1000 + 1, 1000),
        )
    return [list(r) for r in answer.rows]
