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
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.typing import Data

_TEXT = Opcode.TEXT
_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


class ApiConnection(ServerConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._texts: deque[str] = deque()
        self._texts_on = False
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        # The assembler's water marks (websockets' own default for the low one).
        high, low = self.max_queue_high, self.max_queue_low
        self._high: int | None = high
        self._low = low if low is not None else (0 if high is None else high // 4)

    def take_texts(self) -> None:
        """From now on, whole text frames wait here for ``next_message``."""
        self._texts_on = True

    def process_event(self, event: Any) -> None:
        if (
            self._texts_on
            and type(event) is Frame
            and event.opcode is _TEXT
            and event.fin
            and not self.recv_messages.frames.queue
            and not self.recv_messages.get_in_progress
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
                self._texts.append(text)
                high = self._high
                if high is not None and len(self._texts) > high and not self._paused:
                    self._paused = True
                    self.transport.pause_reading()
            self._wake()
            return
        super().process_event(event)
        if type(event) is Frame and event.opcode in _DATA:
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
