"""The API's WebSocket connection: websockets' own, with a short way for whole text frames.

A request is one unfragmented text frame. Through ``recv()`` each one goes into
websockets' message assembler and out again through two coroutines, a queue and a
future made per message, a good part of what a small request costs the server. Once a
session asks for it (``take_texts``), a whole text frame that arrives while nothing
else is queued is decoded and kept here instead, and ``next_message`` hands it over.
Everything else (fragmented messages, binary frames, invalid UTF-8, the end of the
connection) still goes through the assembler and ``recv()``, in arrival order, so the
answers websockets gives to those stay exactly its own.

Flow control is kept: past ``max_queue`` waiting texts, reading from the socket pauses,
as the assembler would pause it.

A socket read that holds nothing but whole, masked, unfragmented text frames, read while
websockets' parser stands between two frames, is split and unmasked here without
websockets' parser (its generators and a Frame object per message cost about as much as
the rest of receiving). Anything else in a read - a control frame, a fragment, a frame
cut by the read, a frame over the size limit, invalid UTF-8 - hands the whole read to
websockets, which answers it exactly as it always does. Whether the parser stands
between frames is read from the parser itself (its innermost generator waits in
``at_eof`` with nothing buffered), and remembered only as long as only this short way
has been used since.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, State
from websockets.streams import StreamReader
from websockets.typing import Data

try:
    # What websockets' own frame parser unmasks with: its C speedup, when built.
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets installed without its C extension
    from websockets.utils import apply_mask

_TEXT = Opcode.TEXT
_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)
# The most one socket read asks for. asyncio's own (256 KiB) makes CPython allocate a
# buffer that size for every read, which glibc maps and unmaps each time (strace: an
# mmap and a munmap per recv): ~15 us a read against ~2.5 us at 64 KiB, measured here.
# A request is a few hundred bytes; a bigger message simply takes more reads.
RECV_BYTES = 64 * 1024
_OPEN = State.OPEN
# The generators websockets' frame parser waits in between two frames (websockets is
# pinned below 18; tests/api/test_connection.py notices if this changes).
_FRAME_LOOP = Protocol.parse.__code__
_AT_EOF = StreamReader.at_eof.__code__
# First byte of a whole text frame (FIN, no RSV bits, opcode 1); mask bit of the second.
_FIN_TEXT = 0x81
_MASKED = 0x80


def whole_texts(data: bytes, max_size: int | None) -> list[str] | None:
    """The texts of ``data`` when it is nothing but whole, masked, unfragmented text
    frames of at most ``max_size`` bytes holding valid UTF-8; else None."""
    out: list[str] = []
    n = len(data)
    pos = 0
    while pos < n:
        if n - pos < 6 or data[pos] != _FIN_TEXT:
            return None
        second = data[pos + 1]
        if not second & _MASKED:
            return None
        length = second & 0x7F
        head = pos + 6
        if length == 126:
            if n - pos < 8:
                return None
            length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            head = pos + 8
        elif length == 127:
            # 64 KiB or more: over any sensible limit; websockets says so.
            return None
        end = head + length
        if end > n or (max_size is not None and length > max_size):
            return None
        try:
            out.append(apply_mask(data[head:end], data[head - 4 : head]).decode())
        except UnicodeDecodeError:
            return None
        pos = end
    return out


class ApiConnection(ServerConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._texts: deque[str] = deque()
        self._texts_on = False
        # Known to stand between two frames, and fed nothing since it was seen to.
        self._between = False
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        # The assembler's water marks (websockets' own default for the low one).
        high, low = self.max_queue_high, self.max_queue_low
        self._high: int | None = high
        self._low = low if low is not None else (0 if high is None else high // 4)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # asyncio's selector transports read ``max_size`` bytes at a time (an attribute
        # of theirs since Python 3.4); other transports are left as they are.
        if type(getattr(transport, "max_size", None)) is int:
            transport.max_size = RECV_BYTES  # type: ignore[attr-defined]

    def take_texts(self) -> None:
        """From now on, whole text frames wait here for ``next_message``."""
        self._texts_on = True

    def data_received(self, data: bytes) -> None:
        if self._texts_on and (self._between or self._parser_between_frames()):
            texts = whole_texts(data, self.protocol.max_message_size)
            if texts is not None and self._assembler_idle():
                self._between = True
                self._keep(texts)
                return
        self._between = False
        super().data_received(data)

    def _parser_between_frames(self) -> bool:
        protocol = self.protocol
        if (
            protocol.state is not _OPEN
            or protocol.reader.buffer
            or protocol.current_size is not None
            or protocol.extensions
        ):
            return False
        parser: Any = protocol.parser
        frames = parser.gi_yieldfrom
        if frames is None or frames.gi_code is not _FRAME_LOOP:
            return False
        inner = frames.gi_yieldfrom
        return inner is not None and inner.gi_code is _AT_EOF

    def process_event(self, event: Any) -> None:
        if (
            self._texts_on
            and type(event) is Frame
            and event.opcode is _TEXT
            and event.fin
            and self._assembler_idle()
        ):
            try:
                text = (
                    bytes(event.data).decode()
                    if type(event.data) is memoryview
                    else event.data.decode()
                )
            except UnicodeDecodeError:
                # websockets closes the connection for it (1007): let it.
                super().process_event(event)
            else:
                self._keep((text,))
                return
            self._wake()
            return
        super().process_event(event)
        if type(event) is Frame and event.opcode in _DATA:
            self._wake()

    def _assembler_idle(self) -> bool:
        """Nothing waits in websockets' assembler: a text kept here is next in order."""
        return not self.recv_messages.frames.queue and not self.recv_messages.get_in_progress

    def _keep(self, texts: Iterable[str]) -> None:
        """Keep ``texts`` for ``next_message``; past the high-water mark, stop reading."""
        self._texts.extend(texts)
        high = self._high
        if high is not None and len(self._texts) > high and not self._paused:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next_message(self) -> Data:
        """The next message, as ``recv()`` returns it (and raising as it does)."""
        while True:
            texts = self._texts
            if texts:
                text = texts.popleft()
                if self._paused and len(texts) <= self._low:
                    self._paused = False
                    if not self.recv_messages.paused:
                        self.transport.resume_reading()
                return text
            if self.recv_messages.frames.queue or self.recv_messages.closed:
                return await self.recv()
            waiter = self._waiter = self.loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
