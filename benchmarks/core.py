"""The pieces every workload shares: sizes per mode, result rows, the registry of workloads."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from benchmarks.context import Context

Status = Literal["pass", "fail", "n/a", "skipped", "error", "todo"]


@dataclass(frozen=True, slots=True)
class Mode:
    """How much work each workload does; ``quick`` keeps the whole run under two minutes."""

    name: Literal["quick", "full"]
    runs: int  # measured runs per figure (the median is reported); at least 3
    # P1: requests of 1000 points per client and run (plus warmup_requests untimed).
    ingest_requests_per_client: int
    ingest_warmup_requests: int
    # P2 (PostgreSQL) and P3 (3 dimensions, and InfluxDB): the same, fewer in quick mode.
    side_requests_per_client: int
    # P6/P7: samples seeded into the read property; P7 exports all of them.
    read_samples: int
    read_runs: int  # P6 latency runs (after one warm-up)
    # P4: QoS 1 messages of 100 points per publisher and run (plus warm-up, untimed).
    mqtt_messages_per_publisher: int
    mqtt_warmup_messages: int


QUICK = Mode(
    name="quick",
    runs=3,
    ingest_requests_per_client=12,
    ingest_warmup_requests=1,
    side_requests_per_client=6,
    read_samples=400_000,
    read_runs=3,
    mqtt_messages_per_publisher=300,
    mqtt_warmup_messages=20,
)
FULL = Mode(
    name="full",
    runs=3,
    ingest_requests_per_client=60,
    ingest_warmup_requests=2,
    side_requests_per_client=60,
    read_samples=1_000_000,
    read_runs=5,
    mqtt_messages_per_publisher=2000,
    mqtt_warmup_messages=50,
)


@dataclass(slots=True)
class Row:
    """One line of the table; ``data`` carries the raw figures for the JSON file."""

    id: str
    workload: str
    thingbucket: str
    reference: str
    ratio: float | None
    target: str
    status: Status
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


WorkloadFn = Callable[["Context"], Row]


@dataclass(frozen=True, slots=True)
class Workload:
    id: str
    title: str
    target: str
    run: WorkloadFn | None  # None: listed in the spec, not measured yet


REGISTRY: dict[str, Workload] = {}

# Every target of performance.md, in table order. Implemented workloads replace their entry
# through @workload; the others are printed as "todo" so the table always shows the whole spec.
PLANNED: dict[str, tuple[str, str]] = {
    "P1": ("HTTP ingest, batch 1000, 16 clients, SQLite", ">= 0.6 x raw sqlite3"),
    "P2": ("HTTP ingest, batch 1000, 16 clients, PostgreSQL", ">= 0.5 x asyncpg COPY"),
    "P3": ("HTTP ingest, 3 dimensions, vs InfluxDB 1.6", ">= 0.7 x InfluxDB"),
    "P4": ("MQTT QoS 1 ingest, 100-point messages, embedded", ">= 30k/s committed"),
    "P4-mosquitto": ("MQTT QoS 1 ingest, 100-point messages, Mosquitto", ">= 100k/s committed"),
    "P5": ("1-min aggregates, 30 days of 1 Hz", "<= 50 ms, >= 10 x InfluxDB"),
    "P6": ("raw range read, 100k samples, JSON", "<= 250 ms"),
    "P7": ("CSV export through the API", ">= 500k/s, memory flat"),
    "P8": ("disk per sample", "<= 30 B SQLite, <= 90 B PG"),
    "P8-postgresql": ("disk per sample, PostgreSQL", "<= 90 B"),
    "P9": ("server RSS while ingesting 60 s", "growth <= 50 MiB"),
    "P10": ("disk per sample, cold chunks", "<= 4 B, reads no slower"),
    "P10-postgresql": ("disk per sample, cold chunks, PostgreSQL", "<= 4 B"),
}

for _id, (_title, _target) in PLANNED.items():
    REGISTRY[_id] = Workload(_id, _title, _target, None)


def workload(
    id: str, title: str | None = None, target: str | None = None
) -> Callable[[WorkloadFn], WorkloadFn]:
    """Register ``fn`` as the measurement of target ``id`` (title, target: the spec's)."""

    def register(fn: WorkloadFn) -> WorkloadFn:
        planned_title, planned_target = PLANNED.get(id, (id, ""))
        REGISTRY[id] = Workload(id, title or planned_title, target or planned_target, fn)
        return fn

    return register


def todo_row(w: Workload) -> Row:
    return Row(w.id, w.title, "-", "-", None, w.target, "todo", ["not implemented yet"])


def selects(wanted: str, id: str) -> bool:
    """``--only P4`` selects P4 and its variants (``P4-mosquitto``); case does not matter."""
    wanted, id = wanted.upper(), id.upper()
    return id == wanted or id.startswith(wanted + "-")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def rate(samples_per_s: float) -> str:
    """``388k/s``, ``1.02M/s``."""
    if samples_per_s >= 1e6:
        return f"{samples_per_s / 1e6:.2f}M/s"
    if samples_per_s >= 1e3:
        return f"{samples_per_s / 1e3:.0f}k/s"
    return f"{samples_per_s:.0f}/s"
