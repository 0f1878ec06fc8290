"""Listening sockets, bound before a server starts so that a taken port is refused at start-up."""

from __future__ import annotations

import socket


def listen(host: str, port: int, backlog: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening; raises OSError (e.g. EADDRINUSE)."""
    # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off only on sockets whose proto says
    # TCP, and with it on every small answer waits for the client's delayed ACK (40 ms).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(backlog)
    return sock
