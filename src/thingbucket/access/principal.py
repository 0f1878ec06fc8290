"""Who acts (Principal) and what they act on (Ref)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# "system" is the operator acting through the CLI on this machine: the instance admin.
PrincipalKind = Literal["anonymous", "person", "thing", "api_key", "system"]
ResourceKind = Literal["org", "bucket", "thing", "property", "collection", "object"]
# read < write < admin; the others are function-level actions (security.md §4.1, §4.4):
# "create" = create buckets in an org, "delete" = delete the resource itself,
# "manage_credentials" = API keys of an org or bucket, keys and tokens of a thing.
Action = Literal[
    "read", "write", "admin", "create", "delete", "manage_credentials", "manage_groups"
]


@dataclass(frozen=True, slots=True)
class Principal:
    kind: PrincipalKind
    id: str | None = None
    organization_id: str | None = None  # API key's or thing's organization
    bucket_id: str | None = None  # bucket key's bucket, thing's bucket
    role: str | None = None  # API key role
    public_only: bool = False
    scopes: frozenset[str] | None = None  # personal access token ceiling
    instance_admin: bool = False
    credential_kind: str | None = None  # access | personal | api_key | device_token | jwt
    credential_id: str | None = None
    credential_prefix: str | None = None

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.id}" if self.id else self.kind


ANONYMOUS = Principal(kind="anonymous")
SYSTEM = Principal(kind="system", id="cli", instance_admin=True)


@dataclass(frozen=True, slots=True)
class Ref:
    """A resource with its place in the tree, so that a decision needs no further lookups."""

    kind: ResourceKind
    id: str
    org_id: str
    bucket_id: str | None = None
    thing_id: str | None = None

    def ancestors(self) -> list[tuple[str, str]]:
        """(kind, id) of this resource and everything above it, most specific first."""
        chain: list[tuple[str, str]] = [(self.kind, self.id)]
        if self.thing_id and self.kind != "thing":
            chain.append(("thing", self.thing_id))
        if self.bucket_id and self.kind != "bucket":
            chain.append(("bucket", self.bucket_id))
        if self.kind != "org":
            chain.append(("org", self.org_id))
        return chain
