from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from thingbucket.db.base import Base, IdMixin, TimestampMixin

KEY_ROLES = ("read", "write", "admin")
KEY_FORMATS = ("native", "dakkio", "bitpool")


class Bucket(IdMixin, TimestampMixin, Base):
    __tablename__ = "buckets"
    __table_args__ = (sa.UniqueConstraint("organization_id", "name"),)

    organization_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(256))
    description: Mapped[str | None] = mapped_column(sa.Text)
    retention_days: Mapped[int | None]
    archived: Mapped[bool] = mapped_column(default=False)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str | None] = mapped_column(sa.String(80))


class ApiKey(IdMixin, TimestampMixin, Base):
    """An organization key (no bucket_id) or a bucket key, with a role; only its digest is kept."""

    __tablename__ = "api_keys"

    organization_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    bucket_id: Mapped[str | None] = mapped_column(
        sa.String(36), sa.ForeignKey("buckets.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(256))
    role: Mapped[str] = mapped_column(sa.String(16))
    public_only: Mapped[bool] = mapped_column(default=False)
    format: Mapped[str] = mapped_column(sa.String(16), default="native")
    digest: Mapped[bytes] = mapped_column(sa.LargeBinary(32), unique=True)
    prefix: Mapped[str] = mapped_column(sa.String(64))
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    created_by: Mapped[str | None] = mapped_column(sa.String(80))
