from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from thingbucket.db.base import Base, IdMixin, TimestampMixin, utcnow

ORG_ROLES = ("owner", "admin", "member")


class Organization(IdMixin, TimestampMixin, Base):
    __tablename__ = "organizations"

    name: Mapped[str] = mapped_column(sa.String(256))
    personal: Mapped[bool] = mapped_column(default=False)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Person(IdMixin, TimestampMixin, Base):
    __tablename__ = "persons"

    email: Mapped[str] = mapped_column(sa.String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(sa.String(256))
    is_instance_admin: Mapped[bool] = mapped_column(default=False)
    disabled_at: Mapped[datetime | None]
    personal_org_id: Mapped[str] = mapped_column(sa.String(36), sa.ForeignKey("organizations.id"))


class Membership(TimestampMixin, Base):
    __tablename__ = "memberships"

    organization_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    person_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(sa.String(16))


class Group(IdMixin, TimestampMixin, Base):
    __tablename__ = "groups"
    __table_args__ = (sa.UniqueConstraint("organization_id", "name"),)

    organization_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("organizations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(sa.String(256))
    owner_id: Mapped[str | None] = mapped_column(sa.String(36))


class GroupMember(Base):
    __tablename__ = "group_members"
    __table_args__ = (sa.Index("ix_group_members_member", "member_kind", "member_id"),)

    group_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    member_kind: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    member_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PersonToken(IdMixin, TimestampMixin, Base):
    """Access, refresh and personal access tokens of a person; only their keyed digest is kept."""

    __tablename__ = "person_tokens"

    person_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("persons.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(sa.String(16))  # access | refresh | personal
    name: Mapped[str | None] = mapped_column(sa.String(256))
    digest: Mapped[bytes] = mapped_column(sa.LargeBinary(32), unique=True)
    prefix: Mapped[str] = mapped_column(sa.String(16))
    scopes: Mapped[list[str] | None] = mapped_column(sa.JSON)
    # Refresh tokens of one login share a chain; reusing a spent one revokes the whole chain.
    chain_id: Mapped[str | None] = mapped_column(sa.String(36), index=True)
    expires_at: Mapped[datetime | None]
    spent_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
