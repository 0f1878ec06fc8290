"""Alembic environment: async engine, batch mode (SQLite), partition children ignored."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from thingbucket.db.models import Base

config = context.config
target_metadata = Base.metadata
_PARTITION = re.compile(r"^samples_(num|text)_p\d+$")


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    # Monthly partitions of the sample tables are made at run time, not by migrations.
    return not (type_ == "table" and name is not None and _PARTITION.match(name))


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        include_object=include_object,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = config.attributes.get("url")
    if url:
        return str(url)
    from thingbucket.config import load_settings

    return load_settings().database_url


async def _run_async() -> None:
    engine = create_async_engine(_url())
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_configure)
    finally:
        await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    _configure(connection)
else:
    asyncio.run(_run_async())
