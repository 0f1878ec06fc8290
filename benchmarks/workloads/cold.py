"""P10: disk per sample of cold chunks, and reads of cold data against the same reads hot.

A server of its own (SQLite) gets 7 (quick) / 30 (full) days of 1 Hz samples on one property,
45 days back, through the API (untimed), and its rollup pass builds their minutes. Hot, it
times P6's read (100k samples as JSON), a CSV export of a day and an aggregate that reads
samples (45 s buckets over a day: no rollup level fits 45 s). Then `thingbucket compact` packs
the days (its rate is in the notes) and the same reads are timed cold. Bytes per sample: the
pages of ``sample_chunks`` (dbstat, overflow pages included) per packed sample; the reference
is the hot sample table's pages per sample before packing.

P10-postgresql: `thingbucket compact` on P2's database (its samples lie 60 days back), then
``pg_total_relation_size('sample_chunks')`` per packed sample (after VACUUM ANALYZE).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing
from typing import Any

import orjson

from benchmarks import postgres
from benchmarks.context import Context
from benchmarks.core import Row, median, rate, workload
from benchmarks.server import Server, running_server
from benchmarks.workloads.aggregates import _dirty
from benchmarks.workloads.reads import SEED_BATCH, SEED_CLIENTS, seed_property

TARGET_BYTES = 4.0
# "No slower": cold within this factor of hot (the runs' medians move by a few % between runs).
NOISE = 1.10
DAY_MS = 86_400_000
READ_SAMPLES = 100_000
SEED = 1010


def _time_ms(fn: Callable[[], Any], runs: int) -> float:
    fn()  # warm-up
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return median(out)


def _reads(server: Server, path: str, t0_ms: int, runs: int) -> dict[str, float]:
    """The three reads' medians in ms; each checks what it got."""

    def raw() -> None:
        params = {"from": t0_ms, "to": t0_ms + READ_SAMPLES * 1000, "limit": READ_SAMPLES}
        answer = server.client.get(path, params=params)
        rows = orjson.loads(answer.content)["rows"]
        if answer.status_code != 200 or len(rows) != READ_SAMPLES:
            raise RuntimeError(f"raw read: {answer.status_code}, {len(rows)} rows")

    def csv() -> None:
        params: dict[str, str | int] = {
            "from": t0_ms + DAY_MS,
            "to": t0_ms + 2 * DAY_MS,
            "format": "csv",
        }
        answer = server.client.get(path, params=params)
        if answer.status_code != 200 or answer.text.count("\n") != 86_401:
            raise RuntimeError(f"CSV export: {answer.status_code}, {answer.text.count(chr(10))}")

    def agg() -> None:
        params: dict[str, str | int] = {
            "from": t0_ms + DAY_MS,
            "to": t0_ms + 2 * DAY_MS,
            "interval": "45s",
            "agg": "avg,min,max,count",
        }
        answer = server.client.get(path, params=params)
        rows = orjson.loads(answer.content)["rows"]
        if answer.status_code != 200 or len(rows) != 1920:
            raise RuntimeError(f"aggregate: {answer.status_code}, {len(rows)} buckets")

    return {name: _time_ms(fn, runs) for name, fn in (("raw", raw), ("csv", csv), ("agg", agg))}


def _pages_per_sample(server: Server, table: str, samples: int) -> float:
    with closing(server.connect_readonly()) as conn:
        row = conn.execute("SELECT sum(pgsize) FROM dbstat WHERE name = ?", (table,)).fetchone()
    return float(row[0] or 0) / samples


@workload("P10")
def cold_chunks(ctx: Context) -> Row:
    days = 30 if ctx.mode.name == "full" else 7
    runs = max(3, ctx.mode.read_runs)
    with running_server(ctx.workdir / "server-cold") as server:
        t0_ms = (int(time.time()) // 86_400) * DAY_MS - 45 * DAY_MS
        seeded = seed_property(server, "cold", days * 86_400, t0_ms, SEED, deadline_s=600.0)
        while _dirty(server):  # packing waits for the minutes' rollups
            time.sleep(0.2)
        path = seeded.target.points_path
        hot_bytes = _pages_per_sample(server, "samples_num", seeded.samples)
        hot = _reads(server, path, t0_ms, runs)
        started = time.perf_counter()
        done = server.cli("compact")
        pack_s = time.perf_counter() - started
        if f"samples packed: {seeded.samples}" not in done.stderr:
            raise RuntimeError(f"compact did not pack every sample: {done.stderr[-300:]}")
        cold = _reads(server, path, t0_ms, runs)
        cold_bytes = _pages_per_sample(server, "sample_chunks", seeded.samples)
    slower = {k: cold[k] / hot[k] for k in hot}
    ok = cold_bytes <= TARGET_BYTES and all(r <= NOISE for r in slower.values())
    return Row(
        id="P10",
        workload=f"disk per sample, cold chunks ({days} days of 1 Hz)",
        thingbucket=f"{cold_bytes:.2f} B",
        reference=f"{hot_bytes:.1f} B hot sample table",
        ratio=cold_bytes / hot_bytes,
        target=f"<= {TARGET_BYTES:.0f} B, reads no slower",
        status="pass" if ok else "fail",
        notes=[
            f"{seeded.samples} samples (values with 2 decimals at random in [-40, 60], 1 Hz), "
            f"seeded at {rate(seeded.samples_per_s)} (batch {SEED_BATCH}, {SEED_CLIENTS} "
            f"clients, untimed); `thingbucket compact` packed them in {pack_s:.1f} s "
            f"({rate(seeded.samples / pack_s)}, the CLI's start included)",
            "reads hot -> cold (medians of "
            f"{runs}): 100k samples as JSON {hot['raw']:.0f} -> {cold['raw']:.0f} ms, a day as "
            f"CSV {hot['csv']:.0f} -> {cold['csv']:.0f} ms, 45 s aggregates of a day "
            f"{hot['agg']:.0f} -> {cold['agg']:.0f} ms; 'no slower' allows "
            f"{NOISE - 1:.0%} for run-to-run noise",
        ],
        data={
            "unit": "bytes/sample",
            "thingbucket": cold_bytes,
            "reference": hot_bytes,
            "hot_ms": hot,
            "cold_ms": cold,
            "pack_s": pack_s,
            "samples": seeded.samples,
        },
    )


@workload("P10-postgresql", title="disk per sample, cold chunks, PostgreSQL")
def cold_chunks_postgres(ctx: Context) -> Row:
    url = ctx.shared.get("postgres_url")
    if not isinstance(url, str):
        return Row(
            "P10-postgresql", "disk per sample, cold chunks, PostgreSQL", "-", "n/a", None,
            f"<= {TARGET_BYTES:.0f} B", "skipped", ["packs P2's data: run it with P2"],
        )  # fmt: skip
    with running_server(ctx.workdir / "server-cold-pg", database_url=url) as server:
        while int(postgres.fetch(url, "SELECT count(*) FROM rollup_dirty")[0][0]):
            time.sleep(0.2)
        hot_samples = int(postgres.fetch(url, "SELECT count(*) FROM samples_num")[0][0])
        hot_bytes = postgres.table_bytes(url, "samples_num") / hot_samples
        done = server.cli("compact")
    postgres.fetch(url, "VACUUM ANALYZE")
    packed = int(postgres.fetch(url, "SELECT coalesce(sum(n), 0) FROM sample_chunks")[0][0])
    chunks = int(postgres.fetch(url, "SELECT count(*) FROM sample_chunks")[0][0])
    size = int(postgres.fetch(url, "SELECT pg_total_relation_size('sample_chunks')")[0][0])
    if not packed:
        raise RuntimeError(f"compact packed nothing: {done.stderr[-300:]}")
    per_sample = size / packed
    return Row(
        id="P10-postgresql",
        workload="disk per sample, cold chunks, PostgreSQL",
        thingbucket=f"{per_sample:.2f} B",
        reference=f"{hot_bytes:.1f} B hot sample table",
        ratio=per_sample / hot_bytes,
        target=f"<= {TARGET_BYTES:.0f} B",
        status="pass" if per_sample <= TARGET_BYTES else "fail",
        notes=[
            f"{packed} samples of P2 (2-decimal values, 1 Hz, {chunks} chunks: each P2 request "
            "series holds a few hours of a day) packed by `thingbucket compact`; "
            "pg_total_relation_size of sample_chunks (heap, TOAST, index) per packed sample"
        ],
        data={"unit": "bytes/sample", "thingbucket": per_sample, "reference": hot_bytes},
    )
