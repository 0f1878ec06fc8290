"""Cold chunks as a user meets them: ``thingbucket compact [--dry-run]`` and serve's own pass."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

import httpx

from conftest import TEST_SECRET
from processes import child_env, cli, create_property, serve

DAY_MS = 86_400_000


def _setup(url: str, data_dir: Path) -> tuple[dict[str, str], str, list[list[float]]]:
    """A property with two old days of readings every 10 minutes and one recent reading."""
    owned = create_property(url, data_dir, [])
    now = int(time.time() * 1000)
    day = now - now % DAY_MS - 30 * DAY_MS
    rows = [[day + i * 600_000, round(i * 0.25, 2)] for i in range(2 * 144)] + [[now - 1000, 7.0]]
    answer = httpx.post(
        url + owned.points, json={"points": rows}, headers=owned.headers, timeout=30
    )
    assert answer.status_code == 204
    headers, points = owned.headers, owned.points
    return headers, points, rows


def _rows(url: str, points: str, headers: dict[str, str]) -> list[list[float]]:
    answer = httpx.get(url + points, params={"from": 0}, headers=headers, timeout=30)
    assert answer.status_code == 200
    rows: list[list[float]] = answer.json()["rows"]
    return rows


def _chunks(data_dir: Path) -> tuple[int, int]:
    with closing(sqlite3.connect(f"file:{data_dir / 'thingbucket.db'}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT count(*), coalesce(sum(n), 0) FROM sample_chunks").fetchone()
    return int(row[0]), int(row[1])


def test_compact_shows_then_packs_the_old_days_and_reads_stay_the_same(tmp_path: Path) -> None:
    env = child_env(THINGBUCKET_SECURITY__SECRET_KEY=TEST_SECRET, THINGBUCKET_COLD__ENABLED="0")
    with serve(tmp_path, env=env) as server:
        headers, points, rows = _setup(server.url, tmp_path)
        for _ in range(100):  # serve's rollup pass builds the minutes first
            dry = cli("compact", "--dry-run", "--data-dir", str(tmp_path), env=env)
            assert dry.returncode == 0, dry.stderr
            if "samples to pack: 288" in dry.stderr:
                break
            time.sleep(0.1)
        assert "samples to pack: 288" in dry.stderr, dry.stderr
        thing = points.rsplit("/properties/", 1)[0]
        other = httpx.post(
            server.url + thing + "/properties",
            json={"name": "other", "type": "SPEED"},
            headers=headers,
            timeout=30,
        ).json()["id"]
        one = cli("compact", "--dry-run", "--property", other, "--data-dir", str(tmp_path), env=env)
        assert "samples to pack: 0" in one.stderr, one.stderr
        absent = "00000000-0000-4000-8000-000000000000"
        bad = cli("compact", "--property", absent, "--data-dir", str(tmp_path), env=env)
        assert bad.returncode == 1
        assert bad.stderr.startswith("thingbucket: ")
        assert "not found" in bad.stderr.lower()
        assert _chunks(tmp_path) == (0, 0)
        done = cli("compact", "--data-dir", str(tmp_path), env=env)
        assert done.returncode == 0, done.stderr
        assert "samples packed: 288" in done.stderr
        assert _chunks(tmp_path) == (2, 288)  # a chunk a day
        assert _rows(server.url, points, headers) == rows


def test_serve_packs_old_days_by_itself(tmp_path: Path) -> None:
    env = child_env(
        THINGBUCKET_SECURITY__SECRET_KEY=TEST_SECRET,
        THINGBUCKET_COLD__FIRST_RUN_AFTER_S="0.2",
        THINGBUCKET_COLD__INTERVAL_S="0.2",
    )
    with serve(tmp_path, env=env) as server:
        headers, points, rows = _setup(server.url, tmp_path)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _chunks(tmp_path) != (2, 288):
            time.sleep(0.1)
        assert _chunks(tmp_path) == (2, 288)
        assert _rows(server.url, points, headers) == rows
