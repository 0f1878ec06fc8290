"""P1 and P2: HTTP ingest of 1000-point single-dimension batches from 16 clients, on SQLite (the
default) and on PostgreSQL, each against its raw driver."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks import postgres, reference
from benchmarks.context import Context
from benchmarks.core import Row, median, rate, workload
from benchmarks.load import ClientSpec, LoadSpec, batch_rows, run_load
from benchmarks.server import Server, running_server

CLIENTS = 16
BATCH = 1000
STEP_MS = 1000  # 1 Hz devices
TARGET_RATIO = 0.6
PG_TARGET_RATIO = 0.5
DAY_MS = 86_400_000


def _reference_batches(
    seed: int, series: list[int], first: int, requests: int, t0_ms: int
) -> list[reference.Batch]:
    """The timed batches of the HTTP run, in the order 16 clients would interleave them."""
    out = []
    for index in range(first, first + requests):
        for client, sid in enumerate(series):
            rows = batch_rows(seed, client, index, BATCH, t0_ms, STEP_MS)
            out.append([(sid, ts * 1000, value) for ts, value in rows])
    return out


def _thread_shares(
    before: dict[int, float], after: dict[int, float], main: int, total: float
) -> dict[str, float]:
    delta = {tid: cpu - before.get(tid, 0.0) for tid, cpu in after.items()}
    main_cpu = delta.pop(main, 0.0)
    busiest = max(delta.values(), default=0.0)
    if total <= 0:
        return {"main": 0.0, "busiest_other": 0.0, "rest": 0.0}
    return {
        "main": main_cpu / total,
        "busiest_other": busiest / total,
        "rest": max(0.0, total - main_cpu - busiest) / total,
    }


@dataclass(slots=True)
class Measured:
    tb: float  # median samples/s
    ref: float
    runs: list[dict[str, Any]]
    notes: list[str]


def _measure(
    ctx: Context,
    server: Server,
    label: str,
    reference_rate: Callable[[list[reference.Batch]], float],
    timed: int,
) -> Measured:
    """``mode.runs`` runs of 16 clients posting ``timed`` 1000-point batches each to new
    properties; after each, the stored count is checked and ``reference_rate`` writes the same
    timed samples."""
    mode = ctx.mode
    warm = mode.ingest_warmup_requests
    t0_ms = (int(time.time()) // 86_400) * DAY_MS - 60 * DAY_MS
    tb_rates: list[float] = []
    ref_rates: list[float] = []
    runs: list[dict[str, Any]] = []
    for run in range(mode.runs):
        seed = run + 1
        targets = server.new_targets(CLIENTS, f"{label}-{run}")
        spec = LoadSpec(
            url=server.url,
            token=server.token,
            clients=[ClientSpec(t.points_path, t0_ms, STEP_MS) for t in targets],
            requests_per_client=timed,
            batch=BATCH,
            warmup_requests=warm,
            seed=seed,
            deadline_s=240.0,
        )
        cpu_before, threads_before = server.cpu_seconds(), server.thread_cpu()
        result = run_load(spec)
        server_cpu = server.cpu_seconds() - cpu_before
        threads = _thread_shares(threads_before, server.thread_cpu(), server.pid, server_cpu)
        if not result.ok:
            raise RuntimeError(
                f"run {run}: {result.requests} of {timed * CLIENTS} requests answered 204; "
                f"statuses {result.statuses}; {result.errors[:3]}"
            )
        expected = (warm + timed) * CLIENTS * BATCH
        stored = server.stored_samples(server.series_ids(targets))
        if stored != expected:
            raise RuntimeError(f"run {run}: {stored} samples stored, {expected} acknowledged")
        tb_rates.append(result.samples_per_s)

        # The reference writes exactly the timed samples, as new series of its own.
        series = [run * CLIENTS + c + 1 for c in range(CLIENTS)]
        batches = _reference_batches(seed, series, warm, timed, t0_ms)
        ref_rates.append(reference_rate(batches))
        # Server CPU per acknowledged sample (warm-up included), then the share of a core it
        # needs at the measured rate.
        cpu_per_sample = server_cpu / expected
        runs.append(
            {
                "thingbucket_samples_per_s": result.samples_per_s,
                "reference_samples_per_s": ref_rates[-1],
                "samples": result.samples,
                "elapsed_s": result.elapsed_s,
                "retries_503": result.retries,
                "statuses": result.statuses,
                "latency_ms": result.latency_ms,
                "server_cpu_core_share": cpu_per_sample * result.samples_per_s,
                # Of the server's CPU time: the event-loop (main) thread, the busiest other
                # thread (the SQLite writer, when it is the bottleneck), the rest.
                "server_cpu_split": threads,
                "loadgen_cpu_core_share": result.cpu_s / result.elapsed_s,
                "generate_s": result.generate_s,
            }
        )
    server_share = median([r["server_cpu_core_share"] for r in runs])
    load_share = median([r["loadgen_cpu_core_share"] for r in runs])
    retries = sum(r["retries_503"] for r in runs)
    main_share = median([r["server_cpu_split"]["main"] for r in runs])
    busiest_share = median([r["server_cpu_split"]["busiest_other"] for r in runs])
    notes = [
        f"server CPU {server_share:.0%} of one core (event-loop thread {main_share:.0%} of it, "
        f"busiest other thread {busiest_share:.0%}), load generator {load_share:.0%}; "
        f"p50 request latency {median([r['latency_ms']['p50'] for r in runs]):.0f} ms"
    ]
    if retries:
        notes.append(f"{retries} requests answered 503 and were retried")
    return Measured(median(tb_rates), median(ref_rates), runs, notes)


def _row(id: str, backend: str, m: Measured, reference_name: str, target: float) -> Row:
    ratio = m.tb / m.ref
    return Row(
        id=id,
        workload=f"HTTP ingest, batch {BATCH}, {CLIENTS} clients, {backend}",
        thingbucket=rate(m.tb),
        reference=f"{rate(m.ref)} {reference_name}",
        ratio=ratio,
        target=f">= {target} x reference",
        status="pass" if ratio >= target else "fail",
        notes=m.notes,
        data={
            "unit": "samples/s",
            "thingbucket": m.tb,
            "reference": m.ref,
            "samples_per_run": m.runs[0]["samples"] if m.runs else 0,
            "runs": m.runs,
        },
    )


@workload("P1")
def http_ingest_sqlite(ctx: Context) -> Row:
    ref_db = ctx.workdir / "reference-ingest.db"

    def sqlite_rate(batches: list[reference.Batch]) -> float:
        seconds = reference.ingest(ref_db, batches)
        return sum(len(b) for b in batches) / seconds

    m = _measure(ctx, ctx.server(), "p1", sqlite_rate, ctx.mode.ingest_requests_per_client)
    return _row("P1", "SQLite", m, "sqlite3 executemany", TARGET_RATIO)


@workload("P2")
def http_ingest_postgres(ctx: Context) -> Row:
    why = postgres.unavailable()
    if why is not None:
        return Row(
            "P2", "HTTP ingest, batch 1000, 16 clients, PostgreSQL", "-", "n/a", None,
            f">= {PG_TARGET_RATIO} x reference", "skipped",
            [f"PostgreSQL at {postgres.admin_url()} not reachable: {why}"],
        )  # fmt: skip
    url = ctx.stack.enter_context(postgres.fresh_database())
    ctx.shared["postgres_url"] = url  # P8-postgresql measures what P2 stored
    server = ctx.stack.enter_context(running_server(ctx.workdir / "server-pg", database_url=url))

    def copy_rate(batches: list[reference.Batch]) -> float:
        seconds = postgres.copy_ingest(url, batches)
        return sum(len(b) for b in batches) / seconds

    m = _measure(ctx, server, "p2", copy_rate, ctx.mode.side_requests_per_client)
    m.notes.append(
        "server on a fresh PostgreSQL database (dropped afterwards); reference: asyncpg "
        "copy_records_to_table of the same samples, batch 1000, one transaction per batch, one "
        "connection, into a table keyed (series_id, ts) in the same database"
    )
    row = _row("P2", "PostgreSQL", m, "asyncpg COPY", PG_TARGET_RATIO)
    # P10-postgresql packs these samples: a day is packed once its minutes are built.
    deadline = time.monotonic() + 60
    while postgres.fetch(url, "SELECT count(*) FROM rollup_dirty")[0][0]:
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    server.stop()
    if ctx.mode.name == "full":
        row.notes.append(_two_workers(ctx))
    return row


def _two_workers(ctx: Context) -> str:
    """The same load against ``serve --workers 2`` (MQTT off) on a database of its own: whether
    a second server process pays on this machine (the reference is not run again)."""
    env = {"THINGBUCKET_SERVER__WORKERS": "2", "THINGBUCKET_MQTT__ENABLED": "0"}
    with (
        postgres.fresh_database() as url,
        running_server(ctx.workdir / "server-pg-workers", database_url=url, extra_env=env) as s,
    ):
        m = _measure(ctx, s, "p2w", lambda _batches: 1.0, ctx.mode.side_requests_per_client)
    return (
        f"with --workers 2 (two server processes on the port): {rate(m.tb)}, medians of "
        f"{len(m.runs)} runs; PostgreSQL's backends and the workers share the 2 cores"
    )


PG_TARGET_BYTES = 90.0


@workload("P8-postgresql")
def disk_per_sample_postgres(ctx: Context) -> Row:
    """Heap, indexes and TOAST of ``samples_num`` (all its partitions) and ``rollups`` per
    stored sample, on the database P2 wrote."""
    url = ctx.shared.get("postgres_url")
    if not isinstance(url, str):
        return Row(
            "P8-postgresql", "disk per sample, PostgreSQL", "-", "n/a", None,
            f"<= {PG_TARGET_BYTES:.0f} B", "skipped", ["measures P2's data: run it with P2"],
        )  # fmt: skip
    postgres.fetch(url, "VACUUM ANALYZE")  # the visibility map and free space settle first
    samples = int(postgres.fetch(url, "SELECT count(*) FROM samples_num")[0][0])
    table = postgres.table_bytes(url, "samples_num")
    rollups = postgres.table_bytes(url, "rollups")
    per_sample = (table + rollups) / samples
    return Row(
        id="P8-postgresql",
        workload="disk per sample, PostgreSQL (samples + rollups)",
        thingbucket=f"{per_sample:.1f} B",
        reference=f"{table / samples:.1f} B samples table alone",
        ratio=per_sample / (table / samples),
        target=f"<= {PG_TARGET_BYTES:.0f} B (PostgreSQL)",
        status="pass" if per_sample <= PG_TARGET_BYTES else "fail",
        notes=[
            f"{samples} samples written by P2; pg_total_relation_size of every samples_num "
            "partition and of rollups, after VACUUM ANALYZE"
        ],
        data={"unit": "bytes/sample", "samples": samples, "table": table, "rollups": rollups},
    )
