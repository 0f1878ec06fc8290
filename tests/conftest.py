"""Shared fixtures: one backend fixture over SQLite and PostgreSQL, an app per backend, clients.

PostgreSQL tests get a fresh database per test session (created and dropped here). Tests that need
a service that is absent skip with the reason, unless THINGBUCKET_REQUIRE_SERVICES=1 (CI), where
they fail instead.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from thingbucket.app import create_app
from thingbucket.config import Settings, load_settings
from thingbucket.db.engine import Database
from thingbucket.db.migrate import upgrade_head
from thingbucket.runtime import Runtime, build_runtime

REQUIRE_SERVICES = os.environ.get("THINGBUCKET_REQUIRE_SERVICES") == "1"
PG_HOST = os.environ.get("THINGBUCKET_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("THINGBUCKET_TEST_PG_PORT", "5432"))
PG_ADMIN = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"
TEST_SECRET = "test-secret-key-" + "x" * 32


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def need_service(name: str, host: str, port: int) -> None:
    """Skip (or, with THINGBUCKET_REQUIRE_SERVICES=1, fail) when a service is not reachable."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " and THINGBUCKET_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


def base_settings(data_dir: Path, database_url: str | None = None, **sections: Any) -> Settings:
    overrides: dict[str, Any] = {
        "server": {"data_dir": str(data_dir), "log_level": "warning"},
        "security": {"secret_key": TEST_SECRET},
        "mqtt": {"port": 0},  # the embedded broker on a free port (Mosquitto may hold 1883)
        # The shared apps run no retention, rollup or packing pass behind the tests' backs; their
        # tests call them (and tests/cli/test_retention_cli.py sees serve run them by itself).
        "retention": {"enabled": False},
        "rollups": {"enabled": False},
        "cold": {"enabled": False},
    }
    if database_url:
        overrides["database"] = {"url": database_url}
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    return load_settings(overrides, environ={})


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    need_service("PostgreSQL", PG_HOST, PG_PORT)
    name = f"thingbucket_test_{secrets.token_hex(6)}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        asyncio.run(
            _pg_admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
        )
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}"'))


def pytest_configure(config: pytest.Config) -> None:
    """The suite starts hundreds of servers and CLI commands: with bytecode writing off
    (PYTHONDONTWRITEBYTECODE, set on some machines) each compiled every module again, 4..5 s a
    start. The children share a bytecode cache outside the tree instead."""
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        os.environ.setdefault(
            "PYTHONPYCACHEPREFIX", os.path.join(tempfile.gettempdir(), "thingbucket-pycache")
        )


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.needs_pg)]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A ``postgresql_only`` test has no SQLite run (rather than one that skips)."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        sqlite_run = callspec is not None and callspec.params.get("backend_settings") == "sqlite"
        (drop if sqlite_run and item.get_closest_marker("postgresql_only") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# The shared apps see every login, sign-up and bad-credential case of the suite from 127.0.0.1:
# their per-address limit is raised (security.md §5.5); the other limits keep their defaults.
SUITE_RATELIMIT = {"address_per_s": 100_000, "address_burst": 100_000}


@pytest.fixture(scope="session", params=BACKENDS)
def backend_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Settings of a migrated database on each backend (one per test session)."""
    data_dir = tmp_path_factory.mktemp(f"data-{request.param}")
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    settings = base_settings(data_dir, url, ratelimit=SUITE_RATELIMIT)

    async def migrate() -> None:
        db = Database(settings)
        try:
            await upgrade_head(db)
        finally:
            await db.dispose()

    asyncio.run(migrate())
    return settings


@pytest.fixture(scope="session")
async def started(backend_settings: Settings) -> AsyncIterator[tuple[FastAPI, Runtime]]:
    """The app of a backend with its lifespan running, shared by the tests of the session."""
    rt = build_runtime(backend_settings)
    app = create_app(runtime=rt)
    async with LifespanManager(app):
        yield app, rt


@pytest.fixture
def rt(started: tuple[FastAPI, Runtime]) -> Runtime:
    return started[1]


@pytest.fixture
async def client(started: tuple[FastAPI, Runtime]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=started[0], client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
        yield c


@pytest.fixture
def backend(backend_settings: Settings) -> str:
    return "sqlite" if backend_settings.is_sqlite else "postgresql"
