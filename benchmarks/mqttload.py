"""The MQTT load generator, a separate process: ``python -m benchmarks.mqttload < spec.json``.

Several publishers (one paho-mqtt client and connection each, as devices would have) publish QoS 1
messages of ``points`` samples to their own native topic, with at most ``in_flight`` messages
unacknowledged each (paho's window; the rest waits in paho's queue). Every body is built before the
clock starts. A warm-up phase is published and acknowledged first; the timed phase runs from the
first publish to the last PUBACK. It sends only to 127.0.0.1, publishes a fixed number of
messages, stops by itself after the last PUBACK or at ``deadline_s``, and prints one JSON result.

Through an external broker a PUBACK is the broker's receipt, not a commit. With ``commit_url``
(thingbucket's ``/metrics``) each phase therefore also waits, polling after its last PUBACK,
until ``thingbucket_ingested_samples_total`` has grown by the phase's samples; the timed phase
then runs from the first publish to the first poll that sees them all.

``python -m benchmarks.mqttload --stock-broker`` instead runs a stock amqtt broker (ack on receipt,
anonymous, nothing stored) on a free loopback port: the reference the embedded broker is compared
with. It prints ``listening <port>`` and runs until its standard input closes.

The driver side is ``run_mqtt_load`` and ``stock_broker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from benchmarks.load import PROJECT_ROOT, batch_rows
from benchmarks.server import ingested_samples

HOST = "127.0.0.1"
CONNECT_TIMEOUT_S = 10.0
MAX_POLL_INTERVAL_S = 0.25


@dataclass(frozen=True, slots=True)
class PublisherSpec:
    username: str  # thing id
    password: str  # device token
    topic: str  # tb/things/{tid}/properties/{pid}
    t0_ms: int  # timestamp of the first point of the first message
    step_ms: int = 1000


@dataclass(frozen=True, slots=True)
class MqttLoadSpec:
    port: int
    publishers: list[PublisherSpec]
    messages_per_publisher: int  # timed messages
    points: int = 100  # samples per message
    warmup_messages: int = 0  # per publisher, acknowledged before the clock starts
    in_flight: int = 20  # paho's window per publisher
    seed: int = 1
    deadline_s: float = 120.0
    commit_url: str = ""  # thingbucket's /metrics: phases end at the commit, not the PUBACK
    poll_interval_s: float = 0.005  # the shortest pause between two polls of commit_url

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> MqttLoadSpec:
        raw = json.loads(text)
        raw["publishers"] = [PublisherSpec(**p) for p in raw["publishers"]]
        return MqttLoadSpec(**raw)


@dataclass(slots=True)
class MqttLoadResult:
    ok: bool  # every message of both phases acknowledged in time, no error
    acked_messages: int  # timed messages acknowledged
    acked_total: int  # all acknowledged messages, warm-up included
    samples: int  # samples in acknowledged timed messages
    elapsed_s: float  # first timed publish to last timed PUBACK (commit_url: to the commit)
    errors: list[str] = field(default_factory=list)
    cpu_s: float = 0.0  # user + system CPU of the load generator during the timed phase
    generate_s: float = 0.0  # building the bodies (not timed)
    ack_elapsed_s: float = 0.0  # first timed publish to last timed PUBACK
    committed_samples: int = 0  # commit_url: growth of the counter over the timed phase
    committed_total: int = 0  # commit_url: growth of the counter over both phases
    polls: int = 0  # commit_url: /metrics requests during the timed phase

    @property
    def ack_samples_per_s(self) -> float:
        return self.samples / self.ack_elapsed_s if self.ack_elapsed_s > 0 else 0.0

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def messages_per_s(self) -> float:
        return self.acked_messages / self.elapsed_s if self.elapsed_s > 0 else 0.0


def message_rows(spec: MqttLoadSpec, publisher: int, index: int) -> list[tuple[int, float]]:
    """The points of message ``index`` (warm-up first) of ``publisher``: deterministic."""
    p = spec.publishers[publisher]
    return batch_rows(spec.seed, publisher, index, spec.points, p.t0_ms, p.step_ms)


class _Publisher:
    """One paho client; counts PUBACKs and notes when the expected number has arrived."""

    def __init__(self, spec: MqttLoadSpec, p: PublisherSpec) -> None:
        self.topic = p.topic
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311, reconnect_on_failure=False
        )
        self.client.max_inflight_messages_set(spec.in_flight)
        self.client.max_queued_messages_set(0)  # paho holds what is beyond the window
        self.client.username_pw_set(p.username, p.password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.connack: int | None = None
        self.disconnected = False
        self.acked = 0
        self.expected = 0
        self.last_ack = 0.0
        self.connected = threading.Event()
        self.done = threading.Event()
        self._lock = threading.Lock()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connack = int(reason.value)
        self.connected.set()

    def _on_disconnect(self, *_args: Any) -> None:
        self.disconnected = True
        self.connected.set()
        self.done.set()  # nothing more will be acknowledged on this connection

    def _on_publish(self, _c: Any, _u: Any, _mid: int, _reason: Any, _p: Any) -> None:
        with self._lock:
            self.acked += 1
            self.last_ack = time.perf_counter()
            if self.acked >= self.expected:
                self.done.set()

    def expect(self, total: int) -> None:
        with self._lock:
            self.expected = total
            if self.acked >= total:
                self.done.set()
            else:
                self.done.clear()

    def connect(self, port: int) -> None:
        self.client.connect(HOST, port, keepalive=60)
        self.client.loop_start()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _publish_phase(
    publishers: list[_Publisher], bodies: list[list[bytes]], deadline: float, errors: list[str]
) -> bool:
    """Queue every body (interleaved across publishers), then wait for all their PUBACKs."""
    for p, own in zip(publishers, bodies, strict=True):
        p.expect(p.acked + len(own))
    for index in range(max((len(b) for b in bodies), default=0)):
        for p, own in zip(publishers, bodies, strict=True):
            if index < len(own):
                info = p.client.publish(p.topic, own[index], qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    errors.append(f"{p.topic}: publish rc {info.rc}")
                    return False
    for p in publishers:
        if not p.done.wait(max(0.0, deadline - time.monotonic())):
            errors.append(f"deadline reached: {p.acked} of {p.expected} acknowledged on {p.topic}")
            return False
        if p.acked < p.expected:
            errors.append(f"{p.topic}: disconnected after {p.acked} of {p.expected} PUBACKs")
            return False
    return True


class _CommitWatch:
    """Polls thingbucket's committed-samples counter (``/metrics``).

    Each poll is its own short connection (``Connection: close``): on a kept-alive connection
    this server's answers arrive ~40 ms late (Nagle's algorithm against the client's delayed
    ACK: its accepted sockets lack TCP_NODELAY), which would blur the end of the phase. Polls
    cost the server ~2 ms of CPU each, so they are spaced by the progress seen so far: about
    half the predicted remaining time, between ``min_interval_s`` and ``MAX_POLL_INTERVAL_S``.
    """

    def __init__(self, url: str, min_interval_s: float) -> None:
        parts = urlsplit(url)
        if parts.hostname != HOST or parts.port is None:
            raise RuntimeError(f"commit_url must be http://{HOST}:<port>/...: {url}")
        self.port = parts.port
        self.path = parts.path or "/metrics"
        self.min_interval = min_interval_s
        self.polls = 0

    def value(self) -> int:
        self.polls += 1
        conn = http.client.HTTPConnection(HOST, self.port, timeout=10.0)
        try:
            conn.request("GET", self.path, headers={"Connection": "close"})
            answer = conn.getresponse()
            body = answer.read()
            if answer.status != 200:
                raise RuntimeError(f"GET {self.path} -> {answer.status}")
        finally:
            conn.close()
        return ingested_samples(body.decode())

    def wait(self, target: int, deadline: float, errors: list[str]) -> tuple[int, float] | None:
        """(counter, perf_counter when seen) once the counter reaches ``target``; None at the
        deadline."""
        first: tuple[int, float] | None = None
        while True:
            seen = self.value()
            now = time.perf_counter()
            if seen >= target:
                return seen, now
            if first is None:
                first = (seen, now)
            rate = (seen - first[0]) / (now - first[1]) if now > first[1] else 0.0
            pause = (target - seen) / rate / 2 if rate > 0 else self.min_interval
            pause = min(max(pause, self.min_interval), MAX_POLL_INTERVAL_S)
            if time.monotonic() + pause > deadline:
                errors.append(f"deadline reached: {seen} of {target} samples committed")
                return None
            time.sleep(pause)


def run(spec: MqttLoadSpec) -> MqttLoadResult:
    deadline = time.monotonic() + spec.deadline_s
    gen_started = time.perf_counter()
    bodies = [
        [
            orjson.dumps({"points": message_rows(spec, c, i)})
            for i in range(spec.warmup_messages + spec.messages_per_publisher)
        ]
        for c in range(len(spec.publishers))
    ]
    generate_s = time.perf_counter() - gen_started
    publishers = [_Publisher(spec, p) for p in spec.publishers]
    watch = _CommitWatch(spec.commit_url, spec.poll_interval_s) if spec.commit_url else None
    errors: list[str] = []
    elapsed = ack_elapsed = cpu = 0.0
    base = committed = timed_base = polls = 0
    ok = warmed = False
    try:
        if watch is not None:
            base = watch.value()
        for p in publishers:
            p.connect(spec.port)
        for p in publishers:
            if not p.connected.wait(CONNECT_TIMEOUT_S) or p.connack != 0:
                raise RuntimeError(f"{p.topic}: CONNACK {p.connack}")
        warm = [b[: spec.warmup_messages] for b in bodies]
        timed = [b[spec.warmup_messages :] for b in bodies]
        per_phase = len(publishers) * spec.points
        warmed = _publish_phase(publishers, warm, deadline, errors)
        if warmed and watch is not None:
            seen = watch.wait(base + spec.warmup_messages * per_phase, deadline, errors)
            warmed = seen is not None
            committed = timed_base = seen[0] if seen is not None else 0
        if warmed:
            polls0 = watch.polls if watch is not None else 0
            cpu0, t0 = _cpu(), time.perf_counter()
            ok = _publish_phase(publishers, timed, deadline, errors)
            last = max(p.last_ack for p in publishers)
            ack_elapsed = (last if ok else time.perf_counter()) - t0
            elapsed = ack_elapsed
            if ok and watch is not None:
                target = timed_base + spec.messages_per_publisher * per_phase
                seen = watch.wait(target, deadline, errors)
                ok = seen is not None
                if seen is not None:
                    committed, elapsed = seen[0], seen[1] - t0
                else:
                    committed, elapsed = watch.value(), time.perf_counter() - t0
                polls = watch.polls - polls0
            cpu = _cpu() - cpu0
    except (OSError, RuntimeError, http.client.HTTPException) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        for p in publishers:
            p.stop()
    acked_total = sum(p.acked for p in publishers)
    acked_timed = max(0, acked_total - spec.warmup_messages * len(publishers))
    return MqttLoadResult(
        ok=ok and not errors,
        acked_messages=acked_timed,
        acked_total=acked_total,
        samples=acked_timed * spec.points,
        elapsed_s=elapsed,
        errors=errors[:10],
        cpu_s=cpu,
        generate_s=generate_s,
        ack_elapsed_s=ack_elapsed,
        committed_samples=max(0, committed - timed_base) if watch is not None and warmed else 0,
        committed_total=max(0, committed - base) if watch is not None else 0,
        polls=polls,
    )


def run_mqtt_load(spec: MqttLoadSpec) -> MqttLoadResult:
    """Driver side: run the generator in its own process and return what it measured."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.mqttload"],
        input=spec.to_json(),
        capture_output=True,
        text=True,
        timeout=spec.deadline_s + 60,
        cwd=PROJECT_ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"MQTT load generator failed ({done.returncode}): {done.stderr[-1000:]}")
    raw: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return MqttLoadResult(**raw)


# --- the reference: a stock amqtt broker ----------------------------------------------------


async def _stock_broker() -> None:
    from amqtt.broker import Broker

    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:0"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    server = broker._servers["default"]  # amqtt binds port 0 to a free port; ask which
    port = server.instance.sockets[0].getsockname()[1]
    sys.stdout.write(f"listening {port}\n")
    sys.stdout.flush()
    try:
        await asyncio.to_thread(sys.stdin.read)  # until the driver closes our stdin
    finally:
        await broker.shutdown()


def _first_line(process: subprocess.Popen[str], timeout_s: float) -> str:
    line: list[str] = []

    def read() -> None:
        if process.stdout is not None:
            line.append(process.stdout.readline())

    reader = threading.Thread(target=read, name="stock-broker-stdout", daemon=True)
    reader.start()
    reader.join(timeout_s)
    return line[0] if line else ""


@contextlib.contextmanager
def stock_broker(log_path: Path, timeout_s: float = 30.0) -> Iterator[int]:
    """Driver side: a stock amqtt broker in its own process; yields its port, always stopped."""
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.mqttload", "--stock-broker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=PROJECT_ROOT,
        )
        try:
            line = _first_line(process, timeout_s)
            if not line.startswith("listening "):
                raise RuntimeError(f"the stock amqtt broker did not start (see {log_path})")
            yield int(line.split()[1])
        finally:
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()


def main() -> int:
    if sys.argv[1:] == ["--stock-broker"]:
        logging.basicConfig(level=logging.WARNING)
        asyncio.run(_stock_broker())
        return 0
    spec = MqttLoadSpec.from_json(sys.stdin.read())
    result = run(spec)
    sys.stdout.write(json.dumps(asdict(result)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
