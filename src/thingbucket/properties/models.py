from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from thingbucket.db.base import Base, IdMixin, TimestampMixin
from thingbucket.kit.ids import new_id

DIMENSION_KINDS = ("number", "text", "bool", "json", "media")


class PropertyType(TimestampMixin, Base):
    """A type: built-in (organization_id null, read-only) or defined by an organization."""

    __tablename__ = "property_types"
    # A type id is unique per organization (built-ins: organization_id null), so one
    # organization's ids never collide with, or reveal, another's (security.md §4.3).
    __table_args__ = (sa.UniqueConstraint("organization_id", "id"),)

    pk: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    id: Mapped[str] = mapped_column(sa.String(64))
    organization_id: Mapped[str | None] = mapped_column(
        sa.String(36), sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(256))
    description: Mapped[str | None] = mapped_column(sa.Text)


class TypeDimension(Base):
    __tablename__ = "type_dimensions"
    __table_args__ = (sa.UniqueConstraint("type_pk", "dimension_id"),)

    type_pk: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("property_types.pk", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(primary_key=True)
    dimension_id: Mapped[str] = mapped_column(sa.String(128))
    name: Mapped[str] = mapped_column(sa.String(256))
    description: Mapped[str | None] = mapped_column(sa.Text)
    unit: Mapped[str] = mapped_column(sa.String(64), default="")
    kind: Mapped[str] = mapped_column(sa.String(8))
    media_types: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    labels: Mapped[list[str]] = mapped_column(sa.JSON, default=list)


class Property(IdMixin, TimestampMixin, Base):
    __tablename__ = "properties"
    __table_args__ = (sa.UniqueConstraint("thing_id", "name"),)

    organization_id: Mapped[str] = mapped_column(sa.String(36), index=True)
    bucket_id: Mapped[str] = mapped_column(sa.String(36), index=True)
    thing_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("things.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(sa.String(256))
    description: Mapped[str | None] = mapped_column(sa.Text)
    type_id: Mapped[str | None] = mapped_column(sa.String(64))
    # Overrides the bucket's retention for this property (None: the bucket's).
    retention_days: Mapped[int | None]
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
