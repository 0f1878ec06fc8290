"""Running thingbucket as a child process, as a user would, on a port the OS chooses."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from conftest import TEST_SECRET
from helpers import PASSWORD

_LISTENING = re.compile(r"listening on http://[^:]+:(\d+)")
_MQTT = re.compile(r"MQTT broker listening on mqtt://[^:]+:(\d+)")


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child: no THINGBUCKET_* settings from the test run leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("THINGBUCKET_")}
    env.update(extra)
    return env


def cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thingbucket", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env or child_env(),
        timeout=timeout,
        check=False,
    )


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int
    log: list[str] = field(default_factory=list)

    @property
    def mqtt_port(self) -> int:
        for line in self.log:
            m = _MQTT.search(line)
            if m:
                return int(m.group(1))
        raise AssertionError("no MQTT broker in the server's log:\n" + "".join(self.log))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def serve(
    data_dir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> Iterator[Server]:
    """``thingbucket serve --port 0`` until /healthz answers 200; killed afterwards."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "thingbucket",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            *(() if "--mqtt-port" in args else ("--mqtt-port", "0")),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env or child_env(),
    )
    log: list[str] = []
    port_found = threading.Event()
    port: list[int] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)
            m = _LISTENING.search(line)
            if m and not port:
                port.append(int(m.group(1)))
                port_found.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + timeout
        if not port_found.wait(timeout):
            raise AssertionError("server did not start:\n" + "".join(log))
        server = Server(process, port[0], log)
        while time.monotonic() < deadline:
            try:
                if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        else:
            raise AssertionError("server not healthy:\n" + "".join(log))
        yield server
    finally:
        process.kill()
        process.wait(timeout=10)
        reader.join(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def create_person(url: str, data_dir: Path, db_args: list[str]) -> dict[str, str]:
    """A new person made with ``thingbucket user create``, logged in: their request headers."""
    email = f"p-{uuid.uuid4().hex[:12]}@example.com"
    env = child_env(THINGBUCKET_SECURITY__SECRET_KEY=TEST_SECRET)
    made = cli(
        "user", "create", email, "--data-dir", str(data_dir), *db_args, stdin=PASSWORD, env=env
    )
    assert made.returncode == 0, made.stderr
    answer = httpx.post(
        url + "/api/v1/auth/token",
        data={"grant_type": "password", "username": email, "password": PASSWORD},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@dataclass(frozen=True)
class OwnedProperty:
    headers: dict[str, str]
    bucket_id: str
    property_id: str
    points: str  # the path of its points


def create_property(url: str, data_dir: Path, db_args: list[str]) -> OwnedProperty:
    """A new person's bucket, thing and SPEED property (a number series)."""
    headers = create_person(url, data_dir, db_args)
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        bucket = http.post("/api/v1/buckets", json={"name": "b"}).json()
        thing = http.post("/api/v1/things", json={"name": "t", "bucket_id": bucket["id"]}).json()
        prop = http.post(
            f"/api/v1/things/{thing['id']}/properties", json={"name": "p", "type": "SPEED"}
        ).json()
    points = f"/api/v1/things/{thing['id']}/properties/{prop['id']}/points"
    return OwnedProperty(headers, bucket["id"], prop["id"], points)
