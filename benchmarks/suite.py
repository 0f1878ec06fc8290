"""Run the selected workloads, print the table, write the JSON; the server never outlives us."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import tempfile
import time
import traceback
from contextlib import ExitStack
from pathlib import Path
from types import FrameType

from rich.console import Console

import benchmarks.workloads  # registers the workloads
from benchmarks.context import Context
from benchmarks.core import FULL, QUICK, REGISTRY, Row, Workload, selects, todo_row
from benchmarks.report import print_report, write_json

assert benchmarks.workloads


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="thingbucket's performance targets P1..P10."
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs, under two minutes")
    parser.add_argument("--only", default="", help="comma-separated ids, e.g. P1,P7")
    parser.add_argument(
        "--output", type=Path, default=None, help="JSON path [benchmarks/results/latest.json]"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch directory (server data, logs)"
    )
    return parser.parse_args(argv)


def _error_row(w: Workload, exc: BaseException) -> Row:
    message = f"{type(exc).__name__}: {exc}".strip()
    return Row(w.id, w.title, "error", "-", None, w.target, "error", [message[:2000]])


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(143)  # unwinds through the ExitStack, which stops the server


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    mode = QUICK if args.quick else FULL
    wanted = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = {x for x in wanted if not any(selects(x, id) for id in REGISTRY)}
    if unknown:
        raise SystemExit(f"unknown workloads: {', '.join(sorted(unknown))}")
    selected = [w for w in REGISTRY.values() if not wanted or any(selects(x, w.id) for x in wanted)]
    console = Console()
    if not console.is_terminal:  # logs and pipes: wide enough for the table on one line a row
        console = Console(width=176)
    signal.signal(signal.SIGTERM, _on_sigterm)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="thingbucket-bench-"))
    # Every server, CLI and load generator is a new Python process: with bytecode writing off
    # (PYTHONDONTWRITEBYTECODE, set on some machines) each compiled every module again, 4..5 s
    # of the 7 s a `thingbucket user create` took. They share a bytecode cache in the scratch dir.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    rows: list[Row] = []
    try:
        with ExitStack() as stack:
            ctx = Context(mode=mode, workdir=workdir, stack=stack)
            for w in selected:
                if w.run is None:
                    rows.append(todo_row(w))
                    continue
                console.print(f"[bold]{w.id}[/] {w.title} ...", highlight=False)
                t0 = time.monotonic()
                try:
                    row = w.run(ctx)
                except Exception as exc:
                    traceback.print_exc()
                    row = _error_row(w, exc)
                row.data["wall_s"] = round(time.monotonic() - t0, 1)
                rows.append(row)
                console.print(
                    f"  {row.status}: {row.thingbucket} ({row.data['wall_s']} s)", highlight=False
                )
            server = ctx.server_started
            if server is not None and not server.alive():
                console.print(f"[red]the server exited early[/]\n{server.log_tail()}")
    finally:
        if args.keep:
            console.print(f"scratch directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    print_report(rows, mode, console)
    path = write_json(rows, mode, elapsed, args.output)
    console.print(f"{len(rows)} rows in {elapsed:.0f} s; written to {path}", highlight=False)
    return 1 if any(r.status == "error" for r in rows) else 0
