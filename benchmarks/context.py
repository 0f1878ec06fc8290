"""What a workload gets: the mode, a scratch directory, and the server (started on first use)."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.core import Mode
from benchmarks.server import Server, running_server


@dataclass
class Context:
    mode: Mode
    workdir: Path
    stack: ExitStack
    shared: dict[str, Any] = field(default_factory=dict)  # e.g. the seeded read data set
    _server: Server | None = None

    def server(self) -> Server:
        """The SQLite server of this run (one per run, stopped when the suite ends)."""
        if self._server is None or not self._server.alive():
            if self._server is not None:
                raise RuntimeError(
                    f"the server died (exit {self._server.process.returncode}):\n"
                    + self._server.log_tail()
                )
            self._server = self.stack.enter_context(running_server(self.workdir / "server"))
        return self._server

    @property
    def server_started(self) -> Server | None:
        return self._server
