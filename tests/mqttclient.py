"""A blocking paho-mqtt client for tests: connect and see the CONNACK, publish and wait for every
PUBACK, subscribe and collect messages. Call it through ``asyncio.to_thread`` from async tests."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


@dataclass
class Received:
    topic: str
    payload: bytes


@dataclass
class Device:
    port: int
    username: str | None = None
    password: str | None = None
    client_id: str = ""
    transport: str = "tcp"  # or "websockets"
    ca_file: str | None = None  # TLS, verifying the broker against this certificate
    client: mqtt.Client = field(init=False)
    messages: list[Received] = field(default_factory=list)
    connack: int | None = None
    _connected: threading.Event = field(default_factory=threading.Event)
    _disconnected: threading.Event = field(default_factory=threading.Event)
    _granted: dict[int, list[int]] = field(default_factory=dict)
    _subscribed: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
            transport="websockets" if self.transport == "websockets" else "tcp",
        )
        if self.ca_file is not None:
            self.client.tls_set(ca_certs=self.ca_file)
        self.client.max_inflight_messages_set(20)
        self.client.max_queued_messages_set(0)
        if self.username is not None:
            self.client.username_pw_set(self.username, self.password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connack = int(reason.value) if hasattr(reason, "value") else int(reason)
        self._connected.set()

    def _on_disconnect(self, *_args: Any) -> None:
        self._disconnected.set()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.append(Received(message.topic, bytes(message.payload)))

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: Any, _p: Any) -> None:
        with self._subscribed:
            self._granted[mid] = [int(c.value) if hasattr(c, "value") else int(c) for c in codes]
            self._subscribed.notify_all()

    def connect(self, timeout: float = 10) -> int:
        """Connect and return the CONNACK code (0 accepted; paho reports refusals as 128+)."""
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            raise AssertionError("no CONNACK")
        assert self.connack is not None
        return self.connack

    def publish_all(
        self, topic: str, payloads: list[bytes], qos: int = 1, timeout: float = 60
    ) -> None:
        """Publish every payload, at most 20 in flight, and wait for the last acknowledgement."""
        infos = [self.client.publish(topic, p, qos=qos) for p in payloads]
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(max(deadline - time.monotonic(), 0.1))
            if not info.is_published():
                raise AssertionError(f"message {info.mid} not acknowledged in time")

    def subscribe(self, topic: str, timeout: float = 10) -> list[int]:
        _, mid = self.client.subscribe(topic, qos=0)
        assert mid is not None
        with self._subscribed:
            if not self._subscribed.wait_for(lambda: mid in self._granted, timeout):
                raise AssertionError("no SUBACK")
            return self._granted[mid]

    def wait_for(self, count: int, topic: str | None = None, timeout: float = 10) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [m for m in self.messages if topic is None or m.topic == topic]
            if len(got) >= count:
                return got
            time.sleep(0.02)
        return [m for m in self.messages if topic is None or m.topic == topic]

    def wait_disconnected(self, timeout: float) -> bool:
        return self._disconnected.wait(timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        # paho leaves the socket open when the broker refused or dropped the connection.
        sock = self.client.socket()
        if sock is not None:
            sock.close()
