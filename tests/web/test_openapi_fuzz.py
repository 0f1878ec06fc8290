"""schemathesis over the served OpenAPI document, as each kind of principal: no 5xx, ever.

The server runs as a child process on each backend, as a user runs it. Every operation is
generated with valid data (against the ids of a real bucket, thing and property, and against
random ids) and with invalid data; deletions run last so they do not empty the tree for the rest.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation

from conftest import TEST_SECRET, need_service
from processes import Server, child_env, create_person, serve

PRINCIPALS = ("owner", "stranger", "read_key", "write_key", "org_admin_key", "thing", "anonymous")
# (mode, with the setup's ids, examples) per operation and principal.
RUNS = (
    (GenerationMode.POSITIVE, True, 6),
    (GenerationMode.POSITIVE, False, 2),
    (GenerationMode.NEGATIVE, True, 3),
)


@dataclass
class Fuzzed:
    server: Server
    headers: dict[str, dict[str, str]]
    ids: dict[str, str]
    requests: int = 0
    errors: list[str] = field(default_factory=list)


def _seed(server: Server, data_dir: Path, db_args: list[str]) -> Fuzzed:
    owner = create_person(server.url, data_dir, db_args)
    stranger = create_person(server.url, data_dir, db_args)
    with httpx.Client(base_url=server.url, headers=owner, timeout=30) as http:

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            answer = http.post(path, json=body)
            assert answer.status_code == 201, answer.text
            made: dict[str, Any] = answer.json()
            return made

        me = http.get("/api/v1/me").json()
        org_id = me["orgs"][0]["id"]
        bucket = post("/api/v1/buckets", {"name": "fuzz"})
        thing = post("/api/v1/things", {"name": "t", "bucket_id": bucket["id"]})
        prop = post(
            f"/api/v1/things/{thing['id']}/properties", {"name": "acc", "type": "GYROSCOPE"}
        )
        keys = {
            role: post(f"/api/v1/buckets/{bucket['id']}/keys", {"name": role, "role": role})
            for role in ("read", "write")
        }
        org_key = post(f"/api/v1/orgs/{org_id}/keys", {"name": "ops", "role": "admin"})
        token = post(f"/api/v1/things/{thing['id']}/tokens", {"name": "fw"})
        group = post("/api/v1/groups", {"name": "crew"})
        grant = post(
            "/api/v1/grants",
            {
                "subject": {"kind": "group", "id": group["id"]},
                "action": "read",
                "resource": {"kind": "property", "id": prop["id"]},
            },
        )
        written = http.post(
            f"/api/v1/things/{thing['id']}/properties/{prop['id']}/points",
            json={"points": [[int(time.time() * 1000) - 1000, 1, 2, 3]]},
        )
        assert written.status_code == 204
    headers = {
        "owner": {"Authorization": owner["Authorization"]},
        "stranger": {"Authorization": stranger["Authorization"]},
        "read_key": {"X-API-Key": keys["read"]["secret"]},
        "write_key": {"X-API-Key": keys["write"]["secret"]},
        "org_admin_key": {"X-API-Key": org_key["secret"]},
        "thing": {"Authorization": f"Bearer {token['secret']}"},
        "anonymous": {},
    }
    ids = {
        "org_id": org_id,
        "bucket_id": bucket["id"],
        "thing_id": thing["id"],
        "property_id": prop["id"],
        "key_id": keys["read"]["id"],
        "token_id": token["id"],
        "group_id": group["id"],
        "grant_id": grant["id"],
        "kind": "person",
        "member_id": me["id"],
    }
    return Fuzzed(server, headers, ids)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.needs_pg)])
def fuzzed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fuzzed]:
    db_args: list[str] = []
    if request.param == "postgresql":
        need_service("PostgreSQL", "127.0.0.1", 5432)
        db_args = ["--database-url", request.getfixturevalue("pg_url")]
    env = child_env(
        THINGBUCKET_SECURITY__SECRET_KEY=TEST_SECRET,
        # Thousands of requests from one address and a few credentials: 429s would hide the rest.
        THINGBUCKET_RATELIMIT__CREDENTIAL_PER_S="0",
        THINGBUCKET_RATELIMIT__THING_PER_S="0",
        THINGBUCKET_RATELIMIT__ORGANIZATION_PER_S="0",
        THINGBUCKET_RATELIMIT__ADDRESS_PER_S="0",
    )
    with serve(tmp_path, *db_args, env=env) as server:
        yield _seed(server, tmp_path, db_args)


def _fuzz(
    f: Fuzzed, operation: APIOperation[Any, Any, Any, Any], who: str, http: httpx.Client
) -> None:
    for mode, real_ids, examples in RUNS:
        params = {
            p.name: f.ids[p.name] for p in operation.path_parameters if real_ids and p.name in f.ids
        }
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=params or None)

        @given(case=strategy)
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def one(case: Any) -> None:
            f.requests += 1
            kwargs = case.as_transport_kwargs(base_url=f.server.url, headers=f.headers[who])
            body = kwargs.get("data")
            try:
                answer = http.request(
                    kwargs["method"],
                    kwargs["url"],
                    headers=kwargs["headers"],
                    params=kwargs.get("params"),
                    json=kwargs.get("json"),
                    content=body if isinstance(body, (bytes, str)) else None,
                    data=body if isinstance(body, dict) else None,
                    files=kwargs.get("files"),
                )
            except httpx.HTTPError as exc:
                f.errors.append(f"{who}: {exc!r}\n  {case.as_curl_command()}")
                return
            if answer.status_code >= 500:
                f.errors.append(
                    f"{who}: {answer.status_code} {answer.text[:200]}\n  {case.as_curl_command()}"
                )

        try:
            one()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to make invalid (no parameters)


def test_no_operation_answers_a_server_error_to_any_principal(
    fuzzed: Fuzzed, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = schemathesis.openapi.from_url(fuzzed.server.url + "/api/v1/openapi.json")
    results = list(schema.get_all_operations())
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert len(operations) == len(results), [r for r in results if not isinstance(r, Ok)]
    ordered = sorted(operations, key=lambda op: op.method.upper() == "DELETE")
    # httpx, not schemathesis' requests: requests writes headers and body in two segments, and
    # Nagle's algorithm then waits for the server's delayed ACK (40 ms a POST).
    with httpx.Client(timeout=30) as http:
        for operation in ordered:
            for who in PRINCIPALS:
                _fuzz(fuzzed, operation, who, http)
    with capsys.disabled():
        print(  # noqa: T201
            f"\nschemathesis: {len(operations)} operations x {len(PRINCIPALS)} principals, "
            f"{fuzzed.requests} requests, {len(fuzzed.errors)} server errors"
        )
    assert not fuzzed.errors, "\n".join(fuzzed.errors[:20])
    log = "".join(fuzzed.server.log)
    assert "Traceback" not in log, log[-4000:]
