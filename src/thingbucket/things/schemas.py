from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from thingbucket.kit.schemas import Body, Description, Name, Resource


class ThingCreate(Body):
    name: Name = Field(min_length=1)
    bucket_id: str | None = None
    description: Description | None = None
    type: Name | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    public_key: str | None = Field(default=None, max_length=16_384)


class ThingUpdate(Body):
    name: Name | None = Field(default=None, min_length=1)
    description: Description | None = None
    type: Name | None = None
    attributes: dict[str, Any] | None = None
    enabled: bool | None = None


class ThingOut(Resource):
    organization_id: str
    bucket_id: str
    name: str
    description: str | None
    type: str | None
    attributes: dict[str, Any]
    enabled: bool


class ThingKeyCreate(Body):
    public_key: str = Field(max_length=16_384)
    expires_at: datetime | None = None


class ThingKeyOut(Resource):
    thing_id: str
    algorithm: str
    fingerprint: str
    expires_at: datetime | None


class ThingTokenCreate(Body):
    name: Name | None = None
    expires_at: datetime | None = None


class ThingTokenOut(Resource):
    thing_id: str
    name: str | None
    prefix: str
    expires_at: datetime | None
    last_used_at: datetime | None


class ThingTokenCreated(ThingTokenOut):
    secret: str
