"""Typed dependencies: the runtime, one unit of work per request, the calling principal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from thingbucket.access.principal import ANONYMOUS, Principal
from thingbucket.errors import Invalid, Unauthenticated
from thingbucket.kit.pagination import check_limit
from thingbucket.runtime import Runtime
from thingbucket.web.auth import authenticate_request
from thingbucket.web.ratelimit import limit_address, limit_principal


# Dependencies are coroutines even where they need not be: FastAPI runs a plain function in its
# thread pool, a thread hop per request (5% of the event loop's time on the ingest path).
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def _session(rt: RuntimeDep) -> AsyncIterator[AsyncSession]:
    async with rt.db.session() as session:
        yield session


# scope="function": the unit of work commits before the response is sent, so a 2xx means committed.
SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]


async def _principal(request: Request, rt: RuntimeDep) -> Principal:
    """The caller, once per request, after its rate limits (security.md §5.5): a refused request
    answers 429 before its handler runs; a credential that fails counts against its address."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is None:
        try:
            cached = await authenticate_request(rt, request)
        except (Unauthenticated, Invalid):
            await limit_address(rt, request.scope)
            raise
        request.state.principal = cached
        if cached.kind != "anonymous":
            await limit_principal(rt, request.scope, cached)
    return cached


async def _authenticated(who: Annotated[Principal, Depends(_principal)]) -> Principal:
    if who is ANONYMOUS or who.kind == "anonymous":
        raise Unauthenticated()
    return who


MaybePrincipalDep = Annotated[Principal, Depends(_principal)]
PrincipalDep = Annotated[Principal, Depends(_authenticated)]


async def _limit(limit: Annotated[int, Query()] = 100) -> int:
    return check_limit(limit, 1000)


LimitDep = Annotated[int, Depends(_limit)]
CursorDep = Annotated[str | None, Query(max_length=512)]
