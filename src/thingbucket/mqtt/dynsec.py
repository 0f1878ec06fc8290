"""Device credentials provisioned into Mosquitto 2.0's dynamic security plugin.

Each thing is a dynsec client (username = thing id) with a role of its own that lets it publish
and subscribe under ``tb/things/{id}/`` only (``%u`` is not substituted in dynsec roles). A device
token is a secret shown once, so the client's password is the token issued last: issuing a token
sets it; revoking a token of the thing, disabling or deleting the thing disables the client at
once (Mosquitto then drops its connection). JWTs cannot be checked by Mosquitto: with this mode,
devices use device tokens on MQTT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import TYPE_CHECKING, Any

import aiomqtt
import orjson

if TYPE_CHECKING:
    from thingbucket.mqtt.external import ExternalIngest

log = logging.getLogger(__name__)
CONTROL = "$CONTROL/dynamic-security/v1"
RESPONSE = CONTROL + "/response"
TIMEOUT_S = 5.0


def role_of(thing_id: str) -> str:
    return f"tb-thing-{thing_id}"


def _acls(thing_id: str) -> list[dict[str, Any]]:
    mine = f"tb/things/{thing_id}/#"
    return [
        {"acltype": "publishClientSend", "topic": mine, "allow": True},
        {"acltype": "publishClientReceive", "topic": mine, "allow": True},
        {"acltype": "subscribePattern", "topic": mine, "allow": True},
    ]


class DynsecError(Exception):
    pass


class Dynsec:
    def __init__(self, ingest: ExternalIngest) -> None:
        self._ingest = ingest
        self._client: aiomqtt.Client | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def attach(self, client: aiomqtt.Client) -> None:
        self._client = client
        await client.subscribe(RESPONSE, qos=1)

    def detach(self) -> None:
        self._client = None
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(DynsecError("broker connection lost"))
        self._waiting.clear()

    def take(self, message: aiomqtt.Message) -> bool:
        """Consume a dynsec response (True), or leave the message to ingest (False)."""
        if str(message.topic) != RESPONSE:
            return False
        payload = message.payload if isinstance(message.payload, bytes) else b"{}"
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
            for response in orjson.loads(payload).get("responses", []):
                future = self._waiting.pop(str(response.get("correlationData")), None)
                if future is not None and not future.done():
                    future.set_result(response)
        return True

    async def _run(self, *commands: dict[str, Any]) -> list[dict[str, Any]]:
        if self._client is None:
            raise DynsecError("not connected to the broker")
        futures = []
        for command in commands:
            tag = secrets.token_hex(8)
            command["correlationData"] = tag
            futures.append(asyncio.get_running_loop().create_future())
            self._waiting[tag] = futures[-1]
        await self._client.publish(CONTROL, orjson.dumps({"commands": list(commands)}), qos=1)
        async with asyncio.timeout(TIMEOUT_S):
            return list(await asyncio.gather(*futures))

    async def token_issued(self, thing_id: str, secret: str) -> None:
        """The thing's MQTT password becomes this token; its client and role exist after."""
        role = role_of(thing_id)
        results = await self._run(
            {"command": "createRole", "rolename": role, "acls": _acls(thing_id)},
            {
                "command": "createClient",
                "username": thing_id,
                "password": secret,
                "roles": [{"rolename": role}],
            },
        )
        if results[1].get("error"):  # it exists already: new password, enabled
            results = await self._run(
                {"command": "setClientPassword", "username": thing_id, "password": secret},
                {"command": "enableClient", "username": thing_id},
            )
            errors = [r["error"] for r in results if r.get("error")]
            if errors:
                raise DynsecError("; ".join(errors))

    async def thing_cut(self, thing_id: str) -> None:
        """No MQTT for this thing until a new token is issued."""
        results = await self._run({"command": "disableClient", "username": thing_id})
        error = results[0].get("error")
        if error and "not found" not in str(error).lower():
            raise DynsecError(str(error))
