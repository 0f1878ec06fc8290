"""P1: HTTP ingest of 1000-point single-dimension batches from 16 clients, SQLite default."""

from __future__ import annotations

import time
from typing import Any

from benchmarks import reference
from benchmarks.context import Context
from benchmarks.core import Row, median, rate, workload
from benchmarks.load import ClientSpec, LoadSpec, batch_rows, run_load

CLIENTS = 16
BATCH = 1000
STEP_MS = 1000  # 1 Hz devices
TARGET_RATIO = 0.6
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


@workload("P1")
def http_ingest_sqlite(ctx: Context) -> Row:
    server = ctx.server()
    mode = ctx.mode
    warm, timed = mode.ingest_warmup_requests, mode.ingest_requests_per_client
    ref_db = ctx.workdir / "reference-ingest.db"
    t0_ms = (int(time.time()) // 86_400) * DAY_MS - 60 * DAY_MS
    tb_rates: list[float] = []
    ref_rates: list[float] = []
    notes: list[str] = []
    runs: list[dict[str, Any]] = []
    for run in range(mode.runs):
        seed = run + 1
        targets = server.new_targets(CLIENTS, f"p1-{run}")
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

        # The reference writes exactly the timed samples, as new series in its own file.
        series = [run * CLIENTS + c + 1 for c in range(CLIENTS)]
        batches = _reference_batches(seed, series, warm, timed, t0_ms)
        seconds = reference.ingest(ref_db, batches)
        ref_rates.append(sum(len(b) for b in batches) / seconds)
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
    tb, ref = median(tb_rates), median(ref_rates)
    ratio = tb / ref
    server_share = median([r["server_cpu_core_share"] for r in runs])
    load_share = median([r["loadgen_cpu_core_share"] for r in runs])
    retries = sum(r["retries_503"] for r in runs)
    main_share = median([r["server_cpu_split"]["main"] for r in runs])
    busiest_share = median([r["server_cpu_split"]["busiest_other"] for r in runs])
    notes.append(
        f"server CPU {server_share:.0%} of one core (event-loop thread {main_share:.0%} of it, "
        f"busiest other thread {busiest_share:.0%}), load generator {load_share:.0%}; "
        f"p50 request latency {median([r['latency_ms']['p50'] for r in runs]):.0f} ms"
    )
    if retries:
        notes.append(f"{retries} requests answered 503 and were retried")
    return Row(
        id="P1",
        workload=f"HTTP ingest, batch {BATCH}, {CLIENTS} clients, SQLite",
        thingbucket=rate(tb),
        reference=f"{rate(ref)} sqlite3 executemany",
        ratio=ratio,
        target=f">= {TARGET_RATIO} x reference",
        status="pass" if ratio >= TARGET_RATIO else "fail",
        notes=notes,
        data={
            "unit": "samples/s",
            "thingbucket": tb,
            "reference": ref,
            "samples_per_run": timed * CLIENTS * BATCH,
            "runs": runs,
        },
    )
