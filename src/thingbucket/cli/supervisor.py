"""Several server processes on one HTTP socket (``server.workers``, PostgreSQL and an external
MQTT broker only): started, watched and stopped by ``serve``.

Each worker is a whole server (``serve.run_server``) on the socket bound by the parent, with its
own database pool, MQTT client (client id suffixed ``-w<n>``, so each finds its own persistent
session in the shared subscription) and rate limits. Background tasks run in worker 0 only.
A worker that exits unexpectedly is started again under the same number; one that keeps failing
within seconds of its start stops the whole server. Ctrl-C and SIGTERM stop every worker
gracefully (uvicorn's shutdown: answers in flight are finished, queued writes committed).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import threading
import time
from multiprocessing.process import BaseProcess
from types import FrameType

from prometheus_client.multiprocess import mark_process_dead

from thingbucket.config import Settings
from thingbucket.metrics import MULTIPROCESS_ENV

log = logging.getLogger("thingbucket")

QUICK_FAILURE_S = 10.0  # a worker that exits sooner than this after its start failed to start
MAX_QUICK_FAILURES = 5
STOP_TIMEOUT_S = 30.0


def _worker_main(settings: Settings, index: int, sock: socket.socket, port: int) -> None:
    from thingbucket.cli.serve import configure_logging, run_server

    configure_logging(settings, index)
    threading.Thread(target=_stop_when_orphaned, args=(os.getppid(),), daemon=True).start()
    run_server(settings, index, sock, port)


def _stop_when_orphaned(parent: int) -> None:
    """A worker whose supervisor died (killed, say) shuts itself down the graceful way instead
    of serving on alone, unwatched."""
    while os.getppid() == parent:
        time.sleep(1)
    log.error("the supervisor is gone; stopping")
    os.kill(os.getpid(), signal.SIGTERM)


def _metrics_dir(settings: Settings) -> str:
    """A fresh directory for the workers' metric values (old values would be summed in)."""
    path = settings.server.data_dir / "metrics-workers"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return str(path)


def supervise(settings: Settings, sock: socket.socket, port: int) -> None:
    count = settings.server.workers
    # Set before the workers start: prometheus_client reads it when they import it.
    directory = os.environ[MULTIPROCESS_ENV] = _metrics_dir(settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    context = multiprocessing.get_context("spawn")

    def start(index: int) -> tuple[BaseProcess, float]:
        process = context.Process(
            target=_worker_main,
            args=(settings, index, sock, port),
            name=f"thingbucket-worker-{index}",
        )
        process.start()
        return process, time.monotonic()

    running = {index: start(index) for index in range(count)}
    quick_failures = dict.fromkeys(running, 0)
    log.info("%d workers serving on port %d", count, port)
    failed = False
    while not stop.is_set() and not failed:
        sentinels = [process.sentinel for process, _ in running.values()]
        multiprocessing.connection.wait(sentinels, timeout=0.5)
        for index, (process, started) in list(running.items()):
            if process.exitcode is None or stop.is_set():
                continue
            assert process.pid is not None
            mark_process_dead(process.pid, directory)  # type: ignore[no-untyped-call]
            quick = time.monotonic() - started < QUICK_FAILURE_S
            quick_failures[index] = quick_failures[index] + 1 if quick else 0
            if quick_failures[index] >= MAX_QUICK_FAILURES:
                log.error("worker %d keeps failing at start; stopping", index)
                failed = True
                break
            log.error("worker %d exited (%s); starting it again", index, process.exitcode)
            if quick:
                time.sleep(1)
            running[index] = start(index)
    _stop_all([process for process, _ in running.values()])
    if failed:
        raise SystemExit(1)


def _stop_all(processes: list[BaseProcess]) -> None:
    """SIGTERM (a terminal's Ctrl-C has reached them already), then wait; kill stragglers."""
    for process in processes:
        if process.exitcode is None:
            process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.exitcode is None:
            log.error("worker %s did not stop in %.0f s; killing it", process.name, STOP_TIMEOUT_S)
            process.kill()
            process.join()
