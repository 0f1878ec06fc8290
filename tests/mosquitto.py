"""A private Mosquitto 2.0 with the dynamic security plugin, on a free loopback port.

The shared Mosquitto at 127.0.0.1:1883 runs without dynsec and is not ours to reconfigure, so
tests that provision devices start their own instance from the same Debian package, configured
as ``docs/mosquitto.conf`` recommends.
"""

from __future__ import annotations

import getpass
import json
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REQUIRE_SERVICES

PLUGIN_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib")


@dataclass
class Mosquitto:
    port: int
    username: str
    password: str
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


def _plugin() -> Path | None:
    for folder in PLUGIN_DIRS:
        path = Path(folder) / "mosquitto_dynamic_security.so"
        if path.exists():
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _need(what: str) -> None:
    message = f"{what} is not installed (Debian package mosquitto)"
    if REQUIRE_SERVICES:
        pytest.fail(message + " and THINGBUCKET_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


@contextmanager
def private_mosquitto(folder: Path) -> Iterator[Mosquitto]:
    binary, ctrl, plugin = shutil.which("mosquitto"), shutil.which("mosquitto_ctrl"), _plugin()
    if binary is None or ctrl is None:
        _need("mosquitto")
    if plugin is None:
        _need("mosquitto's dynamic security plugin")
    assert binary
    assert ctrl
    assert plugin
    folder.mkdir(parents=True, exist_ok=True)
    state = folder / "dynamic-security.json"
    username, password = "thingbucket", secrets.token_hex(16)
    state.unlink(missing_ok=True)  # init refuses to overwrite, and the old password would stay
    subprocess.run(
        [ctrl, "dynsec", "init", str(state), username, password],
        check=True,
        capture_output=True,
    )
    # thingbucket's client also publishes under tb/ (errors and live topics).
    doc = json.loads(state.read_text())
    for role in doc["roles"]:
        if role["rolename"] == "admin":
            role["acls"].append({"acltype": "publishClientSend", "topic": "tb/#", "allow": True})
    state.write_text(json.dumps(doc))
    port = _free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(
        "\n".join(
            [
                # Started as root, mosquitto would switch to its own user, which cannot read
                # this private folder: stay who we are.
                f"user {getpass.getuser()}",
                "per_listener_settings false",
                f"listener {port} 127.0.0.1",
                "allow_anonymous false",
                f"plugin {plugin}",
                f"plugin_opt_config_file {state}",
                "set_tcp_nodelay true",
                "persistence false",
                "max_inflight_messages 100",
                "max_queued_messages 100000",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                "",
            ]
        )
    )
    log = folder / "mosquitto.log"
    with log.open("wb") as sink:  # a file, not a pipe that could fill and stall the broker
        process = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=sink
        )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None:
                    raise AssertionError("mosquitto did not start: " + log.read_text()) from None
                time.sleep(0.05)
        else:
            raise AssertionError("mosquitto did not listen in time")
        yield Mosquitto(port, username, password, process)
    finally:
        process.kill()
        process.wait(timeout=10)
