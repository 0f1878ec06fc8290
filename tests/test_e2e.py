"""The main flows end to end: a real server process, the real CLI, HTTP over a real socket."""

from __future__ import annotations

import random
import time
from pathlib import Path

import httpx
import pytest

from conftest import need_service
from processes import cli, serve

PASSWORD = "e2e password 123"


def _flow(url: str, data_dir: Path, db_args: list[str]) -> None:
    email = f"e2e-{random.randrange(10**9)}@example.com"
    created = cli(
        "user", "create", email, "--data-dir", str(data_dir), *db_args, stdin=PASSWORD + "\n"
    )
    assert created.returncode == 0, created.stderr
    person_id = created.stdout.strip()
    with httpx.Client(base_url=url, timeout=30) as http:
        token = http.post(
            "/api/v1/auth/token",
            data={"grant_type": "password", "username": email, "password": PASSWORD},
        )
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        me = http.get("/api/v1/me", headers=headers)
        assert me.status_code == 200
        assert me.json()["id"] == person_id

        bucket = http.post("/api/v1/buckets", json={"name": "field"}, headers=headers).json()
        thing = http.post(
            "/api/v1/things", json={"name": "kit", "bucket_id": bucket["id"]}, headers=headers
        ).json()
        prop = http.post(
            f"/api/v1/things/{thing['id']}/properties",
            json={"name": "acc", "type": "ACCELEROMETER"},
            headers=headers,
        ).json()
        points = f"/api/v1/things/{thing['id']}/properties/{prop['id']}/points"
        start = int(time.time() * 1000) - 3_600_000
        rng = random.Random(3)
        sent = [
            [start + i * 17, rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(-1, 1)]
            for i in range(10_000)
        ]
        for i in range(0, 10_000, 1000):
            answer = http.post(points, json={"points": sent[i : i + 1000]}, headers=headers)
            assert answer.status_code == 204, answer.text
        rows: list[list[float]] = []
        cursor = None
        while True:
            params: dict[str, str | int] = {"from": start, "limit": 4000}
            if cursor:
                params["cursor"] = cursor
            body = http.get(points, params=params, headers=headers).json()
            rows += body["rows"]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert rows == sent

        bad = http.post(
            points, json={"points": [[start, 1, 2, 3], [start + 1, 1, "x", 3]]}, headers=headers
        )
        assert bad.status_code == 400
        assert bad.json()["error"]["details"][0]["index"] == 1
        assert http.get(f"/api/v1/things/{thing['id']}").status_code == 401


def test_main_flow_on_sqlite(tmp_path: Path) -> None:
    with serve(tmp_path) as server:
        assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
        _flow(server.url, tmp_path, [])
    key_file = tmp_path / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600


@pytest.mark.needs_pg
def test_main_flow_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    need_service("PostgreSQL", "127.0.0.1", 5432)
    with serve(tmp_path, "--database-url", pg_url) as server:
        _flow(server.url, tmp_path, ["--database-url", pg_url])


def test_docs_and_openapi_are_served_without_a_cdn(tmp_path: Path) -> None:
    with serve(tmp_path) as server, httpx.Client(base_url=server.url) as http:
        docs = http.get("/docs")
        assert docs.status_code == 200
        assert "swagger" in docs.text.lower()
        assert "cdn" not in docs.text.lower()
        assert "https://" not in docs.text
        spec = http.get("/api/v1/openapi.json")
        assert spec.status_code == 200
        assert "/api/v1/things/{thing_id}/properties/{property_id}/points" in spec.json()["paths"]
