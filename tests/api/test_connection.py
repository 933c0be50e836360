"""The API connection's short ways for whole text frames (past the assembler, and past
the frame parser) keep websockets' semantics: arrival order across the short ways and
websockets' own, websockets' own close for invalid UTF-8, unmasked and oversized frames,
answers to control frames, and flow control for a client that floods without reading."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from wallctl.api.connection import RECV_BYTES, ApiConnection, whole_texts

MASK = b"\x11\x22\x33\x44"


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A masked client frame, written by hand so tests can send what clients may."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
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


# --- the short way past websockets' parser ---------------------------------------------------


async def wait_for(cond: Any, what: str) -> None:
    for _ in range(250):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def count_parser_feeds(conn: ApiConnection) -> list[bytes]:
    """Every read that went to websockets' parser from now on."""
    fed: list[bytes] = []
    receive = conn.protocol.receive_data

    def spy(data: bytes | bytearray) -> None:
        fed.append(bytes(data))
        receive(data)

    conn.protocol.receive_data = spy  # type: ignore[method-assign]
    return fed


async def test_whole_text_frames_go_past_the_parser_in_order(echo: tuple[Echo, int]) -> None:
    e, port = echo
    _r, w = await open_raw(port)
    await wait_for(lambda: e.conn is not None, "the session")
    assert e.conn is not None
    fed = count_parser_feeds(e.conn)
    # Short and 16-bit lengths, multi-byte UTF-8, in one read.
    texts = ["a", "指挥中心" * 40, "x" * 300, '{"op":"request"}']
    w.write(b"".join(frame(0x1, t.encode()) for t in texts))
    await w.drain()
    await wait_for(lambda: len(e.got) == 4, "four messages")
    assert e.got == texts
    assert fed == [], "whole text frames went through websockets' parser"
    w.close()


async def test_a_frame_cut_by_a_read_goes_to_websockets_until_it_ends(
    echo: tuple[Echo, int],
) -> None:
    """A frame split over two reads leaves websockets' parser inside it: both reads go
    to websockets; once the parser is between frames again the short way resumes."""
    e, port = echo
    _r, w = await open_raw(port)
    await wait_for(lambda: e.conn is not None, "the session")
    assert e.conn is not None
    fed = count_parser_feeds(e.conn)
    cut = frame(0x1, b"cut in two")
    w.write(cut[:5])
    await w.drain()
    await wait_for(lambda: len(fed) == 1, "the first half at the parser")
    w.write(cut[5:] + frame(0x1, b"after the cut"))
    await w.drain()
    await wait_for(lambda: len(e.got) == 2, "two messages")
    assert len(fed) == 2
    w.write(frame(0x1, b"short way again"))
    await w.drain()
    await wait_for(lambda: len(e.got) == 3, "the third message")
    assert e.got == ["cut in two", "after the cut", "short way again"]
    assert len(fed) == 2, "the parser was fed again although it stood between frames"
    w.close()


async def test_a_ping_among_texts_is_answered_and_the_texts_keep_their_order(
    echo: tuple[Echo, int],
) -> None:
    e, port = echo
    r, w = await open_raw(port)
    w.write(frame(0x1, b"one") + frame(0x9, b"are you there") + frame(0x1, b"two"))
    await w.drain()
    head = await asyncio.wait_for(r.readexactly(2), 5)
    assert head[0] == 0x8A  # pong
    assert await r.readexactly(head[1]) == b"are you there"
    await wait_for(lambda: len(e.got) == 2, "two messages")
    assert e.got == ["one", "two"]
    w.close()


async def test_an_unmasked_or_oversized_frame_gets_websockets_own_close() -> None:
    """The short way never accepts what websockets refuses: an unmasked client frame
    closes with 1002, a frame over max_size with 1009, each after the text before it."""
    for bad, code in (
        (b"\x81\x05hello", 1002),
        (frame(0x1, b"y" * 200), 1009),
    ):
        e = Echo()
        async with serve(
            e, "127.0.0.1", 0, compression=None, max_size=100, create_connection=ApiConnection
        ) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            r, w = await open_raw(port)
            await wait_for(lambda e=e: e.conn is not None, "the session")
            w.write(frame(0x1, b"fine"))
            await w.drain()
            await wait_for(lambda e=e: e.got == ["fine"], "the good message")
            w.write(bad)
            await w.drain()
            head = await asyncio.wait_for(r.readexactly(2), 5)
            assert head[0] == 0x88, "the server did not close"
            body = await r.readexactly(head[1] & 0x7F)
            assert struct.unpack("!H", body[:2])[0] == code
            w.close()
            await asyncio.wait_for(e.done.wait(), 15)
            assert e.got == ["fine"]


@given(
    st.lists(st.text(max_size=300), min_size=1, max_size=8),
    st.data(),
)
def test_whole_texts_splits_exactly_what_websockets_would(texts: list[str], data: Any) -> None:
    wire = b"".join(frame(0x1, t.encode()) for t in texts)
    assert whole_texts(wire, None) == texts
    # Cut anywhere inside: not whole, so websockets gets the read.
    cut = data.draw(st.integers(1, len(wire) - 1))
    boundaries = set()
    pos = 0
    for t in texts:
        pos += len(frame(0x1, t.encode()))
        boundaries.add(pos)
    if cut not in boundaries:
        assert whole_texts(wire[:cut], None) is None
    # A limit below the longest payload: websockets must answer it.
    longest = max(len(t.encode()) for t in texts)
    if longest:
        assert whole_texts(wire, longest - 1) is None


async def test_a_payload_that_looks_like_a_frame_is_not_taken_for_one(
    echo: tuple[Echo, int],
) -> None:
    """The header of a frame arrives alone; its payload, read next, happens to be the
    bytes of a whole text frame. Only the parser knows it stands inside a frame: the
    message is the payload as text, not the frame it resembles."""
    e, port = echo
    _r, w = await open_raw(port)
    await wait_for(lambda: e.conn is not None, "the session")
    assert e.conn is not None
    fed = count_parser_feeds(e.conn)
    # A masked frame holding "hi", every byte >= 0x80...
    lookalike = b"\x81\x82\x80\x80\x80\x80" + bytes(b ^ 0x80 for b in b"hi")
    # ...sent as the masked payload of a frame whose mask flips the top bit back: the
    # text is plain ASCII (control characters included), valid UTF-8.
    text = bytes(b ^ 0x80 for b in lookalike)
    w.write(bytes([0x81, 0x80 | len(text)]) + b"\x80\x80\x80\x80")
    await w.drain()
    await wait_for(lambda: len(fed) == 1, "the header at the parser")
    w.write(lookalike)
    await w.drain()
    await wait_for(lambda: len(e.got) == 1, "the message")
    assert e.got == [text.decode()]
    w.close()


async def test_reads_are_64_kib_and_a_bigger_message_still_arrives_whole(
    echo: tuple[Echo, int],
) -> None:
    """Each socket read asks for RECV_BYTES, not asyncio's 256 KiB (a buffer that size
    costs an mmap and a munmap per read); a message several reads long is still one."""
    e, port = echo
    _r, w = await open_raw(port)
    await wait_for(lambda: e.conn is not None, "the session")
    assert e.conn is not None
    assert e.conn.transport.max_size == RECV_BYTES  # type: ignore[attr-defined]
    big = "指" * 70_000  # 210,000 bytes of UTF-8: at least four reads
    w.write(frame(0x1, b"before") + frame(0x1, big.encode()) + frame(0x1, b"after"))
    await w.drain()
    await wait_for(lambda: len(e.got) == 3, "three messages")
    assert e.got == ["before", big, "after"]
    w.close()
