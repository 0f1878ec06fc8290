"""``serve --workers N``: the supervisor's own duties (the MQTT side is in tests/mqtt)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from conftest import TEST_SECRET
from processes import child_env, serve

pytestmark = pytest.mark.needs_pg


def test_workers_stop_by_themselves_when_their_supervisor_is_killed(
    tmp_path: Path, pg_url: str
) -> None:
    env = child_env(THINGBUCKET_SECURITY__SECRET_KEY=TEST_SECRET, THINGBUCKET_MQTT__ENABLED="0")
    args = ("--database-url", pg_url, "--workers", "2")
    with serve(tmp_path, *args, env=env) as server:
        supervisor = psutil.Process(server.process.pid)
        workers = [c for c in supervisor.children() if "spawn_main" in " ".join(c.cmdline())]
        assert len(workers) == 2
        assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
        supervisor.send_signal(signal.SIGKILL)
        _, alive = psutil.wait_procs(workers, timeout=15)
        assert alive == []
        assert "the supervisor is gone; stopping" in "".join(server.log)
        time.sleep(0.2)
        with pytest.raises(httpx.TransportError):
            httpx.get(server.url + "/healthz", timeout=2)
