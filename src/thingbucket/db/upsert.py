"""``INSERT ... ON CONFLICT DO NOTHING`` on either backend, for idempotent adds that may race."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


async def insert_if_absent(session: AsyncSession, model: Any, values: dict[str, object]) -> bool:
    """Insert the row unless its key exists (also when a concurrent request just made it);
    True when this call inserted it."""
    dialect = (await session.connection()).dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(model).values(**values).on_conflict_do_nothing()
    result = await session.execute(stmt)
    return bool(getattr(result, "rowcount", 0))
