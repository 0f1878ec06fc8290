"""A private Mosquitto 2.0 with the dynamic security plugin, on a free loopback port.

The same set-up as the tests' ``tests/mosquitto.py`` (benchmarks do not import from ``tests/``):
``mosquitto_ctrl dynsec init`` makes the admin client thingbucket uses as its privileged client
(its role may also publish under ``tb/``, for the errors and live topics), persistence off,
``set_tcp_nodelay true``, and raised ``max_inflight_messages`` / ``max_queued_messages`` so the
ingest client is not held to Mosquitto's default window of 20. ``missing()`` says what is not
installed; the workload then reports its row as skipped.
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
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

HOST = "127.0.0.1"
PLUGIN_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib")
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
MAX_INFLIGHT = 1000  # per client, Mosquitto -> thingbucket (default 20), as docs/mosquitto.conf
MAX_QUEUED = 100_000  # per client, beyond the window (default 1000)


@dataclass
class Mosquitto:
    port: int
    username: str  # the dynsec admin: thingbucket's privileged client
    password: str
    process: subprocess.Popen[bytes]
    version: str
    log_path: Path

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self.port}"

    def cpu_seconds(self) -> float:
        try:
            times = psutil.Process(self.process.pid).cpu_times()
        except psutil.Error:
            return 0.0
        return times.user + times.system

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _plugin() -> Path | None:
    for folder in PLUGIN_DIRS:
        path = Path(folder) / "mosquitto_dynamic_security.so"
        if path.exists():
            return path
    return None


def missing() -> str | None:
    """What is not installed (Debian package ``mosquitto``), or None."""
    if shutil.which("mosquitto") is None:
        return "mosquitto is not installed (Debian package mosquitto)"
    if shutil.which("mosquitto_ctrl") is None:
        return "mosquitto_ctrl is not installed (Debian package mosquitto)"
    if _plugin() is None:
        return "mosquitto's dynamic security plugin (mosquitto_dynamic_security.so) is missing"
    return None


def _version(binary: str) -> str:
    try:
        done = subprocess.run(
            [binary, "-h"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    for line in (done.stdout + done.stderr).splitlines():
        if line.startswith("mosquitto version"):
            return line.split()[-1]
    return "unknown"


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _config(port: int, plugin: Path, state: Path) -> str:
    return "\n".join(
        [
            # Started as root, mosquitto would switch to its own user, which cannot read this
            # private folder: stay who we are.
            f"user {getpass.getuser()}",
            "per_listener_settings false",
            f"listener {port} {HOST}",
            "allow_anonymous false",
            f"plugin {plugin}",
            f"plugin_opt_config_file {state}",
            "set_tcp_nodelay true",
            "persistence false",
            f"max_inflight_messages {MAX_INFLIGHT}",
            f"max_queued_messages {MAX_QUEUED}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "",
        ]
    )


@contextmanager
def private_mosquitto(folder: Path) -> Iterator[Mosquitto]:
    """Mosquitto on a free loopback port with dynsec state in ``folder``; always stopped."""
    binary, ctrl, plugin = shutil.which("mosquitto"), shutil.which("mosquitto_ctrl"), _plugin()
    if binary is None or ctrl is None or plugin is None:
        raise RuntimeError(missing() or "mosquitto is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    state = folder / "dynamic-security.json"
    username, password = "thingbucket", secrets.token_hex(16)
    state.unlink(missing_ok=True)  # init refuses to overwrite, and the old password would stay
    subprocess.run(
        [ctrl, "dynsec", "init", str(state), username, password],
        check=True,
        capture_output=True,
        timeout=30,
    )
    # thingbucket's client also publishes under tb/ (errors and live topics).
    doc = json.loads(state.read_text())
    for role in doc["roles"]:
        if role["rolename"] == "admin":
            role["acls"].append({"acltype": "publishClientSend", "topic": "tb/#", "allow": True})
    state.write_text(json.dumps(doc))
    version = _version(binary)
    for attempt in range(3):
        port = _free_port()
        conf = folder / "mosquitto.conf"
        conf.write_text(_config(port, plugin, state))
        log_path = folder / f"mosquitto-{attempt}.log"
        with log_path.open("wb") as sink:  # a file, not a pipe that could fill and stall it
            process = subprocess.Popen(
                [binary, "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=sink,
            )
        broker = Mosquitto(port, username, password, process, version, log_path)
        try:
            _wait_listening(broker)
            break
        except RuntimeError:
            _stop(process)
            # Another process may have taken the port between _free_port() and the bind.
            if attempt == 2 or "Address already in use" not in broker.log_tail():
                raise
    try:
        yield broker
    finally:
        _stop(broker.process)


def _wait_listening(broker: Mosquitto) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, broker.port), timeout=0.5).close()
            return
        except OSError:
            if broker.process.poll() is not None:
                raise RuntimeError(f"mosquitto did not start:\n{broker.log_tail()}") from None
            time.sleep(0.05)
    raise RuntimeError(f"mosquitto did not listen within {START_TIMEOUT_S:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)
