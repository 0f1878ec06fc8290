"""Health, metrics, OpenAPI and the route inventory."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from helpers import make_setup
from thingbucket.runtime import Runtime
from thingbucket.web.routing import POLICY_KEY, StrictRoute, api_routes, check_policies

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_healthz_answers_ok(client: httpx.AsyncClient) -> None:
    answer = await client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-request-id"]


async def test_healthz_answers_503_when_the_schema_is_behind(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    real = rt.schema_head
    rt.schema_head = "9999"
    try:
        answer = await client.get("/healthz")
    finally:
        rt.schema_head = real
    assert answer.status_code == 503
    assert answer.json()["status"] == "unavailable"


async def test_metrics_count_committed_samples(client: httpx.AsyncClient, rt: Runtime) -> None:
    s = await make_setup(client, rt)
    before = rt.metrics.samples_ingested._value.get()
    import time

    t = int(time.time() * 1000) - 1000
    answer = await client.post(
        s.points_url, json={"points": [[t, 1, 2, 3]]}, headers=s.owner.headers
    )
    assert answer.status_code == 204
    assert rt.metrics.samples_ingested._value.get() == before + 3
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert "thingbucket_ingested_samples_total" in metrics.text
    assert "thingbucket_http_request_duration_seconds" in metrics.text
    assert s.owner.token not in metrics.text


async def test_metrics_are_not_served_to_other_addresses(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    app = client._transport.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://x") as remote:
        answer = await remote.get("/metrics")
    assert answer.status_code == 403


async def test_every_route_declares_a_policy_and_is_in_the_openapi_document(
    client: httpx.AsyncClient,
) -> None:
    app = client._transport.app  # type: ignore[attr-defined]
    spec = (await client.get("/api/v1/openapi.json")).json()
    routes = [(p, m, r) for p, m, r in api_routes(app) if r.include_in_schema]
    assert len(routes) > 40
    for path, methods, route in routes:
        assert POLICY_KEY in (route.openapi_extra or {}), path
        for method in methods:
            operation = spec["paths"][path][method.lower()]
            assert POLICY_KEY in operation
            declared = set(operation["responses"])
            # The token endpoint and the broker hooks take no principal, so never answer 401.
            open_routes = path == "/api/v1/auth/token" or path.startswith("/api/v1/mqtt/")
            if path.startswith("/api/v1/") and not open_routes:
                assert "401" in declared, f"{method} {path}"


async def test_start_up_fails_for_a_route_without_a_policy() -> None:
    app = FastAPI()
    router = APIRouter(route_class=StrictRoute)

    @router.get("/undeclared")
    async def undeclared() -> dict[str, str]:
        return {}

    app.include_router(router)
    with pytest.raises(RuntimeError, match="undeclared"):
        check_policies(app)


async def test_unknown_paths_and_methods_answer_in_the_native_error_shape(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/api/v1/nothing-here")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "NOT_FOUND"
    answer = await client.put("/api/v1/buckets")
    assert answer.status_code == 405
    assert answer.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_url_and_query_limits(client: httpx.AsyncClient) -> None:
    answer = await client.get("/healthz?" + "a=1&" * 101)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "TOO_MANY_PARAMETERS")
    answer = await client.get("/healthz?a=" + "x" * 9000)
    assert (answer.status_code, answer.json()["error"]["code"]) == (414, "URI_TOO_LONG")
    answer = await client.get("/healthz?" + "a=1&" * 99)
    assert answer.status_code == 200
