"""P5 (1-minute aggregates over 30 days of 1 Hz, rollups, vs InfluxDB 1.6) and P8 (disk)."""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass

from benchmarks import influx
from benchmarks.context import Context
from benchmarks.core import Row, Status, median, rate, workload
from benchmarks.load import batch_rows
from benchmarks.server import Server, Target
from benchmarks.workloads.reads import SEED_BATCH, SEED_CLIENTS, seed_property

STEP_MS = 1000
DAY_MS = 86_400_000
SEED = 55  # of the values, so that InfluxDB gets exactly the samples the server got
P5_TARGET_MS = 50.0
P5_TARGET_SPEEDUP = 10.0
P8_TARGET_BYTES = 30.0
ROLLUP_WAIT_S = 600.0
INFLUX_QUERY = (
    "SELECT mean(value), min(value), max(value), count(value) FROM m "
    "WHERE time >= {a}ms AND time < {z}ms GROUP BY time(1m)"
)


@dataclass(frozen=True, slots=True)
class AggData:
    target: Target
    t0_ms: int
    days: int
    samples: int
    seed_samples_per_s: float
    rollup_build_s: float
    spans: list[int]  # each seeding client's first timestamp

    @property
    def end_ms(self) -> int:
        return self.t0_ms + self.days * DAY_MS


def _dirty(server: Server) -> int:
    with closing(server.connect_readonly()) as conn:
        return int(conn.execute("SELECT count(*) FROM rollup_dirty").fetchone()[0])


def agg_data(ctx: Context) -> AggData:
    """``days`` of 1 Hz samples on one property, written through the API (untimed), and the
    time the server's background pass took to build their rollups."""
    cached = ctx.shared.get("agg_data")
    if isinstance(cached, AggData):
        return cached
    server = ctx.server()
    days = 30 if ctx.mode.name == "full" else 7
    t0_ms = (int(time.time()) // 86_400) * DAY_MS - 45 * DAY_MS
    seeded = seed_property(server, "aggregates", days * 86_400, t0_ms, SEED, deadline_s=600.0)
    started = time.monotonic()
    while _dirty(server):
        if time.monotonic() - started > ROLLUP_WAIT_S:
            raise RuntimeError(f"rollups not built after {ROLLUP_WAIT_S:.0f} s")
        time.sleep(0.2)
    data = AggData(
        seeded.target,
        t0_ms,
        days,
        seeded.samples,
        seeded.samples_per_s,
        time.monotonic() - started,
        seeded.starts,
    )
    ctx.shared["agg_data"] = data
    return data


def _thingbucket_ms(server: Server, data: AggData, runs: int) -> list[float]:
    params = {
        "from": str(data.t0_ms),
        "to": str(data.end_ms),
        "interval": "1m",
        "agg": "avg,min,max,count",
    }
    out = []
    for i in range(runs + 1):
        started = time.perf_counter()
        response = server.client.get(data.target.points_path, params=params)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"aggregate -> {response.status_code}: {response.text[:300]}")
        rows = len(response.json()["rows"])
        if rows != data.days * 1440:
            raise RuntimeError(f"{rows} buckets, expected {data.days * 1440}")
        if i:  # the first is a warm-up
            out.append(elapsed)
    return out


def _influx_ms(ctx: Context, data: AggData, runs: int) -> tuple[list[float], str, float]:
    """The same samples written to InfluxDB by line protocol, then the same query."""
    with influx.running_influx(ctx.workdir / "influx") as db:
        per_client = data.samples // (SEED_CLIENTS * SEED_BATCH)
        started = time.perf_counter()
        for c, first in enumerate(data.spans):
            for index in range(per_client):
                rows = batch_rows(SEED, c, index, SEED_BATCH, first, STEP_MS)
                db.write([f"m value={value!r} {ts}" for ts, value in rows])
        write_s = time.perf_counter() - started
        q = INFLUX_QUERY.format(a=data.t0_ms, z=data.end_ms)
        out = []
        for i in range(runs + 1):
            started = time.perf_counter()
            body = db.query(q)
            elapsed = (time.perf_counter() - started) * 1000
            values = body["results"][0]["series"][0]["values"]
            if len(values) != data.days * 1440:
                raise RuntimeError(f"InfluxDB gave {len(values)} buckets")
            if i:
                out.append(elapsed)
        return out, db.version, data.samples / write_s


def _driver_floor_ms(server: Server, data: AggData, runs: int) -> float:
    """The raw sqlite3 driver fetching the answer's minute rollups (bucket, avg, min, max,
    count) from the server's file: what the database and the driver alone cost per query."""
    sql = (
        "SELECT r.bucket / 1000, r.total / r.n, r.lo, r.hi, r.n FROM rollups r "
        "JOIN series s ON s.id = r.series_id WHERE s.property_id = ? AND r.level = 0 "
        "AND r.bucket >= ? AND r.bucket < ? ORDER BY r.bucket"
    )
    args = (data.target.property_id, data.t0_ms * 1000, data.end_ms * 1000)
    out = []
    with closing(server.connect_readonly()) as conn:
        for i in range(runs + 1):
            started = time.perf_counter()
            rows = conn.execute(sql, args).fetchall()
            if i:
                out.append((time.perf_counter() - started) * 1000)
    if len(rows) != data.days * 1440:
        raise RuntimeError(f"the driver floor read {len(rows)} rollup rows")
    return median(out)


@workload("P5")
def aggregates(ctx: Context) -> Row:
    server = ctx.server()
    data = agg_data(ctx)
    runs = max(3, ctx.mode.read_runs)
    tb = median(_thingbucket_ms(server, data, runs))
    floor = _driver_floor_ms(server, data, runs)
    notes = [
        f"{data.days} days of 1 Hz ({data.samples} samples)"
        + ("" if data.days == 30 else "; --quick uses 7 days, the full run 30"),
        f"rollups built by the background pass in {data.rollup_build_s:.1f} s after seeding "
        f"at {rate(data.seed_samples_per_s)}",
        f"the raw sqlite3 driver fetching the same {data.days * 1440} minute rollup rows from "
        f"the server's file: {floor:.0f} ms (the floor of this storage; thingbucket adds the "
        "HTTP request, the edges and the JSON)",
    ]
    if not influx.available():
        notes.append("InfluxDB not installed (Debian package influxdb): no side-by-side figure")
        status: Status = "pass" if tb <= P5_TARGET_MS else "fail"
        return Row(
            "P5", "1-min aggregates, 1 Hz data", f"{tb:.0f} ms", "n/a", None,
            f"<= {P5_TARGET_MS:.0f} ms, >= {P5_TARGET_SPEEDUP:.0f} x InfluxDB", status, notes,
            {"unit": "ms", "thingbucket": tb},
        )  # fmt: skip
    influx_runs, version, influx_rate = _influx_ms(ctx, data, runs)
    ref = median(influx_runs)
    speedup = ref / tb
    notes.append(
        f"InfluxDB {version}: same samples by line protocol (batch {SEED_BATCH}, "
        f"{rate(influx_rate)}), GROUP BY time(1m) with mean/min/max/count; ratio = InfluxDB ms / "
        "thingbucket ms"
    )
    ok = tb <= P5_TARGET_MS and speedup >= P5_TARGET_SPEEDUP
    return Row(
        id="P5",
        workload=f"1-min aggregates, {data.days} days of 1 Hz",
        thingbucket=f"{tb:.0f} ms",
        reference=f"{ref:.0f} ms InfluxDB {version}",
        ratio=speedup,
        target=f"<= {P5_TARGET_MS:.0f} ms, >= {P5_TARGET_SPEEDUP:.0f} x InfluxDB",
        status="pass" if ok else "fail",
        notes=notes,
        data={
            "unit": "ms",
            "thingbucket": tb,
            "reference": ref,
            "influx_runs_ms": influx_runs,
            "rollup_build_s": data.rollup_build_s,
            "samples": data.samples,
            "driver_floor_ms": floor,
        },
    )


@workload("P8")
def disk_per_sample(ctx: Context) -> Row:
    """Bytes of the sample table (and its rollups) per stored sample, from SQLite's dbstat."""
    server = ctx.server()
    agg_data(ctx)  # at least the P5 data set is stored
    with closing(server.connect_readonly()) as conn:
        samples = int(conn.execute("SELECT count(*) FROM samples_num").fetchone()[0])
        sizes = dict(
            conn.execute(
                "SELECT name, sum(pgsize) FROM dbstat WHERE name IN ('samples_num', 'rollups') "
                "GROUP BY name"
            ).fetchall()
        )
    table = sizes.get("samples_num", 0) / samples
    with_rollups = (sizes.get("samples_num", 0) + sizes.get("rollups", 0)) / samples
    return Row(
        id="P8",
        workload="disk per sample, SQLite",
        thingbucket=f"{with_rollups:.1f} B",
        reference=f"{table:.1f} B samples table alone",
        ratio=with_rollups / table,
        target=f"<= {P8_TARGET_BYTES:.0f} B (SQLite)",
        status="pass" if with_rollups <= P8_TARGET_BYTES else "fail",
        notes=[
            f"{samples} samples in the server's file (every workload's so far); pages of the "
            "sample table plus its rollups, from dbstat; PostgreSQL: P8-postgresql",
        ],
        data={"unit": "bytes/sample", "samples": samples, "sizes": sizes},
    )
