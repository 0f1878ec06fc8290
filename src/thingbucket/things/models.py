from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from thingbucket.db.base import Base, IdMixin, TimestampMixin


class Thing(IdMixin, TimestampMixin, Base):
    __tablename__ = "things"

    organization_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    bucket_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("buckets.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(256))
    description: Mapped[str | None] = mapped_column(sa.Text)
    type: Mapped[str | None] = mapped_column(sa.String(256))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str | None] = mapped_column(sa.String(80))


class ThingKey(IdMixin, TimestampMixin, Base):
    """A registered public key (SPKI PEM); the algorithm comes from the key, never from a token."""

    __tablename__ = "thing_keys"

    thing_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("things.id", ondelete="CASCADE"), index=True
    )
    organization_id: Mapped[str] = mapped_column(sa.String(36))
    algorithm: Mapped[str] = mapped_column(sa.String(8))
    pem: Mapped[str] = mapped_column(sa.Text)
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    expires_at: Mapped[datetime | None]


class ThingToken(IdMixin, TimestampMixin, Base):
    __tablename__ = "thing_tokens"

    thing_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("things.id", ondelete="CASCADE"), index=True
    )
    organization_id: Mapped[str] = mapped_column(sa.String(36))
    name: Mapped[str | None] = mapped_column(sa.String(256))
    digest: Mapped[bytes] = mapped_column(sa.LargeBinary(32), unique=True)
    prefix: Mapped[str] = mapped_column(sa.String(16))
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class Alias(Base):
    """One table mapping every surface's external ids to internal records."""

    __tablename__ = "aliases"
    __table_args__ = (sa.Index("ix_aliases_target", "kind", "internal_id"),)

    namespace: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    external_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    internal_id: Mapped[str] = mapped_column(sa.String(36))
    organization_id: Mapped[str] = mapped_column(sa.String(36))
