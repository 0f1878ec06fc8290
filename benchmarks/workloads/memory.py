"""P9: the server's memory while it ingests without a break (60 s; 10 s in --quick)."""

from __future__ import annotations

import time

from benchmarks.context import Context
from benchmarks.core import Row, rate, workload
from benchmarks.load import ClientSpec, LoadSpec, run_load
from benchmarks.server import RssSampler

CLIENTS = 16
BATCH = 1000
STEP_MS = 1000
DAY_MS = 86_400_000
EXPECTED_RATE = 150_000  # samples/s, to size a run of about the wanted length
TARGET_MIB = 50.0


@workload("P9")
def memory_while_ingesting(ctx: Context) -> Row:
    server = ctx.server()
    seconds = 60 if ctx.mode.name == "full" else 10
    targets = server.new_targets(CLIENTS, "p9")
    t0_ms = (int(time.time()) // 86_400) * DAY_MS - 100 * DAY_MS

    def load(first_request: int, requests: int, seed: int) -> LoadSpec:
        return LoadSpec(
            url=server.url,
            token=server.token,
            clients=[
                ClientSpec(t.points_path, t0_ms + first_request * BATCH * STEP_MS, STEP_MS)
                for t in targets
            ],
            requests_per_client=requests,
            batch=BATCH,
            seed=seed,
            deadline_s=seconds * 4 + 60,
        )

    warm = run_load(load(0, 10, 91))  # caches, pools, the writer's statements
    if not warm.ok:
        raise RuntimeError(f"warm-up failed: {warm.statuses}; {warm.errors[:3]}")
    requests = max(10, EXPECTED_RATE * seconds // (CLIENTS * BATCH))
    with RssSampler(server, interval_s=0.05) as rss:
        result = run_load(load(10, requests, 92))
    if not result.ok:
        raise RuntimeError(f"load failed: {result.statuses}; {result.errors[:3]}")
    growth = rss.growth_mib
    return Row(
        id="P9",
        workload=f"server RSS while ingesting {result.elapsed_s:.0f} s",
        thingbucket=f"+{growth:.1f} MiB",
        reference=f"{rss.baseline / 2**20:.0f} MiB after warm-up",
        ratio=rss.peak / rss.baseline if rss.baseline else None,  # peak / level: 1.00 is flat
        target=f"growth <= {TARGET_MIB:.0f} MiB",
        status="pass" if growth <= TARGET_MIB else "fail",
        notes=[
            f"{CLIENTS} clients, batch {BATCH}, {result.samples} samples at "
            f"{rate(result.samples_per_s)}; RSS of the server and its children every 50 ms, "
            "peak minus the level after a 160,000-sample warm-up; ratio = peak / that level"
        ],
        data={
            "unit": "MiB",
            "growth_mib": growth,
            "baseline_bytes": rss.baseline,
            "peak_bytes": rss.peak,
            "samples": result.samples,
            "elapsed_s": result.elapsed_s,
        },
    )
