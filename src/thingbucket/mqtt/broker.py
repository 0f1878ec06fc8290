"""The embedded MQTT broker: amqtt 0.12.1 in the server's event loop, acknowledging after commit.

Stock amqtt writes PUBACK as soon as it has read a PUBLISH, before any plugin runs
(``../shared/specs/embedded-broker.md``). Two subclasses move the acknowledgement behind the
commit: ``_Handler.handle_publish`` stores the message first and only then runs the stock flow
that writes PUBACK/PUBREC; ``EmbeddedBroker`` builds that handler for every connection, decides
CONNECT before any old session is touched, and answers every auth and topic question itself
(no amqtt plugins are loaded: no anonymous access, no ``$SYS``, no packet logger). Both depend on
amqtt internals, which is why amqtt is pinned exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import socket
import ssl
from typing import Any

import websockets.asyncio.server
from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action, BrokerConfig, ListenerConfig, ListenerType
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.publish import PublishPacket
from amqtt.session import Session
from websockets.asyncio.server import ServerConnection
from websockets.typing import Subprotocol

from thingbucket.access.principal import Principal
from thingbucket.errors import AppError, Throttled
from thingbucket.kit.net import listen
from thingbucket.mqtt import ingest, rules
from thingbucket.runtime import Runtime

log = logging.getLogger(__name__)
LISTENER = "default"
# amqtt names a client that sent an empty id "amqtt/" + 16 characters (embedded-broker.md §4).
_GENERATED_ID = re.compile(r"^amqtt/[A-Za-z0-9]{16}$")
MAX_UNACKED = 100  # QoS >= 1 messages of one connection waiting for their commit
SWEEP_S = 2.0  # how often live sessions' credentials are checked again (revocation ≤ 5 s)


class _Handler(BrokerProtocolHandler):
    """Stores each PUBLISH before the stock flow acknowledges it."""

    def __init__(self, broker: EmbeddedBroker, principal: Principal | None) -> None:
        super().__init__(broker.plugins_manager, loop=broker.loop)
        self.tb = broker
        self.principal = principal
        self.unacked = 0

    async def handle_publish(self, publish_packet: PublishPacket) -> None:
        topic, data = publish_packet.topic_name, publish_packet.data
        if topic is None or data is None or self.principal is None:
            return
        # A task of its own: amqtt cancels pending publish handlers when the connection ends,
        # and a commit under way must still finish (the client resends what it has no ack for).
        stored = asyncio.ensure_future(self.tb.store(self.principal, topic, bytes(data)))
        if publish_packet.qos == 0:
            stored.add_done_callback(_consume)
            await super().handle_publish(publish_packet)
            return
        self.unacked += 1
        try:
            if self.unacked > MAX_UNACKED:
                raise ConnectionAbortedError("too many unacknowledged messages")
            await asyncio.shield(stored)
        except (AppError, ConnectionAbortedError) as exc:
            # Storage trouble: no acknowledgement; closing makes the client resend later.
            log.warning("MQTT publish not stored, closing the connection: %s", exc)
            stored.add_done_callback(_consume)
            await self._close()
            return
        finally:
            self.unacked -= 1
        await super().handle_publish(publish_packet)

    async def _close(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                await self.writer.close()


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("MQTT QoS 0 message not stored: %s", task.exception())


class EmbeddedBroker(Broker):
    """amqtt's broker with thingbucket's CONNECT, topic rules and ack-after-commit."""

    def __init__(self, rt: Runtime) -> None:
        config = BrokerConfig(
            listeners={LISTENER: ListenerConfig(type=ListenerType.EXTERNAL)},
            plugins={},
        )
        super().__init__(config, loop=asyncio.get_running_loop())
        self.rt = rt
        self.loop = asyncio.get_running_loop()
        self._server: asyncio.Server | None = None
        self._extra: list[Any] = []  # the TLS and WebSocket servers, when configured
        self._sweeper: asyncio.Task[None] | None = None
        self.port = 0
        self.tls_port: int | None = None
        self.ws_port: int | None = None

    # --- life cycle ---------------------------------------------------------------------------

    async def serve(self, sock: socket.socket | None, host: str, port: int) -> None:
        """Start the broker on a bound socket (or bind ``host:port`` now)."""
        await self.start()
        if sock is None:
            sock = bind(host, port)
        self._server = await asyncio.start_server(self._connected, sock=sock)
        self.port = sock.getsockname()[1]
        mqtt = self.rt.settings.mqtt
        if mqtt.certfile is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(mqtt.certfile, mqtt.keyfile)
            tls = await asyncio.start_server(self._connected, host, mqtt.tls_port, ssl=context)
            self._extra.append(tls)
            self.tls_port = tls.sockets[0].getsockname()[1]
        if mqtt.ws_port is not None:
            ws = await websockets.asyncio.server.serve(
                self._ws_connected, host, mqtt.ws_port, subprotocols=[Subprotocol("mqtt")]
            )
            self._extra.append(ws)
            self.ws_port = next(iter(ws.sockets)).getsockname()[1]
        self._sweeper = asyncio.create_task(self._sweep(), name="thingbucket-mqtt-sweep")

    @property
    def connected(self) -> bool:
        """Serving: the listener is open (the name matches the external client's)."""
        return self._server is not None and self._server.is_serving()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.stream_connected(reader, writer, LISTENER)

    async def _ws_connected(self, websocket: ServerConnection) -> None:
        await self.ws_connected(websocket, LISTENER)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._server is not None:
            self._server.close()
        for server in self._extra:
            server.close()
        for _session, handler in list(self._sessions.values()):
            if isinstance(handler, _Handler):
                await handler._close()
        with contextlib.suppress(Exception):
            await self.shutdown()

    # --- ingest ---------------------------------------------------------------------------------

    async def store(self, who: Principal, topic: str, payload: bytes) -> None:
        # A thing's HTTP requests and MQTT publishes share its bucket (security.md §5.5): over
        # it, QoS 0 is dropped and QoS 1 not acknowledged (the handler closes the connection).
        decision = await self.rt.ratelimit.check_principal(who)
        if decision is not None and not decision.allowed:
            self.rt.metrics.ingest_rejected.labels("mqtt", "RATE_LIMITED").inc()
            raise Throttled("Over the rate limit.", retry_after=decision.retry_after)
        await ingest.handle(self.rt, who, topic, payload, self._relay)

    async def _relay(self, topic: str, payload: bytes) -> None:
        if self._subscriptions:  # nobody listens: nothing to fan out
            await self.internal_message_broadcast(topic, payload, 0)

    # --- CONNECT --------------------------------------------------------------------------------

    async def _initialize_client_session(
        self, reader: ReaderAdapter, writer: WriterAdapter, remote_address: str, remote_port: int
    ) -> tuple[BrokerProtocolHandler, Session]:
        """Authenticate first, then (and only then) replace an old session of that client id.

        Stock amqtt deletes an old session of the same id before authenticating, so a wrong
        password could wipe a live client's subscriptions (embedded-broker.md §4)."""
        try:
            _, session = await BrokerProtocolHandler.init_from_connect(
                reader, writer, self.plugins_manager
            )
        except (AMQTTError, NoDataError) as exc:
            raise AMQTTError(exc) from exc
        except MQTTError as exc:
            await writer.close()
            raise MQTTError(exc) from exc
        principal = await self._authenticate_connect(session)
        handler = _Handler(self, principal)
        if principal is None:
            session.parent = 0
            return handler, session
        if not session.client_id or _GENERATED_ID.match(session.client_id):
            session.client_id = "tb-" + secrets.token_urlsafe(16)[:22]
        old = self._sessions.get(session.client_id)
        if old is not None:
            old_handler = old[1]
            if isinstance(old_handler, _Handler) and old_handler.principal != principal:
                # Another principal's session is never taken over (security.md §3.9).
                handler.principal = None
                session.parent = 0
                return handler, session
            if old[0].transitions.is_connected():
                with contextlib.suppress(Exception):
                    await old_handler.handle_connection_closed()
                    await old_handler.stop()
        if session.clean_session or old is None:
            await self._delete_session(session.client_id)
            session.parent = 0
        else:
            existing = old[0]
            for name in ("will_flag", "will_message", "will_topic", "will_qos", "keep_alive"):
                setattr(existing, name, getattr(session, name))
            existing.username, existing.password = session.username, session.password
            session = existing
            session.parent = 1
        return handler, session

    async def _handle_client_session(
        self,
        reader: ReaderAdapter,
        writer: WriterAdapter,
        client_session: Session,
        handler: BrokerProtocolHandler,
        server: Any,
        listener_name: str,
    ) -> None:
        if not isinstance(handler, _Handler) or handler.principal is None:
            # Refused: answered here, without registering the session under its id.
            handler.attach(client_session, reader, writer)
            await handler.mqtt_connack_authorize(False)
            await writer.close()
            return
        self.rt.metrics.mqtt_sessions.inc()
        try:
            await super()._handle_client_session(
                reader, writer, client_session, handler, server, listener_name
            )
        finally:
            self.rt.metrics.mqtt_sessions.dec()

    async def _authenticate(self, session: Session, _: ListenerConfig) -> bool:
        return True  # decided in _initialize_client_session; refused sessions never get here

    async def _authenticate_connect(self, session: Session) -> Principal | None:
        return await rules.connect_principal(self.rt, session.username, session.password)

    async def _sweep(self) -> None:
        """Close live sessions whose credential was revoked or has expired."""
        while True:
            await asyncio.sleep(SWEEP_S)
            for session, handler in list(self._sessions.values()):
                if not isinstance(handler, _Handler) or handler.principal is None:
                    continue
                if not session.transitions.is_connected():
                    continue
                if await self._authenticate_connect(session) != handler.principal:
                    log.info(
                        "MQTT session of %s closed: credential no longer valid", session.client_id
                    )
                    await handler._close()

    # --- topics ---------------------------------------------------------------------------------

    async def _topic_filtering(self, session: Session, topic: str, action: Action) -> bool:
        """PUBLISH: never fanned out as such (native topics are consumed by ingest);
        SUBSCRIBE: the filter's scope, decided by ``access.can``; RECEIVE: what the subscription
        allowed (a session whose credential goes is cut by the sweep)."""
        if action == Action.RECEIVE:
            return True
        if action != Action.SUBSCRIBE:
            return False
        entry = self._sessions.get(session.client_id or "")
        handler = entry[1] if entry else None
        who = handler.principal if isinstance(handler, _Handler) else None
        return who is not None and await rules.may_subscribe(self.rt, who, topic)


def bind(host: str, port: int) -> socket.socket:
    """The MQTT listening socket, bound now so that a taken port is refused at start-up."""
    sock = listen(host, port, 256)
    sock.setblocking(False)
    return sock
