"""P3: HTTP ingest of 3-dimension points against InfluxDB 1.6 line protocol, same points, same
concurrency (16 clients, one connection each, 1000 points per request)."""

from __future__ import annotations

import time
from typing import Any

from benchmarks import influx, reference
from benchmarks.context import Context
from benchmarks.core import Row, median, rate, workload
from benchmarks.load import ClientSpec, LoadResult, LoadSpec, point_rows, run_load

CLIENTS = 16
BATCH = 1000
DIMS = 3
STEP_MS = 1000
DAY_MS = 86_400_000
TARGET_RATIO = 0.7


def _spec(url: str, token: str, clients: list[ClientSpec], ctx: Context, seed: int) -> LoadSpec:
    return LoadSpec(
        url=url,
        token=token,
        clients=clients,
        requests_per_client=ctx.mode.side_requests_per_client,
        batch=BATCH,
        warmup_requests=ctx.mode.ingest_warmup_requests,
        seed=seed,
        deadline_s=240.0,
        dims=DIMS,
        body="json" if token else "line",
    )


def _floor_rate(ctx: Context, seed: int, run: int, t0_ms: int) -> float:
    """Points/s of the raw sqlite3 driver storing the same values (one row per value, as the
    server does), timed requests only, in the order 16 clients interleave them."""
    mode = ctx.mode
    warm = mode.ingest_warmup_requests
    batches: list[reference.Batch] = []
    for index in range(warm, warm + mode.side_requests_per_client):
        for c in range(CLIENTS):
            rows = point_rows(seed, c, index, BATCH, t0_ms, STEP_MS, DIMS)
            base = (run * CLIENTS + c) * DIMS + 1
            batches.append(
                [(base + d, ts * 1000, values[d]) for ts, *values in rows for d in range(DIMS)]
            )
    seconds = reference.ingest(ctx.workdir / "reference-p3.db", batches)
    return len(batches) * BATCH / seconds


def _checked(result: LoadResult, who: str, run: int) -> LoadResult:
    if not result.ok:
        raise RuntimeError(
            f"{who} run {run}: {result.requests} requests answered 204; statuses "
            f"{result.statuses}; {result.errors[:3]}"
        )
    return result


@workload("P3")
def http_ingest_3_dims(ctx: Context) -> Row:
    if not influx.available():
        return Row(
            "P3", "HTTP ingest, 3 dimensions, vs InfluxDB 1.6", "-", "n/a", None,
            f">= {TARGET_RATIO} x InfluxDB", "skipped",
            ["InfluxDB not installed (Debian package influxdb): no reference"],
        )  # fmt: skip
    server = ctx.server()
    mode = ctx.mode
    per_run = (mode.ingest_warmup_requests + mode.side_requests_per_client) * CLIENTS * BATCH
    t0_ms = (int(time.time()) // 86_400) * DAY_MS - 90 * DAY_MS
    tb_rates: list[float] = []
    ref_rates: list[float] = []
    floor_rates: list[float] = []
    runs: list[dict[str, Any]] = []
    with influx.running_influx(ctx.workdir / "influx-p3") as db:
        for run in range(mode.runs):
            seed = 300 + run
            targets = server.new_targets(CLIENTS, f"p3-{run}", dims=DIMS)
            clients = [ClientSpec(t.points_path, t0_ms, STEP_MS) for t in targets]
            tb = _checked(run_load(_spec(server.url, server.token, clients, ctx, seed)), "tb", run)
            stored = server.stored_samples(server.series_ids(targets))
            if stored != per_run * DIMS:
                raise RuntimeError(f"run {run}: {stored} values stored, {per_run * DIMS} sent")
            path = f"/write?db={influx.DATABASE}&precision=ms"
            lines = [ClientSpec(path, t0_ms, STEP_MS, tag=f"r{run}c{c}") for c in range(CLIENTS)]
            ref = _checked(run_load(_spec(db.url, "", lines, ctx, seed)), "InfluxDB", run)
            counted = db.query(f"SELECT count(x0) FROM m WHERE c =~ /^r{run}c/")
            points = counted["results"][0]["series"][0]["values"][0][1]
            if points != per_run:
                raise RuntimeError(f"InfluxDB run {run}: {points} points stored, {per_run} sent")
            tb_rates.append(tb.samples_per_s)
            ref_rates.append(ref.samples_per_s)
            if run == 0:  # a note, not the figure: once is enough
                floor_rates.append(_floor_rate(ctx, seed, run, t0_ms))
            runs.append(
                {
                    "thingbucket_points_per_s": tb.samples_per_s,
                    "influx_points_per_s": ref.samples_per_s,
                    "thingbucket_latency_ms": tb.latency_ms,
                    "influx_latency_ms": ref.latency_ms,
                    "loadgen_cpu_core_share": tb.cpu_s / tb.elapsed_s,
                }
            )
        version = db.version
    tb_rate, ref_rate, floor = median(tb_rates), median(ref_rates), median(floor_rates)
    ratio = tb_rate / ref_rate
    return Row(
        id="P3",
        workload=f"HTTP ingest, {DIMS} dimensions, batch {BATCH}, {CLIENTS} clients",
        thingbucket=f"{rate(tb_rate)} points",
        reference=f"{rate(ref_rate)} InfluxDB {version}",
        ratio=ratio,
        target=f">= {TARGET_RATIO} x InfluxDB",
        status="pass" if ratio >= TARGET_RATIO else "fail",
        notes=[
            f'points of {DIMS} numbers: thingbucket POST {{"points": [[ts, x0, x1, x2], ...]}} '
            f"to one 3-dimension property per client, InfluxDB line protocol "
            f"`m,c=<client> x0=..,x1=..,x2=.. <ts>` to /write (precision ms); same values, same "
            f"load generator, stored counts checked on both sides",
            f"values/s: thingbucket {rate(tb_rate * DIMS)}, InfluxDB {rate(ref_rate * DIMS)}",
            f"the raw sqlite3 floor (executemany of the same values, a row each, batch "
            f"{BATCH * DIMS}): {rate(floor)} points, {floor / ref_rate:.2f} x InfluxDB; "
            f"thingbucket reaches {tb_rate / floor:.2f} of it",
        ],
        data={
            "unit": "points/s",
            "thingbucket": tb_rate,
            "reference": ref_rate,
            "sqlite3_floor_points_per_s": floor,
            "runs": runs,
        },
    )
