"""Buckets and API keys: the rules. Flushes, never commits."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from thingbucket.access import quotas
from thingbucket.access import service as access
from thingbucket.access.principal import Principal, Ref
from thingbucket.accounts import service as accounts
from thingbucket.buckets.errors import BucketNameTaken, BucketNotFound, KeyNotFound
from thingbucket.buckets.models import ApiKey, Bucket
from thingbucket.buckets.repository import BucketRepository
from thingbucket.buckets.schemas import BucketCreate, BucketUpdate, KeyCreate
from thingbucket.db.base import utcnow
from thingbucket.errors import Forbidden
from thingbucket.kit.ids import new_id
from thingbucket.kit.secrets import generate, listed_prefix
from thingbucket.points.purge import purge_after_commit
from thingbucket.runtime import Runtime

NATIVE_KEY_PREFIX = "tb_k_"
DAKKIO_PREFIX = {"admin": "dakkio_a_", "write": "dakkio_w_", "read": "dakkio_r_"}
ROLE_LEVEL = {"read": 1, "write": 2, "admin": 3}
_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$"
)
DEFAULT_BUCKET = "default"


def bucket_ref(bucket: Bucket) -> Ref:
    return Ref(kind="bucket", id=bucket.id, org_id=bucket.organization_id, bucket_id=bucket.id)


async def get(session: AsyncSession, who: Principal, bucket_id: str) -> Bucket:
    bucket = await BucketRepository(session).visible(who, bucket_id)
    if bucket is None:
        raise BucketNotFound(target=("bucket", bucket_id))
    return bucket


async def require(
    session: AsyncSession, who: Principal, bucket_id: str, action: access.Action
) -> Bucket:
    """A visible bucket on which ``who`` may do ``action``: 404 first, then 403."""
    bucket = await get(session, who, bucket_id)
    await access.require(session, who, action, bucket_ref(bucket))
    return bucket


async def _org_for_new_bucket(session: AsyncSession, who: Principal, org_id: str | None) -> str:
    if org_id is None:
        if who.kind == "person" and who.id is not None:
            return await accounts.personal_org_id(session, who.id)
        if who.kind == "api_key" and who.organization_id is not None:
            return who.organization_id
        raise Forbidden("Things do not create buckets.")
    org = await accounts.require_org(session, who, org_id, "create")
    return org.id


async def create(session: AsyncSession, who: Principal, body: BucketCreate) -> Bucket:
    org_id = await _org_for_new_bucket(session, who, body.org_id)
    if not await access.can(session, who, "create", Ref(kind="org", id=org_id, org_id=org_id)):
        raise Forbidden()
    repo = BucketRepository(session)
    quotas.check(await repo.count_in_org(org_id), quotas.BUCKETS_PER_ORG, "buckets")
    if await repo.by_name(org_id, body.name) is not None:
        raise BucketNameTaken()
    bucket = Bucket(
        id=new_id(),
        organization_id=org_id,
        name=body.name,
        description=body.description,
        retention_days=body.retention_days,
        attributes=body.attributes,
        created_by=who.label,
    )
    repo.add(bucket)
    await session.flush()
    access.give_creator_admin(session, who, bucket_ref(bucket))
    access.record(session, "bucket.created", who, org_id=org_id, target=("bucket", bucket.id))
    await session.flush()
    return bucket


async def default_bucket(session: AsyncSession, who: Principal) -> Bucket:
    """Where a person's things go when no bucket is named: ``default`` in the personal org."""
    assert who.kind == "person"
    assert who.id is not None
    org_id = await accounts.personal_org_id(session, who.id)
    existing = await BucketRepository(session).by_name(org_id, DEFAULT_BUCKET)
    if existing is not None:
        return existing
    return await create(session, who, BucketCreate(name=DEFAULT_BUCKET, org_id=org_id))


async def list_visible(
    session: AsyncSession, who: Principal, org_id: str | None, cursor: str | None, limit: int
) -> tuple[Sequence[Bucket], str | None]:
    return await BucketRepository(session).list_visible(who, org_id, cursor, limit)


async def update(
    session: AsyncSession, who: Principal, bucket_id: str, body: BucketUpdate
) -> Bucket:
    bucket = await require(session, who, bucket_id, "admin")
    repo = BucketRepository(session)
    changes = body.model_dump(exclude_unset=True)
    new_name = changes.get("name", bucket.name)
    if new_name != bucket.name and (
        new_name is None or await repo.by_name(bucket.organization_id, new_name)
    ):
        raise BucketNameTaken()
    if "retention_days" in changes and changes["retention_days"] != bucket.retention_days:
        access.record(
            session,
            "bucket.retention_changed",
            who,
            org_id=bucket.organization_id,
            target=("bucket", bucket.id),
            details={"retention_days": changes["retention_days"]},
        )
    for field, value in changes.items():
        if field in ("archived", "attributes") and value is None:
            continue
        setattr(bucket, field, value)
    await session.flush()
    return bucket


async def delete(session: AsyncSession, rt: Runtime, who: Principal, bucket_id: str) -> None:
    """Delete a bucket with its things, properties and samples."""
    bucket = await require(session, who, bucket_id, "delete")
    await purge_after_commit(session, rt, "bucket", bucket.id)
    await access.forget(session, [("bucket", bucket.id)])
    await BucketRepository(session).delete(bucket)
    access.record(
        session, "bucket.deleted", who, org_id=bucket.organization_id, target=("bucket", bucket.id)
    )
    await session.flush()


async def retention_days(session: AsyncSession, bucket_id: str) -> int | None:
    return await BucketRepository(session).retention_days(bucket_id)


# --- API keys -----------------------------------------------------------------------------------


def _mint(fmt: str, role: str) -> tuple[str, str]:
    """(secret, listed prefix) in the requested presentation."""
    if fmt == "dakkio":
        secret = DAKKIO_PREFIX[role] + secrets.token_hex(20)
        return secret, secret[:13] + "..."
    if fmt == "bitpool":
        value = str(uuid.uuid4())
        return value, f"Bitpool2 {value[:8]}-****-****-****-************"
    secret = generate(NATIVE_KEY_PREFIX)
    return secret, listed_prefix(secret)


def canonical_key(secret: str) -> str:
    """The form a key is digested in: Bitpool GUIDs in any case are one key."""
    value = secret.strip()
    if value[:9].lower() == "bitpool2 ":
        value = value[9:].strip()
    if _UUID.match(value):
        return value.lower()
    return value


async def _key_scope(
    session: AsyncSession, who: Principal, org_id: str | None, bucket_id: str | None
) -> tuple[str, str | None, Ref]:
    if bucket_id is not None:
        bucket = await require(session, who, bucket_id, "manage_credentials")
        return bucket.organization_id, bucket.id, bucket_ref(bucket)
    assert org_id is not None
    org = await accounts.require_org(session, who, org_id, "manage_credentials")
    return org.id, None, accounts.org_ref(org)


async def create_key(
    session: AsyncSession,
    rt: Runtime,
    who: Principal,
    body: KeyCreate,
    *,
    org_id: str | None = None,
    bucket_id: str | None = None,
) -> tuple[ApiKey, str]:
    scope_org, scope_bucket, _ref = await _key_scope(session, who, org_id, bucket_id)
    level = ROLE_LEVEL[body.role]
    if who.kind == "api_key" and level >= ROLE_LEVEL.get(who.role or "", 0):
        raise Forbidden("A key creates only keys of a lower role.")
    if who.scopes is not None and level > max(ROLE_LEVEL.get(s, 0) for s in who.scopes):
        raise Forbidden("A token cannot create a key above its own scopes.")
    repo = BucketRepository(session)
    quotas.check(await repo.count_keys(scope_org, scope_bucket), quotas.KEYS_PER_BUCKET, "keys")
    secret, prefix = _mint(body.format, body.role)
    key = ApiKey(
        id=new_id(),
        organization_id=scope_org,
        bucket_id=scope_bucket,
        name=body.name,
        role=body.role,
        public_only=body.public_only,
        format=body.format,
        digest=rt.digester.digest(canonical_key(secret)),
        prefix=prefix,
        expires_at=body.expires_at,
        created_by=who.label,
    )
    repo.add(key)
    access.record(
        session,
        "apikey.created",
        who,
        org_id=scope_org,
        target=("api_key", key.id),
        details={"role": body.role, "bucket": scope_bucket, "format": body.format},
    )
    await session.flush()
    return key, secret


async def list_keys(
    session: AsyncSession,
    who: Principal,
    cursor: str | None,
    limit: int,
    *,
    org_id: str | None = None,
    bucket_id: str | None = None,
) -> tuple[Sequence[ApiKey], str | None]:
    scope_org, scope_bucket, _ = await _key_scope(session, who, org_id, bucket_id)
    return await BucketRepository(session).keys(scope_org, scope_bucket, cursor, limit)


async def delete_key(
    session: AsyncSession,
    who: Principal,
    key_id: str,
    *,
    org_id: str | None = None,
    bucket_id: str | None = None,
) -> None:
    scope_org, scope_bucket, _ = await _key_scope(session, who, org_id, bucket_id)
    repo = BucketRepository(session)
    key = await repo.key(scope_org, scope_bucket, key_id)
    if key is None:
        raise KeyNotFound()
    if who.kind == "api_key" and ROLE_LEVEL[key.role] >= ROLE_LEVEL.get(who.role or "", 0):
        raise Forbidden("A key revokes only keys of a lower role.")
    await repo.delete_key(key)
    access.record(session, "apikey.deleted", who, org_id=scope_org, target=("api_key", key.id))
    await session.flush()


async def authenticate_key(session: AsyncSession, rt: Runtime, secret: str) -> Principal | None:
    key = await BucketRepository(session).key_by_digests(
        rt.digester.candidates(canonical_key(secret))
    )
    if key is None or (key.expires_at is not None and key.expires_at <= utcnow()):
        return None
    rt.usage.mark("api_key", key.id)
    return Principal(
        kind="api_key",
        id=key.id,
        organization_id=key.organization_id,
        bucket_id=key.bucket_id,
        role=key.role,
        public_only=key.public_only,
        credential_kind="api_key",
        credential_id=key.id,
        credential_prefix=key.prefix,
    )


async def touch_keys(session: AsyncSession, stamps: dict[str, datetime]) -> None:
    await BucketRepository(session).touch_keys(stamps)
