"""Route conventions: strict JSON bodies, declared policies, declared error responses."""

from __future__ import annotations

import email.message
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, params
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.requests import Request
from starlette.responses import Response

from thingbucket.errors import InvalidJson, UnsupportedMedia
from thingbucket.kit import jsonstrict

POLICY_KEY = "x-policy"
# Pseudo-actions for routes that act on no stored resource.
OPEN = "public"  # no credentials needed (health, token endpoint)
SELF = "authenticated"  # any principal acting on itself (me, personal tokens, new orgs)


DOC_PATHS = frozenset({"/docs", "/docs/oauth2-redirect"})


def policy(action: str, resource: str) -> dict[str, Any]:
    """The (action, resource) a route needs, recorded in its OpenAPI operation.

    Every route declares one; start-up fails for a route that does not (``check_policies``).
    """
    return {POLICY_KEY: {"action": action, "resource": resource}}


class StrictRequest(Request):
    """A request whose JSON body refuses duplicate keys, NaN, deep nesting and bad UTF-8."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = jsonstrict.loads(await self.body())
            except jsonstrict.StrictJsonError as exc:
                raise InvalidJson(f"The body is not valid JSON: {exc}.") from None
        return self._json


def _is_json(content_type: str) -> bool:
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


class StrictRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        expects_json = self.body_field is not None and not isinstance(
            self.body_field.field_info, params.Form
        )

        async def strict_handler(request: Request) -> Response:
            strict = StrictRequest(request.scope, request.receive)
            if expects_json and request.method in ("POST", "PUT", "PATCH"):
                content_type = request.headers.get("content-type")
                if await strict.body():
                    if content_type and not _is_json(content_type):
                        raise UnsupportedMedia("This route takes application/json.")
                    # Parsed here, not inside FastAPI's body reading, which would turn our
                    # InvalidJson into a generic 400; FastAPI then reuses the cached value.
                    await strict.json()
            return await handler(strict)

        return strict_handler


def api_routes(app: FastAPI) -> list[tuple[str, set[str], APIRoute]]:
    """(path, methods, route) of every API route, through included routers."""
    out = []
    for ctx in iter_route_contexts(app.routes):
        route = ctx.original_route
        if isinstance(route, APIRoute):
            out.append((str(ctx.path), set(ctx.methods or ()), route))
    return out


def check_policies(app: FastAPI) -> None:
    """Refuse to start when any API route lacks a declared policy (security.md §4.1)."""
    missing = [
        f"{sorted(methods)} {path}"
        for path, methods, route in api_routes(app)
        if POLICY_KEY not in (route.openapi_extra or {})
        and not (not route.include_in_schema and path in DOC_PATHS)
    ]
    if missing:
        raise RuntimeError("routes without a declared policy: " + ", ".join(missing))
