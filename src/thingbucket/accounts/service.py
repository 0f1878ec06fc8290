"""Persons, organizations, logins and person tokens: the rules. Flushes, never commits."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from thingbucket.access import service as access
from thingbucket.access.audit import request_info
from thingbucket.access.principal import Action, Principal, Ref
from thingbucket.accounts.errors import (
    EmailTaken,
    InvalidEmail,
    InvalidGrant,
    InvalidPassword,
    LastOwner,
    OrgNotFound,
    PersonNotFound,
    TokenNotFound,
)
from thingbucket.accounts.models import Membership, Organization, Person, PersonToken
from thingbucket.accounts.passwords import MAX_LENGTH, MIN_LENGTH
from thingbucket.accounts.repository import AccountRepository
from thingbucket.accounts.schemas import MeOut, OrgCreate, OrgRole, OrgUpdate
from thingbucket.db.base import utcnow
from thingbucket.errors import Forbidden
from thingbucket.kit.ids import new_id
from thingbucket.kit.secrets import generate, listed_prefix
from thingbucket.points.purge import purge_after_commit
from thingbucket.runtime import Runtime

ACCESS_PREFIX = "tb_at_"
REFRESH_PREFIX = "tb_rt_"
PERSONAL_PREFIX = "tb_p_"
SCOPE_LEVEL = {"read": 1, "write": 2, "admin": 3}
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email) or any(ord(c) < 32 for c in email):
        raise InvalidEmail()
    return email


def check_password(password: str) -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InvalidPassword()


def org_ref(org: Organization) -> Ref:
    return Ref(kind="org", id=org.id, org_id=org.id)


async def create_person(
    session: AsyncSession,
    rt: Runtime,
    *,
    email: str,
    password: str,
    instance_admin: bool = False,
    actor: Principal | None = None,
) -> Person:
    """A person with a personal organization they own."""
    email = normalise_email(email)
    check_password(password)
    repo = AccountRepository(session)
    if await repo.person_by_email(email) is not None:
        raise EmailTaken()
    org = Organization(id=new_id(), name=f"{email} (personal)", personal=True, attributes={})
    person = Person(
        id=new_id(),
        email=email,
        password_hash=await rt.passwords.hash(password),
        is_instance_admin=instance_admin,
        personal_org_id=org.id,
    )
    repo.add(org)
    await session.flush()
    repo.add(person)
    await session.flush()
    repo.add(Membership(organization_id=org.id, person_id=person.id, role="owner"))
    access.record(
        session,
        "person.created",
        actor,
        org_id=org.id,
        target=("person", person.id),
        details={"instance_admin": instance_admin},
    )
    await session.flush()
    return person


async def count_persons(session: AsyncSession) -> int:
    return await AccountRepository(session).count_persons()


# --- logins and tokens ----------------------------------------------------------------------


def _new_token(
    rt: Runtime,
    person_id: str,
    kind: str,
    prefix: str,
    *,
    chain_id: str | None = None,
    ttl: timedelta | None = None,
    name: str | None = None,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[PersonToken, str]:
    secret = generate(prefix)
    token = PersonToken(
        id=new_id(),
        person_id=person_id,
        kind=kind,
        name=name,
        digest=rt.digester.digest(secret),
        prefix=listed_prefix(secret),
        scopes=scopes,
        chain_id=chain_id,
        expires_at=expires_at if expires_at is not None else (utcnow() + ttl if ttl else None),
    )
    return token, secret


def _issue_pair(session: AsyncSession, rt: Runtime, person: Person, chain_id: str) -> TokenPair:
    sec = rt.settings.security
    access_row, access_secret = _new_token(
        rt,
        person.id,
        "access",
        ACCESS_PREFIX,
        chain_id=chain_id,
        ttl=timedelta(seconds=sec.access_token_ttl_s),
    )
    refresh_row, refresh_secret = _new_token(
        rt,
        person.id,
        "refresh",
        REFRESH_PREFIX,
        chain_id=chain_id,
        ttl=timedelta(seconds=sec.refresh_token_ttl_s),
    )
    session.add_all([access_row, refresh_row])
    return TokenPair(access_secret, refresh_secret, sec.access_token_ttl_s)


async def login(session: AsyncSession, rt: Runtime, username: str, password: str) -> TokenPair:
    """OAuth2 password grant. An unknown account costs a dummy hash and answers the same."""
    account = username.strip().lower()
    address = request_info.get().source_ip
    rt.throttle.check(account, address)
    repo = AccountRepository(session)
    person = await repo.person_by_email(account)
    ok = await rt.passwords.verify(person.password_hash if person else None, password)
    if not ok or person is None or person.disabled_at is not None:
        rt.throttle.failed(account, address)
        rt.audit.failure("auth.login", None, reason="bad_password", actor_hint=account[:36])
        raise InvalidGrant()
    rt.throttle.succeeded(account)
    assert person.password_hash is not None
    if rt.passwords.needs_rehash(person.password_hash):
        person.password_hash = await rt.passwords.hash(password)
    who = principal_for(person)
    pair = _issue_pair(session, rt, person, new_id())
    access.record(session, "auth.login", who, org_id=person.personal_org_id)
    access.record(session, "auth.token_issued", who, details={"kind": "access+refresh"})
    await session.flush()
    return pair


async def refresh(session: AsyncSession, rt: Runtime, refresh_token: str) -> TokenPair:
    """Single use: each refresh returns a new pair; reusing a spent one revokes the whole chain."""
    repo = AccountRepository(session)
    token = None
    if refresh_token.startswith(REFRESH_PREFIX):
        token = await repo.token_by_digests(rt.digester.candidates(refresh_token))
    now = utcnow()
    if token is None or token.kind != "refresh" or token.revoked_at is not None:
        rt.audit.failure("auth.credential_rejected", None, reason="unknown_key")
        raise InvalidGrant()
    person = await repo.person(token.person_id)
    if person is None or person.disabled_at is not None:
        raise InvalidGrant()
    if token.spent_at is not None:
        # Reuse of a spent refresh token: revoke the whole chain in a unit of work of its own,
        # so the revocation sticks although this request fails.
        assert token.chain_id is not None
        async with rt.db.session() as own:
            await AccountRepository(own).revoke_chain(token.chain_id, now)
            access.record(
                own,
                "auth.refresh_reuse",
                principal_for(person),
                outcome="denied",
                reason="revoked",
                details={"chain": token.chain_id},
            )
        raise InvalidGrant()
    if token.expires_at is not None and token.expires_at <= now:
        raise InvalidGrant()
    token.spent_at = now
    assert token.chain_id is not None
    pair = _issue_pair(session, rt, person, token.chain_id)
    access.record(session, "auth.token_issued", principal_for(person), details={"kind": "refresh"})
    await session.flush()
    return pair


async def lookup_person(session: AsyncSession, person_id: str) -> Person | None:
    """A person by id, for an identity already vouched for (an external broker's ACL hook)."""
    return await AccountRepository(session).person(person_id)


def principal_for(person: Person, token: PersonToken | None = None) -> Principal:
    return Principal(
        kind="person",
        id=person.id,
        instance_admin=person.is_instance_admin,
        scopes=frozenset(token.scopes) if token is not None and token.scopes is not None else None,
        credential_kind=token.kind if token is not None else None,
        credential_id=token.id if token is not None else None,
        credential_prefix=token.prefix if token is not None else None,
    )


async def authenticate_token(session: AsyncSession, rt: Runtime, secret: str) -> Principal | None:
    """A person's access or personal token, or None when it is not valid (any reason)."""
    repo = AccountRepository(session)
    token = await repo.token_by_digests(rt.digester.candidates(secret))
    if token is None or token.kind == "refresh" or token.revoked_at is not None:
        return None
    if token.expires_at is not None and token.expires_at <= utcnow():
        return None
    person = await repo.person(token.person_id)
    if person is None or person.disabled_at is not None:
        return None
    if token.kind == "personal":
        rt.usage.mark("person_token", token.id)
    return principal_for(person, token)


def _require_person(who: Principal) -> str:
    if who.kind != "person" or who.id is None:
        raise Forbidden("Only persons have personal tokens.")
    return who.id


async def create_personal_token(
    session: AsyncSession,
    rt: Runtime,
    who: Principal,
    *,
    name: str,
    scopes: Sequence[str],
    expires_at: datetime | None,
) -> tuple[PersonToken, str]:
    person_id = _require_person(who)
    if who.scopes is not None and any(s not in who.scopes for s in scopes):
        raise Forbidden("A token cannot carry scopes beyond the token that creates it.")
    token, secret = _new_token(
        rt,
        person_id,
        "personal",
        PERSONAL_PREFIX,
        name=name,
        scopes=sorted(set(scopes), key=SCOPE_LEVEL.__getitem__),
        expires_at=expires_at,
    )
    session.add(token)
    access.record(
        session, "auth.token_issued", who, target=("token", token.id), details={"kind": "personal"}
    )
    await session.flush()
    return token, secret


async def list_personal_tokens(
    session: AsyncSession, who: Principal, cursor: str | None, limit: int
) -> tuple[Sequence[PersonToken], str | None]:
    return await AccountRepository(session).personal_tokens(_require_person(who), cursor, limit)


async def revoke_personal_token(session: AsyncSession, who: Principal, token_id: str) -> None:
    token = await AccountRepository(session).personal_token(_require_person(who), token_id)
    if token is None:
        raise TokenNotFound()
    token.revoked_at = utcnow()
    access.record(session, "auth.token_revoked", who, target=("token", token.id))
    await session.flush()


# --- me, persons ------------------------------------------------------------------------------


async def me(session: AsyncSession, who: Principal) -> MeOut:
    assert who.id is not None
    assert who.kind not in ("anonymous", "system")
    if who.kind != "person":
        return MeOut(
            kind=who.kind,
            id=who.id,
            organization_id=who.organization_id,
            bucket_id=who.bucket_id,
            role=who.role,
        )
    repo = AccountRepository(session)
    person = await repo.person(who.id)
    assert person is not None
    orgs = await repo.orgs_with_roles(person.id)
    return MeOut(
        kind="person",
        id=person.id,
        email=person.email,
        instance_admin=person.is_instance_admin,
        personal_org_id=person.personal_org_id,
        orgs=[OrgRole(id=o.id, name=o.name, role=r, personal=o.personal) for o, r in orgs],
        groups=await repo.group_ids_of("person", person.id),
        scopes=sorted(who.scopes) if who.scopes is not None else None,
    )


async def list_persons(
    session: AsyncSession, who: Principal, email: str | None, cursor: str | None, limit: int
) -> tuple[Sequence[Person], str | None]:
    if who.kind != "person":
        raise Forbidden("Only persons list persons.")
    return await AccountRepository(session).visible_persons(
        who, email.strip().lower() if email else None, cursor, limit
    )


async def personal_org_id(session: AsyncSession, person_id: str) -> str:
    person = await AccountRepository(session).person(person_id)
    if person is None:
        raise PersonNotFound()
    return person.personal_org_id


# --- organizations ---------------------------------------------------------------------------


async def get_org(session: AsyncSession, who: Principal, org_id: str) -> Organization:
    org = await AccountRepository(session).visible_org(who, org_id)
    if org is None:
        raise OrgNotFound(target=("org", org_id))
    return org


async def require_org(
    session: AsyncSession, who: Principal, org_id: str, action: Action
) -> Organization:
    """A visible organization on which ``who`` may do ``action`` (404, then 403)."""
    org = await get_org(session, who, org_id)
    await access.require(session, who, action, org_ref(org))
    return org


async def create_org(session: AsyncSession, who: Principal, body: OrgCreate) -> Organization:
    if who.kind != "person" or who.id is None:
        raise Forbidden("Only persons create organizations.")
    if who.scopes is not None and not {"write", "admin"} & set(who.scopes):
        # A read-only personal token creates nothing (its scopes are a ceiling, security.md §3).
        raise Forbidden("This token is limited to reading.")
    attributes = dict(body.attributes)
    if body.kii_app_id:
        attributes["kii_app_id"] = body.kii_app_id
    org = Organization(id=new_id(), name=body.name, personal=False, attributes=attributes)
    repo = AccountRepository(session)
    repo.add(org)
    await session.flush()
    repo.add(Membership(organization_id=org.id, person_id=who.id, role="owner"))
    access.record(session, "org.member_added", who, org_id=org.id, target=("person", who.id))
    await session.flush()
    return org


async def list_orgs(
    session: AsyncSession, who: Principal, cursor: str | None, limit: int
) -> tuple[Sequence[Organization], str | None]:
    return await AccountRepository(session).visible_orgs(who, cursor, limit)


async def update_org(
    session: AsyncSession, who: Principal, org_id: str, body: OrgUpdate
) -> Organization:
    org = await require_org(session, who, org_id, "admin")
    if body.name is not None:
        org.name = body.name
    if body.attributes is not None or body.kii_app_id is not None:
        attributes = dict(body.attributes if body.attributes is not None else org.attributes)
        if body.kii_app_id is not None:
            attributes["kii_app_id"] = body.kii_app_id
        org.attributes = attributes
    await session.flush()
    return org


async def delete_org(session: AsyncSession, rt: Runtime, who: Principal, org_id: str) -> None:
    """Delete an organization with everything in it (owners only; not a personal one)."""
    org = await require_org(session, who, org_id, "delete")
    if org.personal:
        raise Forbidden("A personal organization is deleted with its person.")
    await purge_after_commit(session, rt, "org", org.id)
    await AccountRepository(session).delete_org(org)
    access.record(session, "org.deleted", who, org_id=org.id, target=("org", org.id))
    await session.flush()


async def add_member(
    session: AsyncSession, who: Principal, org_id: str, person_id: str, role: str
) -> Membership:
    org = await require_org(session, who, org_id, "admin")
    repo = AccountRepository(session)
    if role == "owner" and not await access.can(session, who, "delete", org_ref(org)):
        raise Forbidden("Only owners appoint owners.")
    person = await repo.person(person_id)
    if person is None:
        raise PersonNotFound()
    membership = await repo.membership(org.id, person.id)
    if membership is None and await repo.add_membership(org.id, person.id, role):
        access.record(session, "org.member_added", who, org_id=org.id, target=("person", person.id))
        membership = await repo.membership(org.id, person.id)
        assert membership is not None
    elif membership is None:  # a concurrent request added the person first: same answer
        membership = await repo.membership(org.id, person.id)
        assert membership is not None
    elif membership.role != role:
        if membership.role == "owner" and await repo.count_owners(org.id) <= 1:
            raise LastOwner()
        membership.role = role
        access.record(
            session,
            "org.role_changed",
            who,
            org_id=org.id,
            target=("person", person.id),
            details={"role": role},
        )
    await session.flush()
    return membership


async def touch_tokens(session: AsyncSession, stamps: dict[str, datetime]) -> None:
    await AccountRepository(session).touch_tokens(stamps)
