"""PostgreSQL for P2: a fresh database per run on the machine's server (created and dropped by
the suite), queries on it, and the raw asyncpg COPY reference.

The server is ``THINGBUCKET_BENCH_POSTGRES`` (a ``postgresql://`` URL of a role that may create
databases) or 127.0.0.1:5432 as ``postgres``; unreachable, P2 is skipped with a note.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REFERENCE_TABLE = "reference_samples"


def admin_url() -> str:
    return os.environ.get("THINGBUCKET_BENCH_POSTGRES", DEFAULT_ADMIN_URL)


def _plain(url: str) -> str:
    """asyncpg's form of the server's ``postgresql+asyncpg://`` URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _check_loopback(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost"):
        raise SystemExit(f"the benchmarks only talk to 127.0.0.1, not {host}")


async def _available(url: str) -> str | None:
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


def unavailable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    _check_loopback(admin_url())
    return asyncio.run(_available(admin_url()))


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new empty database; yields the server's URL for it (``postgresql+asyncpg://``)."""
    admin = admin_url()
    _check_loopback(admin)
    name = f"thingbucket_bench_{secrets.token_hex(4)}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        url = _with_database(admin, name)
        yield url.replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def fetch(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """A query with ``?`` placeholders, on its own connection."""
    parts = sql.split("?")
    numbered = parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], start=1))

    async def run() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(_plain(url))
        try:
            return [tuple(r) for r in await conn.fetch(numbered, *args)]
        finally:
            await conn.close()

    return asyncio.run(run())


Batch = list[tuple[int, int, float]]  # (series_id, ts_us, value)


def copy_ingest(url: str, batches: Sequence[Batch]) -> float:
    """``copy_records_to_table`` per batch (its own transaction) into a table keyed
    ``(series_id, ts)``, on one connection; returns the seconds it took."""

    async def run() -> float:
        conn = await asyncpg.connect(_plain(url))
        try:
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {REFERENCE_TABLE} (series_id integer NOT NULL, "
                "ts bigint NOT NULL, value double precision, PRIMARY KEY (series_id, ts))"
            )
            started = time.perf_counter()
            for batch in batches:
                await conn.copy_records_to_table(
                    REFERENCE_TABLE, records=batch, columns=("series_id", "ts", "value")
                )
            return time.perf_counter() - started
        finally:
            await conn.close()

    return asyncio.run(run())


def table_bytes(url: str, table: str) -> int:
    """Heap, indexes and TOAST of ``table`` (all partitions of a partitioned one)."""
    rows = fetch(
        url,
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
        "WHERE c.relname = ? OR c.oid IN (SELECT inhrelid FROM pg_inherits i "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ?)",
        table,
        table,
    )
    return int(rows[0][0])
