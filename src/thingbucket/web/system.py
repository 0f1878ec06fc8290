"""Health, metrics and the API documentation."""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from thingbucket.db.migrate import current_revision
from thingbucket.errors import AppError, Forbidden
from thingbucket.web.deps import MaybePrincipalDep, RuntimeDep
from thingbucket.web.responses import ORJSONResponse, error_responses
from thingbucket.web.routing import OPEN, StrictRoute, policy

router = APIRouter(route_class=StrictRoute, tags=["system"])


@router.get("/healthz", openapi_extra=policy(OPEN, "-"), responses=error_responses(503))
async def healthz(rt: RuntimeDep) -> Response:
    """200 ``{"status":"ok"}`` when the database answers with its schema at head and the MQTT
    broker (embedded or external) is up, else 503."""
    checks = {"database": "ok", "migrations": "ok"}
    if rt.settings.mqtt.enabled:
        checks["mqtt"] = "ok" if rt.broker is not None and rt.broker.connected else "unavailable"
    try:
        await rt.db.ping(timeout=2.0)
        if await current_revision(rt.db) != rt.schema_head:
            checks["migrations"] = "behind"
    except AppError:
        checks["database"] = "unavailable"
        checks["migrations"] = "unknown"
    except Exception:
        checks["database"] = "unavailable"
        checks["migrations"] = "unknown"
    if all(v == "ok" for v in checks.values()):
        return ORJSONResponse({"status": "ok"})
    return ORJSONResponse(
        {"status": "unavailable", "checks": checks}, status_code=503, headers={"Retry-After": "5"}
    )


def _allowed(request: Request, allow_from: list[str]) -> bool:
    client = request.client.host if request.client else None
    if client is None:
        return False
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    if address.is_loopback:
        return True
    return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in allow_from)


@router.get("/metrics", openapi_extra=policy(OPEN, "-"), responses=error_responses(403))
async def metrics(request: Request, rt: RuntimeDep, who: MaybePrincipalDep) -> Response:
    """Prometheus metrics, for loopback clients, ``metrics.allow_from`` and the instance admin."""
    if not (who.instance_admin or _allowed(request, rt.settings.metrics.allow_from)):
        raise Forbidden("Metrics are served to loopback clients and the instance admin.")
    rt.metrics.writer_queue.set(rt.writer.queued_samples)
    rt.metrics.audit_dropped.set(rt.audit.dropped)
    return Response(rt.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
