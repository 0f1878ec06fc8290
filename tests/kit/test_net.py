"""The listening-socket helper shared by the HTTP server and the embedded broker."""

from __future__ import annotations

import asyncio
import socket

import pytest

from thingbucket.kit.net import listen


async def test_accepted_connections_send_small_answers_at_once() -> None:
    # asyncio disables Nagle only on sockets that say they are TCP; a proto of 0 costs every
    # request-answer exchange the client's delayed ACK.
    nodelay: list[int] = []

    async def accepted(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        nodelay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    sock = listen("127.0.0.1", 0, 8)
    server = await asyncio.start_server(accepted, sock=sock)
    async with server:
        port = sock.getsockname()[1]
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(100):
            if nodelay:
                break
            await asyncio.sleep(0.01)
        writer.close()
    assert nodelay
    assert nodelay[0] != 0


def test_a_taken_port_is_refused() -> None:
    first = listen("127.0.0.1", 0, 8)
    try:
        with pytest.raises(OSError):
            listen("127.0.0.1", first.getsockname()[1], 8)
    finally:
        first.close()
