"""``thingbucket export`` and ``thingbucket import``: CSV or NDJSON, streamed both ways.

Both call the services in-process as the instance admin, like every command. An import commits
batch by batch; since a write is an upsert, running it again after a failure (or twice) stores
each point once. A progress bar with rate and ETA is drawn on a terminal, nothing when piped;
a summary line always ends the run, on standard error.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from thingbucket.access.principal import SYSTEM
from thingbucket.cli.common import (
    DatabaseOpt,
    DataDirOpt,
    database_settings,
    err,
    fail,
    run,
    runtime,
)
from thingbucket.ingest import service as ingest
from thingbucket.ingest.decoders import EARLIEST_US, RowErrors, points_of
from thingbucket.ingest.formats import csv_records, ndjson_rows
from thingbucket.ingest.service import CsvWrite, PropertyWrite
from thingbucket.kit.time import Precision, TimestampError, now_us, parse_timestamp
from thingbucket.points import service as points
from thingbucket.points.formats import csv_line, csv_lines, ndjson_lines
from thingbucket.runtime import Runtime

FormatOpt = Annotated[str | None, typer.Option("--format", help="csv or ndjson")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="epoch unit: s, ms or us")]


def _progress(total: float | None, unit: str) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[done]:,} {task.fields[unit]}, {task.fields[rate]:,.0f}/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not sys.stderr.isatty(),
    )


def _precision(value: str) -> Precision:
    if value not in ("s", "ms", "us"):
        fail("--precision is s, ms or us")
    return value  # type: ignore[return-value]


def _format(given: str | None, path: str | None) -> str:
    fmt = given or ("ndjson" if path and path.endswith((".ndjson", ".jsonl")) else "csv")
    if fmt not in ("csv", "ndjson"):
        fail("--format is csv or ndjson")
    return fmt


def _summary(verb: str, points_done: int, rows: int, started: float, where: str) -> None:
    elapsed = max(time.monotonic() - started, 1e-9)
    err.print(
        f"{verb} {rows:,} rows ({points_done:,} samples) {where} in {elapsed:.1f} s "
        f"({rows / elapsed:,.0f} rows/s)",
        markup=False,
        highlight=False,
    )


# --- export ---------------------------------------------------------------------------------------


def export(
    property_id: Annotated[str, typer.Option("--property", help="property id")],
    from_: Annotated[str | None, typer.Option("--from", help="epoch or RFC 3339")] = None,
    to: Annotated[str | None, typer.Option("--to", help="exclusive; default now")] = None,
    fmt: FormatOpt = None,
    precision: PrecisionOpt = "ms",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="a file; default stdout")
    ] = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Write a property's points in [from, to) as CSV (header ts,<dimension>,...) or NDJSON."""
    prec = _precision(precision)
    kind = _format(fmt, str(output) if output else None)
    try:
        start = parse_timestamp(from_, prec) if from_ else EARLIEST_US
        end = parse_timestamp(to, prec) if to else now_us() + 1
    except TimestampError as exc:
        fail(f"--from/--to: {exc}")
    settings = database_settings(data_dir, database_url)

    async def go(out: IO[bytes]) -> tuple[int, int]:
        async with runtime(settings) as rt:
            return await _export(rt, property_id, start, end, prec, kind, out)

    started = time.monotonic()
    sink: Any = open(output, "wb") if output else nullcontext(sys.stdout.buffer)  # noqa: SIM115
    with sink as out:
        rows, samples = run(lambda: go(out))
    _summary("exported", samples, rows, started, f"to {output or 'stdout'}")


async def _export(
    rt: Runtime, property_id: str, start: int, end: int, prec: Precision, kind: str, out: IO[bytes]
) -> tuple[int, int]:
    async with rt.db.session() as session:
        target = await points.open_stream(rt, SYSTEM, None, property_id)
        span = await points.time_span(session, rt, target, start, end)
    kinds = [s.kind for s in target.series]
    if kind == "csv":
        out.write(csv_line(["ts", *(s.dimension_id for s in target.series)]))
    rows = samples = 0
    first, last = span or (start, start + 1)
    with _progress(None, "rows") as bar:
        task = bar.add_task("export", total=max(last - first, 1), done=0, unit="rows", rate=0.0)
        began = time.monotonic()
        async for chunk in points.stream_rows(rt, target, start, end, prec):
            out.write(csv_lines(chunk, kinds) if kind == "csv" else ndjson_lines(chunk))
            rows += len(chunk)
            samples += sum(1 for row in chunk for v in row[1:] if v is not None)
            reached = parse_timestamp(chunk[-1][0], prec) - first
            rate = rows / max(time.monotonic() - began, 1e-9)
            bar.update(task, completed=reached, done=rows, rate=rate)
    out.flush()
    return rows, samples


# --- import ---------------------------------------------------------------------------------------


class _CountingLines:
    """Decoded lines of a binary file, counting the bytes read (the progress of an import)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.bytes_read = 0

    def __iter__(self) -> Iterator[str]:
        first = True
        for raw in self._stream:
            self.bytes_read += len(raw)
            line = raw.decode("utf-8")
            if first:
                line, first = line.removeprefix("\ufeff"), False
            yield line


def _batches(
    kind: str, lines: _CountingLines, size: int, property_id: str
) -> Iterator[tuple[int, PropertyWrite | CsvWrite]]:
    """(index of the batch's first record, write) for consecutive batches of ``size`` records."""
    if kind == "ndjson":
        buffer: list[str] = []
        done = 0
        for line in lines:
            if line.strip():
                buffer.append(line)
            if len(buffer) >= size:
                rows = ndjson_rows(buffer, first_line=done + 1)
                yield done, PropertyWrite(property_id, points_of({"points": rows}))
                done, buffer = done + len(buffer), []
        if buffer:
            rows = ndjson_rows(buffer, first_line=done + 1)
            yield done, PropertyWrite(property_id, points_of({"points": rows}))
        return
    records = csv_records(lines)
    header = next(records, None)
    if header is None:
        return
    chunk: list[list[str]] = []
    done = 0
    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield done, CsvWrite(property_id, header, chunk)
            done, chunk = done + len(chunk), []
    if chunk:
        yield done, CsvWrite(property_id, header, chunk)


def _row_error(exc: RowErrors, offset: int) -> str:
    """The first bad row, numbered from the start of the file (data rows, from 0)."""
    first = exc.details[0] if exc.details else {}
    index = first.get("index")
    if index is None:
        return exc.message_text
    return f"row {index + offset}, dimension {first.get('dimension')!r}: {first.get('reason')}"


def import_(
    source: Annotated[str, typer.Argument(help="a CSV or NDJSON file, or - for stdin")],
    property_id: Annotated[str, typer.Option("--property", help="property id")],
    fmt: FormatOpt = None,
    precision: PrecisionOpt = "ms",
    batch: Annotated[int, typer.Option("--batch", min=1, max=10_000)] = 10_000,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Write points from CSV (header ts,<dimension>,...) or NDJSON into a property."""
    prec = _precision(precision)
    kind = _format(fmt, source)
    path = None if source == "-" else Path(source)
    if path is not None and not path.is_file():
        fail(f"no such file: {source}")
    settings = database_settings(data_dir, database_url)
    total = path.stat().st_size if path else None

    async def go(raw: IO[bytes]) -> tuple[int, int]:
        async with runtime(settings) as rt:
            with _progress(total, "rows") as bar:
                lines = _CountingLines(raw)
                task = bar.add_task("import", total=total, done=0, unit="rows", rate=0.0)
                rows = samples = offset = 0
                began = time.monotonic()
                try:
                    for batch_start, item in _batches(kind, lines, batch, property_id):
                        offset = batch_start
                        result = await ingest.write(rt, SYSTEM, [item], precision=prec)
                        rows += len(item.rows)
                        samples += result.samples
                        rate = rows / max(time.monotonic() - began, 1e-9)
                        bar.update(task, completed=lines.bytes_read, done=rows, rate=rate)
                except RowErrors as exc:
                    fail(
                        f"{source}: {_row_error(exc, offset)}; "
                        f"{rows:,} rows before it were stored (an import can be run again)",
                        code=1,
                    )
                except UnicodeDecodeError:
                    fail(f"{source}: not UTF-8 text", code=1)
                return rows, samples

    started = time.monotonic()
    stream: Any = open(path, "rb") if path else nullcontext(sys.stdin.buffer)  # noqa: SIM115
    with stream as raw:
        rows, samples = run(lambda: go(raw))
    _summary("imported", samples, rows, started, f"from {source}")
