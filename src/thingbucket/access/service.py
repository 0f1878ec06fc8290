"""What other packages use of access: the policy, creator grants, and the audit log."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from thingbucket.access import repository as repo
from thingbucket.access.audit import record
from thingbucket.access.policy import can, require, visible_filter
from thingbucket.access.principal import Action, Principal, Ref

__all__ = [
    "Action",
    "can",
    "forget",
    "forget_subject",
    "give_creator_admin",
    "record",
    "require",
    "visible_filter",
]


def give_creator_admin(session: AsyncSession, who: Principal, ref: Ref) -> None:
    """The person who creates a bucket or thing gets an admin grant on it (security.md §4.4).

    Keys and things act within their scope already and get no grant of their own.
    """
    if who.kind != "person" or who.id is None:
        return
    repo.add_grant(
        session,
        org_id=ref.org_id,
        subject_kind="person",
        subject_id=who.id,
        action="admin",
        resource_kind=ref.kind,
        resource_id=ref.id,
        created_by=who.label,
    )


async def forget(session: AsyncSession, resources: list[tuple[str, str]]) -> None:
    """Drop the grants on deleted resources."""
    await repo.delete_grants_on(session, resources)


async def forget_subject(session: AsyncSession, kind: str, subject_id: str) -> None:
    """Drop the grants made to a deleted subject (a group)."""
    await repo.delete_grants_to(session, kind, subject_id)
