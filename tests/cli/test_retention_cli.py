"""Retention as a user meets it: ``thingbucket retention [--dry-run]`` and serve's hourly task."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

import httpx

from conftest import TEST_SECRET
from processes import child_env, cli, create_property, serve

DAY_MS = 86_400_000


def _setup(url: str, data_dir: Path) -> tuple[dict[str, str], str, str, list[int]]:
    """A bucket with a property holding two expired-to-be samples and one recent one."""
    owned = create_property(url, data_dir, [])
    now = int(time.time() * 1000)
    stamps = [now - 50 * DAY_MS, now - 40 * DAY_MS, now - 1000]
    with httpx.Client(base_url=url, headers=owned.headers, timeout=30) as http:
        posted = http.post(owned.points, json={"points": [[t, 1.0] for t in stamps]})
        assert posted.status_code == 204
        patched = http.patch(f"/api/v1/buckets/{owned.bucket_id}", json={"retention_days": 30})
        assert patched.status_code == 200
    return owned.headers, owned.points, owned.property_id, stamps


def _stamps(url: str, points: str, headers: dict[str, str]) -> list[int]:
    answer = httpx.get(url + points, params={"from": 0}, headers=headers, timeout=30)
    assert answer.status_code == 200
    return [row[0] for row in answer.json()["rows"]]


def test_the_retention_command_shows_then_deletes_what_has_expired(tmp_path: Path) -> None:
    env = child_env(
        THINGBUCKET_SECURITY__SECRET_KEY=TEST_SECRET, THINGBUCKET_RETENTION__ENABLED="false"
    )
    with serve(tmp_path, env=env) as server:
        headers, points, prop_id, stamps = _setup(server.url, tmp_path)
        dry = cli("retention", "--dry-run", "--data-dir", str(tmp_path), env=env)
        assert dry.returncode == 0, dry.stderr
        (line,) = [ln for ln in dry.stdout.splitlines() if ln.startswith(prop_id)]
        assert line.split()[2:3] == ["30"]  # days
        assert line.split()[-1] == "2"
        assert "to delete: 2" in dry.stderr
        assert _stamps(server.url, points, headers) == stamps
        done = cli("retention", "--data-dir", str(tmp_path), env=env)
        assert done.returncode == 0, done.stderr
        assert "deleted: 2" in done.stderr
        assert _stamps(server.url, points, headers) == stamps[2:]


def test_serve_builds_rollups_and_deletes_expired_samples_by_itself(tmp_path: Path) -> None:
    env = child_env(
        THINGBUCKET_SECURITY__SECRET_KEY=TEST_SECRET,
        THINGBUCKET_RETENTION__FIRST_RUN_AFTER_S="0.2",
        THINGBUCKET_RETENTION__INTERVAL_S="0.2",
    )
    with serve(tmp_path, env=env) as server:
        headers, points, _prop_id, stamps = _setup(server.url, tmp_path)
        deadline = time.monotonic() + 10
        left = stamps
        while time.monotonic() < deadline and left != stamps[2:]:
            time.sleep(0.1)
            left = _stamps(server.url, points, headers)
        assert left == stamps[2:]
        # The rollup pass ran too: no bucket is left dirty, and the recent sample has rollups.
        with closing(
            sqlite3.connect(f"file:{tmp_path / 'thingbucket.db'}?mode=ro", uri=True)
        ) as db:
            for _ in range(100):
                dirty = db.execute("SELECT count(*) FROM rollup_dirty").fetchone()[0]
                if dirty == 0:
                    break
                time.sleep(0.1)
            assert dirty == 0
            assert db.execute("SELECT count(*) FROM rollups").fetchone()[0] == 3  # 1 min, 1 h, 1 d
