"""The HTTP load generator, a separate process: ``python -m benchmarks.load < spec.json``.

It reads a JSON spec on standard input, builds every request before the clock starts, sends a
fixed number of requests per client (one kept-alive connection per client, one request in flight
on each, 127.0.0.1 only), retries a ``503`` after its ``Retry-After`` a bounded number of times,
and prints one JSON result on standard output. It stops by itself: after the last request or at
``deadline_s``.

The client is a minimal HTTP/1.1 one on asyncio streams (prebuilt request bytes, a status line
and the headers it needs read back), not a general library: the generator shares the 2 cores with
the server, and httpx took about a third of one core at P1's rate, more than wrk would.

The driver side (``run_load``) starts it and parses the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

VALUE_SEED = 20_260_101
PROJECT_ROOT = Path(__file__).resolve().parent.parent  # so ``-m benchmarks.load`` resolves


@dataclass(frozen=True, slots=True)
class ClientSpec:
    path: str  # /api/v1/things/{tid}/properties/{pid}/points, or InfluxDB's /write?...
    t0_ms: int  # timestamp of the first point of the client's first request
    step_ms: int = 1000
    tag: str = ""  # line protocol: the series tag of this client's points


@dataclass(frozen=True, slots=True)
class LoadSpec:
    url: str
    token: str
    clients: list[ClientSpec]
    requests_per_client: int  # timed requests
    batch: int = 1000
    warmup_requests: int = 0  # per client, sent before the clock starts
    seed: int = 1
    deadline_s: float = 300.0
    max_retries: int = 5
    dims: int = 1  # values per point
    body: str = "json"  # or "line": InfluxDB line protocol, fields x0..x{dims-1}

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> LoadSpec:
        raw = json.loads(text)
        raw["clients"] = [ClientSpec(**c) for c in raw["clients"]]
        return LoadSpec(**raw)


@dataclass(slots=True)
class LoadResult:
    ok: bool
    samples: int  # samples in timed requests answered 204
    requests: int  # timed requests answered 204
    elapsed_s: float
    statuses: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)
    cpu_s: float = 0.0  # user + system CPU of the load generator during the timed phase
    generate_s: float = 0.0  # building the bodies (not timed)

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.elapsed_s if self.elapsed_s > 0 else 0.0


def batch_rows(
    seed: int, client: int, index: int, batch: int, t0_ms: int, step_ms: int
) -> list[tuple[int, float]]:
    """The points of request ``index`` of ``client``: deterministic, so the reference writes
    exactly the same samples."""
    rng = random.Random(seed * 1_000_003 + client * 10_007 + index + VALUE_SEED)
    first = t0_ms + index * batch * step_ms
    return [(first + i * step_ms, round(rng.uniform(-40.0, 60.0), 2)) for i in range(batch)]


def point_rows(
    seed: int, client: int, index: int, batch: int, t0_ms: int, step_ms: int, dims: int
) -> list[tuple[Any, ...]]:
    """``batch_rows`` with ``dims`` values per point (the extra ones derived from the first)."""
    rows = batch_rows(seed, client, index, batch, t0_ms, step_ms)
    if dims == 1:
        return list(rows)
    return [(ts, v, *(round(v * (d + 1) / 7 + d, 2) for d in range(1, dims))) for ts, v in rows]


def line_body(tag: str, rows: list[tuple[Any, ...]]) -> bytes:
    """The points as InfluxDB line protocol: measurement ``m``, tag ``c``, fields ``x0..``."""
    return "\n".join(
        f"m,c={tag} " + ",".join(f"x{d}={v!r}" for d, v in enumerate(values)) + f" {ts}"
        for ts, *values in rows
    ).encode()


def _bodies(spec: LoadSpec) -> list[list[bytes]]:
    total = spec.warmup_requests + spec.requests_per_client
    out = []
    for c, client in enumerate(spec.clients):
        bodies = []
        for i in range(total):
            rows = point_rows(spec.seed, c, i, spec.batch, client.t0_ms, client.step_ms, spec.dims)
            if spec.body == "line":
                bodies.append(line_body(client.tag, rows))
            else:
                bodies.append(orjson.dumps({"points": rows}))
        out.append(bodies)
    return out


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(slots=True)
class _Tally:
    statuses: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    retries: int = 0
    ok_requests: int = 0

    def count(self, key: str) -> None:
        self.statuses[key] = self.statuses.get(key, 0) + 1

    def error(self, text: str) -> None:
        if len(self.errors) < 10:
            self.errors.append(text)


class _Connection:
    """One kept-alive HTTP/1.1 connection to 127.0.0.1, reopened if the server closes it."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, data: bytes) -> tuple[int, dict[str, str], bytes]:
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self._port)
        assert self._reader is not None
        self._writer.write(data)
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            while size := int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16):
                body += (await self._reader.readexactly(size + 2))[:-2]
            await self._reader.readuntil(b"\r\n")  # no trailers are sent here
        else:
            body = bytearray(await self._reader.readexactly(int(headers.get("content-length", 0))))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, headers, bytes(body)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            self._writer = None


def _request(spec: LoadSpec, path: str, body: bytes) -> bytes:
    port = urlsplit(spec.url).port
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"Content-Type: {_content_type[spec.body]}",
        f"Content-Length: {len(body)}",
    ]
    if spec.token:
        head.append(f"Authorization: Bearer {spec.token}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _send(
    conn: _Connection, request: bytes, spec: LoadSpec, tally: _Tally, timed: bool
) -> None:
    for attempt in range(spec.max_retries + 1):
        started = time.perf_counter()
        try:
            status, headers, answer = await conn.request(request)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            tally.count(type(exc).__name__)
            tally.error(f"{type(exc).__name__}: {exc}")
            await conn.close()
            return
        tally.count(str(status))
        if status == 204:
            if timed:
                tally.latencies.append((time.perf_counter() - started) * 1000)
                tally.ok_requests += 1
            return
        if status == 503 and attempt < spec.max_retries:
            tally.retries += 1
            try:
                wait = float(headers.get("retry-after", "1"))
            except ValueError:
                wait = 1.0
            await asyncio.sleep(min(max(wait, 0.05), 5.0))
            continue
        tally.error(f"{status} {answer[:200]!r}")
        return


_content_type = {"json": "application/json", "line": "text/plain; charset=utf-8"}


async def _client_loop(
    conn: _Connection, requests: list[bytes], spec: LoadSpec, tally: _Tally, timed: bool
) -> None:
    for request in requests:
        await _send(conn, request, spec, tally, timed)


async def _phase(
    conns: list[_Connection],
    spec: LoadSpec,
    requests: list[list[bytes]],
    tally: _Tally,
    timed: bool,
) -> None:
    await asyncio.gather(
        *(_client_loop(conns[c], requests[c], spec, tally, timed) for c in range(len(conns)))
    )


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(spec: LoadSpec) -> LoadResult:
    host = urlsplit(spec.url).hostname
    if host != "127.0.0.1":
        raise SystemExit(f"the load generator only sends to 127.0.0.1, not {host}")
    gen_started = time.perf_counter()
    requests = [
        [_request(spec, client.path, body) for body in bodies]
        for client, bodies in zip(spec.clients, _bodies(spec), strict=True)
    ]
    generate_s = time.perf_counter() - gen_started
    warm = [r[: spec.warmup_requests] for r in requests]
    timed = [r[spec.warmup_requests :] for r in requests]
    # One connection per simulated client, as 16 devices would have.
    port = urlsplit(spec.url).port
    assert port is not None
    conns = [_Connection(port) for _ in spec.clients]
    tally = _Tally()
    try:
        async with asyncio.timeout(spec.deadline_s):
            await _phase(conns, spec, warm, _Tally(), timed=False)
            cpu0, t0 = _cpu(), time.perf_counter()
            await _phase(conns, spec, timed, tally, timed=True)
            elapsed, cpu = time.perf_counter() - t0, _cpu() - cpu0
    except TimeoutError:
        tally.error(f"deadline of {spec.deadline_s} s reached")
        elapsed, cpu = spec.deadline_s, 0.0
    finally:
        for conn in conns:
            await conn.close()
    expected = spec.requests_per_client * len(spec.clients)
    lat = tally.latencies
    return LoadResult(
        ok=tally.ok_requests == expected and not tally.errors,
        samples=tally.ok_requests * spec.batch,
        requests=tally.ok_requests,
        elapsed_s=elapsed,
        statuses=tally.statuses,
        retries=tally.retries,
        errors=tally.errors,
        latency_ms={
            "p50": _percentile(lat, 0.5),
            "p95": _percentile(lat, 0.95),
            "max": max(lat, default=0.0),
        },
        cpu_s=cpu,
        generate_s=generate_s,
    )


def run_load(spec: LoadSpec) -> LoadResult:
    """Driver side: run the generator in its own process and return what it measured."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.load"],
        input=spec.to_json(),
        capture_output=True,
        text=True,
        timeout=spec.deadline_s + 60,
        cwd=PROJECT_ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed ({done.returncode}): {done.stderr[-1000:]}")
    raw: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return LoadResult(**raw)


def main() -> int:
    spec = LoadSpec.from_json(sys.stdin.read())
    result = asyncio.run(run(spec))
    sys.stdout.write(json.dumps(asdict(result)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
