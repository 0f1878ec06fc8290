"""P10: disk per sample of cold chunks, and reads of cold data against the same reads hot.

P6's data set (400k quick / 1M full samples at 1 Hz on one property, 30 days back, on the
shared server) is read three ways while hot: P6's 100k samples as JSON, its second day as CSV,
45 s aggregates of that day (no rollup level fits 45 s, so they read samples). Then
`thingbucket compact --property` packs it (its rate is in the notes) and the same reads are
timed cold. Bytes per sample: the pages of ``sample_chunks`` (dbstat, overflow pages included)
per packed sample; the reference is the sample table's pages per sample before packing (P8's).

P10-postgresql: `thingbucket compact` on P2's database (its samples lie 60 days back; P2 waits
for their rollups), then ``pg_total_relation_size('sample_chunks')`` per packed sample (after
VACUUM ANALYZE).
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Callable
from contextlib import closing
from typing import Any

import orjson

from benchmarks import postgres
from benchmarks.context import Context
from benchmarks.core import Row, median, rate, workload
from benchmarks.server import Server, child_env, thingbucket_cmd
from benchmarks.workloads.aggregates import _dirty
from benchmarks.workloads.reads import read_data

TARGET_BYTES = 4.0
# "No slower": cold within this factor of hot (the runs' medians move by a few % between runs).
NOISE = 1.10
DAY_MS = 86_400_000
READ_SAMPLES = 100_000


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


def _pages_per_sample(server: Server, table: str, samples: int | None) -> float:
    """Bytes of ``table``'s pages per sample (of all the table holds, if ``samples`` is None)."""
    with closing(server.connect_readonly()) as conn:
        row = conn.execute("SELECT sum(pgsize) FROM dbstat WHERE name = ?", (table,)).fetchone()
        if samples is None:
            samples = int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    return float(row[0] or 0) / samples


@workload("P10")
def cold_chunks(ctx: Context) -> Row:
    server = ctx.server()
    data = read_data(ctx)
    runs = max(3, ctx.mode.read_runs)
    while _dirty(server):  # packing waits for the minutes' rollups (P9 just wrote)
        time.sleep(0.2)
    hot_bytes = _pages_per_sample(server, "samples_num", None)
    path = data.target.points_path
    hot = _reads(server, path, data.t0_ms, runs)
    started = time.perf_counter()
    done = server.cli("compact", "--property", data.target.property_id)
    pack_s = time.perf_counter() - started
    if f"samples packed: {data.samples}" not in done.stderr:
        raise RuntimeError(f"compact did not pack every sample: {done.stderr[-300:]}")
    cold = _reads(server, path, data.t0_ms, runs)
    cold_bytes = _pages_per_sample(server, "sample_chunks", data.samples)
    slower = {k: cold[k] / hot[k] for k in hot}
    ok = cold_bytes <= TARGET_BYTES and all(r <= NOISE for r in slower.values())
    return Row(
        id="P10",
        workload=f"disk per sample, cold chunks ({data.samples // 1000}k samples, 1 Hz)",
        thingbucket=f"{cold_bytes:.2f} B",
        reference=f"{hot_bytes:.1f} B hot sample table",
        ratio=cold_bytes / hot_bytes,
        target=f"<= {TARGET_BYTES:.0f} B, reads no slower",
        status="pass" if ok else "fail",
        notes=[
            f"P6's {data.samples} samples (values with 2 decimals at random in [-40, 60]); "
            f"`thingbucket compact --property` packed them in {pack_s:.1f} s "
            f"({rate(data.samples / pack_s)}, the CLI's start included)",
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
            "samples": data.samples,
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
    hot_samples = int(postgres.fetch(url, "SELECT count(*) FROM samples_num")[0][0])
    hot_bytes = postgres.table_bytes(url, "samples_num") / hot_samples
    done = subprocess.run(
        thingbucket_cmd("compact", "--data-dir", str(ctx.workdir / "compact-pg")),
        env=child_env(secrets.token_urlsafe(48)) | {"THINGBUCKET_DATABASE__URL": url},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"compact failed: {done.stderr[-300:]}")
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
