from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from thingbucket.kit.schemas import Body, Name, Out, Resource

Scope = Literal["read", "write", "admin"]
ALL_SCOPES: tuple[Scope, ...] = ("read", "write", "admin")


class TokenAnswer(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a scheme name)
    expires_in: int
    refresh_token: str


class OrgCreate(Body):
    name: Name = Field(min_length=1)
    attributes: dict[str, Any] = Field(default_factory=dict)
    kii_app_id: str | None = Field(default=None, max_length=64)


class OrgUpdate(Body):
    name: Name | None = Field(default=None, min_length=1)
    attributes: dict[str, Any] | None = None
    kii_app_id: str | None = Field(default=None, max_length=64)


class OrgOut(Resource):
    name: str
    personal: bool
    attributes: dict[str, Any]


class MemberCreate(Body):
    person_id: str
    role: Literal["owner", "admin", "member"]


class MembershipOut(Out):
    organization_id: str
    person_id: str
    role: str
    created_at: datetime
    updated_at: datetime


class PersonalTokenCreate(Body):
    name: Name = Field(min_length=1)
    scopes: list[Scope] = Field(default_factory=lambda: list(ALL_SCOPES), min_length=1)
    expires_at: datetime | None = None


class PersonalTokenOut(Resource):
    name: str | None
    prefix: str
    scopes: list[str] | None
    expires_at: datetime | None
    last_used_at: datetime | None


class PersonalTokenCreated(PersonalTokenOut):
    secret: str


class PersonOut(Resource):
    email: str


class OrgRole(BaseModel):
    id: str
    name: str
    role: str
    personal: bool


class MeOut(BaseModel):
    kind: Literal["person", "thing", "api_key"]
    id: str
    email: str | None = None
    instance_admin: bool = False
    personal_org_id: str | None = None
    orgs: list[OrgRole] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    organization_id: str | None = None
    bucket_id: str | None = None
    role: str | None = None
    scopes: list[str] | None = None
