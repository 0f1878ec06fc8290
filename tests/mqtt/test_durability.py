"""SIGKILL during a QoS 1 publish stream loses no acknowledged sample (security.md §2.1).

A real ``thingbucket serve`` child process with its embedded broker, a paho-mqtt publisher that
keeps 20 messages in flight, and ``kill -9`` at a random moment while the stream runs. A new server
on the same data directory must then serve every sample of every message that got its PUBACK;
messages without one may or may not be stored. Each round checks everything acknowledged so far.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from conftest import TEST_SECRET, need_service
from processes import Server, child_env, cli, serve

log = logging.getLogger(__name__)
PASSWORD = "durability password 1"
ROUNDS = 5
POINTS = 20  # per message
IN_FLIGHT = 20  # paho's window of unacknowledged messages
OUTSTANDING = 2 * IN_FLIGHT  # published but not yet acknowledged, window plus paho's queue
MAX_MESSAGES = 20_000  # per round, well under 65,535 so that paho's message ids stay unique
KILL_AFTER_S = (0.3, 1.5)  # from the first publish; never before the first PUBACK
FIRST_ACK_S = 10.0  # no PUBACK by then: the round fails
ROUND_STEP = MAX_MESSAGES * POINTS  # timestamps of one round never meet another's

Samples = dict[int, list[float]]  # ts_ms -> values


@dataclass(frozen=True)
class Target:
    thing_id: str
    property_id: str
    secret: str  # device token
    headers: dict[str, str]  # the owner's bearer token
    start_ms: int  # timestamp of the first sample of round 0

    @property
    def topic(self) -> str:
        return f"tb/things/{self.thing_id}/properties/{self.property_id}"

    @property
    def points_path(self) -> str:
        return f"/api/v1/things/{self.thing_id}/properties/{self.property_id}/points"


def _env() -> dict[str, str]:
    # One secret key for every server on the data dir, so the owner's bearer token stays valid.
    return child_env(THINGBUCKET_SECURITY__SECRET_KEY=TEST_SECRET)


def _prepare(server: Server, data_dir: Path, db_args: list[str]) -> Target:
    email = f"durability-{secrets.token_hex(6)}@example.com"
    made = cli(
        "user", "create", email, "--data-dir", str(data_dir), *db_args, stdin=PASSWORD, env=_env()
    )
    assert made.returncode == 0, made.stderr
    with httpx.Client(base_url=server.url, timeout=30) as http:
        token = http.post(
            "/api/v1/auth/token",
            data={"grant_type": "password", "username": email, "password": PASSWORD},
        )
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        bucket = http.post("/api/v1/buckets", json={"name": "kill"}, headers=headers)
        assert bucket.status_code == 201, bucket.text
        thing = http.post(
            "/api/v1/things",
            json={"name": "accelerometer", "bucket_id": bucket.json()["id"]},
            headers=headers,
        )
        assert thing.status_code == 201, thing.text
        thing_id = thing.json()["id"]
        prop = http.post(
            f"/api/v1/things/{thing_id}/properties",
            json={"name": "acc", "type": "ACCELEROMETER"},
            headers=headers,
        )
        assert prop.status_code == 201, prop.text
        device = http.post(
            f"/api/v1/things/{thing_id}/tokens", json={"name": "fw"}, headers=headers
        )
        assert device.status_code == 201, device.text
    start = int(time.time() * 1000) - 7 * 86_400_000
    return Target(thing_id, prop.json()["id"], device.json()["secret"], headers, start)


def _message(target: Target, round_: int, seq: int) -> tuple[bytes, Samples]:
    first = target.start_ms + round_ * ROUND_STEP + seq * POINTS
    samples = {first + i: [float(round_), float(seq), float(i)] for i in range(POINTS)}
    body = orjson.dumps({"points": [[ts, *values] for ts, values in samples.items()]})
    return body, samples


@dataclass
class _Publisher:
    """A paho client that records the id of every message whose PUBACK came back."""

    port: int
    target: Target
    client: mqtt.Client = field(init=False)
    acked: list[int] = field(default_factory=list)  # message ids, in PUBACK order
    connack: int | None = None
    _connected: threading.Event = field(default_factory=threading.Event)
    _acks: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311, reconnect_on_failure=False
        )
        self.client.max_inflight_messages_set(IN_FLIGHT)
        self.client.max_queued_messages_set(0)
        self.client.username_pw_set(self.target.thing_id, self.target.secret)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connack = int(reason.value)
        self._connected.set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, _reason: Any, _p: Any) -> None:
        # Runs on paho's network thread with paho's message lock held: take only our own lock,
        # which the publishing thread never holds while it calls into paho.
        with self._acks:
            self.acked.append(mid)
            self._acks.notify_all()

    def connect(self) -> None:
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        assert self._connected.wait(10), "no CONNACK"
        assert self.connack == 0, f"CONNACK {self.connack}"

    def wait_below(self, published: int, deadline: float) -> None:
        """Until fewer than OUTSTANDING of ``published`` messages wait for their PUBACK."""
        with self._acks:
            self._acks.wait_for(
                lambda: published - len(self.acked) < OUTSTANDING,
                max(0.0, deadline - time.monotonic()),
            )

    def stop(self) -> None:
        self.client.loop_stop()  # the connection is gone with the server: nothing to send


def _stream_then_kill(server: Server, target: Target, round_: int, rng: random.Random) -> Samples:
    """Publish until a random moment, SIGKILL the server, and return the acknowledged samples."""
    publisher = _Publisher(server.mqtt_port, target)
    publisher.connect()
    sent: dict[int, Samples] = {}  # message id -> its samples
    kill_after = rng.uniform(*KILL_AFTER_S)
    started = time.monotonic()
    kill_at, give_up = started + kill_after, started + FIRST_ACK_S
    seq = 0  # messages published
    try:
        # At most one pass per publish or per wait, and no later than give_up.
        for _ in range(2 * MAX_MESSAGES):
            now = time.monotonic()
            if seq >= MAX_MESSAGES or (now >= kill_at and publisher.acked) or now >= give_up:
                break
            publisher.wait_below(seq, min(max(kill_at, now + 0.05), give_up))
            if seq - len(publisher.acked) >= OUTSTANDING:
                continue  # the window is still full: look at the clock again
            body, samples = _message(target, round_, seq)
            info = publisher.client.publish(target.topic, body, qos=1)
            assert info.rc == mqtt.MQTT_ERR_SUCCESS, f"publish {seq}: rc {info.rc}"
            sent[info.mid] = samples
            seq += 1
        server.process.kill()
        server.process.wait(timeout=10)
        killed_after = time.monotonic() - started
    finally:
        publisher.stop()
    with publisher._acks:
        acked_ids = list(publisher.acked)
    assert acked_ids, (
        f"round {round_}: no PUBACK in {time.monotonic() - started:.1f} s "
        f"({len(sent)} messages published)"
    )
    assert len(set(acked_ids)) == len(acked_ids), "a message id was acknowledged twice"
    acked: Samples = {}
    for mid in acked_ids:
        acked.update(sent[mid])
    log.info(
        "round %d: killed after %.2f s (drawn %.2f s), %d messages published, %d acknowledged",
        round_,
        killed_after,
        kill_after,
        len(sent),
        len(acked_ids),
    )
    return acked


def _stored(server: Server, target: Target) -> Samples:
    answer = httpx.get(
        server.url + target.points_path,
        params={"from": target.start_ms, "format": "ndjson"},
        headers=target.headers,
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    out: Samples = {}
    for line in answer.content.splitlines():
        record = orjson.loads(line)
        out[record["ts"]] = record["values"]
    return out


def _check(server: Server, target: Target, acked: Samples, rounds: int) -> None:
    stored = _stored(server, target)
    missing = [ts for ts in acked if ts not in stored]
    assert not missing, (
        f"{len(missing)} of {len(acked)} acknowledged samples lost, the first at ts {missing[0]}"
    )
    wrong = [ts for ts, values in acked.items() if stored[ts] != values]
    assert not wrong, f"{len(wrong)} acknowledged samples changed, e.g. ts {wrong[0]}"
    # Whatever else is stored was published (unacknowledged messages may have committed).
    end = target.start_ms + rounds * ROUND_STEP
    assert all(target.start_ms <= ts < end for ts in stored)


def _kill_rounds(data_dir: Path, db_args: list[str], rounds: int) -> None:
    seed = secrets.randbits(32)
    rng = random.Random(seed)
    log.info("kill rounds on %s, seed %d", "PostgreSQL" if db_args else "SQLite", seed)
    acked: Samples = {}
    target: Target | None = None
    for round_ in range(rounds + 1):
        with serve(data_dir, *db_args, env=_env()) as server:
            if target is None:
                target = _prepare(server, data_dir, db_args)
            else:
                _check(server, target, acked, round_)
            if round_ == rounds:
                break
            new = _stream_then_kill(server, target, round_, rng)
            assert server.process.returncode == -9, f"seed {seed}"
        acked.update(new)


def test_sigkill_during_a_qos1_stream_loses_no_acknowledged_sample_on_sqlite(
    tmp_path: Path,
) -> None:
    _kill_rounds(tmp_path, [], ROUNDS)


@pytest.mark.needs_pg
def test_sigkill_during_a_qos1_stream_loses_no_acknowledged_sample_on_postgresql(
    tmp_path: Path, pg_url: str
) -> None:
    need_service("PostgreSQL", "127.0.0.1", 5432)
    _kill_rounds(tmp_path, ["--database-url", pg_url], 1)
