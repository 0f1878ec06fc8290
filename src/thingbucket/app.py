"""``create_app()``: routers, handlers, middleware. Nothing connects until the lifespan starts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from thingbucket import __version__
from thingbucket.accounts.api import router as accounts_router
from thingbucket.buckets.api import router as buckets_router
from thingbucket.config import Settings, load_settings
from thingbucket.mqtt.api import router as mqtt_router
from thingbucket.points.api import router as points_router
from thingbucket.properties.api import router as properties_router
from thingbucket.runtime import Runtime, build_runtime
from thingbucket.sharing.api import router as sharing_router
from thingbucket.things.api import router as things_router
from thingbucket.web import errors
from thingbucket.web.middleware import GuardMiddleware
from thingbucket.web.routing import check_policies
from thingbucket.web.system import router as system_router


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    rt = runtime or build_runtime(settings or load_settings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await rt.start()
        try:
            await rt.start_broker()
            rt.start_tasks()
            yield
        finally:
            await rt.close()

    app = FastAPIOffline(
        title="thingbucket",
        version=__version__,
        description="A self-hosted data bucket for connected devices: the native API v1.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = rt
    errors.install(app)
    for router in (
        system_router,
        accounts_router,
        buckets_router,
        things_router,
        properties_router,
        points_router,
        sharing_router,
        mqtt_router,
    ):
        app.include_router(router)
    check_policies(app)
    app.add_middleware(GuardMiddleware, limits=rt.settings.limits, metrics=rt.metrics)
    return app
