"""Rollups per number series at 1 min, 1 h and 1 day, and their dirty marks.

Existing samples get dirty marks for every bucket they fall in, so the background pass builds
their rollups and no query trusts a missing row before it has.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEVELS = (60_000_000, 3_600_000_000, 86_400_000_000)


def _key() -> list[sa.Column[int]]:
    return [
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "rollups",
        *_key(),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Float(precision=53), nullable=False),
        sa.Column("lo", sa.Float(precision=53), nullable=False),
        sa.Column("hi", sa.Float(precision=53), nullable=False),
        sa.Column("first_ts", sa.BigInteger(), nullable=False),
        sa.Column("first", sa.Float(precision=53), nullable=False),
        sa.Column("last_ts", sa.BigInteger(), nullable=False),
        sa.Column("last", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("series_id", "level", "bucket", name=op.f("pk_rollups")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "rollup_dirty",
        *_key(),
        sa.PrimaryKeyConstraint("series_id", "level", "bucket", name=op.f("pk_rollup_dirty")),
        sqlite_with_rowid=False,
    )
    for level, w in enumerate(LEVELS):
        op.execute(
            "INSERT INTO rollup_dirty (series_id, level, bucket) "
            f"SELECT DISTINCT series_id, {level}, ts - (((ts % {w}) + {w}) % {w}) FROM samples_num"
        )


def downgrade() -> None:
    op.drop_table("rollup_dirty")
    op.drop_table("rollups")
