"""InfluxDB 1.6 from Debian's ``influxdb`` package, as the side-by-side peer (P3, P5).

Started on free loopback ports with its data in the run's scratch directory, stopped after the
suite; absent (no ``influxd`` on PATH), the rows that need it say so instead of failing.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.server import HOST, free_port

START_TIMEOUT_S = 30.0
DATABASE = "bench"


def available() -> bool:
    return shutil.which("influxd") is not None


@dataclass
class Influx:
    process: subprocess.Popen[bytes]
    url: str
    version: str
    client: httpx.Client

    def query(self, q: str) -> dict[str, Any]:
        response = self.client.get(
            "/query", params={"db": DATABASE, "q": q, "epoch": "ms"}, timeout=120
        )
        if response.status_code != 200:
            raise RuntimeError(f"InfluxDB query -> {response.status_code}: {response.text[:300]}")
        body: dict[str, Any] = response.json()
        return body

    def write(self, lines: Sequence[str]) -> None:
        response = self.client.post(
            "/write",
            params={"db": DATABASE, "precision": "ms"},
            content="\n".join(lines).encode(),
            timeout=120,
        )
        if response.status_code != 204:
            raise RuntimeError(f"InfluxDB write -> {response.status_code}: {response.text[:300]}")


def _config(root: Path, http_port: int, rpc_port: int) -> str:
    return f"""
reporting-disabled = true
bind-address = "{HOST}:{rpc_port}"
[meta]
  dir = "{root / "meta"}"
[data]
  dir = "{root / "data"}"
  wal-dir = "{root / "wal"}"
  query-log-enabled = false
[http]
  bind-address = "{HOST}:{http_port}"
  log-enabled = false
[monitor]
  store-enabled = false
"""


@contextmanager
def running_influx(root: Path) -> Iterator[Influx]:
    root.mkdir(parents=True, exist_ok=True)
    http_port, rpc_port = free_port(), free_port()
    config = root / "influxdb.conf"
    config.write_text(_config(root, http_port, rpc_port))
    log = (root / "influxd.log").open("wb")
    process = subprocess.Popen(
        ["influxd", "-config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://{HOST}:{http_port}"
    client = httpx.Client(base_url=url)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        version = ""
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"influxd exited {process.returncode}: see {root}/influxd.log")
            try:
                ping = client.get("/ping", timeout=1)
                if ping.status_code == 204:
                    version = ping.headers.get("X-Influxdb-Version", "?")
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("influxd did not answer /ping")
        influx = Influx(process, url, version, client)
        created = client.post("/query", params={"q": f"CREATE DATABASE {DATABASE}"})
        if created.status_code != 200:
            raise RuntimeError(f"CREATE DATABASE -> {created.status_code}: {created.text[:200]}")
        yield influx
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        log.close()
