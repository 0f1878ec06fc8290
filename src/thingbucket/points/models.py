"""Series carry their dimension's definition; samples live in narrow tables without foreign keys.

The sample tables are keyed ``(series_id, ts)`` with ``ts`` in integer microseconds. On SQLite they
are WITHOUT ROWID tables; on PostgreSQL they are partitioned by range of ``ts`` (monthly partitions
are created on demand by the points repository).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from thingbucket.db.base import Base, utcnow


class Series(Base):
    """One series per (property, dimension), in the property's value order."""

    __tablename__ = "series"
    __table_args__ = (
        sa.UniqueConstraint("property_id", "dimension_id"),
        sa.UniqueConstraint("property_id", "position"),
        # Ids are never reused, so a new series can never see samples of a deleted one.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    property_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("properties.id", ondelete="CASCADE")
    )
    organization_id: Mapped[str] = mapped_column(sa.String(36))
    position: Mapped[int]
    dimension_id: Mapped[str] = mapped_column(sa.String(128))
    name: Mapped[str] = mapped_column(sa.String(256))
    description: Mapped[str | None] = mapped_column(sa.Text)
    unit: Mapped[str] = mapped_column(sa.String(64), default="")
    kind: Mapped[str] = mapped_column(sa.String(8))
    media_types: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    labels: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def _sample_table(name: str, value_type: sa.types.TypeEngine[Any]) -> sa.Table:
    return sa.Table(
        name,
        Base.metadata,
        sa.Column("series_id", sa.Integer, nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("value", value_type, nullable=False),
        sa.PrimaryKeyConstraint("series_id", "ts"),
        sqlite_with_rowid=False,
        postgresql_partition_by="RANGE (ts)",
    )


samples_num = _sample_table("samples_num", sa.Float(53))
# Text, booleans and JSON values, stored as JSON text; the series kind says how to read them.
samples_text = _sample_table("samples_text", sa.Text())
SAMPLE_TABLES = ("samples_num", "samples_text")


def _level_table(name: str, *columns: sa.Column[Any]) -> sa.Table:
    return sa.Table(
        name,
        Base.metadata,
        sa.Column("series_id", sa.Integer, nullable=False),
        sa.Column("level", sa.SmallInteger, nullable=False),  # 0: 1 min, 1: 1 h, 2: 1 day
        sa.Column("bucket", sa.BigInteger, nullable=False),  # start, microseconds (UTC)
        *columns,
        sa.PrimaryKeyConstraint("series_id", "level", "bucket"),
        sqlite_with_rowid=False,
    )


# One row per non-empty bucket of a number series (points.rollups says how they stay exact).
rollups = _level_table(
    "rollups",
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.Column("total", sa.Float(53), nullable=False),
    sa.Column("lo", sa.Float(53), nullable=False),
    sa.Column("hi", sa.Float(53), nullable=False),
    sa.Column("first_ts", sa.BigInteger, nullable=False),
    sa.Column("first", sa.Float(53), nullable=False),
    sa.Column("last_ts", sa.BigInteger, nullable=False),
    sa.Column("last", sa.Float(53), nullable=False),
)
# Buckets whose rollup is missing or stale, written in the transaction that made them so.
rollup_dirty = _level_table("rollup_dirty")

# Cold chunks (points.cold): the samples of one number series over a stretch of a UTC day,
# encoded by points.codec, moved out of samples_num. ``start_ts``..``end_ts`` (exclusive) is the
# stretch the chunk covers, on minute boundaries: samples_num holds no sample of the series there.
sample_chunks = sa.Table(
    "sample_chunks",
    Base.metadata,
    sa.Column("series_id", sa.Integer, nullable=False),
    sa.Column("start_ts", sa.BigInteger, nullable=False),
    sa.Column("end_ts", sa.BigInteger, nullable=False),
    sa.Column("first_ts", sa.BigInteger, nullable=False),
    sa.Column("last_ts", sa.BigInteger, nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.PrimaryKeyConstraint("series_id", "start_ts"),
)
