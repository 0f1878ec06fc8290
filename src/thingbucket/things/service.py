"""Things, their public keys and device tokens: the rules. Flushes, never commits."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from thingbucket.access import quotas
from thingbucket.access import service as access
from thingbucket.access.principal import Principal, Ref
from thingbucket.buckets import service as buckets
from thingbucket.buckets.errors import BucketNotFound
from thingbucket.db.base import utcnow
from thingbucket.db.engine import after_commit
from thingbucket.kit.ids import new_id
from thingbucket.kit.secrets import generate, listed_prefix
from thingbucket.points.purge import purge_after_commit
from thingbucket.runtime import Runtime
from thingbucket.things.errors import ThingKeyNotFound, ThingNotFound, ThingTokenNotFound
from thingbucket.things.jwt import JwtRejected, KeyRecord, parse_public_key, peek
from thingbucket.things.models import Thing, ThingKey, ThingToken
from thingbucket.things.repository import ThingRepository
from thingbucket.things.schemas import ThingCreate, ThingUpdate

DEVICE_TOKEN_PREFIX = "tb_d_"  # noqa: S105 (a prefix, not a secret)


def thing_ref(thing: Thing) -> Ref:
    return Ref(
        kind="thing",
        id=thing.id,
        org_id=thing.organization_id,
        bucket_id=thing.bucket_id,
        thing_id=thing.id,
    )


async def get(session: AsyncSession, who: Principal, thing_id: str) -> Thing:
    thing = await ThingRepository(session).visible(who, thing_id)
    if thing is None:
        raise ThingNotFound(target=("thing", thing_id))
    return thing


async def require(
    session: AsyncSession, who: Principal, thing_id: str, action: access.Action
) -> Thing:
    """A visible thing on which ``who`` may do ``action``: 404 first, then 403."""
    thing = await get(session, who, thing_id)
    await access.require(session, who, action, thing_ref(thing))
    return thing


async def lookup(session: AsyncSession, thing_id: str) -> Thing | None:
    """A thing by id without a visibility check, for routes that check the property instead."""
    return await ThingRepository(session).get(thing_id)


async def create(session: AsyncSession, who: Principal, body: ThingCreate) -> Thing:
    if body.bucket_id is not None:
        bucket = await buckets.require(session, who, body.bucket_id, "write")
    elif who.kind == "api_key" and who.bucket_id is not None:
        bucket = await buckets.require(session, who, who.bucket_id, "write")
    elif who.kind == "person":
        bucket = await buckets.default_bucket(session, who)
    else:
        raise BucketNotFound("Name the bucket of the new thing (bucket_id).")
    repo = ThingRepository(session)
    quotas.check(await repo.count_in_org(bucket.organization_id), quotas.THINGS_PER_ORG, "things")
    parsed = parse_public_key(body.public_key) if body.public_key else None
    thing = Thing(
        id=new_id(),
        organization_id=bucket.organization_id,
        bucket_id=bucket.id,
        name=body.name,
        description=body.description,
        type=body.type,
        attributes=body.attributes,
        created_by=who.label,
    )
    repo.add(thing)
    await session.flush()
    access.give_creator_admin(session, who, thing_ref(thing))
    if parsed is not None:
        _add_key(session, who, thing, parsed.algorithm, parsed.pem, parsed.fingerprint, None)
    await session.flush()
    return thing


async def list_visible(
    session: AsyncSession, who: Principal, bucket_id: str | None, cursor: str | None, limit: int
) -> tuple[Sequence[Thing], str | None]:
    return await ThingRepository(session).list_visible(who, bucket_id, cursor, limit)


async def update(
    session: AsyncSession, rt: Runtime, who: Principal, thing_id: str, body: ThingUpdate
) -> Thing:
    changes = body.model_dump(exclude_unset=True)
    # Disabling a thing cuts all its credentials, so it takes admin; other fields take write.
    action: access.Action = "admin" if "enabled" in changes else "write"
    thing = await require(session, who, thing_id, action)
    for field, value in changes.items():
        if field in ("name", "attributes", "enabled") and value is None:
            continue
        setattr(thing, field, value)
    if changes.get("enabled") is False:
        access.record(
            session, "thing.disabled", who, org_id=thing.organization_id, target=("thing", thing.id)
        )
        after_commit(session, lambda: rt.thing_credentials_changed(thing.id, None))
    await session.flush()
    return thing


async def delete(session: AsyncSession, rt: Runtime, who: Principal, thing_id: str) -> None:
    thing = await require(session, who, thing_id, "delete")
    await purge_after_commit(session, rt, "thing", thing.id)
    await access.forget(session, [("thing", thing.id)])
    await ThingRepository(session).delete(thing)
    access.record(
        session, "thing.deleted", who, org_id=thing.organization_id, target=("thing", thing.id)
    )
    after_commit(session, lambda: rt.thing_credentials_changed(thing.id, None))
    await session.flush()


# --- public keys --------------------------------------------------------------------------------


def _add_key(
    session: AsyncSession,
    who: Principal,
    thing: Thing,
    algorithm: str,
    pem: str,
    fingerprint: str,
    expires_at: datetime | None,
) -> ThingKey:
    key = ThingKey(
        id=new_id(),
        thing_id=thing.id,
        organization_id=thing.organization_id,
        algorithm=algorithm,
        pem=pem,
        fingerprint=fingerprint,
        expires_at=expires_at,
    )
    session.add(key)
    access.record(
        session,
        "thing.key.added",
        who,
        org_id=thing.organization_id,
        target=("thing", thing.id),
        details={"key": key.id, "algorithm": algorithm, "fingerprint": fingerprint},
    )
    return key


async def add_key(
    session: AsyncSession,
    who: Principal,
    thing_id: str,
    public_key: str,
    expires_at: datetime | None,
) -> ThingKey:
    thing = await require(session, who, thing_id, "manage_credentials")
    parsed = parse_public_key(public_key)
    repo = ThingRepository(session)
    quotas.check(
        len(await repo.active_keys(thing.id)), quotas.KEYS_PER_THING, "active keys per thing"
    )
    key = _add_key(
        session, who, thing, parsed.algorithm, parsed.pem, parsed.fingerprint, expires_at
    )
    await session.flush()
    return key


async def list_keys(
    session: AsyncSession, who: Principal, thing_id: str, cursor: str | None, limit: int
) -> tuple[Sequence[ThingKey], str | None]:
    # Credentials, even public halves, are listed to those who manage them (docs/decisions.md).
    thing = await require(session, who, thing_id, "manage_credentials")
    return await ThingRepository(session).keys(thing.id, cursor, limit)


async def delete_key(session: AsyncSession, who: Principal, thing_id: str, key_id: str) -> None:
    thing = await require(session, who, thing_id, "manage_credentials")
    repo = ThingRepository(session)
    key = await repo.key(thing.id, key_id)
    if key is None:
        raise ThingKeyNotFound()
    await repo.delete_key(key)
    access.record(
        session,
        "thing.key.removed",
        who,
        org_id=thing.organization_id,
        target=("thing", thing.id),
        details={"key": key.id},
    )
    await session.flush()


# --- device tokens ------------------------------------------------------------------------------


async def create_token(
    session: AsyncSession,
    rt: Runtime,
    who: Principal,
    thing_id: str,
    name: str | None,
    expires_at: datetime | None,
) -> tuple[ThingToken, str]:
    thing = await require(session, who, thing_id, "manage_credentials")
    secret = generate(DEVICE_TOKEN_PREFIX)
    token = ThingToken(
        id=new_id(),
        thing_id=thing.id,
        organization_id=thing.organization_id,
        name=name,
        digest=rt.digester.digest(secret),
        prefix=listed_prefix(secret),
        expires_at=expires_at,
    )
    session.add(token)
    access.record(
        session,
        "thing.token.issued",
        who,
        org_id=thing.organization_id,
        target=("thing", thing.id),
        details={"token": token.id},
    )
    await session.flush()
    after_commit(session, lambda: rt.thing_credentials_changed(thing.id, secret))
    return token, secret


async def list_tokens(
    session: AsyncSession, who: Principal, thing_id: str, cursor: str | None, limit: int
) -> tuple[Sequence[ThingToken], str | None]:
    thing = await require(session, who, thing_id, "manage_credentials")
    return await ThingRepository(session).tokens(thing.id, cursor, limit)


async def delete_token(
    session: AsyncSession, rt: Runtime, who: Principal, thing_id: str, token_id: str
) -> None:
    thing = await require(session, who, thing_id, "manage_credentials")
    repo = ThingRepository(session)
    token = await repo.token(thing.id, token_id)
    if token is None:
        raise ThingTokenNotFound()
    await repo.delete_token(token)
    access.record(
        session,
        "thing.token.revoked",
        who,
        org_id=thing.organization_id,
        target=("thing", thing.id),
        details={"token": token.id},
    )
    await session.flush()
    after_commit(session, lambda: rt.thing_credentials_changed(thing.id, None))


# --- authentication -----------------------------------------------------------------------------


def principal_for(thing: Thing, credential_kind: str, credential_id: str, prefix: str) -> Principal:
    return Principal(
        kind="thing",
        id=thing.id,
        organization_id=thing.organization_id,
        bucket_id=thing.bucket_id,
        credential_kind=credential_kind,
        credential_id=credential_id,
        credential_prefix=prefix,
    )


async def authenticate_device_token(
    session: AsyncSession, rt: Runtime, secret: str
) -> Principal | None:
    repo = ThingRepository(session)
    token = await repo.token_by_digests(rt.digester.candidates(secret))
    if token is None or (token.expires_at is not None and token.expires_at <= utcnow()):
        return None
    thing = await repo.get(token.thing_id)
    if thing is None or not thing.enabled:
        return None
    rt.usage.mark("thing_token", token.id)
    return principal_for(thing, "device_token", token.id, token.prefix)


async def authenticate_jwt(session: AsyncSession, rt: Runtime, token: str) -> Principal:
    """A thing's JWT, verified against the keys of the thing named by its ``sub``.

    Raises JwtRejected with the reason (for the audit log) on any failure.
    """
    _, payload = peek(token)
    sub = payload.get("sub")
    if not isinstance(sub, str) or len(sub) > 64:
        raise JwtRejected("claims_missing")
    repo = ThingRepository(session)
    thing = await repo.get(sub)
    if thing is None or not thing.enabled:
        raise JwtRejected("unknown_key")
    keys = [
        KeyRecord(k.id, k.algorithm, k.pem, k.fingerprint) for k in await repo.active_keys(thing.id)
    ]
    rt.jwt.verify(token, thing.id, keys, now=time.time())
    return principal_for(thing, "jwt", thing.id, "jwt")


async def touch_tokens(session: AsyncSession, stamps: dict[str, datetime]) -> None:
    await ThingRepository(session).touch_tokens(stamps)
