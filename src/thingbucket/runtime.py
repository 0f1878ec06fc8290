"""Everything a running thingbucket holds: built from settings, started by the app's lifespan.

Services receive the ``Runtime`` where they need process-wide parts (digests, passwords, the
writer); nothing here connects at import or construction.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import make_url

from thingbucket.access import repository as access_repo
from thingbucket.access.audit import AuditAggregator
from thingbucket.access.models import AuditEvent
from thingbucket.access.principal import Principal
from thingbucket.access.ratelimit import RateLimiter
from thingbucket.access.usage import UsageTracker
from thingbucket.accounts.passwords import Passwords
from thingbucket.accounts.throttle import LoginThrottle
from thingbucket.config import Settings, is_loopback, resolve_secret_key
from thingbucket.config import warnings as config_warnings
from thingbucket.db.engine import Database, sqlite_pragmas
from thingbucket.kit.secrets import Digester
from thingbucket.kit.singleflight import SingleFlight
from thingbucket.kit.ttlcache import TtlCache
from thingbucket.metrics import Metrics
from thingbucket.points.repository import PostgresSamples, SampleReader, SqliteSamples
from thingbucket.points.writer import PostgresWriter, SqliteWriter, Writer, WriteResult
from thingbucket.things.jwt import ThingJwtVerifier, accepted_audiences

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    digester: Digester
    passwords: Passwords
    throttle: LoginThrottle
    writer: Writer
    samples: SampleReader
    jwt: ThingJwtVerifier
    audit: AuditAggregator
    metrics: Metrics
    usage: UsageTracker = field(default_factory=UsageTracker)
    # Request rate limits (security.md §5.5), kept in this process.
    ratelimit: RateLimiter = field(default_factory=RateLimiter)
    schema_head: str = ""
    # Credentials (by SHA-256 of the presented secret) and point targets, each at most 1 s old.
    auth_cache: TtlCache[bytes, Principal] = field(default_factory=TtlCache)
    target_cache: TtlCache[tuple[object, ...], Any] = field(default_factory=TtlCache)
    # Their misses at the same time share one lookup.
    flights: SingleFlight = field(default_factory=SingleFlight)
    listening_ports: list[int] = field(default_factory=list)
    # The MQTT listening socket when bound before start-up (serve does, to refuse a taken port).
    mqtt_socket: socket.socket | None = None
    broker: Any = None  # the embedded broker or the external ingest client while it runs
    tasks: list[Any] = field(default_factory=list)  # background tasks of a serving process
    worker: int = 0  # which of ``server.workers`` processes this is

    async def start(self) -> None:
        from thingbucket.db.migrate import head_revision

        self.schema_head = head_revision()
        for warning in config_warnings(self.settings):
            log.warning("%s", warning)
        await self.writer.start()
        self.writer.hooks.append(self._count_samples)
        self.audit.start(self._write_audit, self._target_orgs)
        self.usage.start()

    def _count_samples(self, result: WriteResult) -> None:
        self.metrics.samples_ingested.inc(result.samples)

    async def _write_audit(self, rows: list[AuditEvent]) -> None:
        async with self.db.session() as session:
            await access_repo.add_audit_rows(session, rows)

    async def _target_orgs(
        self, targets: list[tuple[str, str]]
    ) -> dict[tuple[str, str], str | None]:
        from thingbucket.sharing import service as sharing

        async with self.db.session() as session:
            return await sharing.target_orgs(session, targets)

    async def start_broker(self) -> None:
        """The embedded MQTT broker, or the client of an external one (``mqtt.url``)."""
        mqtt = self.settings.mqtt
        if not mqtt.enabled:
            return
        if mqtt.url:
            from thingbucket.mqtt.external import ExternalIngest

            client = ExternalIngest(self)
            await client.start()
            self.broker = client
            return
        from thingbucket.mqtt.broker import EmbeddedBroker

        broker = EmbeddedBroker(self)
        await broker.serve(self.mqtt_socket, mqtt.host, mqtt.port)
        self.broker = broker
        log.info("MQTT broker listening on mqtt://%s:%d", mqtt.host, broker.port)
        if broker.tls_port is not None:
            log.info("MQTT over TLS on mqtts://%s:%d", mqtt.host, broker.tls_port)
        if broker.ws_port is not None:
            log.info("MQTT over WebSocket on ws://%s:%d", mqtt.host, broker.ws_port)

    async def thing_credentials_changed(self, thing_id: str, issued_secret: str | None) -> None:
        """After a commit that issued a device token (``issued_secret``) or cut a thing's
        credentials (None): tell the external broker's provisioning, where there is one."""
        dynsec = getattr(self.broker, "dynsec", None)
        if dynsec is None:
            return
        try:
            if issued_secret is not None:
                await dynsec.token_issued(thing_id, issued_secret)
            else:
                await dynsec.thing_cut(thing_id)
        except Exception as exc:  # the commit stands; the broker is told again on the next change
            log.error("could not update the MQTT broker's credentials of %s: %s", thing_id, exc)

    def start_tasks(self) -> None:
        """The background work of a serving process (CLI commands run none of it); of several
        workers, the first only (the others would only wait for its advisory locks)."""
        from thingbucket.points.cold import ColdTask
        from thingbucket.points.retention import RetentionTask
        from thingbucket.points.rollups import RollupTask

        if self.worker:
            return
        for enabled, kind in (
            (self.settings.retention.enabled, RetentionTask),
            (self.settings.rollups.enabled, RollupTask),
            (self.settings.cold.enabled, ColdTask),
        ):
            if enabled:
                task = kind(self)
                task.start()
                self.tasks.append(task)

    async def close(self) -> None:
        for task in self.tasks:
            await task.close()
        self.tasks.clear()
        if self.broker is not None:
            await self.broker.close()
            self.broker = None
        await self.usage.close()
        await self.audit.close()
        await self.writer.close()
        self.passwords.close()
        await self.db.dispose()

    def set_listening_port(self, port: int) -> None:
        """Once the HTTP port is known, accept loopback audiences for it (security.md §3.5)."""
        self.listening_ports = [port]
        loopback = [port] if is_loopback(self.settings.server.host) else []
        self.jwt.audiences = accepted_audiences(self.settings.public_url, loopback)


def build_runtime(settings: Settings) -> Runtime:
    secret = resolve_secret_key(settings)
    previous = [k.get_secret_value().encode() for k in settings.security.secret_key_previous]
    db = Database(settings)
    writer: Writer
    samples: SampleReader
    if db.is_sqlite:
        path = make_url(db.url).database or ""
        writer = SqliteWriter(
            path,
            sqlite_pragmas(settings),
            max_queued=settings.ingest.queue_max_samples,
            group_max=settings.ingest.group_commit_max_samples,
            cold_after_days=settings.cold.after_days,
        )
        samples = SqliteSamples(settings.cold.after_days)
    else:
        dsn = make_url(db.url).set(drivername="postgresql").render_as_string(hide_password=False)
        writer = PostgresWriter(
            dsn,
            max_queued=settings.ingest.queue_max_samples,
            connections=settings.ingest.postgres_writers,
            cold_after_days=settings.cold.after_days,
        )
        samples = PostgresSamples(settings.cold.after_days)
    sec = settings.security
    loopback = [settings.server.port] if is_loopback(settings.server.host) else []
    return Runtime(
        settings=settings,
        db=db,
        digester=Digester(secret, previous),
        passwords=Passwords(sec),
        throttle=LoginThrottle(
            sec.login_max_failures_per_account,
            sec.login_max_failures_per_address,
            sec.login_window_s,
        ),
        writer=writer,
        samples=samples,
        jwt=ThingJwtVerifier(
            accepted_audiences(settings.public_url, loopback),
            leeway_s=sec.jwt_leeway_s,
            max_lifetime_s=sec.jwt_max_lifetime_s,
            max_future_iat_s=sec.jwt_max_future_iat_s,
        ),
        audit=AuditAggregator(),
        metrics=Metrics(),
        ratelimit=RateLimiter(settings.ratelimit),
    )
