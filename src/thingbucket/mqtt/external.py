"""External broker mode: thingbucket as a privileged client of Mosquitto, EMQX, ...

The ingest client holds a persistent session (clean session 0) and a shared subscription
(``$share/<group>/tb/things/...``), so several replicas split one stream. Each message is
acknowledged to the broker only after its samples have committed (paho's manual acks, under
aiomqtt): a crash of thingbucket loses nothing the broker still holds, and a redelivery is
absorbed by the upsert. The broker has already decided who may publish where (its ACL lets a
thing publish only under ``tb/things/{its id}/``), so the publishing thing is the one the topic
names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from urllib.parse import urlsplit

import aiomqtt
import orjson

from thingbucket.access.principal import Principal
from thingbucket.errors import Overloaded, Unavailable
from thingbucket.mqtt import ingest, topics
from thingbucket.mqtt.dynsec import Dynsec
from thingbucket.runtime import Runtime
from thingbucket.things import service as things
from thingbucket.things.models import Thing

log = logging.getLogger(__name__)
RECONNECT_S = 2.0
# Messages taken from the broker and not yet committed: enough that the writer always finds a
# group waiting while the acks of the last one travel (100 measured half the rate, benchmarks
# P4-mosquitto); 400 messages of 100 points stay within the default writer queue.
MAX_IN_FLIGHT = 400
MAX_QUEUED_RELAYS = 1000  # QoS 0 publishes waiting in paho for the socket
OVERLOAD_RETRIES = 20  # waits of 50 ms, 100 ms, ... on a full writer queue (~10 s in all)
_SUBSCRIPTIONS = ("tb/things/+/properties/+", "tb/things/+/properties/by-name/+")


def client_id(rt: Runtime) -> str:
    """Stable per installation, port and worker, so that a restart finds its persistent
    session."""
    worker = f"-w{rt.worker}" if rt.settings.server.workers > 1 else ""
    given = rt.settings.mqtt.client_id
    if given:
        return given + worker
    seed = (
        f"{socket.gethostname()}:{rt.settings.server.data_dir.resolve()}:{rt.settings.server.port}"
    )
    return "thingbucket-" + uuid.uuid5(uuid.NAMESPACE_URL, seed).hex[:16] + worker


class ExternalIngest:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        url = urlsplit(rt.settings.mqtt.url or "")
        if url.scheme not in ("mqtt", "tcp") or not url.hostname:
            raise ValueError("mqtt.url must look like mqtt://host:port")
        self._host, self._port = url.hostname, url.port or 1883
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.dynsec = Dynsec(self) if rt.settings.mqtt.provision == "dynsec" else None

    async def start(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Connect and subscribe; refuse (raise) if the broker cannot be reached at start."""
        self._task = asyncio.create_task(self._run(), name="thingbucket-mqtt-ingest")
        done, _ = await asyncio.wait(
            [self._task, asyncio.ensure_future(self._ready.wait())],
            timeout=timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if self._task in done:
            self._task.result()  # raises what stopped it
        if not self._ready.is_set():
            await self.close()
            raise Unavailable(f"the MQTT broker at {self._host}:{self._port} did not answer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    @property
    def connected(self) -> bool:
        return self._client is not None and self._ready.is_set()

    async def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        if self._client is None:
            return
        if qos == 0:
            # Relays and error reports are best effort: queued in paho without waiting for the
            # socket (aiomqtt would, and the message's PUBACK waits behind that), and dropped
            # while a slow broker leaves paho's queue long.
            paho = self._client._client
            if len(paho._out_packet) < MAX_QUEUED_RELAYS:
                paho.publish(topic, payload, qos=0)
            return
        with contextlib.suppress(aiomqtt.MqttError):
            await self._client.publish(topic, payload, qos=qos)

    def _new_client(self) -> aiomqtt.Client:
        mqtt = self.rt.settings.mqtt
        password = mqtt.password.get_secret_value() if mqtt.password else None
        client = aiomqtt.Client(
            self._host,
            self._port,
            username=mqtt.username,
            password=password,
            identifier=client_id(self.rt),
            clean_session=False,
            protocol=aiomqtt.ProtocolVersion.V311,
            max_inflight_messages=100,
            keepalive=30,
        )
        # Acknowledge by hand, after the commit (aiomqtt would ack on receipt).
        client._client.manual_ack_set(True)
        return client

    async def _run(self) -> None:
        first = True
        while True:
            try:
                async with self._new_client() as client:
                    self._client = client
                    if self.dynsec is not None:
                        await self.dynsec.attach(client)
                    group = self.rt.settings.mqtt.share_group
                    for pattern in _SUBSCRIPTIONS:
                        await client.subscribe(f"$share/{group}/{pattern}", qos=1)
                    self._ready.set()
                    log.info(
                        "MQTT ingest subscribed at %s:%d as %s",
                        self._host,
                        self._port,
                        client_id(self.rt),
                    )
                    await self._consume(client)
            except aiomqtt.MqttError as exc:
                if first and not self._ready.is_set():
                    raise Unavailable(f"MQTT broker {self._host}:{self._port}: {exc}") from exc
                log.warning("MQTT broker connection lost (%s); reconnecting", exc)
            except Unavailable as exc:
                # Storage trouble: the unacknowledged messages stay with the broker, which sends
                # them again once this client reconnects.
                log.warning("MQTT ingest paused: %s", exc.message_text)
            finally:
                self._client = None
                if self.dynsec is not None:
                    self.dynsec.detach()
            first = False
            self._ready.clear()
            await asyncio.sleep(RECONNECT_S)

    async def _consume(self, client: aiomqtt.Client) -> None:
        failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending: set[asyncio.Task[None]] = set()
        # Mosquitto does not hold its inflight window once acks flow, so the backlog would reach
        # the writer at once and overflow its queue: take at most this many messages at a time.
        slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        async for message in client.messages:
            if self.dynsec is not None and self.dynsec.take(message):
                continue
            await slots.acquire()
            task = asyncio.create_task(self._handle(client, message, failed))
            task.add_done_callback(lambda _t: slots.release())
            pending.add(task)
            task.add_done_callback(pending.discard)
            if failed.done():
                break
        for task in list(pending):
            with contextlib.suppress(Exception):
                await task
        if failed.done():
            failed.result()

    async def _handle(
        self, client: aiomqtt.Client, message: aiomqtt.Message, failed: asyncio.Future[None]
    ) -> None:
        topic = str(message.topic)
        payload = message.payload if isinstance(message.payload, bytes) else b""
        try:
            who = await self._publisher(topic)
            if who is None:
                body = {"code": "UNKNOWN_THING", "message": "No such thing.", "topic": topic}
                target = topics.points_topic(topic)
                if target is not None:
                    await self.publish(topics.errors_topic(target.thing_id), orjson.dumps(body))
            else:
                await self._ingest(who, topic, payload)
        except Unavailable as exc:
            if not failed.done():
                failed.set_exception(exc)
            return
        if message.qos > 0:
            client._client.ack(message.mid, message.qos)

    async def _ingest(self, who: Principal, topic: str, payload: bytes) -> None:
        """Store a message; a full writer queue is waited out on this connection (bounded), and
        only lasting storage trouble gives the messages back to the broker."""
        for attempt in range(OVERLOAD_RETRIES):
            try:
                await ingest.handle(self.rt, who, topic, payload, self.publish)
                return
            except Overloaded as exc:
                if attempt == OVERLOAD_RETRIES - 1:
                    raise
                await asyncio.sleep(min(exc.retry_after or 1, 1) * 0.05 * (attempt + 1))

    async def _publisher(self, topic: str) -> Principal | None:
        target = topics.points_topic(topic)
        if target is None:
            return None
        key = b"broker:" + target.thing_id.encode()
        cached = self.rt.auth_cache.get(key, self.rt.db.generation)
        if cached is not None:
            return cached
        generation = self.rt.db.generation

        async def load() -> Thing | None:
            async with self.rt.db.session() as session:
                return await things.lookup(session, target.thing_id)

        thing = await self.rt.flights.run(("broker", key, generation), load)
        if thing is None or not thing.enabled:
            return None
        principal = things.principal_for(thing, "broker", "", "")
        self.rt.auth_cache.put(key, principal, generation)
        return principal
