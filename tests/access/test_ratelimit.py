"""Rate limits (security.md §5.5, RL2): the token buckets with an injected clock, and the native API
on an app of its own with low limits (rates so slow that nothing refills during a test)."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from conftest import base_settings
from helpers import Account, make_person, make_property, make_thing, unique
from thingbucket.access.principal import ANONYMOUS, SYSTEM, Principal
from thingbucket.access.ratelimit import (
    Bucket,
    MemoryStore,
    Rate,
    RateLimiter,
    address_key,
    level_at,
)
from thingbucket.app import create_app
from thingbucket.config import ConfigError, RateLimitSettings, load_settings, warnings
from thingbucket.db.engine import Database
from thingbucket.db.migrate import upgrade_head
from thingbucket.runtime import Runtime, build_runtime


class Clock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


WALL = 1_800_000_000.0


def limiter(clock: Clock, **settings: Any) -> RateLimiter:
    return RateLimiter(RateLimitSettings(**settings), clock=clock, wall=lambda: WALL + clock.now)


API_KEY = Principal(
    kind="api_key", id="k1", organization_id="o1", credential_kind="api_key", credential_id="k1"
)
PERSON = Principal(kind="person", id="p1", credential_kind="access", credential_id="t1")
THING = Principal(kind="thing", id="th1", organization_id="o1", credential_kind="device_token")


async def passes(rl: RateLimiter, who: Principal) -> bool:
    decision = await rl.check_principal(who)
    assert decision is not None
    return decision.allowed


# --- the buckets --------------------------------------------------------------------------------


async def test_a_bucket_allows_its_burst_then_refuses() -> None:
    clock = Clock()
    rl = limiter(clock, credential_per_s=10, credential_burst=5, organization_per_s=0)
    remaining = []
    for _ in range(5):
        decision = await rl.check_principal(PERSON)
        assert decision is not None
        assert decision.allowed
        remaining.append(decision.remaining)
        assert decision.limit == 5
        assert decision.bucket.kind == "credential"
    assert remaining == [4, 3, 2, 1, 0]
    refused = await rl.check_principal(PERSON)
    assert refused is not None
    assert not refused.allowed
    assert refused.remaining == 0
    assert refused.retry_after == 1  # 0.1 s to the next token, rounded up to a whole second


async def test_a_bucket_refills_at_its_rate_and_never_above_its_burst() -> None:
    clock = Clock()
    rl = limiter(clock, credential_per_s=2, credential_burst=4)
    for _ in range(4):
        assert await passes(rl, PERSON)
    assert not await passes(rl, PERSON)
    clock.now += 0.25  # half a token
    assert not await passes(rl, PERSON)
    clock.now += 0.25
    decision = await rl.check_principal(PERSON)
    assert decision is not None
    assert decision.allowed
    assert decision.remaining == 0
    clock.now += 3600  # a long pause refills to the burst, not beyond
    results = [await passes(rl, PERSON) for _ in range(5)]
    assert results == [True, True, True, True, False]


async def test_reset_is_when_the_bucket_is_full_again_and_retry_after_whole_seconds() -> None:
    clock = Clock()
    rl = limiter(clock, credential_per_s=0.5, credential_burst=3)
    first = await rl.check_principal(PERSON)
    assert first is not None
    # 2 tokens left of 3: full again after 1 / 0.5 = 2 s.
    assert first.reset == math.ceil(WALL + clock.now + 2)
    await rl.check_principal(PERSON)
    await rl.check_principal(PERSON)
    refused = await rl.check_principal(PERSON)
    assert refused is not None
    assert not refused.allowed
    assert refused.retry_after == 2  # one token takes 2 s
    assert refused.reset == math.ceil(WALL + clock.now + 6)  # three tokens take 6 s
    clock.now += 1.5
    later = await rl.check_principal(PERSON)
    assert later is not None
    assert not later.allowed
    assert later.retry_after == 1  # 0.5 s left, never 0


async def test_a_refusal_takes_no_token_from_any_bucket() -> None:
    clock = Clock()
    rl = limiter(
        clock,
        credential_per_s=1,
        credential_burst=10,
        organization_per_s=1,
        organization_burst=3,
    )
    other_key = Principal(kind="api_key", id="k2", organization_id="o1", credential_id="k2")
    for _ in range(3):
        assert await passes(rl, API_KEY)
    refused = await rl.check_principal(other_key)
    assert refused is not None
    assert not refused.allowed
    assert refused.bucket.kind == "organization"
    clock.now += 1  # one organization token back: k2's credential bucket was not charged
    decision = await rl.check_principal(other_key)
    assert decision is not None
    assert decision.allowed
    # The tightest bucket is now the organization's (0 left), not k2's credential (9 left).
    assert decision.bucket.kind == "organization"
    assert decision.remaining == 0
    assert decision.limit == 3


async def test_the_buckets_of_each_kind_of_principal() -> None:
    rl = RateLimiter()
    assert [b.key for b in rl.buckets_for(PERSON)] == ["credential:t1"]
    assert [b.key for b in rl.buckets_for(API_KEY)] == ["credential:k1", "organization:o1"]
    assert [b.key for b in rl.buckets_for(THING)] == ["thing:th1", "organization:o1"]
    assert rl.buckets_for(SYSTEM) == []
    assert rl.buckets_for(ANONYMOUS) == []
    assert [b.key for b in rl.buckets_for_address("192.0.2.7")] == ["address:192.0.2.7"]
    assert rl.buckets_for_address(None) == []
    assert rl.thing == Rate(200, 1000)
    assert rl.credential == Rate(500, 1000)
    assert rl.organization == Rate(1000, 2000)
    assert rl.address == Rate(100, 200)


async def test_a_rate_of_zero_turns_its_bucket_off() -> None:
    clock = Clock()
    rl = limiter(clock, credential_per_s=0, address_per_s=0, thing_per_s=1, thing_burst=1)
    for _ in range(3000):
        assert await rl.check_principal(PERSON) is None
        assert await rl.check_address("192.0.2.1") is None
    assert [b.kind for b in rl.buckets_for(API_KEY)] == ["organization"]
    assert [b.kind for b in rl.buckets_for(THING)] == ["thing", "organization"]


def test_ipv6_addresses_share_their_64_and_mapped_ipv4_is_ipv4() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.5") == "192.0.2.5"
    assert address_key("192.0.2.5") == "192.0.2.5"
    assert address_key("not-an-address") == "not-an-address"


def test_the_store_forgets_full_buckets_first_and_stays_bounded() -> None:
    store = MemoryStore(max_buckets=100)
    rate = Rate(1.0, 5)
    busy = Bucket("address", "address:busy", rate)
    for _ in range(5):
        assert store.take_now([busy], 0.0)[0]
    for i in range(99):
        store.take_now([Bucket("address", f"address:{i}", rate)], 0.0)
    assert len(store) == 100
    # 10 s later the 99 one-request buckets are full again (forgettable); "busy" got a new request.
    assert store.take_now([busy], 10.0)[0]
    store.take_now([Bucket("address", "address:new", rate)], 10.0)
    assert len(store) == 2  # "busy" and "new": nothing that mattered was lost
    for i in range(500):  # a flood of new keys at one instant: the oldest go
        store.take_now([Bucket("address", f"address:flood{i}", rate)], 10.0)
    assert len(store) <= 100


def test_level_at_is_capped_and_ignores_a_clock_going_back() -> None:
    rate = Rate(2.0, 10)
    assert level_at(1.0, 5.0, rate, 6.0) == 3.0
    assert level_at(1.0, 5.0, rate, 500.0) == 10.0
    assert level_at(1.0, 5.0, rate, 4.0) == 1.0


async def test_a_decision_makes_the_three_headers() -> None:
    clock = Clock()
    rl = limiter(clock, credential_per_s=1, credential_burst=7)
    decision = await rl.check_principal(PERSON)
    assert decision is not None
    assert dict(decision.headers()) == {
        b"x-ratelimit-limit": b"7",
        b"x-ratelimit-remaining": b"6",
        b"x-ratelimit-reset": str(math.ceil(WALL + clock.now + 1)).encode(),
    }


# --- settings -----------------------------------------------------------------------------------


def test_rate_limit_settings_are_validated(tmp_path: Path) -> None:
    settings = load_settings(
        {"server": {"data_dir": str(tmp_path)}},
        environ={
            "THINGBUCKET_RATELIMIT__THING_PER_S": "10",
            "THINGBUCKET_RATELIMIT__THING_BURST": "100",
        },
    )
    assert (settings.ratelimit.thing_per_s, settings.ratelimit.thing_burst) == (10, 100)
    for name, value in [
        ("CREDENTIAL_PER_S", "-1"),
        ("ORGANIZATION_BURST", "0"),
        ("ADDRESS_PER_S", "nan"),
        ("THING_PER_S", "inf"),
        ("ADDRESS_BURST", "many"),
    ]:
        with pytest.raises(ConfigError, match=f"ratelimit.{name.lower()}"):
            load_settings(environ={f"THINGBUCKET_RATELIMIT__{name}": value})


def test_a_rate_limit_of_zero_beyond_loopback_is_a_warning_not_a_refusal() -> None:
    off = {"ratelimit": {"address_per_s": 0, "thing_per_s": 0}}
    local = load_settings({"server": {"host": "127.0.0.1"}, **off}, environ={})
    assert warnings(local) == []
    public = load_settings({"server": {"host": "0.0.0.0"}, **off}, environ={})
    (warning,) = warnings(public)
    assert "ratelimit.thing_per_s" in warning
    assert "ratelimit.address_per_s" in warning
    assert "beyond loopback" in warning
    defaults = load_settings({"server": {"host": "0.0.0.0"}}, environ={})
    assert warnings(defaults) == []


# --- the native API, on an app with low limits --------------------------------------------------

SLOW = 0.001  # tokens per second: nothing refills within a test
LOW = {
    "credential_per_s": SLOW,
    "credential_burst": 20,
    "thing_per_s": SLOW,
    "thing_burst": 8,
    "organization_per_s": SLOW,
    "organization_burst": 30,
    "address_per_s": SLOW,
    "address_burst": 6,
}
_addresses = itertools.count(1)


def new_address() -> str:
    """A source address no other test uses, so that address buckets start full."""
    n = next(_addresses)
    return f"198.51.{n // 250}.{n % 250 + 1}"


@pytest.fixture(scope="module")
async def low(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[FastAPI, Runtime]]:
    data = tmp_path_factory.mktemp("ratelimit")
    settings = base_settings(data, ratelimit=LOW, mqtt={"enabled": False})
    db = Database(settings)
    await upgrade_head(db)
    await db.dispose()
    rt = build_runtime(settings)
    app = create_app(runtime=rt)
    async with LifespanManager(app):
        yield app, rt


def client_of(app: FastAPI, address: str | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address or new_address(), 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000")


def rate_headers(answer: httpx.Response) -> tuple[int, int, int]:
    h = answer.headers
    return (
        int(h["x-ratelimit-limit"]),
        int(h["x-ratelimit-remaining"]),
        int(h["x-ratelimit-reset"]),
    )


def assert_refused(answer: httpx.Response, bucket: str) -> None:
    assert answer.status_code == 429, answer.text
    error = answer.json()["error"]
    assert error["code"] == "RATE_LIMITED"
    assert error["details"][0]["limit"] == bucket
    retry_after = answer.headers["retry-after"]
    assert retry_after.isdigit()
    assert int(retry_after) >= 1
    assert rate_headers(answer)[1] == 0


async def until_refused(
    c: httpx.AsyncClient, method: str, url: str, headers: dict[str, str], **kw: Any
) -> tuple[list[httpx.Response], httpx.Response]:
    """Send until the first 429; the answers before it, and the 429."""
    allowed: list[httpx.Response] = []
    for _ in range(100):
        answer = await c.request(method, url, headers=headers, **kw)
        if answer.status_code == 429:
            return allowed, answer
        allowed.append(answer)
    raise AssertionError(f"{url} was never refused")


async def org_key(c: httpx.AsyncClient, owner: Account) -> dict[str, str]:
    answer = await c.post(
        f"/api/v1/orgs/{owner.org_id}/keys",
        json={"name": unique("key"), "role": "read"},
        headers=owner.headers,
    )
    assert answer.status_code == 201, answer.text
    return {"X-API-Key": answer.json()["secret"]}


async def test_authenticated_answers_carry_the_rate_limit_headers(
    low: tuple[FastAPI, Runtime],
) -> None:
    app, rt = low
    async with client_of(app) as c:
        owner = await make_person(c, rt)
        before = time.time()
        me = await c.get("/api/v1/me", headers=owner.headers)
        assert me.status_code == 200
        limit, remaining, reset = rate_headers(me)
        assert limit == 20
        assert 0 <= remaining < 20
        assert reset >= before
        missing = await c.get(f"/api/v1/things/{unique('nope')}", headers=owner.headers)
        assert missing.status_code == 404  # errors after authentication carry them too
        assert rate_headers(missing)[1] == remaining - 1
        bad = await c.get("/api/v1/me", headers={"Authorization": "Bearer tb_at_wrong"})
        assert bad.status_code == 401  # a failed authentication carries none
        assert "x-ratelimit-limit" not in bad.headers


async def test_a_credential_past_its_burst_gets_429_and_others_are_unaffected(
    low: tuple[FastAPI, Runtime],
) -> None:
    app, rt = low
    async with client_of(app) as c:
        one = await make_person(c, rt)
        two = await make_person(c, rt)
        allowed, refused = await until_refused(c, "GET", "/api/v1/me", one.headers)
        assert all(a.status_code == 200 for a in allowed)
        assert len(allowed) <= 20
        assert_refused(refused, "credential")
        assert rate_headers(refused)[0] == 20
        assert (await c.get("/api/v1/me", headers=one.headers)).status_code == 429
        other = await c.get("/api/v1/me", headers=two.headers)
        assert other.status_code == 200
        assert rate_headers(other)[1] >= 15
    rows = [r for r in rt.audit.drain() if r.event == "ratelimit.exceeded"]
    (row,) = [r for r in rows if r.actor_id == one.id]
    assert (row.outcome, row.reason, row.actor_kind, row.count) == (
        "denied",
        "credential",
        "person",
        2,
    )
    assert one.token not in str(vars(row))


async def test_an_organization_limits_all_its_keys_together_and_no_other(
    low: tuple[FastAPI, Runtime],
) -> None:
    app, rt = low
    async with client_of(app) as c:
        owner = await make_person(c, rt)
        keys = [await org_key(c, owner) for _ in range(2)]
        other_owner = await make_person(c, rt)
        other_key = await org_key(c, other_owner)
        first, refused = await until_refused(c, "GET", "/api/v1/buckets", keys[0])
        assert len(first) == 20
        assert all(a.status_code == 200 for a in first)
        assert_refused(refused, "credential")
        second, refused = await until_refused(c, "GET", "/api/v1/buckets", keys[1])
        assert len(second) == 10  # 30 for the organization, 20 of them taken by the first key
        assert_refused(refused, "organization")
        assert rate_headers(refused)[0] == 30
        assert rate_headers(second[-1])[:2] == (30, 0)  # the tightest bucket: the organization's
        elsewhere = await c.get("/api/v1/buckets", headers=other_key)
        assert elsewhere.status_code == 200
        # The owner's own token belongs to no one organization: its credential bucket only.
        assert (await c.get("/api/v1/me", headers=owner.headers)).status_code == 200


async def test_a_thing_past_its_burst_is_refused_before_anything_is_written(
    low: tuple[FastAPI, Runtime],
) -> None:
    app, rt = low
    async with client_of(app) as c:
        owner = await make_person(c, rt)
        thing = await make_thing(c, owner)
        neighbour = await make_thing(c, owner)
        prop = await make_property(c, owner, thing["id"])
        tokens = []
        for t in (thing, neighbour):
            answer = await c.post(
                f"/api/v1/things/{t['id']}/tokens", json={"name": "fw"}, headers=owner.headers
            )
            assert answer.status_code == 201, answer.text
            tokens.append({"Authorization": f"Bearer {answer.json()['secret']}"})
        url = f"/api/v1/things/{thing['id']}/properties/{prop['id']}/points"
        start = int(time.time() * 1000) - 100_000
        allowed = []
        for i in range(20):
            answer = await c.post(url, json={"points": [[start + i, i, i, i]]}, headers=tokens[0])
            if answer.status_code == 429:
                break
            assert answer.status_code == 204, answer.text
            allowed.append(start + i)
        assert_refused(answer, "thing")
        assert len(allowed) == 8
        refused_ts = start + len(allowed)
        read = await c.get(url, params={"from": start, "to": start + 50}, headers=owner.headers)
        assert read.status_code == 200, read.text
        stored = [row[0] for row in read.json()["rows"]]
        assert refused_ts not in stored
        assert stored == allowed
        neighbour_answer = await c.get(f"/api/v1/things/{neighbour['id']}", headers=tokens[1])
        assert neighbour_answer.status_code != 429
        assert "x-ratelimit-remaining" in neighbour_answer.headers


async def test_anonymous_requests_are_limited_per_source_address(
    low: tuple[FastAPI, Runtime],
) -> None:
    app, rt = low
    address = new_address()
    async with client_of(app, address) as c:
        answers = [await c.get("/healthz") for _ in range(6)]
        assert [a.status_code for a in answers] == [200] * 6
        assert not any("x-ratelimit-limit" in a.headers for a in answers)  # not authenticated
        refused = await c.get("/healthz")
        assert_refused(refused, "address")
        assert rate_headers(refused)[0] == 6
        # Refused before the body is read or the token endpoint runs.
        login = await c.post("/api/v1/auth/token", data={"grant_type": "password"})
        assert login.status_code == 429
    async with client_of(app) as elsewhere:
        assert (await elsewhere.get("/healthz")).status_code == 200
        person = await make_person(elsewhere, rt)
    async with client_of(app, address) as c:
        # A valid credential from the exhausted address has buckets of its own.
        assert (await c.get("/api/v1/me", headers=person.headers)).status_code == 200
    rows = [r for r in rt.audit.drain() if r.event == "ratelimit.exceeded"]
    assert any(r.reason == "address" and r.source_ip == address for r in rows)


async def test_failed_authentications_count_against_the_address(
    low: tuple[FastAPI, Runtime],
) -> None:
    app, _rt = low
    bad = {"Authorization": "Bearer tb_at_" + "x" * 40}
    async with client_of(app) as c:
        answers = [await c.get("/api/v1/me", headers=bad) for _ in range(6)]
        assert [a.status_code for a in answers] == [401] * 6
        refused = await c.get("/api/v1/me", headers=bad)
        assert_refused(refused, "address")
        assert (await c.get("/healthz")).status_code == 429
    async with client_of(app) as c:
        # A credential that no route reads (the health check takes none) counts as anonymous.
        answers = [await c.get("/healthz", headers=bad) for _ in range(6)]
        assert [a.status_code for a in answers] == [200] * 6
        assert (await c.get("/healthz")).status_code == 429


async def test_the_shared_suite_app_runs_with_raised_address_limits(rt: Runtime) -> None:
    assert rt.ratelimit.address.burst >= 100_000
    assert rt.ratelimit.credential == Rate(500, 1000)
