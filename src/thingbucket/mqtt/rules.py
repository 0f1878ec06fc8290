"""Who may connect, publish and subscribe: one set of MQTT rules for the embedded broker and for
an external broker's hooks. Every decision about data goes through ``access`` (via the services).
"""

from __future__ import annotations

from dataclasses import replace

from thingbucket import credentials
from thingbucket.access.principal import Principal
from thingbucket.accounts import service as accounts
from thingbucket.errors import AppError
from thingbucket.mqtt import topics
from thingbucket.properties import service as properties
from thingbucket.runtime import Runtime
from thingbucket.things import service as things


async def connect_principal(
    rt: Runtime, username: str | None, password: str | None
) -> Principal | None:
    """username = thing id with a device token or thing JWT as password, or a person id with a
    personal access token (to subscribe); None for anything else."""
    if not username or not password:
        return None
    try:
        principal = await credentials.authenticate_cached(rt, password)
    except AppError:
        return None
    if principal is None or principal.id != username:
        return None
    if principal.kind == "thing" or (
        principal.kind == "person" and principal.credential_kind == "personal"
    ):
        return principal
    return None


def may_publish(who: Principal, topic: str) -> bool:
    """A thing publishes its points under its own ``tb/things/{id}/`` and nowhere else."""
    target = topics.points_topic(topic)
    return target is not None and who.kind == "thing" and who.id == target.thing_id


async def may_subscribe(rt: Runtime, who: Principal, topic_filter: str) -> bool:
    scope = topics.subscription(topic_filter)
    if scope is None:
        return False
    if who.kind == "thing":
        return who.id == scope.thing_id
    try:
        async with rt.db.session() as session:
            if scope.property_id is None:
                await things.require(session, who, scope.thing_id, "read")
            else:
                await properties.point_target(
                    session, who, scope.thing_id, scope.property_id, "read"
                )
    except AppError:
        return False
    return True


async def principal_of(rt: Runtime, username: str) -> Principal | None:
    """The principal an external broker has authenticated by ``username`` (its ACL requests carry
    no password): an enabled thing, or a person limited to reading (MQTT persons subscribe)."""
    async with rt.db.session() as session:
        thing = await things.lookup(session, username)
        if thing is not None:
            return things.principal_for(thing, "broker", "", "") if thing.enabled else None
        person = await accounts.lookup_person(session, username)
    if person is None:
        return None
    return replace(accounts.principal_for(person), scopes=frozenset({"read"}))
