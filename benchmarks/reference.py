"""The physical floor: the raw sqlite3 driver doing the same work as the server, in this process.

Tables and pragmas match the server's: a WITHOUT ROWID table keyed ``(series_id, ts)`` with ``ts``
in integer microseconds, WAL, ``synchronous=NORMAL``.
"""

from __future__ import annotations

import csv
import sqlite3
import time
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS samples_num (series_id INTEGER NOT NULL, ts INTEGER NOT NULL, "
    "value REAL, PRIMARY KEY (series_id, ts)) WITHOUT ROWID"
)
PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")

Batch = list[tuple[int, int, float]]  # (series_id, ts_us, value)


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    conn.execute(SCHEMA)
    return conn


def ingest(path: Path, batches: Sequence[Batch]) -> float:
    """``executemany`` per batch, one transaction per batch; returns the seconds it took
    (the batches are built by the caller, outside the timing)."""
    with closing(connect(path)) as conn:
        started = time.perf_counter()
        for batch in batches:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO samples_num (series_id, ts, value) VALUES (?,?,?)", batch)
            conn.execute("COMMIT")
        return time.perf_counter() - started


def read_range(conn: sqlite3.Connection, series_id: int, start_us: int, end_us: int) -> float:
    """Fetch the samples of ``[start, end)`` into Python; returns seconds."""
    started = time.perf_counter()
    rows = conn.execute(
        "SELECT ts, value FROM samples_num WHERE series_id = ? AND ts >= ? AND ts < ? "
        "ORDER BY ts LIMIT 100000",
        (series_id, start_us, end_us),
    ).fetchall()
    elapsed = time.perf_counter() - started
    assert rows, "the reference read found no samples"
    return elapsed


class _CountingSink:
    """A file-like object that only counts what csv.writer gives it."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, text: str) -> int:
        self.bytes += len(text)
        return len(text)


def export_csv(conn: sqlite3.Connection, series_id: int, start_us: int, end_us: int) -> float:
    """Stream ``[start, end)`` through csv.writer (ts in ms, as the API writes it); seconds."""
    sink = _CountingSink()
    started = time.perf_counter()
    writer = csv.writer(sink, lineterminator="\n")
    writer.writerow(("ts", "value"))
    cursor = conn.execute(
        "SELECT ts / 1000, value FROM samples_num WHERE series_id = ? AND ts >= ? AND ts < ? "
        "ORDER BY ts",
        (series_id, start_us, end_us),
    )
    cursor.arraysize = 10_000
    while rows := cursor.fetchmany():
        writer.writerows(rows)
    elapsed = time.perf_counter() - started
    assert sink.bytes > 0
    return elapsed
