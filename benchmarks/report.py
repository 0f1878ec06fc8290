"""The table on the terminal and ``results/latest.json``."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.core import Mode, Row

RESULTS_DIR = Path(__file__).parent / "results"
STYLE = {
    "pass": "green",
    "fail": "red",
    "error": "bold red",
    "n/a": "yellow",
    "skipped": "yellow",
    "todo": "dim",
}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_mib() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_mib": _memory_mib(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def table(rows: Sequence[Row], mode: Mode) -> Table:
    t = Table(title=f"thingbucket benchmarks ({mode.name} mode)")
    for name, justify in (
        ("#", "left"),
        ("workload", "left"),
        ("thingbucket", "right"),
        ("reference", "right"),
        ("ratio", "right"),
        ("target", "left"),
        ("result", "left"),
    ):
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        t.add_row(
            r.id,
            r.workload,
            r.thingbucket,
            r.reference,
            "-" if r.ratio is None else f"{r.ratio:.2f}",
            r.target,
            f"[{STYLE[r.status]}]{r.status}[/]",
        )
    return t


def print_report(rows: Sequence[Row], mode: Mode, console: Console) -> None:
    console.print(table(rows, mode))
    for r in rows:
        if r.status == "todo":
            continue
        for note in r.notes:
            console.print(f"  {r.id}: {note}", markup=False, highlight=False)


def write_json(rows: Sequence[Row], mode: Mode, elapsed_s: float, path: Path | None = None) -> Path:
    path = path or RESULTS_DIR / "latest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": mode.name,
        "elapsed_s": round(elapsed_s, 1),
        "machine": machine(),
        "rows": [r.as_json() for r in rows],
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)
    return path
