"""HTTP hooks for brokers that delegate device checks (EMQX's HTTP authentication and
authorization, mosquitto-go-auth's HTTP backend): the same rules as the embedded broker.

EMQX posts ``{"username", "password"}`` to the authentication hook and ``{"username", "topic",
"action"}`` to the authorization hook and reads ``{"result": "allow" | "deny"}``. The hooks answer
only loopback clients, or callers presenting ``mqtt.hook_secret`` as a bearer token.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from thingbucket.errors import Forbidden
from thingbucket.mqtt import rules
from thingbucket.web.deps import RuntimeDep
from thingbucket.web.responses import error_responses
from thingbucket.web.routing import OPEN, StrictRoute, policy

router = APIRouter(prefix="/api/v1/mqtt", route_class=StrictRoute, tags=["mqtt"])


class AuthRequest(BaseModel):
    username: str | None = Field(default=None, max_length=128)
    password: str | None = Field(default=None, max_length=4096)
    clientid: str | None = Field(default=None, max_length=128)


class AclRequest(BaseModel):
    username: str | None = Field(default=None, max_length=128)
    topic: str = Field(max_length=1024)
    action: Literal["publish", "subscribe"]
    clientid: str | None = Field(default=None, max_length=128)


class HookAnswer(BaseModel):
    result: Literal["allow", "deny"]
    is_superuser: bool = False


def _caller_allowed(request: Request, rt: RuntimeDep) -> None:
    secret = rt.settings.mqtt.hook_secret
    if secret is not None:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if hmac.compare_digest(given.encode(), secret.get_secret_value().encode()):
            return
    host = request.client.host if request.client else ""
    try:
        if ipaddress.ip_address(host).is_loopback and secret is None:
            return
    except ValueError:
        pass
    raise Forbidden("The MQTT hooks answer the broker only.")


_ANSWERS = error_responses(400, 403)


@router.post("/auth", openapi_extra=policy(OPEN, "mqtt-hook"), responses=_ANSWERS)
async def authenticate(body: AuthRequest, request: Request, rt: RuntimeDep) -> HookAnswer:
    """A device's CONNECT: username = thing id, password = device token or thing JWT."""
    _caller_allowed(request, rt)
    who = await rules.connect_principal(rt, body.username, body.password)
    return HookAnswer(result="allow" if who is not None else "deny")


@router.post("/acl", openapi_extra=policy(OPEN, "mqtt-hook"), responses=_ANSWERS)
async def authorize(body: AclRequest, request: Request, rt: RuntimeDep) -> HookAnswer:
    """May this (already authenticated) client publish to or subscribe to ``topic``?"""
    _caller_allowed(request, rt)
    who = await rules.principal_of(rt, body.username) if body.username else None
    if who is None:
        return HookAnswer(result="deny")
    if body.action == "publish":
        allowed = rules.may_publish(who, body.topic)
    else:
        allowed = await rules.may_subscribe(rt, who, body.topic)
    return HookAnswer(result="allow" if allowed else "deny")
