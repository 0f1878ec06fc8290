"""The authorization matrix (security.md §4.9, §10 A1; issue 6), on SQLite and PostgreSQL.

Every route of the native API x 24 principals x its target states, each cell checked against the
hand-written table ``matrix_rules.toml`` (never against the policy code). Besides its outcome
class, every cell that expects a 404 must equal the answer for an absent id of the same kind
(status, body and headers, apart from the ids of the request, ``Date``, the request id and the
rate-limit counters); every 2xx answer to a principal of org A must show no id of org Z; every 401
has the code and ``WWW-Authenticate`` of §3.3, the same for every bad credential. Cells run one
at a time, in-process, against an app of their own whose rate limits are raised for this test
only; routes that change or delete their target get a fresh copy per cell.

Cells known to be wrong today are in ``KNOWN_FAILURES``, each with its "BUG:" reason.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
import tomllib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import BACKENDS, base_settings
from helpers import PASSWORD, Account, bearer, make_person, unique
from thingbucket.app import create_app
from thingbucket.config import Settings
from thingbucket.db.engine import Database
from thingbucket.db.migrate import upgrade_head
from thingbucket.runtime import Runtime, build_runtime
from thingbucket.web.routing import DOC_PATHS, api_routes

# At least 5,000 cells over both backends (security.md §10.3 headline numbers).
MIN_CELLS_PER_BACKEND = 2_500
# Headers that differ between any two answers, whatever the resource.
VOLATILE_HEADERS = frozenset(
    {"date", "x-request-id", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"}
)
RAISED = {
    "credential_per_s": 1_000_000,
    "credential_burst": 1_000_000,
    "thing_per_s": 1_000_000,
    "thing_burst": 1_000_000,
    "organization_per_s": 1_000_000,
    "organization_burst": 1_000_000,
    "address_per_s": 1_000_000,
    "address_burst": 1_000_000,
}
PERSONS = ("own", "adm", "mem", "mad", "out", "grp", "dgr", "fmr", "ia")
CELLS: dict[str, int] = {}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# --- the table ----------------------------------------------------------------------------------

_TABLE = tomllib.loads(Path(__file__).with_name("matrix_rules.toml").read_text("utf-8"))
PRINCIPALS: tuple[str, ...] = tuple(_TABLE["principals"].split())
RULES: dict[str, dict[str, str]] = _TABLE["routes"]
OUTCOMES = frozenset({"ok", "[]", "nf", "fb", "ua"})

# Cells whose answer is wrong today: (route, state, principal) -> the reason, "BUG: ...". Each
# must still be wrong (a fixed one fails the run until it leaves this list); none of them is
# compared with its absent twin. The table keeps the right answer.
KNOWN_FAILURES: dict[tuple[str, str, str], str] = {}


def expected(key: str) -> dict[str, dict[str, str]]:
    """The expected outcome per state and principal of one route, as the table gives it."""
    out: dict[str, dict[str, str]] = {}
    for state, row in RULES[key].items():
        tokens = row.split()
        if len(tokens) != len(PRINCIPALS):
            raise ValueError(f"{key} [{state}]: {len(tokens)} columns, not {len(PRINCIPALS)}")
        if set(tokens) - OUTCOMES:
            raise ValueError(f"{key} [{state}]: unknown outcomes {set(tokens) - OUTCOMES}")
        out[state] = dict(zip(PRINCIPALS, tokens, strict=True))
    return out


def now_ms() -> int:
    return int(time.time() * 1000)


def public_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


# --- the world ------------------------------------------------------------------------------------


@dataclass
class World:
    client: httpx.AsyncClient
    rt: Runtime
    people: dict[str, Account] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    foreign: set[str] = field(default_factory=set)  # ids of org Z: never shown to A's principals

    def h(self, who: str) -> dict[str, str]:
        return self.headers[who]

    async def call(
        self, who: str | dict[str, str], method: str, path: str, *, status: int, **kw: Any
    ) -> Any:
        """A set-up request that must succeed with ``status``; its JSON answer (or None)."""
        headers = self.h(who) if isinstance(who, str) else who
        answer = await self.client.request(method, path, headers=headers, **kw)
        assert answer.status_code == status, f"set-up {method} {path}: {answer.text}"
        return answer.json() if answer.content else None

    async def made(self, who: str | dict[str, str], path: str, body: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(who, "POST", path, status=201, json=body)
        return result

    def params(self, state: str) -> dict[str, str]:
        """Path parameters of a shared target state."""
        kind, _, which = state.partition(":")
        i = self.ids
        if kind == "property":
            thing, prop = {
                "P1": ("T1", "P1"),
                "P2": ("T1", "P2"),
                "PP": ("T1", "PP"),
                "PA": ("T1", "PA"),
                "Z": ("TZ", "PZ"),
                "Z@T1": ("T1", "PZ"),
                "absent": ("thing:absent", "property:absent"),
            }[which]
            return {"thing_id": i[thing], "property_id": i[prop]}
        name = {
            ("org", "A"): "A",
            ("org", "Z"): "Z",
            ("bucket", "B1"): "B1",
            ("bucket", "B2"): "B2",
            ("bucket", "Z"): "BZ",
            ("thing", "T1"): "T1",
            ("thing", "T2"): "T2",
            ("thing", "Z"): "TZ",
            ("group", "GR"): "GR",
            ("group", "Z"): "GZ",
        }.get((kind, which), state if which == "absent" else "")
        return {f"{kind}_id": i[name]}

    def ref(self, state: str) -> str:
        """The id of a shared target state (the property's id for property states)."""
        params = self.params(state)
        return params.get("property_id") or next(iter(params.values()))


async def build_world(client: httpx.AsyncClient, rt: Runtime) -> World:
    w = World(client, rt)
    people = ("own", "adm", "mem", "mad", "out", "grp", "dgr", "fmr", "ia", "yz")
    for name in (*people, "bystander", "joiner", "leaver", "heir"):
        w.people[name] = await make_person(client, rt, admin=name == "ia")
        w.headers[name] = w.people[name].headers
    w.people["login"] = await make_person(client, rt)
    for kind in ("org", "bucket", "thing", "property", "key", "token", "grant", "group"):
        w.ids[f"{kind}:absent"] = str(uuid.uuid4())
    i = w.ids

    # Organization A of the owner, with an admin and a member.
    i["A"] = (await w.made("own", "/api/v1/orgs", {"name": unique("org-A")}))["id"]
    for who, role in (("adm", "admin"), ("mem", "member"), ("mad", "member")):
        body = {"person_id": w.people[who].id, "role": role}
        await w.made("own", f"/api/v1/orgs/{i['A']}/members", body)
    for name in ("B1", "B2"):
        body = {"name": unique(name), "org_id": i["A"]}
        i[name] = (await w.made("own", "/api/v1/buckets", body))["id"]
    for name, bucket in (("T1", "B1"), ("T2", "B2"), ("T3", "B2"), ("T4", "B1")):
        body = {"name": unique(name), "bucket_id": i[bucket]}
        i[name] = (await w.made("own", "/api/v1/things", body))["id"]
        token = await w.made("own", f"/api/v1/things/{i[name]}/tokens", {"name": "device"})
        w.secrets[name] = token["secret"]
    for name in ("P1", "P2", "PP", "PA"):
        body = {"name": unique(name), "type": "ACCELEROMETER"}
        i[name] = (await w.made("own", f"/api/v1/things/{i['T1']}/properties", body))["id"]
        await w.call(
            "own",
            "POST",
            f"/api/v1/things/{i['T1']}/properties/{i[name]}/points",
            status=204,
            json={"points": [[now_ms() - 60_000, 1, 2, 3]]},
        )
    group = await w.made("own", "/api/v1/groups", {"name": unique("GR"), "org_id": i["A"]})
    i["GR"] = group["id"]
    await w.call(
        "own",
        "POST",
        f"/api/v1/groups/{i['GR']}/members",
        status=200,
        json={"kind": "person", "id": w.people["grp"].id},
    )
    shares: list[tuple[dict[str, str], str, str, str]] = [
        ({"kind": "group", "id": i["GR"]}, "read", "bucket", i["B1"]),
        ({"kind": "thing", "id": i["T2"]}, "read", "property", i["P1"]),
        ({"kind": "public"}, "read", "property", i["PP"]),
        ({"kind": "authenticated"}, "read", "property", i["PA"]),
        (person(w, "mad"), "admin", "bucket", i["B1"]),
        (person(w, "dgr"), "write", "thing", i["T1"]),
    ]
    for subject, action, kind, target in shares:
        await share(w, subject, action, kind, target)
    # The former grantee: one grant revoked, one expired.
    revoked = await share(w, person(w, "fmr"), "read", "bucket", i["B1"])
    await w.call("own", "DELETE", f"/api/v1/grants/{revoked['id']}", status=204)
    expires = time.time() + 2.0
    until = datetime.fromtimestamp(expires, UTC).isoformat()
    await share(w, person(w, "fmr"), "read", "thing", i["T1"], expires_at=until)
    await w.call("own", "PATCH", f"/api/v1/things/{i['T4']}", status=200, json={"enabled": False})
    keys = {
        "pok": (f"/api/v1/buckets/{i['B1']}/keys", "read", "x-api-key"),
        "bak": (f"/api/v1/buckets/{i['B1']}/keys", "admin", "x-api-key"),
        "bwk": (f"/api/v1/buckets/{i['B1']}/keys", "write", "x-api-key"),
        "brk": (f"/api/v1/buckets/{i['B1']}/keys", "read", "bearer"),
        "obk": (f"/api/v1/buckets/{i['B2']}/keys", "read", "x-api-key"),
        "oak": (f"/api/v1/orgs/{i['A']}/keys", "admin", "bearer"),
        "ork": (f"/api/v1/orgs/{i['A']}/keys", "read", "x-api-key"),
    }
    for who, (path, role, how) in keys.items():
        spec = {"name": who, "role": role, "public_only": who == "pok"}
        secret = (await w.made("own", path, spec))["secret"]
        w.headers[who] = bearer(secret) if how == "bearer" else {"X-API-Key": secret}
    w.headers["self"] = bearer(w.secrets["T1"])
    w.headers["dis"] = bearer(w.secrets["T4"])
    w.headers["gt"] = bearer(w.secrets["T2"])
    w.headers["ut"] = bearer(w.secrets["T3"])
    w.headers["anon"] = {}
    revoked = await w.made("own", "/api/v1/tokens", {"name": "revoked", "scopes": ["read"]})
    await w.call("own", "DELETE", f"/api/v1/tokens/{revoked['id']}", status=204)
    w.headers["rev"] = bearer(revoked["secret"])
    w.headers["bad"] = bearer("tb_p_" + secrets.token_urlsafe(32))
    w.headers["rpt"] = await read_token(w, "own")

    # Organization Z of another person: nothing of it is shared.
    i["Z"] = (await w.made("yz", "/api/v1/orgs", {"name": unique("org-Z")}))["id"]
    i["BZ"] = (await w.made("yz", "/api/v1/buckets", {"name": "BZ", "org_id": i["Z"]}))["id"]
    body = {"name": "TZ", "bucket_id": i["BZ"]}
    i["TZ"] = (await w.made("yz", "/api/v1/things", body))["id"]
    body = {"name": "PZ", "type": "ACCELEROMETER"}
    i["PZ"] = (await w.made("yz", f"/api/v1/things/{i['TZ']}/properties", body))["id"]
    await w.call(
        "yz",
        "POST",
        f"/api/v1/things/{i['TZ']}/properties/{i['PZ']}/points",
        status=204,
        json={"points": [[now_ms() - 60_000, 4, 5, 6]]},
    )
    i["GZ"] = (await w.made("yz", "/api/v1/groups", {"name": "GZ", "org_id": i["Z"]}))["id"]
    i["typeZ"] = (await w.made("yz", "/api/v1/property-types", type_body(i["Z"])))["id"]
    w.foreign |= {i["Z"], i["BZ"], i["TZ"], i["PZ"], i["GZ"], w.people["yz"].id}
    w.foreign.add(w.people["yz"].org_id)
    for path in (f"/api/v1/buckets/{i['BZ']}/keys", f"/api/v1/orgs/{i['Z']}/keys"):
        w.foreign.add((await w.made("yz", path, {"name": "z", "role": "read"}))["id"])
    w.foreign.add((await w.made("yz", f"/api/v1/things/{i['TZ']}/tokens", {}))["id"])
    await asyncio.sleep(max(0.0, expires - time.time() + 0.1))  # fmr's grant on T1 has ended
    return w


def person(w: World, who: str) -> dict[str, str]:
    return {"kind": "person", "id": w.people[who].id}


async def share(
    w: World, subject: dict[str, str], action: str, kind: str, target: str, **extra: str
) -> dict[str, Any]:
    body = {"subject": subject, "action": action, "resource": {"kind": kind, "id": target}}
    return await w.made("own", "/api/v1/grants", {**body, **extra})


async def read_token(w: World, who: str | dict[str, str]) -> dict[str, str]:
    """A personal access token with scopes ["read"], as request headers."""
    body = {"name": unique("read-only"), "scopes": ["read"]}
    return bearer((await w.made(who, "/api/v1/tokens", body))["secret"])


# --- one request per cell ---------------------------------------------------------------------


@dataclass
class Call:
    method: str
    path: str
    json: Any = None
    data: dict[str, str] | None = None
    params: dict[str, str] | None = None
    headers: dict[str, str] | None = None  # instead of the principal's own (a fresh copy's key)
    cleanup: Callable[[httpx.Response], Awaitable[None]] | None = None

    def request_ids(self) -> set[str]:
        text = self.path + orjson.dumps(self.json).decode() + str(self.params or "")
        return set(UUID.findall(text))


Builder = Callable[[World, str, str], Awaitable[Call]]
BUILDERS: dict[str, Builder] = {}


def route(key: str) -> Callable[[Builder], Builder]:
    def register(fn: Builder) -> Builder:
        assert key not in BUILDERS, key
        BUILDERS[key] = fn
        return fn

    return register


def on_path(
    key: str, body: Callable[[World, str], Any] | None = None, query: dict[str, str] | None = None
) -> None:
    """A route whose shared target is named by its path (a body made per cell, a fixed query)."""
    method, template = key.split(" ", 1)

    async def build(w: World, state: str, who: str) -> Call:
        path = template.format(**w.params(state)) if "{" in template else template
        return Call(method, path, json=body(w, state) if body else None, params=query)

    route(key)(build)


def fixed(key: str, **kw: Any) -> None:
    method, path = key.split(" ", 1)

    async def build(w: World, state: str, who: str) -> Call:
        return Call(method, path, **kw)

    route(key)(build)


async def fresh_thing(w: World, who: str) -> tuple[str, dict[str, str] | None]:
    """A fresh thing of B1 with T1's relations (dgr's grant); its own token for the self cell."""
    body = {"name": unique("thing"), "bucket_id": w.ids["B1"]}
    thing_id: str = (await w.made("own", "/api/v1/things", body))["id"]
    await share(w, person(w, "dgr"), "write", "thing", thing_id)
    if who != "self":
        return thing_id, None
    token = await w.made("own", f"/api/v1/things/{thing_id}/tokens", {})
    return thing_id, bearer(token["secret"])


def caller(w: World, who: str) -> str:
    """Who makes a fresh object that belongs to the caller: persons themselves, else the owner."""
    return who if who in PERSONS else "own"


async def fresh_key(w: World, scope: str, owner: str = "own", role: str = "read") -> str:
    key: str = (await w.made(owner, f"{scope}/keys", {"name": unique("k"), "role": role}))["id"]
    return key


async def fresh_thing_key(w: World, thing_id: str, owner: str) -> str:
    path = f"/api/v1/things/{thing_id}/keys"
    key: str = (await w.made(owner, path, {"public_key": public_key_pem()}))["id"]
    return key


def drop_thing_key(
    w: World, thing_id: str, key_id: str
) -> Callable[[httpx.Response], Awaitable[None]]:
    """Thing keys are capped at 3 active per thing: every cell removes the one it added."""

    async def cleanup(_: httpx.Response) -> None:
        answer = await w.client.delete(
            f"/api/v1/things/{thing_id}/keys/{key_id}", headers=w.h("ia")
        )
        assert answer.status_code in (204, 404), answer.text

    return cleanup


# Open routes, the caller, persons, personal tokens.
fixed("GET /healthz")
fixed("GET /metrics")


@route("POST /api/v1/auth/token")
async def _token(w: World, state: str, who: str) -> Call:
    form = {"grant_type": "password", "username": w.people["login"].email, "password": PASSWORD}
    return Call("POST", "/api/v1/auth/token", data=form)


@route("POST /api/v1/mqtt/auth")
async def _mqtt_auth(w: World, state: str, who: str) -> Call:
    body = {"username": w.ids["T1"], "password": w.secrets["T1"]}
    return Call("POST", "/api/v1/mqtt/auth", json=body)


@route("POST /api/v1/mqtt/acl")
async def _mqtt_acl(w: World, state: str, who: str) -> Call:
    topic = f"tb/things/{w.ids['T1']}/properties/{w.ids['P1']}"
    body = {"username": w.ids["T1"], "topic": topic, "action": "publish"}
    return Call("POST", "/api/v1/mqtt/acl", json=body)


fixed("GET /api/v1/me")
fixed("GET /api/v1/persons")


@route("POST /api/v1/tokens")
async def _create_token(w: World, state: str, who: str) -> Call:
    scopes = ["admin"] if state == "token:admin" else ["read"]
    return Call("POST", "/api/v1/tokens", json={"name": unique("t"), "scopes": scopes})


fixed("GET /api/v1/tokens")


@route("DELETE /api/v1/tokens/{token_id}")
async def _revoke_token(w: World, state: str, who: str) -> Call:
    if state == "token:absent":
        token_id = w.ids[state]
    else:
        maker = "yz" if state == "token:Z" else caller(w, who)
        token_id = (await w.made(maker, "/api/v1/tokens", {"name": unique("t")}))["id"]
    return Call("DELETE", f"/api/v1/tokens/{token_id}")


# Organizations.
on_path("POST /api/v1/orgs", lambda w, s: {"name": unique("org")})
fixed("GET /api/v1/orgs")
on_path("GET /api/v1/orgs/{org_id}")
on_path("PATCH /api/v1/orgs/{org_id}", lambda w, s: {"name": unique("renamed")})


@route("DELETE /api/v1/orgs/{org_id}")
async def _delete_org(w: World, state: str, who: str) -> Call:
    headers = None
    if state == "org:A":  # a fresh org with A's memberships and, for its keys, keys of its own
        org_id = (await w.made("own", "/api/v1/orgs", {"name": unique("org")}))["id"]
        for member, role in (("adm", "admin"), ("mem", "member"), ("mad", "member")):
            body = {"person_id": w.people[member].id, "role": role}
            await w.made("own", f"/api/v1/orgs/{org_id}/members", body)
        if who in ("oak", "ork"):
            role = "admin" if who == "oak" else "read"
            body = {"name": who, "role": role}
            headers = bearer((await w.made("own", f"/api/v1/orgs/{org_id}/keys", body))["secret"])
    elif state == "org:personal":  # the personal org of a fresh person (the owner's cell: theirs)
        fresh = await make_person(w.client, w.rt)
        org_id = fresh.org_id
        if who == "own":
            headers = fresh.headers
        elif who == "rpt":
            headers = await read_token(w, fresh.headers)
    elif state == "org:Z":
        org_id = (await w.made("yz", "/api/v1/orgs", {"name": unique("org")}))["id"]
    else:
        org_id = w.ids[state]
    return Call("DELETE", f"/api/v1/orgs/{org_id}", headers=headers)


@route("POST /api/v1/orgs/{org_id}/members")
async def _add_org_member(w: World, state: str, who: str) -> Call:
    if state == "org:A-owner":
        body = {"person_id": w.people["heir"].id, "role": "owner"}
        return Call("POST", f"/api/v1/orgs/{w.ids['A']}/members", json=body)
    body = {"person_id": w.people["joiner"].id, "role": "member"}
    return Call("POST", f"/api/v1/orgs/{w.ref(state)}/members", json=body)


on_path("POST /api/v1/orgs/{org_id}/keys", lambda w, s: {"name": unique("k"), "role": "read"})
on_path("GET /api/v1/orgs/{org_id}/keys")


@route("DELETE /api/v1/orgs/{org_id}/keys/{key_id}")
async def _delete_org_key(w: World, state: str, who: str) -> Call:
    i = w.ids
    org_id, key_id = {
        "org:A": (i["A"], ""),
        "org:Z": (i["Z"], ""),
        "org:absent": (i["org:absent"], i["key:absent"]),
        "key:Z": (i["A"], ""),
        "key:absent": (i["A"], i["key:absent"]),
    }[state]
    if not key_id:
        in_z = state in ("org:Z", "key:Z")
        owner, scope = ("yz", i["Z"]) if in_z else ("own", i["A"])
        key_id = await fresh_key(w, f"/api/v1/orgs/{scope}", owner)
    return Call("DELETE", f"/api/v1/orgs/{org_id}/keys/{key_id}")


# Buckets and their keys.
@route("POST /api/v1/buckets")
async def _create_bucket(w: World, state: str, who: str) -> Call:
    body = {"name": unique("bucket")}
    if state != "-":
        body["org_id"] = w.ref(state)
    return Call("POST", "/api/v1/buckets", json=body)


@route("GET /api/v1/buckets")
async def _list_buckets(w: World, state: str, who: str) -> Call:
    params = {} if state == "-" else {"org_id": w.ref(state)}
    return Call("GET", "/api/v1/buckets", params=params)


on_path("GET /api/v1/buckets/{bucket_id}")
on_path("PATCH /api/v1/buckets/{bucket_id}", lambda w, s: {"description": unique("d")})


@route("DELETE /api/v1/buckets/{bucket_id}")
async def _delete_bucket(w: World, state: str, who: str) -> Call:
    headers = None
    if state == "bucket:B1":  # a fresh bucket of A, read by GR, with keys of its own
        body = {"name": unique("bucket"), "org_id": w.ids["A"]}
        bucket_id = (await w.made("own", "/api/v1/buckets", body))["id"]
        await share(w, {"kind": "group", "id": w.ids["GR"]}, "read", "bucket", bucket_id)
        await share(w, person(w, "mad"), "admin", "bucket", bucket_id)
        if who in ("bak", "bwk", "brk"):
            role = {"bak": "admin", "bwk": "write", "brk": "read"}[who]
            path = f"/api/v1/buckets/{bucket_id}/keys"
            made = await w.made("own", path, {"name": who, "role": role})
            headers = {"X-API-Key": made["secret"]}
    elif state == "bucket:Z":
        body = {"name": unique("bucket"), "org_id": w.ids["Z"]}
        bucket_id = (await w.made("yz", "/api/v1/buckets", body))["id"]
    else:
        bucket_id = w.ids[state]
    return Call("DELETE", f"/api/v1/buckets/{bucket_id}", headers=headers)


on_path("POST /api/v1/buckets/{bucket_id}/keys", lambda w, s: {"name": unique("k"), "role": "read"})
on_path("GET /api/v1/buckets/{bucket_id}/keys")


@route("DELETE /api/v1/buckets/{bucket_id}/keys/{key_id}")
async def _delete_bucket_key(w: World, state: str, who: str) -> Call:
    i = w.ids
    bucket_id, key_id = {
        "bucket:B1": (i["B1"], ""),
        "bucket:Z": (i["BZ"], ""),
        "bucket:absent": (i["bucket:absent"], i["key:absent"]),
        "key:Z": (i["B1"], ""),
        "key:absent": (i["B1"], i["key:absent"]),
    }[state]
    if not key_id:
        in_z = state in ("bucket:Z", "key:Z")
        owner, scope = ("yz", i["BZ"]) if in_z else ("own", i["B1"])
        key_id = await fresh_key(w, f"/api/v1/buckets/{scope}", owner)
    return Call("DELETE", f"/api/v1/buckets/{bucket_id}/keys/{key_id}")


# Things, their keys and device tokens.
@route("POST /api/v1/things")
async def _create_thing(w: World, state: str, who: str) -> Call:
    return Call("POST", "/api/v1/things", json={"name": unique("thing"), "bucket_id": w.ref(state)})


@route("GET /api/v1/things")
async def _list_things(w: World, state: str, who: str) -> Call:
    params = {} if state == "-" else {"bucket_id": w.ref(state)}
    return Call("GET", "/api/v1/things", params=params)


on_path("GET /api/v1/things/{thing_id}")


@route("PATCH /api/v1/things/{thing_id}")
async def _update_thing(w: World, state: str, who: str) -> Call:
    if state != "thing:T1-disable":
        path = f"/api/v1/things/{w.ref(state)}"
        return Call("PATCH", path, json={"description": unique("d")})
    thing_id, headers = await fresh_thing(w, who)
    return Call("PATCH", f"/api/v1/things/{thing_id}", json={"enabled": False}, headers=headers)


@route("DELETE /api/v1/things/{thing_id}")
async def _delete_thing(w: World, state: str, who: str) -> Call:
    headers = None
    if state == "thing:T1":
        thing_id, headers = await fresh_thing(w, who)
    elif state == "thing:Z":
        body = {"name": unique("thing"), "bucket_id": w.ids["BZ"]}
        thing_id = (await w.made("yz", "/api/v1/things", body))["id"]
    else:
        thing_id = w.ids[state]
    return Call("DELETE", f"/api/v1/things/{thing_id}", headers=headers)


@route("POST /api/v1/things/{thing_id}/keys")
async def _add_thing_key(w: World, state: str, who: str) -> Call:
    thing_id = w.ref(state)

    async def cleanup(answer: httpx.Response) -> None:
        if answer.status_code == 201:
            await drop_thing_key(w, thing_id, answer.json()["id"])(answer)

    body = {"public_key": public_key_pem()}
    return Call("POST", f"/api/v1/things/{thing_id}/keys", json=body, cleanup=cleanup)


on_path("GET /api/v1/things/{thing_id}/keys")


@route("DELETE /api/v1/things/{thing_id}/keys/{key_id}")
async def _delete_thing_key(w: World, state: str, who: str) -> Call:
    i = w.ids
    thing_id, key_thing = {
        "thing:T1": (i["T1"], i["T1"]),
        "thing:Z": (i["TZ"], i["TZ"]),
        "thing:absent": (i["thing:absent"], ""),
        "key:Z": (i["T1"], i["TZ"]),
        "key:absent": (i["T1"], ""),
    }[state]
    if not key_thing:
        return Call("DELETE", f"/api/v1/things/{thing_id}/keys/{i['key:absent']}")
    key_id = await fresh_thing_key(w, key_thing, "yz" if key_thing == i["TZ"] else "own")
    cleanup = drop_thing_key(w, key_thing, key_id)
    return Call("DELETE", f"/api/v1/things/{thing_id}/keys/{key_id}", cleanup=cleanup)


on_path("POST /api/v1/things/{thing_id}/tokens", lambda w, s: {"name": unique("device")})
on_path("GET /api/v1/things/{thing_id}/tokens")


@route("DELETE /api/v1/things/{thing_id}/tokens/{token_id}")
async def _delete_device_token(w: World, state: str, who: str) -> Call:
    i = w.ids
    thing_id, token_thing = {
        "thing:T1": (i["T1"], i["T1"]),
        "thing:Z": (i["TZ"], i["TZ"]),
        "thing:absent": (i["thing:absent"], ""),
        "key:Z": (i["T1"], i["TZ"]),
        "key:absent": (i["T1"], ""),
    }[state]
    token_id = i["token:absent"]
    if token_thing:
        maker = "yz" if token_thing == i["TZ"] else "own"
        token_id = (await w.made(maker, f"/api/v1/things/{token_thing}/tokens", {}))["id"]
    return Call("DELETE", f"/api/v1/things/{thing_id}/tokens/{token_id}")


# Property types and properties.
fixed("GET /api/v1/property-types")


def type_body(org_id: str) -> dict[str, Any]:
    return {
        "id": "MATRIX_" + secrets.token_hex(6),
        "name": "matrix type",
        "org_id": org_id,
        "dimensions": [{"id": "x", "name": "x"}],
    }


@route("POST /api/v1/property-types")
async def _create_type(w: World, state: str, who: str) -> Call:
    if state == "type:Z":  # the id of a type of org Z (fresh per cell), for a new type of A
        taken = await w.made("yz", "/api/v1/property-types", type_body(w.ids["Z"]))
        body = {**type_body(w.ids["A"]), "id": taken["id"]}
        return Call("POST", "/api/v1/property-types", json=body)
    org_id = w.ids["A"] if state == "type:absent" else w.ref(state)
    return Call("POST", "/api/v1/property-types", json=type_body(org_id))


@route("POST /api/v1/things/{thing_id}/properties")
async def _create_property(w: World, state: str, who: str) -> Call:
    kind, _, which = state.partition(":")
    type_id = {"type": "ACCELEROMETER", "Z": w.ids["typeZ"], "absent": "MATRIX_NONE"}
    thing_id = w.ids["T1"] if kind == "type" else w.ref(state)
    body = {"name": unique("prop"), "type": type_id["type" if kind == "thing" else which]}
    return Call("POST", f"/api/v1/things/{thing_id}/properties", json=body)


on_path("GET /api/v1/things/{thing_id}/properties")
on_path("GET /api/v1/things/{thing_id}/properties/{property_id}")
on_path(
    "PATCH /api/v1/things/{thing_id}/properties/{property_id}",
    lambda w, s: {"description": unique("d")},
)


@route("DELETE /api/v1/things/{thing_id}/properties/{property_id}")
async def _delete_property(w: World, state: str, who: str) -> Call:
    i = w.ids
    body = {"name": unique("prop"), "type": "ACCELEROMETER"}
    if state in ("property:P1", "property:PP"):  # fresh on T1, read by T2 (P1) or public (PP)
        thing_id = i["T1"]
        prop_id = (await w.made("own", f"/api/v1/things/{thing_id}/properties", body))["id"]
        subject = {"kind": "thing", "id": i["T2"]} if state == "property:P1" else {"kind": "public"}
        await share(w, subject, "read", "property", prop_id)
    elif state == "property:Z":
        thing_id = i["TZ"]
        prop_id = (await w.made("yz", f"/api/v1/things/{thing_id}/properties", body))["id"]
    else:
        thing_id, prop_id = i["thing:absent"], i["property:absent"]
    return Call("DELETE", f"/api/v1/things/{thing_id}/properties/{prop_id}")


# Points.
def one_row(w: World, state: str) -> dict[str, Any]:
    return {"points": [[now_ms() - secrets.randbelow(3_600_000), 1, 2, 3]]}


on_path("POST /api/v1/things/{thing_id}/properties/{property_id}/points", one_row)


@route("POST /api/v1/points")
async def _write_many(w: World, state: str, who: str) -> Call:
    write = {"property_id": w.ref(state), **one_row(w, state)}
    return Call("POST", "/api/v1/points", json={"writes": [write]})


on_path("GET /api/v1/things/{thing_id}/properties/{property_id}/points")
# An empty range: the cell decides access without removing any sample.
on_path(
    "DELETE /api/v1/things/{thing_id}/properties/{property_id}/points",
    query={"from": "0", "to": "1"},
)


# Grants.
def grant_body(w: World, state: str) -> dict[str, Any]:
    return {
        "subject": {"kind": "person", "id": w.people["bystander"].id},
        "action": "read",
        "resource": {"kind": state.split(":")[0], "id": w.ref(state)},
    }


on_path("POST /api/v1/grants", grant_body)


@route("GET /api/v1/grants")
async def _list_grants(w: World, state: str, who: str) -> Call:
    params = {} if state == "-" else {"resource": f"{state.split(':')[0]}:{w.ref(state)}"}
    return Call("GET", "/api/v1/grants", params=params)


@route("DELETE /api/v1/grants/{grant_id}")
async def _revoke_grant(w: World, state: str, who: str) -> Call:
    if state == "grant:absent":
        return Call("DELETE", f"/api/v1/grants/{w.ids[state]}")
    target, maker = {
        "grant:B1": ("bucket:B1", "own"),
        "grant:PP": ("property:PP", "own"),
        "grant:Z": ("bucket:Z", "yz"),
    }[state]
    grant_id = (await w.made(maker, "/api/v1/grants", grant_body(w, target)))["id"]
    return Call("DELETE", f"/api/v1/grants/{grant_id}")


# Groups.
on_path("POST /api/v1/groups", lambda w, s: {"name": unique("group"), "org_id": w.ref(s)})
fixed("GET /api/v1/groups")
on_path("GET /api/v1/groups/{group_id}")


@route("DELETE /api/v1/groups/{group_id}")
async def _delete_group(w: World, state: str, who: str) -> Call:
    if state == "group:absent":
        return Call("DELETE", f"/api/v1/groups/{w.ids[state]}")
    maker, org = ("yz", w.ids["Z"]) if state == "group:Z" else ("own", w.ids["A"])
    group_id = (await w.made(maker, "/api/v1/groups", {"name": unique("g"), "org_id": org}))["id"]
    return Call("DELETE", f"/api/v1/groups/{group_id}")


on_path(
    "POST /api/v1/groups/{group_id}/members",
    lambda w, s: {"kind": "person", "id": w.people["joiner"].id},
)


@route("DELETE /api/v1/groups/{group_id}/members/{kind}/{member_id}")
async def _remove_member(w: World, state: str, who: str) -> Call:
    group_id = w.ref(state)
    leaver = w.people["leaver"].id
    if state != "group:absent":  # the leaver is (back) in the group before every cell
        maker = "yz" if state == "group:Z" else "own"
        body = {"kind": "person", "id": leaver}
        await w.call(maker, "POST", f"/api/v1/groups/{group_id}/members", status=200, json=body)
    return Call("DELETE", f"/api/v1/groups/{group_id}/members/person/{leaver}")


# Audit.
@route("GET /api/v1/audit")
async def _audit(w: World, state: str, who: str) -> Call:
    params = {} if state == "-" else {"org_id": w.ref(state)}
    return Call("GET", "/api/v1/audit", params=params)


# --- judging a cell -----------------------------------------------------------------------------


@dataclass
class Answer:
    call: Call
    status: int
    body: bytes
    headers: dict[str, str]

    def code(self) -> str:
        try:
            doc = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return ""
        error = doc.get("error") if isinstance(doc, dict) else None
        return str(error.get("code", "")) if isinstance(error, dict) else ""

    def outcome(self) -> str:
        """The outcome class of the answer (or a description of an unexpected one)."""
        if 200 <= self.status < 300:
            try:
                doc = orjson.loads(self.body) if self.body else None
            except orjson.JSONDecodeError:
                doc = None
            if isinstance(doc, dict) and doc.get("items") == []:
                return "[]"
            return "ok"
        code = self.code()
        if self.status == 404 and code.endswith("NOT_FOUND"):
            return "nf"
        if self.status == 403 and code == "FORBIDDEN":
            return "fb"
        if self.status == 401 and code in ("AUTHENTICATION_REQUIRED", "INVALID_CREDENTIALS"):
            return "ua"
        return f"{self.status} {code or self.body[:80]!r}"

    def comparable(self) -> tuple[int, bytes, tuple[tuple[str, str], ...]]:
        """Status, body and headers, less what differs between any two answers."""
        body = self.body
        for value in self.call.request_ids():
            body = body.replace(value.encode(), b"<id>")
        headers = sorted((k, v) for k, v in self.headers.items() if k not in VOLATILE_HEADERS)
        return self.status, body, tuple(headers)


INVALID = ("dis", "rev", "bad")  # a disabled thing's token, a revoked one, one never issued


def matches(want: str, got: str) -> bool:
    return got == want or (want == "ok" and got == "[]")


def ua_detail(who: str, answer: Answer) -> str | None:
    """What is wrong with a 401 (None when nothing is)."""
    want = "AUTHENTICATION_REQUIRED" if who == "anon" else "INVALID_CREDENTIALS"
    if answer.code() != want:
        return f"401 {answer.code()} (wanted {want})"
    if answer.headers.get("www-authenticate") != 'Bearer realm="thingbucket"':
        return "401 without WWW-Authenticate"
    return None


async def send(w: World, call: Call, who: str) -> Answer:
    headers = call.headers if call.headers is not None else w.h(who)
    answer = await w.client.request(
        call.method,
        call.path,
        json=call.json,
        data=call.data,
        params=call.params,
        headers=headers,
    )
    if call.cleanup is not None:
        await call.cleanup(answer)
    return Answer(call, answer.status_code, answer.content, dict(answer.headers))


@dataclass
class Report:
    cells: int = 0
    compared: int = 0
    foreign_seen: int = 0
    unexpected_allows: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)

    def failure(self, key: tuple[str, str, str], text: str, allow: bool) -> None:
        line = f"{key[0]} [{key[1]}] as {key[2]}: {text}"
        if key in KNOWN_FAILURES:
            self.known.append(line)
        elif allow:
            self.unexpected_allows.append(line)
        else:
            self.mismatches.append(line)


async def run_route(w: World, key: str, report: Report) -> None:
    table = expected(key)
    build = BUILDERS[key]
    answers: dict[tuple[str, str], Answer] = {}

    for state, row in table.items():
        # One cell at a time: concurrent cells race in the app (see test_concurrent_...).
        got_all = [await send(w, await build(w, state, who), who) for who in PRINCIPALS]
        for who, answer in zip(PRINCIPALS, got_all, strict=True):
            call = answer.call
            answers[state, who] = answer
            report.cells += 1
            cell = (key, state, who)
            want, got = row[who], answer.outcome()
            problem: str | None = None
            if not matches(want, got):
                problem = f"expected {want}, got {got}"
            elif got == "ua":
                problem = ua_detail(who, answer)
            elif got in ("ok", "[]"):
                shown = set(UUID.findall(answer.body.decode("utf-8", "replace")))
                leaked = (shown & w.foreign) - call.request_ids()
                if who == "ia":
                    report.foreign_seen += bool(leaked)  # the control: the check can see them
                elif leaked:
                    problem = f"answer shows ids of org Z: {sorted(leaked)}"
            if problem is not None:
                allowed = got in ("ok", "[]") and want not in ("ok", "[]")
                report.failure(cell, problem, allow=allowed)
            elif cell in KNOWN_FAILURES:
                report.fixed.append(f"{key} [{state}] as {who}: now {got} as the table says")
    # Every rejected credential gets the same answer (§3.3 rule 3).
    for state, row in table.items():
        bad = [answers[state, who] for who in INVALID if row[who] == "ua"]
        if len({a.comparable() for a in bad}) > 1:
            report.failure((key, state, "bad"), "401s differ between bad credentials", False)
    # Invisible = absent (§4.3): every expected 404 against its absent twin.
    for state, row in table.items():
        twin = state.split(":")[0] + ":absent"
        if twin == state:
            continue
        for who in PRINCIPALS:
            if row[who] != "nf" or (key, state, who) in KNOWN_FAILURES:
                continue
            if (key, twin, who) in KNOWN_FAILURES:
                continue
            mine, absent = answers[state, who], answers[twin, who]
            if mine.outcome() != "nf" or absent.outcome() != "nf":
                continue  # already reported as a mismatch
            report.compared += 1
            if mine.comparable() != absent.comparable():
                report.failure(
                    (key, state, who),
                    f"404 differs from the absent one: {mine.comparable()} != "
                    f"{absent.comparable()}",
                    allow=False,
                )


# --- the tests ----------------------------------------------------------------------------------


def _app_routes(tmp_path: Path) -> set[str]:
    settings = base_settings(tmp_path)
    app = create_app(runtime=build_runtime(settings))
    return {
        f"{method} {path}"
        for path, methods, _ in api_routes(app)
        if path not in DOC_PATHS
        for method in methods
        if method != "HEAD"
    }


def test_every_route_has_a_row_and_every_row_a_route(tmp_path: Path) -> None:
    """A0 for the matrix: a new route fails here until the table gives it a row."""
    routes = _app_routes(tmp_path)
    assert routes - RULES.keys() == set(), "routes without a row in matrix_rules.RULES"
    assert RULES.keys() - routes == set(), "rows of matrix_rules.RULES without a route"
    assert RULES.keys() == BUILDERS.keys(), "rows without a request builder, or the reverse"
    for key in RULES:
        table = expected(key)
        for state, row in table.items():
            twin = state.split(":")[0] + ":absent"
            if "nf" in row.values() and state != twin:
                assert twin in table, f"{key} [{state}] expects 404s but has no {twin} row"
    for (key, state, who), reason in KNOWN_FAILURES.items():
        assert reason.startswith("BUG:"), (key, state, who)
        assert state in RULES.get(key, {}), (key, state)
        assert who in PRINCIPALS, who


@pytest.fixture(params=BACKENDS)
def matrix_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """A migrated database of its own (SQLite) or the session's (PostgreSQL); limits raised."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    settings = base_settings(data_dir, url, ratelimit=RAISED)

    async def migrate() -> None:
        db = Database(settings)
        try:
            await upgrade_head(db)
        finally:
            await db.dispose()

    asyncio.run(migrate())
    return settings


@pytest.mark.asyncio(loop_scope="session")
async def test_authorization_matrix(
    matrix_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = matrix_settings
    backend = "sqlite" if settings.is_sqlite else "postgresql"
    rt = build_runtime(settings)
    app = create_app(runtime=rt)
    started = time.monotonic()
    report = Report()
    async with LifespanManager(app):
        # An exception in the app is the 500 a server would send: a cell, not an abort.
        transport = httpx.ASGITransport(
            app=app, client=("127.0.0.1", 40000), raise_app_exceptions=False
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
            w = await build_world(c, rt)
            for key in RULES:
                await run_route(w, key, report)
    CELLS[backend] = report.cells
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(  # noqa: T201
            f"\nauthorization matrix [{backend}]: {report.cells} cells, "
            f"{report.compared} absent/invisible pairs compared, "
            f"{len(report.known)} known failures, {elapsed:.1f} s "
            f"(all backends so far: {sum(CELLS.values())} cells)"
        )
    problems = [f"UNEXPECTED ALLOW: {line}" for line in report.unexpected_allows]
    problems += report.mismatches
    problems += [f"FIXED, remove from KNOWN_FAILURES: {line}" for line in report.fixed]
    assert not problems, f"{len(problems)} of {report.cells} cells wrong:\n" + "\n".join(problems)
    assert report.cells >= MIN_CELLS_PER_BACKEND, f"authorization matrix: {report.cells} cells"
    # Positive controls of the comparisons themselves.
    assert report.compared >= 1_000, report.compared
    assert report.foreign_seen > 0, "the instance admin never saw an id of org Z"


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("route", ["org", "group"])
async def test_concurrent_adds_of_one_member_never_answer_500(
    client: httpx.AsyncClient, rt: Runtime, route: str
) -> None:
    """Why the matrix sends its cells one at a time (found while trying to run them at once)."""
    owner = await make_person(client, rt)
    made = await client.post("/api/v1/orgs", json={"name": unique("org")}, headers=owner.headers)
    org_id = made.json()["id"]
    group = await client.post(
        "/api/v1/groups", json={"name": "g", "org_id": org_id}, headers=owner.headers
    )
    failures = []
    for _ in range(5):
        joiner = (await make_person(client, rt)).id
        if route == "org":
            path, body = f"/api/v1/orgs/{org_id}/members", {"person_id": joiner, "role": "member"}
        else:
            path, body = (
                f"/api/v1/groups/{group.json()['id']}/members",
                {"kind": "person", "id": joiner},
            )
        answers = await asyncio.gather(
            *(client.post(path, json=body, headers=owner.headers) for _ in range(4)),
            return_exceptions=True,
        )
        failures += [
            a if isinstance(a, BaseException) else a.status_code
            for a in answers
            if isinstance(a, BaseException) or a.status_code >= 500
        ]
    assert failures == []
