"""The SQLite side of sample writes: upserts, range deletes and the rollup pass, on the writer's
own ``sqlite3`` connection. Reads are in ``points.repository``; this module imports only the
standard library and the pure parts of ``points``, since the writer process loads it alone."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection, Sequence
from itertools import chain, repeat
from typing import Any

from thingbucket.kit.time import TS_MAX_US
from thingbucket.points import codec
from thingbucket.points.batch import (
    TEXT_TABLE,
    RangeDelete,
    SampleBatch,
    delete_marks,
    num_ranges,
    table_for,
)
from thingbucket.points.chunks import chunk_rows, cold_before, plan_delete
from thingbucket.points.rollup_sql import (
    BATCH_FROM_FINER,
    BATCH_FROM_SAMPLES,
    BATCH_TABLE,
    BATCH_TAKE,
    CLEAN_FINER,
    DROP_WHOLE,
    IN_BATCH,
)
from thingbucket.points.rollups import LEVELS, Mark, marks_for

_CHUNKS_OVER = (
    "SELECT start_ts, end_ts, n, data FROM sample_chunks WHERE series_id = ? AND start_ts < ? "
    "AND end_ts > ? ORDER BY start_ts"
)
_CHUNK_DELETE = "DELETE FROM sample_chunks WHERE series_id = ? AND start_ts = ?"
_CHUNK_INSERT = (
    "INSERT INTO sample_chunks (series_id, start_ts, end_ts, first_ts, last_ts, n, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_DIRTY_MINUTE = (
    "SELECT 1 FROM rollup_dirty WHERE series_id = ? AND level = 0 AND bucket >= ? AND bucket < ? "
    "LIMIT 1"
)


class SqliteStore:
    """Every statement runs inside the caller's transaction (the writer's group).

    ``cold_after_days`` is ``cold.after_days``: a write older than that may reach into a cold
    chunk (``points.chunks``), which is thawed before it."""

    # Multi-row statements rather than executemany: one step per statement rather than per row
    # (and, beside a busy thread, one wait for the GIL). Chunks come in a few fixed sizes so
    # that the prepared statements stay few (and cached).
    _CHUNKS = (8000, 1000, 100)  # rows; 3 parameters each stays under SQLite's 32766
    _UPSERT = (
        "INSERT INTO {table} (series_id, ts, value) VALUES {rows} "
        "ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value"
    )
    _MARKS = (
        "INSERT INTO rollup_dirty (series_id, level, bucket) VALUES {rows} ON CONFLICT DO NOTHING"
    )

    def __init__(self, cold_after_days: int = 7) -> None:
        self._statements: dict[tuple[str, str, int], str] = {}
        self._cold_after_days = cold_after_days

    def _statement(self, template: str, table: str, n: int) -> str:
        key = (template, table, n)
        sql = self._statements.get(key)
        if sql is None:
            sql = template.format(table=table, rows=",".join(["(?,?,?)"] * n))
            self._statements[key] = sql  # at most 3 + 99 sizes per (template, table)
        return sql

    def _insert(
        self,
        conn: sqlite3.Connection,
        template: str,
        table: str,
        columns: tuple[Sequence[Any], ...],
    ) -> None:
        """Rows given as three columns, in order, by multi-row statements (in one statement a
        later duplicate still wins). The parameters are interleaved by slice assignment, in C."""
        first, second, third = columns
        start, total = 0, len(first)
        while start < total:
            size = next((c for c in self._CHUNKS if total - start >= c), total - start)
            end = start + size
            flat: list[Any] = [None] * (3 * size)
            flat[0::3] = first[start:end]
            flat[1::3] = second[start:end]
            flat[2::3] = third[start:end]
            conn.execute(self._statement(template, table, size), flat)
            start = end

    def write(
        self,
        conn: sqlite3.Connection,
        batches: Sequence[tuple[SampleBatch, dict[int, tuple[int, int]]]],
    ) -> None:
        """Batches in order, each with its ranges (which the caller computes once for its
        result too), stored by as few statements as their rows allow."""
        edge = cold_before(time.time_ns() // 1000, self._cold_after_days)
        for _, ranges in batches:
            for sid, (lo, hi) in ranges.items():
                if lo < edge:
                    self._thaw(conn, sid, lo, hi + 1)
        if len(batches) == 1:
            batch = batches[0][0]
            sids, stamps, values, text = batch.sids, batch.stamps, batch.values, batch.text
        else:
            sids = list(chain.from_iterable(b.sids for b, _ in batches))
            stamps = list(chain.from_iterable(b.stamps for b, _ in batches))
            values = list(chain.from_iterable(b.values for b, _ in batches))
            text = list(chain.from_iterable(b.text for b, _ in batches))
        if sids:
            self._insert(conn, self._UPSERT, "samples_num", (sids, stamps, values))
            marks: set[Mark] = set()
            for batch, ranges in batches:
                if batch.sids:
                    marks |= marks_for(batch.sids, batch.stamps, num_ranges(batch, ranges))
            self._insert(conn, self._MARKS, "", _columns(marks))
        if text:
            self._insert(conn, self._UPSERT, TEXT_TABLE, _columns(text))

    def delete(self, conn: sqlite3.Connection, spec: RangeDelete) -> int:
        deleted = 0
        for sid, kind in spec.series:
            start, end = spec.start, spec.end
            if kind == "number":
                chunks = conn.execute(_CHUNKS_OVER, (sid, end, start)).fetchall()
                plan = plan_delete([(c[0], c[1]) for c in chunks], start, end, spec.whole_chunks)
                sizes = {c[0]: c[2] for c in chunks}
                for chunk_start in plan.drop:
                    conn.execute(_CHUNK_DELETE, (sid, chunk_start))
                    deleted += sizes[chunk_start]
                if plan.thaw:
                    self._thaw(conn, sid, start, end)
                start, end = plan.start, plan.end
            if start >= end:
                continue
            cur = conn.execute(
                f"DELETE FROM {table_for(kind)} WHERE series_id = ? AND ts >= ? AND ts < ?",
                (sid, start, end),
            )
            deleted += cur.rowcount
            if kind == "number":
                whole, cut = delete_marks(sid, start, end)
                conn.executemany(DROP_WHOLE, whole)
                self._insert(conn, self._MARKS, "", _columns(cut))
        return deleted

    def _thaw(self, conn: sqlite3.Connection, sid: int, lo: int, hi: int) -> None:
        """The chunks of ``sid`` that overlap [lo, hi) back into the sample table (their
        rollups stay right: the samples are the same)."""
        for start, _end, n, data in conn.execute(_CHUNKS_OVER, (sid, hi, lo)).fetchall():
            stamps, values = codec.decode(data)
            self._insert(conn, self._UPSERT, "samples_num", (list(repeat(sid, n)), stamps, values))
            conn.execute(_CHUNK_DELETE, (sid, start))

    def pack(self, conn: sqlite3.Connection, sid: int, start: int, end: int, cap: int) -> int:
        """The samples of ``sid`` in [start, end) (a UTC day) into chunks of at most ``cap``;
        how many went. Nothing while a minute of the day waits for the rollup pass."""
        hot = "SELECT 1 FROM samples_num WHERE series_id = ? AND ts >= ? AND ts < ? LIMIT 1"
        if not conn.execute(hot, (sid, start, end)).fetchone():
            return 0  # nothing new: packed already, or empty
        if conn.execute(_DIRTY_MINUTE, (sid, start, end)).fetchone():
            return 0
        self._thaw(conn, sid, start, end)  # a chunk of the day from before: packed anew with it
        rows = conn.execute(
            "SELECT ts, value FROM samples_num WHERE series_id = ? AND ts >= ? AND ts < ? "
            "ORDER BY ts",
            (sid, start, end),
        ).fetchall()
        if not rows:
            return 0
        stamps, values = (list(c) for c in zip(*rows, strict=True))
        conn.executemany(_CHUNK_INSERT, chunk_rows(sid, stamps, values, start, end, cap))
        conn.execute(
            "DELETE FROM samples_num WHERE series_id = ? AND ts >= ? AND ts < ?", (sid, start, end)
        )
        return len(stamps)

    def recompute(self, conn: sqlite3.Connection, limit: int) -> int:
        """Rebuild up to ``limit`` dirty buckets, finest level first, a batch per level (in the
        writer's transaction, so no write runs beside it); returns how many it rebuilt."""
        conn.execute(BATCH_TABLE)
        done = 0
        for level, width in enumerate(LEVELS):
            if done >= limit:
                break
            args = {
                "lv": level,
                "n": limit - done,
                "w1": width - 1,
                "zmax": TS_MAX_US - (width - 1),
                "tsmax": TS_MAX_US,
            }
            conn.execute("DELETE FROM temp.rollup_batch")
            take = BATCH_TAKE.format(finer=CLEAN_FINER if level else "")
            taken = conn.execute(take, args).rowcount
            if not taken:
                continue
            conn.execute("DELETE FROM rollup_dirty " + IN_BATCH, {"lv": level})
            conn.execute("DELETE FROM rollups " + IN_BATCH, {"lv": level})
            if level:
                conn.execute(BATCH_FROM_FINER, {"lv": level})
            else:
                conn.execute(BATCH_FROM_SAMPLES)
            done += taken
        return done


def _columns(rows: Collection[tuple[Any, Any, Any]]) -> tuple[Sequence[Any], ...]:
    """Rows as three columns."""
    if not rows:
        return (), (), ()
    return tuple(zip(*rows, strict=True))
