from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from thingbucket.kit.schemas import Body, Name, Out, Resource

SubjectKind = Literal["person", "group", "thing", "api_key", "authenticated", "public"]
ResourceKind = Literal["org", "bucket", "thing", "property", "collection", "object"]
GrantAction = Literal["read", "write", "admin"]
_ID = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")


class SubjectIn(Body):
    allowed_read_only = frozenset({"id"})  # a reference to an existing subject
    kind: SubjectKind
    id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")

    @model_validator(mode="after")
    def _id_when_needed(self) -> SubjectIn:
        if (self.kind in ("authenticated", "public")) != (self.id is None):
            raise ValueError("authenticated and public take no id; every other subject needs one")
        return self


class ResourceIn(Body):
    allowed_read_only = frozenset({"id"})
    kind: ResourceKind
    id: str = _ID


class GrantCreate(Body):
    subject: SubjectIn
    action: GrantAction
    resource: ResourceIn
    expires_at: datetime | None = None


class SubjectOut(Out):
    kind: str
    id: str | None


class ResourceOut(Out):
    kind: str
    id: str


class GrantOut(Resource):
    organization_id: str
    subject: SubjectOut
    action: str
    resource: ResourceOut
    expires_at: datetime | None
    created_by: str | None


class GroupCreate(Body):
    name: Name = Field(min_length=1)
    org_id: str | None = None


class MemberIn(Body):
    allowed_read_only = frozenset({"id"})
    kind: Literal["person", "thing"]
    id: str = _ID


class MemberOut(Out):
    kind: str
    id: str


class GroupOut(Resource):
    organization_id: str
    name: str
    members: list[MemberOut] = Field(default_factory=list)
