"""Start-up refuses, with one clear line and exit status 2, what it must not run with."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from processes import child_env, cli, serve


def _refused(result_stderr: str, returncode: int, *needles: str) -> None:
    assert returncode == 2, result_stderr
    lines = [line for line in result_stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result_stderr
    for needle in needles:
        assert needle in lines[0]


def test_an_unreachable_database_is_refused(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://postgres:s3cretpass@127.0.0.1:1/nothing"
    result = cli("serve", "--port", "0", "--data-dir", str(tmp_path), "--database-url", url)
    _refused(result.stderr, result.returncode, "cannot reach the database", "database.url")
    assert "s3cretpass" not in result.stderr


def test_a_taken_port_is_refused(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("serve", "--port", str(port), "--data-dir", str(tmp_path))
    _refused(result.stderr, result.returncode, f"port {port}", "is taken")


@pytest.mark.parametrize("secret", ["changeme", "password", "tooshort"])
def test_a_placeholder_or_short_secret_is_refused_also_beyond_loopback(
    tmp_path: Path, secret: str
) -> None:
    env = child_env(THINGBUCKET_SECURITY__SECRET_KEY=secret)
    result = cli("serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path), env=env)
    _refused(result.stderr, result.returncode, "security.secret_key")
    assert secret not in result.stderr.lower().replace("security.secret_key", "")
    assert not (tmp_path / "thingbucket.db").exists()


def test_debug_beyond_loopback_is_refused(tmp_path: Path) -> None:
    env = child_env(THINGBUCKET_SERVER__DEBUG="true")
    result = cli("serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path), env=env)
    _refused(result.stderr, result.returncode, "server.debug")


def test_two_names_for_one_setting_that_disagree_are_refused(tmp_path: Path) -> None:
    env = child_env(THINGBUCKET_PORT="8001", THINGBUCKET_SERVER__PORT="8002")
    result = cli("serve", "--data-dir", str(tmp_path), env=env)
    _refused(result.stderr, result.returncode, "THINGBUCKET_PORT", "THINGBUCKET_SERVER__PORT")


def test_sqlite_synchronous_off_is_refused(tmp_path: Path) -> None:
    env = child_env(THINGBUCKET_STORAGE__SQLITE_SYNCHRONOUS="OFF")
    result = cli("serve", "--port", "0", "--data-dir", str(tmp_path), env=env)
    _refused(result.stderr, result.returncode, "storage.sqlite_synchronous")


def test_a_group_readable_secret_key_file_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "secret_key"
    key.write_text("k" * 40)
    key.chmod(0o644)
    result = cli("serve", "--port", "0", "--data-dir", str(tmp_path))
    _refused(result.stderr, result.returncode, "chmod 600")


def test_a_default_start_listens_on_loopback_only_and_says_how_to_make_an_admin(
    tmp_path: Path,
) -> None:
    with serve(tmp_path) as server:
        import psutil

        listening = [
            c.laddr
            for c in psutil.Process(server.process.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        ]
        assert listening
        assert all(addr.ip == "127.0.0.1" for addr in listening)
        text = "".join(server.log)
        assert "thingbucket user create" in text


def test_several_workers_on_sqlite_are_refused(tmp_path: Path) -> None:
    result = cli("serve", "--port", "0", "--data-dir", str(tmp_path), "--workers", "2")
    _refused(result.stderr, result.returncode, "server.workers", "PostgreSQL")


@pytest.mark.needs_pg
def test_several_workers_beside_the_embedded_broker_are_refused(
    tmp_path: Path, pg_url: str
) -> None:
    env = child_env(THINGBUCKET_WORKERS="2")
    args = ("serve", "--port", "0", "--data-dir", str(tmp_path), "--database-url", pg_url)
    result = cli(*args, env=env)
    _refused(result.stderr, result.returncode, "server.workers", "--mqtt-url")
