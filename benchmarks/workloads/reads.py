"""P6 (raw range read as JSON) and P7 (CSV export), on one seeded property."""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass

import httpx
import orjson

from benchmarks import reference
from benchmarks.context import Context
from benchmarks.core import Row, median, rate, workload
from benchmarks.load import ClientSpec, LoadSpec, run_load
from benchmarks.server import RssSampler, Server, Target

STEP_MS = 1000
DAY_MS = 86_400_000
SEED_CLIENTS = 4
SEED_BATCH = 10_000  # the server's points_per_request limit
P6_SAMPLES = 100_000
P6_TARGET_MS = 250.0
P7_TARGET_RATE = 500_000.0
P7_FLAT_MIB = 25.0  # RSS growth during an export that still counts as "flat"
MAX_PAGES = 1000  # bounds the cursor loop


@dataclass(frozen=True, slots=True)
class ReadData:
    target: Target
    series_id: int
    t0_ms: int
    samples: int

    def params(self, samples: int) -> dict[str, str]:
        return {"from": str(self.t0_ms), "to": str(self.t0_ms + samples * STEP_MS)}


@dataclass(frozen=True, slots=True)
class Seeded:
    target: Target
    starts: list[int]  # each seeding client's first timestamp (ms); their spans follow on
    samples: int
    samples_per_s: float


def seed_property(
    server: Server, label: str, samples: int, t0_ms: int, seed: int, deadline_s: float
) -> Seeded:
    """A new property with at least ``samples`` samples at 1 Hz from ``t0_ms``, written through
    the API by SEED_CLIENTS clients in consecutive spans (untimed)."""
    per_client = -(-samples // (SEED_CLIENTS * SEED_BATCH))
    (target,) = server.new_targets(1, label)
    span = per_client * SEED_BATCH * STEP_MS
    starts = [t0_ms + c * span for c in range(SEED_CLIENTS)]
    spec = LoadSpec(
        url=server.url,
        token=server.token,
        clients=[ClientSpec(target.points_path, s, STEP_MS) for s in starts],
        requests_per_client=per_client,
        batch=SEED_BATCH,
        seed=seed,
        deadline_s=deadline_s,
    )
    result = run_load(spec)
    if not result.ok:
        raise RuntimeError(f"seeding failed: statuses {result.statuses}; {result.errors[:3]}")
    return Seeded(target, starts, per_client * SEED_CLIENTS * SEED_BATCH, result.samples_per_s)


def read_data(ctx: Context) -> ReadData:
    """One property holding ``mode.read_samples`` samples at 1 Hz, written through the API
    once per run (untimed) and shared by the read workloads."""
    cached = ctx.shared.get("read_data")
    if isinstance(cached, ReadData):
        return cached
    server = ctx.server()
    t0_ms = (int(time.time()) // 86_400) * DAY_MS - 30 * DAY_MS
    seeded = seed_property(
        server, "reads", max(ctx.mode.read_samples, P6_SAMPLES), t0_ms, seed=99, deadline_s=300.0
    )
    (series_id,) = server.series_ids([seeded.target])
    stored = server.stored_samples([series_id])
    if stored != seeded.samples:
        raise RuntimeError(f"seeding stored {stored} samples, {seeded.samples} acknowledged")
    data = ReadData(seeded.target, series_id, t0_ms, seeded.samples)
    ctx.shared["read_data"] = data
    ctx.shared["read_seed_samples_per_s"] = seeded.samples_per_s
    return data


def _read_json(server: Server, data: ReadData, samples: int) -> tuple[float, int]:
    """Seconds spent in HTTP (JSON parsing between pages excluded) and rows received,
    following ``next_cursor`` until it is null."""
    params = data.params(samples) | {"limit": "100000"}
    spent, rows = 0.0, 0
    for _ in range(MAX_PAGES):
        started = time.perf_counter()
        response = server.client.get(data.target.points_path, params=params)
        spent += time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"read -> {response.status_code}: {response.text[:300]}")
        page = orjson.loads(response.content)
        rows += len(page["rows"])
        if not page.get("next_cursor"):
            return spent, rows
        params = params | {"cursor": page["next_cursor"]}
    raise RuntimeError(f"more than {MAX_PAGES} pages")


@workload("P6")
def raw_read_json(ctx: Context) -> Row:
    server = ctx.server()
    data = read_data(ctx)
    _read_json(server, data, P6_SAMPLES)  # warm-up: caches, page cache, connection
    tb_ms: list[float] = []
    for _ in range(ctx.mode.read_runs):
        seconds, rows = _read_json(server, data, P6_SAMPLES)
        if rows != P6_SAMPLES:
            raise RuntimeError(f"read {rows} rows, expected {P6_SAMPLES}")
        tb_ms.append(seconds * 1000)
    end_us = (data.t0_ms + P6_SAMPLES * STEP_MS) * 1000
    with closing(server.connect_readonly()) as conn:
        ref_ms = [
            reference.read_range(conn, data.series_id, data.t0_ms * 1000, end_us) * 1000
            for _ in range(ctx.mode.read_runs)
        ]
    tb, ref = median(tb_ms), median(ref_ms)
    return Row(
        id="P6",
        workload="raw range read, 100k samples, JSON",
        thingbucket=f"{tb:.0f} ms",
        reference=f"{ref:.0f} ms sqlite3 fetchall",
        ratio=tb / ref,
        target=f"<= {P6_TARGET_MS:.0f} ms",
        status="pass" if tb <= P6_TARGET_MS else "fail",
        notes=[
            "ratio = latency / raw sqlite3 latency (the target is absolute)",
            f"seeded {data.samples} samples through the API at "
            f"{rate(ctx.shared['read_seed_samples_per_s'])} (batch {SEED_BATCH}, "
            f"{SEED_CLIENTS} clients, untimed)",
        ],
        data={
            "unit": "ms",
            "thingbucket": tb,
            "reference": ref,
            "runs_ms": tb_ms,
            "ref_ms": ref_ms,
            "seed_samples_per_s": ctx.shared["read_seed_samples_per_s"],
        },
    )


class CsvUnavailable(Exception):
    """The server refuses ``format=csv`` (400/422): the export is not built yet."""


@dataclass(frozen=True, slots=True)
class Export:
    seconds: float
    rows: int
    bytes: int
    header: str
    content_type: str
    rss_growth_mib: float


def _export_csv(server: Server, data: ReadData) -> Export:
    params = data.params(data.samples) | {"format": "csv"}
    newlines, size, head = 0, 0, b""
    last = b"\n"
    with RssSampler(server) as rss:
        started = time.perf_counter()
        with server.client.stream("GET", data.target.points_path, params=params) as response:
            if response.status_code in (400, 422):
                response.read()
                raise CsvUnavailable(f"{response.status_code}: {response.text[:200]}")
            if response.status_code != 200:
                response.read()
                raise RuntimeError(f"export -> {response.status_code}: {response.text[:300]}")
            for chunk in response.iter_raw():
                if not chunk:
                    continue
                if len(head) < 256:
                    head += chunk[:256]
                newlines += chunk.count(b"\n")
                size += len(chunk)
                last = chunk
        seconds = time.perf_counter() - started
        content_type = response.headers.get("content-type", "")
    lines = newlines + (0 if last.endswith(b"\n") else 1)
    header = head.split(b"\n", 1)[0].decode(errors="replace").strip()
    return Export(seconds, lines - 1, size, header, content_type, rss.growth_mib)


@workload("P7")
def csv_export(ctx: Context) -> Row:
    server = ctx.server()
    data = read_data(ctx)
    exports: list[Export] = []
    try:
        for _ in range(ctx.mode.runs):
            exports.append(_export_csv(server, data))
    except CsvUnavailable as exc:
        return Row(
            id="P7",
            workload="CSV export",
            thingbucket="n/a",
            reference="-",
            ratio=None,
            target=f">= {rate(P7_TARGET_RATE)}, memory flat",
            status="n/a",
            notes=[f"n/a (CSV export not available): format=csv answered {exc}"],
        )
    except httpx.HTTPError as exc:
        raise RuntimeError(f"export failed: {type(exc).__name__}: {exc}") from exc
    end_us = (data.t0_ms + data.samples * STEP_MS) * 1000
    with closing(server.connect_readonly()) as conn:
        ref_s = [
            reference.export_csv(conn, data.series_id, data.t0_ms * 1000, end_us)
            for _ in range(ctx.mode.runs)
        ]
    tb = median([e.rows / e.seconds for e in exports])
    ref = data.samples / median(ref_s)
    growth = max(e.rss_growth_mib for e in exports)
    notes = []
    problems = []
    if any(e.rows != data.samples for e in exports):
        problems.append(f"rows received {[e.rows for e in exports]}, expected {data.samples}")
    if exports[0].header != "ts,value":
        problems.append(f"header {exports[0].header!r}, expected 'ts,value'")
    if not exports[0].content_type.startswith("text/csv"):
        problems.append(f"content-type {exports[0].content_type!r}")
    notes.extend(problems)
    notes.append(f"{data.samples} samples per export; RSS growth is the largest of the runs")
    ok = tb >= P7_TARGET_RATE and growth <= P7_FLAT_MIB and not problems
    return Row(
        id="P7",
        workload=f"CSV export, {data.samples // 1000}k samples",
        thingbucket=f"{rate(tb)}, RSS +{growth:.1f} MiB",
        reference=f"{rate(ref)} sqlite3 + csv",
        ratio=tb / ref,
        target=f">= {rate(P7_TARGET_RATE)}, RSS growth <= {P7_FLAT_MIB:.0f} MiB",
        status="pass" if ok else "fail",
        notes=notes,
        data={
            "unit": "samples/s",
            "thingbucket": tb,
            "reference": ref,
            "rss_growth_mib": growth,
            "runs": [
                {
                    "samples_per_s": e.rows / e.seconds,
                    "rows": e.rows,
                    "bytes": e.bytes,
                    "rss_growth_mib": e.rss_growth_mib,
                }
                for e in exports
            ],
        },
    )
