from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from thingbucket.db.base import Base, IdMixin, TimestampMixin, utcnow

SUBJECT_KINDS = ("person", "group", "thing", "api_key", "authenticated", "public")
RESOURCE_KINDS = ("org", "bucket", "thing", "property", "collection", "object")
ACTIONS = ("read", "write", "admin")


class Grant(IdMixin, TimestampMixin, Base):
    __tablename__ = "grants"
    __table_args__ = (
        sa.Index("ix_grants_resource", "resource_kind", "resource_id"),
        sa.Index("ix_grants_subject", "subject_kind", "subject_id"),
    )

    organization_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("organizations.id", ondelete="CASCADE")
    )
    subject_kind: Mapped[str] = mapped_column(sa.String(16))
    subject_id: Mapped[str | None] = mapped_column(sa.String(36))
    action: Mapped[str] = mapped_column(sa.String(8))
    resource_kind: Mapped[str] = mapped_column(sa.String(16))
    resource_id: Mapped[str] = mapped_column(sa.String(36))
    valid_from: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]
    data_from: Mapped[int | None] = mapped_column(sa.BigInteger)
    data_until: Mapped[int | None] = mapped_column(sa.BigInteger)
    created_by: Mapped[str | None] = mapped_column(sa.String(80))


class AuditEvent(Base):
    """Append-only; state-changing events are written in the transaction of their change."""

    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_org_ts", "organization_id", "ts"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    event: Mapped[str] = mapped_column(sa.String(64))
    outcome: Mapped[str] = mapped_column(sa.String(8))
    actor_kind: Mapped[str | None] = mapped_column(sa.String(16))
    actor_id: Mapped[str | None] = mapped_column(sa.String(36))
    credential_prefix: Mapped[str | None] = mapped_column(sa.String(64))
    organization_id: Mapped[str | None] = mapped_column(sa.String(36))
    target_kind: Mapped[str | None] = mapped_column(sa.String(16))
    target_id: Mapped[str | None] = mapped_column(sa.String(64))
    surface: Mapped[str] = mapped_column(sa.String(16), default="native")
    source_ip: Mapped[str | None] = mapped_column(sa.String(64))
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
    reason: Mapped[str | None] = mapped_column(sa.String(64))
    count: Mapped[int] = mapped_column(default=1)
    details: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
