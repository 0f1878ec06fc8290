"""Prometheus metrics, one registry per runtime (labels never carry credentials or e-mail).

With several server workers (``server.workers``), ``serve`` points prometheus_client at a
directory of the data dir (``PROMETHEUS_MULTIPROC_DIR``) before the workers start: each keeps its
values there, and ``/metrics`` answers the sum over the live workers, whichever one is asked.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.samples_ingested = Counter(
            "thingbucket_ingested_samples",
            "Samples committed by the writer.",
            registry=self.registry,
        )
        self.ingest_rejected = Counter(
            "thingbucket_ingest_rejected",
            "Write requests refused before the writer, by surface and reason code.",
            ["surface", "reason"],
            registry=self.registry,
        )
        self.requests = Histogram(
            "thingbucket_http_request_duration_seconds",
            "HTTP request latency by route template, method and status class.",
            ["route", "method", "status"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.mqtt_sessions = Gauge(
            "thingbucket_mqtt_sessions",
            "Connected MQTT sessions.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.writer_queue = Gauge(
            "thingbucket_writer_queued_samples",
            "Samples waiting for a commit.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.audit_dropped = Gauge(
            "thingbucket_audit_dropped_total",
            "Audit events dropped because the queue was full.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )

    def exposition(self) -> bytes:
        """The text format: this runtime's registry, or every worker's values when several
        share the port."""
        directory = os.environ.get(MULTIPROCESS_ENV)
        if not directory:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
