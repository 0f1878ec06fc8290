"""What every command shares: settings with refusals, one-line failures, a runtime for services."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from thingbucket.access.audit import RequestInfo, request_info
from thingbucket.config import ConfigError, Settings, load_settings, refusals
from thingbucket.db.engine import Database, describe_url
from thingbucket.db.migrate import upgrade_head
from thingbucket.errors import AppError
from thingbucket.runtime import Runtime, build_runtime

err = Console(stderr=True, highlight=False, soft_wrap=True)
T = TypeVar("T")


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr and exit status 2: a refusal names the setting and never a secret."""
    sys.stderr.write(f"thingbucket: {message}\n")
    sys.stderr.flush()
    raise SystemExit(code)


# The options every command that opens the database takes.
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir")]
DatabaseOpt = Annotated[str | None, typer.Option("--database-url")]


def database_settings(data_dir: Path | None, database_url: str | None) -> Settings:
    """Validated settings for a command that opens the database, its data directory made."""
    settings = settings_from({"server": {"data_dir": data_dir}, "database": {"url": database_url}})
    prepare(settings)
    return settings


def settings_from(overrides: dict[str, Any]) -> Settings:
    clean: dict[str, Any] = {}
    for section, values in overrides.items():
        kept = {k: v for k, v in values.items() if v is not None}
        if kept:
            clean[section] = kept
    try:
        settings = load_settings(clean)
    except ConfigError as exc:
        fail(str(exc))
    problems = refusals(settings)
    if problems:
        fail(problems[0])
    return settings


async def check_database(db: Database) -> None:
    """Reachable and, on PostgreSQL, set not to lose acknowledged commits (security.md §2.5)."""
    from sqlalchemy import text

    try:
        await db.ping(timeout=db.settings.database.connect_timeout_s)
    except AppError:
        fail(f"cannot reach the database at {describe_url(db.url)} (database.url)")
    if db.is_sqlite:
        return
    async with db.engine.connect() as conn:
        for name, bad in (
            ("synchronous_commit", "off"),
            ("fsync", "off"),
            ("full_page_writes", "off"),
        ):
            value = (await conn.execute(text(f"SHOW {name}"))).scalar()
            if str(value).lower() == bad:
                fail(f"PostgreSQL runs with {name} = {bad}, which can lose acknowledged writes")


def prepare(settings: Settings) -> None:
    try:
        settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot create the data directory {settings.server.data_dir}: {exc.strerror}")


async def migrate_database(settings: Settings) -> None:
    db = Database(settings)
    try:
        await check_database(db)
        await upgrade_head(db)
    finally:
        await db.dispose()


@asynccontextmanager
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """A started runtime for commands that call services (migrations run first)."""
    await migrate_database(settings)
    try:
        rt = build_runtime(settings)
    except ConfigError as exc:
        fail(str(exc))
    token = request_info.set(RequestInfo(surface="cli"))
    await rt.start()
    try:
        yield rt
    finally:
        request_info.reset(token)
        await rt.close()


def run(fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(fn())
    except AppError as exc:
        fail(exc.message_text, code=1)


def stdin_is_tty() -> bool:
    return sys.stdin.isatty()
