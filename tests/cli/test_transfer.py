"""``thingbucket import`` and ``export`` as a user runs them, next to a running server."""

from __future__ import annotations

import os
import pty
import random
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import TEST_SECRET, need_service
from processes import child_env, cli, create_person, serve

PASSWORD = "transfer password 1"


@dataclass
class Target:
    url: str
    data_dir: Path
    db_args: list[str]
    property_id: str
    points_url: str
    headers: dict[str, str]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return cli(
            *args,
            "--property",
            self.property_id,
            "--data-dir",
            str(self.data_dir),
            *self.db_args,
            env=child_env(THINGBUCKET_SECURITY__SECRET_KEY=TEST_SECRET),
            timeout=timeout,
        )


def _prepare(url: str, data_dir: Path, db_args: list[str]) -> Target:
    headers = create_person(url, data_dir, db_args)
    with httpx.Client(base_url=url, timeout=30) as http:
        bucket = http.post("/api/v1/buckets", json={"name": "b"}, headers=headers).json()
        thing = http.post(
            "/api/v1/things", json={"name": "t", "bucket_id": bucket["id"]}, headers=headers
        ).json()
        prop = http.post(
            f"/api/v1/things/{thing['id']}/properties",
            json={"name": "acc", "type": "ACCELEROMETER"},
            headers=headers,
        ).json()
    points = f"/api/v1/things/{thing['id']}/properties/{prop['id']}/points"
    return Target(url, data_dir, db_args, prop["id"], points, headers)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.needs_pg)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    db_args: list[str] = []
    if request.param == "postgresql":
        need_service("PostgreSQL", "127.0.0.1", 5432)
        db_args = ["--database-url", request.getfixturevalue("pg_url")]
    env = child_env(THINGBUCKET_SECURITY__SECRET_KEY=TEST_SECRET)
    with serve(tmp_path, *db_args, env=env) as server:
        yield _prepare(server.url, tmp_path, db_args)


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[Target]:
    env = child_env(THINGBUCKET_SECURITY__SECRET_KEY=TEST_SECRET)
    with serve(tmp_path, env=env) as server:
        yield _prepare(server.url, tmp_path, [])


def _csv(path: Path, rows: int, start: int, bad_at: int | None = None) -> None:
    rng = random.Random(rows)
    lines = ["ts,acceleration-x,acceleration-y,acceleration-z"]
    for i in range(rows):
        y = "" if i % 5 == 0 else repr(rng.uniform(-9, 9))
        x = "oops" if i == bad_at else repr(rng.random())
        lines.append(f"{start + i * 10},{x},{y},{float(i)!r}")
    path.write_text("\n".join(lines) + "\n")


def _count(t: Target, start: int) -> int:
    answer = httpx.get(
        t.url + t.points_url,
        params={"from": start, "format": "ndjson"},
        headers=t.headers,
        timeout=60,
    )
    assert answer.status_code == 200
    return len(answer.content.splitlines())


def test_import_then_export_round_trips_and_a_second_import_adds_nothing(
    target: Target, tmp_path: Path
) -> None:
    start = int(time.time() * 1000) - 86_400_000
    source = tmp_path / "in.csv"
    _csv(source, 12_000, start)
    imported = target.run("import", str(source), "--batch", "4000")
    assert imported.returncode == 0, imported.stderr
    # Piped: no progress bar, only the summary line.
    assert imported.stderr.strip().splitlines() == [
        f"imported 12,000 rows (33,600 samples) from {source} in "
        + imported.stderr.split(" in ")[1].strip()
    ]
    assert _count(target, start) == 12_000

    exported = tmp_path / "out.csv"
    first = target.run("export", "--from", str(start), "--output", str(exported))
    assert first.returncode == 0, first.stderr
    assert "exported 12,000 rows (33,600 samples)" in first.stderr
    # The stored values are floats: the export is the input with every number written as one.
    assert exported.read_text().splitlines()[0] == source.read_text().splitlines()[0]
    assert len(exported.read_text().splitlines()) == 12_001

    again = target.run("import", str(exported))
    assert again.returncode == 0, again.stderr
    assert _count(target, start) == 12_000
    second = target.run("export", "--from", str(start))
    assert second.returncode == 0
    assert second.stdout == exported.read_text()

    ndjson = target.run("export", "--from", str(start), "--format", "ndjson")
    assert ndjson.returncode == 0
    assert len(ndjson.stdout.splitlines()) == 12_000
    ndjson_file = tmp_path / "again.ndjson"
    ndjson_file.write_text(ndjson.stdout)
    assert target.run("import", str(ndjson_file)).returncode == 0
    assert target.run("export", "--from", str(start)).stdout == exported.read_text()


def test_a_bad_row_stops_the_import_naming_it_and_keeps_the_batches_before(
    sqlite: Target, tmp_path: Path
) -> None:
    target = sqlite
    start = int(time.time() * 1000) - 86_400_000
    source = tmp_path / "bad.csv"
    _csv(source, 3000, start, bad_at=2345)
    result = target.run("import", str(source), "--batch", "1000")
    assert result.returncode == 1
    assert "row 2345" in result.stderr
    assert "acceleration-x" in result.stderr
    assert "2,000 rows before it were stored" in result.stderr
    assert _count(target, start) == 2000


def test_on_a_terminal_the_import_draws_a_progress_bar(sqlite: Target, tmp_path: Path) -> None:
    target = sqlite
    start = int(time.time() * 1000) - 86_400_000
    source = tmp_path / "in.csv"
    _csv(source, 20_000, start)
    master, slave = pty.openpty()
    env = child_env(THINGBUCKET_SECURITY__SECRET_KEY=TEST_SECRET, TERM="xterm", COLUMNS="120")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "thingbucket", "import", str(source), "--batch", "1000"),
            *("--property", target.property_id, "--data-dir", str(target.data_dir)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            screen += data
        elif process.poll() is not None:
            break
    process.wait(timeout=30)
    os.close(master)
    assert process.returncode == 0, screen.decode(errors="replace")
    text = screen.decode(errors="replace")
    assert "import" in text
    assert "━" in text  # the bar
    assert "rows" in text
    assert "/s" in text  # the rate
    assert "imported 20,000 rows" in text  # the summary stays after the bar is gone
