"""The rollup statements (see ``points.rollups``): marks dropped by deletes and the pass that
rebuilds dirty buckets, one set of statement texts for both backends. Only strings, importing
nothing: the SQLite writer process uses them as well as ``points.repository``."""

from __future__ import annotations

DROP_WHOLE = "DELETE FROM rollups WHERE series_id = ? AND level = ? AND bucket >= ? AND bucket < ?"
_INSERT = (
    "INSERT INTO rollups (series_id, level, bucket, n, total, lo, hi, first_ts, first, last_ts, "
    "last) "
)


# The rollup pass rebuilds a batch of buckets of one level per statement (on SQLite each
# statement gives up the GIL once; per bucket they were four). The batch: up to a number of
# marks of the level whose finer buckets are all clean, in no particular order (sorting them
# cost a sort of a series' whole backlog per batch). The statements below are shared by both
# backends; only the placeholders and where the batch lives (a temporary table on SQLite, the
# unnest of the taken keys on PostgreSQL) differ.
def _bucket_end(bucket: str, w1: str, zmax: str, tsmax: str) -> str:
    """A bucket's last microsecond (int64's end for the last bucket), without overflow."""
    return f"CASE WHEN {bucket} > {zmax} THEN {tsmax} ELSE {bucket} + {w1} END"


def _take(level: str, n: str, clean_finer: str) -> str:
    """The batch's marks of ``rollup_dirty d`` (a coarser level only with clean finer ones)."""
    return f"FROM rollup_dirty d WHERE level = {level}{clean_finer} LIMIT {n}"


def _clean_finer(level: str, end: str) -> str:
    return (
        " AND NOT EXISTS (SELECT 1 FROM rollup_dirty f WHERE f.series_id = d.series_id "
        f"AND f.level = {level} - 1 AND f.bucket >= d.bucket AND f.bucket <= {end})"
    )


def _from_samples(batch: str, level: str) -> str:
    """Rebuild the minutes of ``batch`` (alias ``b``: series_id, bucket, z) from their samples;
    first and last by key lookup of min(ts) and max(ts)."""
    return _INSERT + (
        f"SELECT g.sid, {level}, g.b, g.n, g.s, g.lo, g.hi, g.t0, f.value, g.t1, l.value FROM "
        "(SELECT b.series_id AS sid, b.bucket AS b, count(*) AS n, sum(s.value) AS s, "
        "min(s.value) AS lo, max(s.value) AS hi, min(s.ts) AS t0, max(s.ts) AS t1 "
        f"FROM {batch} JOIN samples_num s ON s.series_id = b.series_id "
        "AND s.ts >= b.bucket AND s.ts <= b.z GROUP BY b.series_id, b.bucket) AS g "
        "JOIN samples_num f ON f.series_id = g.sid AND f.ts = g.t0 "
        "JOIN samples_num l ON l.series_id = g.sid AND l.ts = g.t1"
    )


def _from_finer(batch: str, level: str) -> str:
    """Rebuild the hours (days) of ``batch`` from their clean minutes (hours)."""
    finer = f"{level} - 1"
    return _INSERT + (
        f"SELECT g.sid, {level}, g.b, g.n, g.s, g.lo, g.hi, g.t0, f.first, g.t1, l.last FROM "
        "(SELECT b.series_id AS sid, b.bucket AS b, b.z AS z, sum(r.n) AS n, sum(r.total) AS s, "
        "min(r.lo) AS lo, max(r.hi) AS hi, min(r.first_ts) AS t0, max(r.last_ts) AS t1 "
        f"FROM {batch} JOIN rollups r ON r.series_id = b.series_id "
        f"AND r.level = {finer} AND r.bucket >= b.bucket AND r.bucket <= b.z "
        "GROUP BY b.series_id, b.bucket, b.z) AS g "
        f"JOIN rollups f ON f.series_id = g.sid AND f.level = {finer} AND f.bucket >= g.b "
        "AND f.bucket <= g.z AND f.first_ts = g.t0 "
        f"JOIN rollups l ON l.series_id = g.sid AND l.level = {finer} AND l.bucket >= g.b "
        "AND l.bucket <= g.z AND l.last_ts = g.t1"
    )


# SQLite: the batch in a temporary table, named parameters.
BATCH_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS rollup_batch (series_id INTEGER NOT NULL, "
    "bucket INTEGER NOT NULL, z INTEGER NOT NULL, PRIMARY KEY (series_id, bucket)) WITHOUT ROWID"
)
_END = _bucket_end("{b}", ":w1", ":zmax", ":tsmax")
BATCH_TAKE = (
    "INSERT INTO temp.rollup_batch (series_id, bucket, z) SELECT series_id, bucket, "
    + _END.format(b="bucket")
    + " "
    + _take(":lv", ":n", "{finer}")
)
CLEAN_FINER = _clean_finer(":lv", _END.format(b="d.bucket"))
IN_BATCH = (
    "WHERE level = :lv AND (series_id, bucket) IN (SELECT series_id, bucket FROM temp.rollup_batch)"
)
_BATCH = "temp.rollup_batch b"
BATCH_FROM_SAMPLES = _from_samples(_BATCH, "0")
BATCH_FROM_FINER = _from_finer(_BATCH, ":lv")


# PostgreSQL's pass, a batch per level in one short transaction: the marks it takes are locked
# (FOR UPDATE), so a write touching one of them waits for the pass to commit and then marks the
# bucket again; marks a write holds are skipped (SKIP LOCKED), left for the next pass. So a
# rebuild never clears a mark without the samples of the write that set it.
# $1 level, $2 how many, $3 width - 1, $4 int64's end - (width - 1), $5 int64's end.
PG_TAKE = (
    "SELECT series_id, bucket " + _take("$1", "$2", "{finer}") + " FOR UPDATE OF d SKIP LOCKED"
)
PG_CLEAN_FINER = _clean_finer("$1", _bucket_end("d.bucket", "$3", "$4", "$5"))
# $1 level, $2 series ids, $3 bucket starts (then as above from $4).
PG_IN_BATCH = (
    "WHERE level = $1 AND (series_id, bucket) IN "
    "(SELECT * FROM unnest($2::integer[], $3::bigint[]))"
)
_PG_BATCH = (
    "(SELECT sid AS series_id, u.b AS bucket, "
    + _bucket_end("u.b", "$4", "$5", "$6")
    + " AS z FROM unnest($2::integer[], $3::bigint[]) AS u(sid, b)) AS b"
)
PG_FROM_SAMPLES = _from_samples(_PG_BATCH, "CAST($1 AS SMALLINT)")
PG_FROM_FINER = _from_finer(_PG_BATCH, "CAST($1 AS SMALLINT)")


def pg(sql: str) -> str:
    """The statement with asyncpg's numbered placeholders."""
    parts = sql.split("?")
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))
