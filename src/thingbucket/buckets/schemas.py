from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from thingbucket.kit.schemas import Body, Description, Name, Resource

Role = Literal["admin", "write", "read"]
KeyFormat = Literal["native", "dakkio", "bitpool"]


class BucketCreate(Body):
    name: Name = Field(min_length=1)
    org_id: str | None = None
    description: Description | None = None
    retention_days: int | None = Field(default=None, ge=1, le=36_500)
    attributes: dict[str, Any] = Field(default_factory=dict)


class BucketUpdate(Body):
    name: Name | None = Field(default=None, min_length=1)
    description: Description | None = None
    retention_days: int | None = Field(default=None, ge=1, le=36_500)
    archived: bool | None = None
    attributes: dict[str, Any] | None = None


class BucketOut(Resource):
    organization_id: str
    name: str
    description: str | None
    retention_days: int | None
    archived: bool
    attributes: dict[str, Any]
    # Only in the answer about one bucket (a listing would cost a probe per series per bucket).
    oldest_sample_at: datetime | None = None


class KeyCreate(Body):
    name: Name = Field(min_length=1)
    role: Role
    public_only: bool = False
    format: KeyFormat = "native"
    expires_at: datetime | None = None


class KeyOut(Resource):
    organization_id: str
    bucket_id: str | None
    name: str
    role: str
    public_only: bool
    format: str
    prefix: str
    expires_at: datetime | None
    last_used_at: datetime | None


class KeyCreated(KeyOut):
    secret: str
