"""The API connection's short way for whole text frames keeps websockets' semantics:
arrival order across the short way and the assembler, websockets' own close for invalid
UTF-8, and flow control for a client that floods without reading."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from wallctl.api.connection import ApiConnection

MASK = b"\x11\x22\x33\x44"


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A masked client frame, written by hand so tests can send what clients may."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    return head + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


class Echo:
    """Records what ``next_message`` returned, in order, and how the session ended."""

    def __init__(self) -> None:
        self.got: list[Any] = []
        self.ended: BaseException | None = None
        self.done = asyncio.Event()
        self.conn: ApiConnection | None = None
        self.hold = asyncio.Event()
        self.hold.set()

    async def __call__(self, ws: ApiConnection) -> None:
        self.conn = ws
        ws.take_texts()
        try:
            while True:
                await self.hold.wait()
                self.got.append(await ws.next_message())
        except ConnectionClosed as e:
            self.ended = e
        finally:
            self.done.set()


@pytest.fixture
async def echo() -> AsyncIterator[tuple[Echo, int]]:
    e = Echo()
    async with serve(
        e, "127.0.0.1", 0, compression=None, max_queue=8, create_connection=ApiConnection
    ) as server:
        yield e, next(iter(server.sockets)).getsockname()[1]


async def open_raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    w.write(
        f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert b" 101 " in await r.readuntil(b"\r\n\r\n")
    return r, w


async def test_messages_keep_their_order_across_both_ways(echo: tuple[Echo, int]) -> None:
    e, port = echo
    _r, w = await open_raw(port)
    w.write(
        frame(0x1, b"one")
        + frame(0x1, b"tw", fin=False)
        + frame(0x0, b"o", fin=True)
        + frame(0x1, b"three")
        + frame(0x2, b"four")
        + frame(0x1, "五".encode())
    )
    await w.drain()
    for _ in range(100):
        if len(e.got) == 5:
            break
        await asyncio.sleep(0.02)
    assert e.got == ["one", "two", "three", b"four", "五"]
    w.close()


async def test_invalid_utf8_gets_websockets_own_close(echo: tuple[Echo, int]) -> None:
    e, port = echo
    r, w = await open_raw(port)
    w.write(frame(0x1, b"ok") + frame(0x1, b"\xff\xfe"))
    await w.drain()
    head = await asyncio.wait_for(r.readexactly(2), 5)
    assert head[0] == 0x88, "the server did not close"
    body = await r.readexactly(head[1] & 0x7F)
    assert struct.unpack("!H", body[:2])[0] == 1007
    w.write(frame(0x8, body[:2]))
    await w.drain()
    w.close()
    await asyncio.wait_for(e.done.wait(), 15)
    assert e.got == ["ok"]
    assert isinstance(e.ended, ConnectionClosed)


async def test_a_client_closing_ends_the_session_after_its_last_message(
    echo: tuple[Echo, int],
) -> None:
    e, port = echo
    r, w = await open_raw(port)
    w.write(frame(0x1, b"last") + frame(0x8, struct.pack("!H", 1000)))
    await w.drain()
    # The server answers the close; the client then ends the TCP connection.
    assert (await asyncio.wait_for(r.readexactly(1), 5))[0] == 0x88
    w.close()
    await asyncio.wait_for(e.done.wait(), 5)
    assert e.got == ["last"]
    assert e.ended is not None and e.ended.rcvd is not None and e.ended.rcvd.code == 1000


async def test_a_flood_pauses_reading_and_nothing_is_lost(echo: tuple[Echo, int]) -> None:
    """Past max_queue waiting texts the socket is no longer read (the kernel buffers
    fill, the client's writes stall); once the session reads again, every message comes
    in order."""
    e, port = echo
    e.hold.clear()
    _r, w = await open_raw(port)
    n = 2000
    payload = b"x" * 1000
    for i in range(n):
        w.write(frame(0x1, b"%06d" % i + payload))
    for _ in range(100):
        if e.conn is not None and e.conn._paused:
            break
        await asyncio.sleep(0.02)
    try:
        assert e.conn is not None and e.conn._paused
        # One socket read (64 KiB) may bring a few dozen frames past the mark; the rest
        # waits in the kernel and in the client's own buffer.
        assert len(e.conn._texts) < 200, "reading went on past the high-water mark"
        assert not e.conn.transport.is_reading(), "the socket is still read"
    finally:
        e.hold.set()
    await asyncio.wait_for(w.drain(), 10)
    for _ in range(300):
        if len(e.got) == n:
            break
        await asyncio.sleep(0.02)
    assert [int(m[:6]) for m in e.got] == list(range(n))
    assert not e.conn._paused and e.conn.transport.is_reading()
    w.close()


async def test_plain_recv_still_works_before_take_texts() -> None:
    got: list[Any] = []

    async def handler(ws: ApiConnection) -> None:
        got.append(await ws.recv())
        ws.take_texts()
        got.append(await ws.next_message())

    async with serve(
        handler, "127.0.0.1", 0, compression=None, create_connection=ApiConnection
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        _r, w = await open_raw(port)
        w.write(frame(0x1, b"before"))
        await w.drain()
        await asyncio.sleep(0.1)
        w.write(frame(0x1, b"after"))
        await w.drain()
        for _ in range(100):
            if len(got) == 2:
                break
            await asyncio.sleep(0.02)
        w.close()
    assert got == ["before", "after"]
