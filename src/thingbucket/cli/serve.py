"""``thingbucket serve`` and ``thingbucket migrate``."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import socket
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
import uvicorn

from thingbucket.access.audit import RequestInfo, record, request_info
from thingbucket.accounts import service as accounts
from thingbucket.cli import supervisor
from thingbucket.cli.common import (
    check_database,
    fail,
    migrate_database,
    prepare,
    run,
    settings_from,
)
from thingbucket.config import ConfigError, Settings, is_loopback, workers_refusal
from thingbucket.db.engine import Database, describe_url
from thingbucket.kit.net import listen

log = logging.getLogger("thingbucket")

HostOpt = Annotated[str | None, typer.Option("--host", help="HTTP bind address [127.0.0.1]")]
PortOpt = Annotated[int | None, typer.Option("--port", help="HTTP port [8000]")]
MqttPortOpt = Annotated[int | None, typer.Option("--mqtt-port", help="MQTT port [1883]")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="[./thingbucket-data]")]
DbOpt = Annotated[
    str | None, typer.Option("--database-url", help="postgresql+asyncpg://... [SQLite in data dir]")
]
MqttUrlOpt = Annotated[
    str | None, typer.Option("--mqtt-url", help="external broker mqtt://host:port")
]
WorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", help="server processes [1]; more only on PostgreSQL + --mqtt-url"),
]


def _overrides(
    host: str | None,
    port: int | None,
    mqtt_port: int | None,
    data_dir: Path | None,
    database_url: str | None,
    mqtt_url: str | None,
    workers: int | None = None,
) -> dict[str, dict[str, object]]:
    return {
        "server": {"host": host, "port": port, "data_dir": data_dir, "workers": workers},
        "database": {"url": database_url},
        "mqtt": {"port": mqtt_port, "url": mqtt_url},
    }


def configure_logging(settings: Settings, worker: int | None = None) -> None:
    prefix = "" if worker is None else f"[worker {worker}] "
    logging.basicConfig(
        level=settings.server.log_level.upper(),
        format=f"%(asctime)s %(levelname)s {prefix}%(name)s: %(message)s",
    )
    if settings.server.log_level != "debug":
        for noisy in ("alembic", "amqtt", "transitions"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def bind(host: str, port: int) -> socket.socket:
    """The HTTP listening socket, bound before anything starts, or a one-line refusal."""
    try:
        sock = listen(host, port, 2048)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            fail(f"port {port} on {host} is taken; choose another with --port (server.port)")
        fail(f"cannot listen on {host}:{port}: {exc.strerror} (server.host, server.port)")
    sock.set_inheritable(True)
    return sock


def _bind_mqtt(settings: Settings) -> socket.socket | None:
    """The embedded broker's socket, bound at start-up like HTTP's, or a one-line refusal."""
    mqtt = settings.mqtt
    if not mqtt.enabled:
        return None
    if mqtt.url:
        _check_broker(mqtt.url)
        return None
    from thingbucket.mqtt.broker import bind as mqtt_socket  # amqtt only where MQTT runs

    try:
        return mqtt_socket(mqtt.host, mqtt.port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            fail(
                f"MQTT port {mqtt.port} on {mqtt.host} is taken (another broker?); choose another "
                "with --mqtt-port (mqtt.port), or use that broker with --mqtt-url"
            )
        fail(f"cannot listen for MQTT on {mqtt.host}:{mqtt.port}: {exc.strerror} (mqtt.port)")


def _check_broker(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        fail("mqtt.url must look like mqtt://host:port (--mqtt-url)")
    try:
        socket.create_connection((parts.hostname, parts.port or 1883), timeout=5).close()
    except OSError as exc:
        fail(
            f"cannot reach the MQTT broker at {parts.hostname}:{parts.port or 1883}: {exc.strerror}"
        )


def _mqtt_mode(settings: Settings) -> str:
    mqtt = settings.mqtt
    if not mqtt.enabled:
        return "off"
    if mqtt.url:
        url = urlsplit(mqtt.url)
        return f"external broker {url.hostname}:{url.port or 1883}"
    return "embedded broker"


def _summary(settings: Settings, port: int) -> str:
    durability = (
        "SQLite NORMAL: survives a process crash, not a power loss"
        if settings.is_sqlite and settings.storage.sqlite_synchronous == "NORMAL"
        else "SQLite FULL: survives a power loss if the disk honours fsync"
        if settings.is_sqlite
        else "PostgreSQL: as durable as its server"
    )
    warnings = []
    if not is_loopback(settings.server.host):
        warnings.append("plain HTTP beyond loopback: put TLS in front")
    return (
        f"thingbucket listening on http://{settings.server.host}:{port} (TLS: no); "
        f"database {describe_url(settings.database_url)}; {durability}; "
        f"MQTT: {_mqtt_mode(settings)}" + (f"; warnings: {', '.join(warnings)}" if warnings else "")
    )


async def _check_database(settings: Settings) -> None:
    db = Database(settings)
    try:
        await check_database(db)
    finally:
        await db.dispose()


async def _first_start(settings: Settings) -> None:
    """On a database with no person, say how to create the first admin."""
    from thingbucket.runtime import build_runtime

    rt = build_runtime(settings)
    try:
        async with rt.db.session() as session:
            token = request_info.set(RequestInfo(surface="system"))
            try:
                if await accounts.count_persons(session) == 0:
                    typer.echo(
                        "No account exists yet. Create the first admin with:\n"
                        "  uv run thingbucket user create you@example.com --admin",
                        err=True,
                    )
                record(
                    session,
                    "system.started",
                    None,
                    details={"summary": _summary(settings, settings.server.port)},
                )
            finally:
                request_info.reset(token)
    finally:
        await rt.db.dispose()


def serve(
    host: HostOpt = None,
    port: PortOpt = None,
    mqtt_port: MqttPortOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    mqtt_url: MqttUrlOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Start thingbucket: the HTTP API, the MQTT broker or client, and the background tasks."""
    settings = settings_from(
        _overrides(host, port, mqtt_port, data_dir, database_url, mqtt_url, workers)
    )
    configure_logging(settings)
    refusal = workers_refusal(settings)
    if refusal:
        fail(refusal)
    prepare(settings)
    try:
        from thingbucket.config import resolve_secret_key

        resolve_secret_key(settings)
    except ConfigError as exc:
        fail(str(exc))
    asyncio.run(_check_database(settings))
    sock = bind(settings.server.host, settings.server.port)
    actual_port = sock.getsockname()[1]
    mqtt_sock = _bind_mqtt(settings)
    try:
        asyncio.run(migrate_database(settings))
    except BaseException:
        sock.close()
        raise
    asyncio.run(_first_start(settings))
    if settings.server.workers > 1:
        supervisor.supervise(settings, sock, actual_port)
        return
    run_server(settings, 0, sock, actual_port, mqtt_sock)


def run_server(
    settings: Settings,
    worker: int,
    sock: socket.socket,
    port: int,
    mqtt_sock: socket.socket | None = None,
) -> None:
    """Serve on the bound socket until a signal stops it: the whole server, or one worker."""
    from thingbucket.app import create_app

    app = create_app(settings)
    rt = app.state.runtime
    rt.worker = worker
    rt.set_listening_port(port)
    rt.mqtt_socket = mqtt_sock
    if worker == 0:
        log.info(_summary(settings, port))
    config = uvicorn.Config(
        app,
        http="h11",
        h11_max_incomplete_event_size=settings.limits.head_bytes,
        limit_concurrency=1000,
        timeout_keep_alive=5,
        access_log=False,
        log_config=None,
        server_header=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    _tune_gc()
    server.run(sockets=[sock])


def _tune_gc() -> None:
    """Keep the collector off the long-lived objects of start-up and off each request's points.

    A 1000-point write makes thousands of short-lived lists and tuples: with the default gen-0
    threshold (700) every request triggered several collections that also walked the whole heap
    of imported modules. Freezing what exists now and collecting less often measured about a
    third more ingest throughput (benchmarks P1)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_GEN0, 20, 20)


_GC_GEN0 = 50_000


def migrate(data_dir: DataDirOpt = None, database_url: DbOpt = None) -> None:
    """Bring the database schema to the newest version (serve does this too)."""
    settings = settings_from(_overrides(None, None, None, data_dir, database_url, None))
    prepare(settings)
    run(lambda: migrate_database(settings))
    typer.echo(f"database {describe_url(settings.database_url)} is at the newest schema")
