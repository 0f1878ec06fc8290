"""Engine and sessions. Nothing connects at import; ``Database`` is built by the app's lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from thingbucket.config import Settings
from thingbucket.errors import Unavailable

# SQLite sessions read in autocommit mode (no snapshot is held between statements) and open their
# transaction with BEGIN IMMEDIATE at the first write. So a read-then-write never fails on a
# snapshot the sample writer moved on meanwhile, and no lock is held while a password is hashed.
TRANSACTIONAL = "thingbucket_transactional"
_IN_TXN = "thingbucket_in_txn"
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")

AfterCommit = Callable[[], Awaitable[object]]


def sqlite_pragmas(settings: Settings) -> list[str]:
    s = settings.storage
    return [
        f"PRAGMA journal_mode={s.sqlite_journal_mode}",
        f"PRAGMA synchronous={s.sqlite_synchronous}",
        f"PRAGMA busy_timeout={s.busy_timeout_ms}",
        "PRAGMA foreign_keys=ON",
        "PRAGMA journal_size_limit=67108864",
        "PRAGMA wal_autocheckpoint=1000",
    ]


def _install_sqlite_hooks(engine: AsyncEngine, settings: Settings) -> None:
    pragmas = sqlite_pragmas(settings)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let thingbucket, not pysqlite, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(pragma)
        cursor.close()

    def _begin_immediate(conn: Connection) -> None:
        conn.info[_IN_TXN] = True
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.info[_IN_TXN] = False
        if conn.get_execution_options().get(TRANSACTIONAL, False):
            _begin_immediate(conn)

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _before_execute(conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if not conn.info.get(_IN_TXN) and statement.lstrip()[:7].upper().startswith(_WRITES):
            _begin_immediate(conn)

    @event.listens_for(engine.sync_engine, "commit")
    @event.listens_for(engine.sync_engine, "rollback")
    def _on_end(conn: Connection) -> None:
        conn.info[_IN_TXN] = False


def _install_generation_hooks(engine: AsyncEngine, db: Database) -> None:
    """Bump ``db.generation`` whenever a transaction that wrote the control plane commits."""

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _mark(conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip()[:7].upper().startswith(_WRITES):
            conn.info["thingbucket_wrote"] = True

    @event.listens_for(engine.sync_engine, "commit")
    def _committed(conn: Connection) -> None:
        if conn.info.pop("thingbucket_wrote", False):
            db.generation += 1

    @event.listens_for(engine.sync_engine, "rollback")
    def _rolled_back(conn: Connection) -> None:
        # An invalidated connection (a cancelled query) raises on ``info``; it is not reused.
        if not conn.invalidated:
            conn.info.pop("thingbucket_wrote", None)


class Database:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.database_url
        self.dialect = make_url(self.url).get_backend_name()
        kwargs: dict[str, Any] = {"pool_pre_ping": self.dialect == "postgresql"}
        if self.dialect == "postgresql":
            kwargs["pool_size"] = settings.database.pool_size
            kwargs["max_overflow"] = settings.database.pool_size
            kwargs["connect_args"] = {"timeout": settings.database.connect_timeout_s}
        else:
            kwargs["pool_size"] = settings.database.pool_size
            kwargs["max_overflow"] = settings.database.pool_size * 2
            kwargs["connect_args"] = {"timeout": settings.storage.busy_timeout_ms / 1000}
        self.engine = create_async_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            _install_sqlite_hooks(self.engine, settings)
        # Caches of credentials and decisions are valid only within one generation (kit/ttlcache).
        self.generation = 0
        _install_generation_hooks(self.engine, self)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back on error. Services only flush.

        Work registered with ``after_commit`` (sample purges through the writer) runs once the
        commit has returned, so it never waits on a lock this unit of work holds.
        """
        async with self._sessions() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
            for callback in session.info.pop("after_commit", []):
                await callback()

    async def ping(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        try:
            async with asyncio.timeout(timeout), self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # any driver or network error means "unavailable"
            raise Unavailable(f"database unreachable: {type(exc).__name__}") from exc

    async def dispose(self) -> None:
        await self.engine.dispose()


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run ``callback`` after this unit of work commits (never if it rolls back)."""
    session.info.setdefault("after_commit", []).append(callback)


def describe_url(url: str) -> str:
    """The database URL with its password hidden, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)
