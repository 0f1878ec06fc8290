"""thingbucket as a child process on a free loopback port, with an admin token and helpers.

The server runs as ``<venv python> -m thingbucket serve`` (what ``uv run thingbucket serve`` runs,
without uv's own process in between, so its pid is the server's for RSS and CPU sampling).
"""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import psutil

from benchmarks import postgres

HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


class ServerError(RuntimeError):
    """The server did not start, or answered something unexpected during set-up."""


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


INGESTED = "thingbucket_ingested_samples_total "


def ingested_samples(metrics_text: str) -> int:
    """The committed-samples counter in a ``/metrics`` answer."""
    for line in metrics_text.splitlines():
        if line.startswith(INGESTED):
            return int(float(line.split()[1]))
    raise ServerError("no thingbucket_ingested_samples_total in /metrics")


def child_env(secret_key: str) -> dict[str, str]:
    """The parent's environment without THINGBUCKET_* settings, plus the benchmark's own."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("THINGBUCKET_")}
    env["THINGBUCKET_SECURITY__SECRET_KEY"] = secret_key
    env["THINGBUCKET_SERVER__LOG_LEVEL"] = "warning"
    # P1 and P4 drive each credential and thing harder than security.md §5.5's defaults allow
    # (200 publishes/s per thing): the rate limits are off for the benchmark server.
    for bucket in ("CREDENTIAL", "THING", "ORGANIZATION", "ADDRESS"):
        env[f"THINGBUCKET_RATELIMIT__{bucket}_PER_S"] = "0"
    # The data sets lie weeks back: the packing pass would turn them cold in the middle of the
    # run. P10 packs its own with `thingbucket compact`.
    env["THINGBUCKET_COLD__ENABLED"] = "0"
    return env


def thingbucket_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "thingbucket", *args]


@dataclass(frozen=True, slots=True)
class Target:
    """One property with a single number dimension ``value``."""

    thing_id: str
    property_id: str

    @property
    def points_path(self) -> str:
        return f"/api/v1/things/{self.thing_id}/properties/{self.property_id}/points"


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_path: Path
    mqtt_port: int = 0  # the embedded broker's (0 in external broker mode)
    token: str = ""
    database_url: str | None = None  # PostgreSQL (asyncpg's form); None: SQLite in data_dir
    env: dict[str, str] = field(default_factory=dict)  # the server's environment
    _client: httpx.Client | None = None
    _bucket_id: str = ""
    _things: int = 0
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "thingbucket.db"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.url,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=httpx.Timeout(120.0, connect=5.0),
            )
        return self._client

    def cli(self, *args: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        """``thingbucket <args>`` on this server's database, with its environment."""
        where: tuple[str, ...] = ("--data-dir", str(self.data_dir))
        if self.database_url:
            where += ("--database-url", self.database_url)
        done = subprocess.run(
            thingbucket_cmd(*args, *where),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise ServerError(f"thingbucket {' '.join(args)} failed: {done.stderr[-500:]}")
        return done

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # --- set-up through the API ------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(path, json=body)
        if response.status_code != 201 and response.status_code != 200:
            raise ServerError(f"POST {path} -> {response.status_code}: {response.text[:300]}")
        answer: dict[str, Any] = response.json()
        return answer

    def bucket_id(self) -> str:
        if not self._bucket_id:
            self._bucket_id = str(self._post("/api/v1/buckets", {"name": "bench"})["id"])
        return self._bucket_id

    def new_targets(self, count: int, label: str, dims: int = 1) -> list[Target]:
        """``count`` things with one number property each: dimension ``value``, or ``x0``..
        with ``dims`` > 1."""
        names = ["value"] if dims == 1 else [f"x{d}" for d in range(dims)]
        dimensions = [{"id": n, "name": n, "unit": "", "kind": "number"} for n in names]
        targets = []
        bucket = self.bucket_id()
        for _ in range(count):
            self._things += 1
            thing = self._post(
                "/api/v1/things", {"name": f"{label}-{self._things}", "bucket_id": bucket}
            )
            prop = self._post(
                f"/api/v1/things/{thing['id']}/properties",
                {"name": "t", "dimensions": dimensions},
            )
            targets.append(Target(str(thing["id"]), str(prop["id"])))
        return targets

    def device_token(self, thing_id: str) -> str:
        """A new device token of the thing (MQTT: username = thing id, password = this)."""
        return str(self._post(f"/api/v1/things/{thing_id}/tokens", {"name": "bench"})["secret"])

    # --- looking at the server from outside -------------------------------------------------

    def connect_readonly(self) -> sqlite3.Connection:
        if self.database_url is not None:
            raise ServerError(
                "connect_readonly reads the SQLite file; this server is on PostgreSQL"
            )
        return sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)

    def _fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """A read-only query on the server's database (``?`` placeholders on both)."""
        if self.database_url is None:
            with closing(self.connect_readonly()) as conn:
                return [tuple(r) for r in conn.execute(sql, args).fetchall()]
        return postgres.fetch(self.database_url, sql, *args)

    def series_ids(self, targets: Sequence[Target]) -> list[int]:
        """The series of every dimension of these properties (in target, then dimension order)."""
        out: list[int] = []
        for t in targets:
            rows = self._fetch(
                "SELECT id FROM series WHERE property_id = ? ORDER BY id", t.property_id
            )
            if not rows:
                raise ServerError(f"no series for property {t.property_id}")
            out.extend(int(r[0]) for r in rows)
        return out

    def stored_samples(self, series: Sequence[int]) -> int:
        marks = ",".join("?" * len(series))
        rows = self._fetch(
            f"SELECT count(*) FROM samples_num WHERE series_id IN ({marks})", *series
        )
        return int(rows[0][0])

    def ingested_samples(self) -> int:
        """``thingbucket_ingested_samples_total`` of ``/metrics``: samples the writer committed."""
        return ingested_samples(self.client.get("/metrics").text)

    def _processes(self) -> list[psutil.Process]:
        proc = psutil.Process(self.pid)
        return [proc, *proc.children(recursive=True)]

    def rss_bytes(self) -> int:
        total = 0
        for proc in self._processes():
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self._processes():
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def thread_cpu(self) -> dict[int, float]:
        """CPU seconds per native thread of the server process and its children (the SQLite
        writer process); the main thread's id is the pid, it runs the event loop."""
        out: dict[int, float] = {}
        for proc in self._processes():
            try:
                threads = proc.threads()
            except psutil.Error:
                continue
            out.update((t.id, t.user_time + t.system_time) for t in threads)
        return out

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


class RssSampler:
    """Samples the server's RSS every ``interval_s`` on a thread until stopped."""

    def __init__(self, server: Server, interval_s: float = 0.01) -> None:
        self._server = server
        self._interval = interval_s
        self._stop = threading.Event()
        self.baseline = server.rss_bytes()
        self.peak = self.baseline
        self.samples = 0
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                rss = self._server.rss_bytes()
            except psutil.Error:
                return
            self.samples += 1
            self.peak = max(self.peak, rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.peak = max(self.peak, self._server.rss_bytes())

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.baseline) / (1024 * 1024)


def _create_user(data_dir: Path, env: dict[str, str], email: str, password: str) -> str:
    done = subprocess.run(
        thingbucket_cmd("user", "create", email, "--data-dir", str(data_dir)),
        input=password + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise ServerError(f"user create failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout.strip().splitlines()[-1]


def _wait_healthy(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not server.alive():
            raise ServerError(
                f"server exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        try:
            if httpx.get(server.url + "/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise ServerError(f"server not healthy after {START_TIMEOUT_S:.0f} s:\n{server.log_tail()}")


def _token(server: Server, email: str, password: str) -> str:
    response = httpx.post(
        server.url + "/api/v1/auth/token",
        data={"grant_type": "password", "username": email, "password": password},
        timeout=30.0,
    )
    if response.status_code != 200:
        raise ServerError(f"token request -> {response.status_code}: {response.text[:300]}")
    return str(response.json()["access_token"])


@dataclass(frozen=True, slots=True)
class ExternalBroker:
    """External broker mode: ``--mqtt-url`` and thingbucket's privileged credentials there."""

    url: str  # mqtt://127.0.0.1:<port>
    username: str
    password: str
    provision: str = "dynsec"  # device tokens are provisioned into Mosquitto's dynsec

    def env(self) -> dict[str, str]:
        return {
            "THINGBUCKET_MQTT__USERNAME": self.username,
            "THINGBUCKET_MQTT__PASSWORD": self.password,
            "THINGBUCKET_MQTT__PROVISION": self.provision,
        }


@contextmanager
def running_server(
    data_dir: Path,
    attempts: int = 3,
    broker: ExternalBroker | None = None,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """A server on SQLite in ``data_dir`` (or on ``database_url``) with an admin person and its
    access token; always stopped on the way out. With ``broker``, in external broker mode (no
    embedded broker)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = child_env(secrets.token_urlsafe(48))
    if broker is not None:
        env.update(broker.env())
    if database_url is not None:
        env["THINGBUCKET_DATABASE__URL"] = database_url
    env.update(extra_env or {})
    email, password = f"bench-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(24)
    _create_user(data_dir, env, email, password)
    server: Server | None = None
    try:
        for attempt in range(attempts):
            port = free_port()
            if broker is None:
                mqtt_port = free_port()
                mqtt_args = ("--mqtt-port", str(mqtt_port))  # 1883 may be another broker's
            else:
                mqtt_port, mqtt_args = 0, ("--mqtt-url", broker.url)
            log_path = data_dir / f"server-{attempt}.log"
            log_file = log_path.open("wb")
            process = subprocess.Popen(
                thingbucket_cmd(
                    *("serve", "--port", str(port), "--data-dir", str(data_dir)), *mqtt_args
                ),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
            )
            server = Server(
                process,
                port,
                data_dir,
                log_path,
                mqtt_port,
                database_url=database_url,
                env=env,
                _log_file=log_file,
            )
            try:
                _wait_healthy(server)
                break
            except ServerError:
                server.stop()
                # Another process may have taken the port between free_port() and the bind.
                if attempt == attempts - 1 or "port" not in server.log_tail():
                    raise
        assert server is not None
        server.token = _token(server, email, password)
        yield server
    finally:
        if server is not None:
            server.stop()
