"""External broker mode against a real Mosquitto 2.0 with dynamic security: provisioned device
tokens, ack after commit on the ingest client, revocation, two replicas sharing one stream, and
several workers of one server."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest

from conftest import TEST_SECRET, need_service
from mosquitto import Mosquitto, private_mosquitto
from mqttclient import Device
from processes import Server, child_env, cli, serve

pytestmark = pytest.mark.needs_mosquitto
PASSWORD = "mqtt external pass 1"
NOT_AUTHORIZED = 135


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with private_mosquitto(tmp_path / "mosquitto") as m:
        yield m


def _env(m: Mosquitto) -> dict[str, str]:
    return child_env(
        THINGBUCKET_SECURITY__SECRET_KEY=TEST_SECRET,
        THINGBUCKET_MQTT__USERNAME=m.username,
        THINGBUCKET_MQTT__PASSWORD=m.password,
        THINGBUCKET_MQTT__PROVISION="dynsec",
    )


@dataclass
class Owner:
    http: httpx.Client
    thing_id: str
    property_id: str

    def token(self) -> dict[str, Any]:
        answer = self.http.post(f"/api/v1/things/{self.thing_id}/tokens", json={"name": "fw"})
        assert answer.status_code == 201, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def count(self, start: int) -> int:
        answer = self.http.get(
            f"/api/v1/things/{self.thing_id}/properties/{self.property_id}/points",
            params={"from": start, "format": "ndjson"},
        )
        assert answer.status_code == 200
        return len(answer.content.splitlines())

    def wait_count(self, start: int, expected: int, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        seen = self.count(start)
        while seen < expected and time.monotonic() < deadline:
            time.sleep(0.2)
            seen = self.count(start)
        return seen


def _owner(
    stack: ExitStack, server: Server, data_dir: Path, db_args: list[str], env: dict[str, str]
) -> Owner:
    email = f"mqtt-{random.randrange(10**9)}@example.com"
    made = cli(
        "user", "create", email, "--data-dir", str(data_dir), *db_args, stdin=PASSWORD, env=env
    )
    assert made.returncode == 0, made.stderr
    http = stack.enter_context(httpx.Client(base_url=server.url, timeout=30))
    token = http.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": email, "password": PASSWORD},
    ).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    bucket = http.post("/api/v1/buckets", json={"name": "b"}).json()
    thing = http.post("/api/v1/things", json={"name": "t", "bucket_id": bucket["id"]}).json()
    prop = http.post(
        f"/api/v1/things/{thing['id']}/properties", json={"name": "acc", "type": "ACCELEROMETER"}
    ).json()
    return Owner(http, thing["id"], prop["id"])


def _payloads(start: int, messages: int) -> list[bytes]:
    return [
        orjson.dumps({"points": [[start + m * 10 + i, m, i, 0.5] for i in range(10)]})
        for m in range(messages)
    ]


def test_a_provisioned_device_publishes_through_mosquitto_and_is_cut_when_revoked(
    broker: Mosquitto, tmp_path: Path
) -> None:
    env = _env(broker)
    with ExitStack() as stack:
        server = stack.enter_context(serve(tmp_path / "a", "--mqtt-url", broker.url, env=env))
        owner = _owner(stack, server, tmp_path / "a", [], env)
        token = owner.token()
        tid = owner.thing_id
        start = int(time.time() * 1000) - 3_600_000
        device = Device(broker.port, tid, token["secret"])
        assert device.connect() == 0
        device.publish_all(
            f"tb/things/{tid}/properties/{owner.property_id}", _payloads(start, 1000)
        )
        device.close()
        assert owner.wait_count(start, 10_000) == 10_000

        # Another thing's topic: Mosquitto's ACL drops it; nothing is stored anywhere.
        other = owner.http.post("/api/v1/things", json={"name": "other"}).json()
        stray = Device(broker.port, tid, token["secret"])
        assert stray.connect() == 0
        stray.publish_all(
            f"tb/things/{other['id']}/properties/{owner.property_id}", _payloads(0, 1)
        )
        assert stray.subscribe(f"tb/things/{other['id']}/errors") == [128]

        # Revoking the token disables the client in Mosquitto: the live session ends at once.
        answer = owner.http.delete(f"/api/v1/things/{tid}/tokens/{token['id']}")
        assert answer.status_code == 204
        assert stray.wait_disconnected(5.0)
        stray.close()
        again = Device(broker.port, tid, token["secret"])
        assert again.connect() == NOT_AUTHORIZED
        again.close()
        # A new token works again.
        fresh = Device(broker.port, tid, owner.token()["secret"])
        assert fresh.connect() == 0
        fresh.close()
        assert owner.count(0) == 10_000


def test_a_wrong_token_is_refused_by_mosquitto(broker: Mosquitto, tmp_path: Path) -> None:
    env = _env(broker)
    with ExitStack() as stack:
        server = stack.enter_context(serve(tmp_path / "a", "--mqtt-url", broker.url, env=env))
        owner = _owner(stack, server, tmp_path / "a", [], env)
        owner.token()
        device = Device(broker.port, owner.thing_id, "tb_d_" + "y" * 43)
        assert device.connect() == NOT_AUTHORIZED
        device.close()


def _publish_and_count(broker: Mosquitto, owner: Owner) -> None:
    """1000 messages of 10 samples each from the owner's thing, all of them readable."""
    token = owner.token()
    start = int(time.time() * 1000) - 3_600_000
    topic = f"tb/things/{owner.thing_id}/properties/{owner.property_id}"
    device = Device(broker.port, owner.thing_id, token["secret"])
    assert device.connect() == 0
    device.publish_all(topic, _payloads(start, 1000))
    device.close()
    assert owner.wait_count(start, 10_000) == 10_000


@pytest.mark.needs_pg
def test_two_replicas_on_one_postgresql_share_one_stream_without_loss_or_duplicates(
    broker: Mosquitto, tmp_path: Path, pg_url: str
) -> None:
    need_service("PostgreSQL", "127.0.0.1", 5432)
    env = _env(broker)
    db = ["--database-url", pg_url]
    with ExitStack() as stack:
        a = stack.enter_context(serve(tmp_path / "a", *db, "--mqtt-url", broker.url, env=env))
        b = stack.enter_context(serve(tmp_path / "b", *db, "--mqtt-url", broker.url, env=env))
        owner = _owner(stack, a, tmp_path / "a", db, env)
        _publish_and_count(broker, owner)
        # Each replica committed a share, and together exactly the samples sent: no message
        # was taken by both.
        shares = [_ingested(s) for s in (a, b)]
        assert all(share > 0 for share in shares), shares
        assert sum(shares) == 30_000


def _workers(server: Server) -> list[psutil.Process]:
    """The live worker processes under ``serve`` (multiprocessing also starts a resource
    tracker)."""
    found = []
    for child in psutil.Process(server.process.pid).children():
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:  # gone, or a zombie not reaped yet
            continue
    return found


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.needs_pg
def test_workers_share_the_port_and_the_stream_and_one_that_dies_is_replaced(
    broker: Mosquitto, tmp_path: Path, pg_url: str
) -> None:
    """``serve --workers 2``: two processes on one port, each its own member of the shared
    subscription; /metrics sums both; a killed worker comes back; SIGTERM stops them all."""
    need_service("PostgreSQL", "127.0.0.1", 5432)
    env = _env(broker)
    db = ["--database-url", pg_url]
    args = (*db, "--mqtt-url", broker.url, "--workers", "2")
    with ExitStack() as stack:
        server = stack.enter_context(serve(tmp_path / "w", *args, env=env))

        def log() -> str:
            return "".join(server.log)

        _wait_for("both workers' subscriptions", lambda: "-w0" in log() and "-w1" in log())
        workers = _workers(server)
        assert len(workers) == 2
        owner = _owner(stack, server, tmp_path / "w", db, env)
        _publish_and_count(broker, owner)
        # Whichever worker answers, /metrics counts both: exactly the samples sent.
        assert _ingested(server) == 30_000

        os.kill(workers[1].pid, signal.SIGKILL)
        _wait_for(
            "the worker's replacement",
            lambda: (
                len(_workers(server)) == 2
                and all(w.pid != workers[1].pid for w in _workers(server))
            ),
        )
        assert "worker 1 exited" in log()
        assert owner.http.get("/api/v1/me").status_code == 200
        assert _ingested(server) == 30_000

        running = _workers(server)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=60) == 0
        assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in running)


def _ingested(server: Server) -> int:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("thingbucket_ingested_samples_total "):
            return int(float(line.split()[1]))
    raise AssertionError("no thingbucket_ingested_samples_total in /metrics")
