"""Keyset paging for listings: oldest first, by (created_at, id), with opaque cursors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from thingbucket.kit.pagination import decode_cursor, encode_cursor
from thingbucket.kit.time import datetime_to_us, us_to_datetime

M = TypeVar("M")


async def page(
    session: AsyncSession,
    stmt: Select[M],
    model: Any,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[M], str | None]:
    """One page of ``stmt`` (a select of ``model``) and the cursor of the next page, if any."""
    if cursor:
        created_us, last_id = decode_cursor(cursor, (int, str))
        created = us_to_datetime(created_us)
        stmt = stmt.where(
            sa.or_(
                model.created_at > created,
                sa.and_(model.created_at == created, model.id > last_id),
            )
        )
    stmt = stmt.order_by(model.created_at, model.id).limit(limit + 1)
    rows = (await session.scalars(stmt)).all()
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last: Any = rows[-1]
    return rows, encode_cursor(datetime_to_us(last.created_at), last.id)
