"""Run Alembic migrations under a lock, so that processes starting together do not collide."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError

from thingbucket.db.engine import TRANSACTIONAL, Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any fixed 64-bit number; all thingbucket processes on one PostgreSQL agree on it.
_ADVISORY_LOCK_ID = 0x7468696E67627563  # "thingbuc"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["url"] = url
    return cfg


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    assert head is not None
    return head


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


async def upgrade_head(db: Database) -> None:
    """``alembic upgrade head`` on the database, holding a lock for the whole run."""
    cfg = alembic_config(db.url)

    def _upgrade(connection: Connection) -> None:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")

    if db.is_sqlite:
        database = make_url(db.url).database or ""
        with _file_lock(Path(database + ".migrate-lock")):
            async with db.engine.connect() as conn:
                conn = await conn.execution_options(**{TRANSACTIONAL: True})
                async with conn.begin():
                    await conn.run_sync(_upgrade)
        return
    async with db.engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _ADVISORY_LOCK_ID})
        await conn.commit()
        try:
            async with conn.begin():
                await conn.run_sync(_upgrade)
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _ADVISORY_LOCK_ID})
            await conn.commit()


async def current_revision(db: Database) -> str | None:
    """The schema revision of the database (cheap enough for every health check)."""
    async with db.engine.connect() as conn:
        try:
            return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        except DBAPIError:
            return None
